"""The `mops` command: parses arguments, calls modelops.api, renders what comes back."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from modelops import api
from modelops.cli.render import bundle_view, error_view, print_sim, sim_json
from modelops.contracts import (
    BundleRef,
    ErrorClass,
    ErrorInfo,
    ModelOpsError,
    RunLimits,
    SimReturn,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
bundle_app = typer.Typer(no_args_is_help=True, help="Build and store bundles.")
dev_app = typer.Typer(no_args_is_help=True, help="Check an installation.")
app.add_typer(bundle_app, name="bundle")
app.add_typer(dev_app, name="dev")

console = Console()
stderr = Console(stderr=True)


def parse_param(text: str) -> tuple[str, Any]:
    """`name=value`; the value is read as JSON when it parses (numbers, true, lists), else text."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise typer.BadParameter(f"{text!r} is not name=value")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


_SIZE_UNITS = {"": 1, "k": 2**-10, "m": 1, "g": 2**10, "t": 2**20}


def parse_size_mb(text: str) -> float:
    """`512MB`, `2GB`, `1.5g` or a bare number of megabytes, in MB (binary units)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match:
        raise typer.BadParameter(f"memory limit {text!r} is not a size like 512MB or 2GB")
    return float(match.group(1)) * _SIZE_UNITS[match.group(2)]


def fail(error: ErrorInfo) -> typer.Exit:
    stderr.print(error_view(error), soft_wrap=True)
    return typer.Exit(1)


@app.command()
def sim(
    path_or_ref: Annotated[str, typer.Argument(help="A project folder or repository@sha256:…")],
    entrypoint: Annotated[str, typer.Option("--entrypoint", "-e", help="Passed to wire().")] = "",
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="name=value, repeatable.")
    ] = None,
    seed: Annotated[int, typer.Option(help="The simulation's seed.")] = 0,
    output: Annotated[
        list[str] | None, typer.Option("--output", "-o", help="Keep only these outputs.")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(envvar="MODELOPS_SCHEDULER", help="tcp://host:8786")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Kill the simulation after SECONDS.")
    ] = None,
    memory_limit: Annotated[
        str | None, typer.Option("--memory-limit", help="e.g. 512MB or 2GB; killed beyond.")
    ] = None,
    isolation: Annotated[
        str | None, typer.Option("--isolation", help="warm, recycle or cold.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Run one simulation of a bundle through the full worker path."""
    bundle: BundleRef | None = None
    result: SimReturn | None = None
    error: ErrorInfo | None = None
    try:
        params = dict(parse_param(p) for p in param or [])
        limits = RunLimits(
            timeout_s=timeout,
            memory_limit_mb=parse_size_mb(memory_limit) if memory_limit else None,
            isolation=isolation,
        )
        bundle = api.resolve(path_or_ref)
        result = api.simulate(
            bundle, entrypoint, params, seed, outputs=output, scheduler=scheduler, limits=limits
        )
    except ModelOpsError as exc:
        error = exc.info
    except typer.BadParameter as exc:
        error = ErrorInfo(ErrorClass.BAD_INPUT, "BadParameter", str(exc))
    if as_json:
        document = sim_json(bundle, result, error)
        print(json.dumps(document))
        raise typer.Exit(0 if document["status"] == "ok" else 1)
    if error is not None:
        raise fail(error)
    assert bundle is not None and result is not None
    print_sim(console, bundle, result)
    if result.error is not None:
        raise fail(result.error)


RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry", envvar="MODELOPS_BUNDLE_REGISTRY", help="Registry host[:port], no path."
    ),
]
InsecureOption = Annotated[
    bool, typer.Option("--insecure", help="Allow plain HTTP to a registry off this machine.")
]
UsernameOption = Annotated[str | None, typer.Option("--username", "-u", help="Registry user.")]
PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the registry password from stdin.")
]


def access(insecure: bool, username: str | None, password_stdin: bool) -> dict[str, Any]:
    password = sys.stdin.read().rstrip("\r\n") if password_stdin else None
    return {"insecure": insecure, "username": username, "password": password}


@bundle_app.command("build")
def bundle_build(
    path: Annotated[Path, typer.Argument(help="The project folder.")] = Path("."),
    repository: Annotated[str | None, typer.Option(help="Defaults to the project name.")] = None,
    tag: Annotated[str | None, typer.Option(help="A name for people; refs use the digest.")] = None,
) -> None:
    """Build a bundle, store it in the embedded bundle store, print its reference."""
    try:
        ref = api.build(path, repository, tag)
    except ModelOpsError as exc:
        raise fail(exc.info) from None
    print(ref)


@bundle_app.command("push")
def bundle_push(
    path: Annotated[Path, typer.Argument(help="The project folder.")] = Path("."),
    tag: Annotated[str | None, typer.Option(help="Also point this tag at the bundle.")] = None,
    registry: RegistryOption = None,
    repository: Annotated[str | None, typer.Option(help="Defaults to the project name.")] = None,
    force: Annotated[bool, typer.Option(help="Move the tag even if it moved meanwhile.")] = False,
    insecure: InsecureOption = False,
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Build a bundle and push it to a registry; prints repository@sha256:…"""
    try:
        report = api.push(
            path, registry, repository, tag, force, **access(insecure, username, password_stdin)
        )
    except ModelOpsError as exc:
        raise fail(exc.info) from None
    blobs = len(report.uploaded) + len(report.skipped)
    if report.uploaded:
        stderr.print(
            f"uploaded {len(report.uploaded)} of {blobs} blobs "
            f"({report.uploaded_bytes:,} bytes) to {report.registry}",
            highlight=False,
        )
    else:
        stderr.print(
            f"nothing to upload: all {blobs} blobs already in {report.registry}", highlight=False
        )
    if report.tag:
        stderr.print(f"tagged {report.ref.repository}:{report.tag}", highlight=False)
    print(report.ref)


@bundle_app.command("pull")
def bundle_pull(
    reference: Annotated[str, typer.Argument(help="repository@sha256:… or repository:tag")],
    dest: Annotated[Path | None, typer.Option(help="Folder to write the files to.")] = None,
    registry: RegistryOption = None,
    insecure: InsecureOption = False,
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Fetch a bundle, verify every blob, and write its files to a folder."""
    try:
        ref, target = api.pull(
            reference, dest, registry, **access(insecure, username, password_stdin)
        )
    except ModelOpsError as exc:
        raise fail(exc.info) from None
    stderr.print(f"pulled {ref} into {target}", highlight=False, soft_wrap=True)
    print(target)


@bundle_app.command("inspect")
def bundle_inspect(
    reference: Annotated[str, typer.Argument(help="repository@sha256:… or repository:tag")],
    registry: RegistryOption = None,
    insecure: InsecureOption = False,
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Show a bundle's files, environment and wire function without downloading it."""
    try:
        description = api.inspect(reference, registry, **access(insecure, username, password_stdin))
    except ModelOpsError as exc:
        raise fail(exc.info) from None
    if as_json:
        print(json.dumps(description.to_dict()))
        return
    console.print(bundle_view(description), soft_wrap=True)


@bundle_app.command("list")
def bundle_list(
    registry: RegistryOption = None,
    insecure: InsecureOption = False,
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """List repositories and their tags (or digests, in the embedded store)."""
    try:
        listed = api.list_bundles(registry, **access(insecure, username, password_stdin))
    except ModelOpsError as exc:
        raise fail(exc.info) from None
    for repository, names in listed:
        print(f"{repository}\t{' '.join(names)}")


@bundle_app.command("login")
def bundle_login(
    registry: Annotated[str, typer.Argument(help="Registry host[:port].")],
    username: Annotated[str, typer.Option("--username", "-u", prompt=True)],
    password_stdin: PasswordStdinOption = False,
    insecure: InsecureOption = False,
) -> None:
    """Check credentials against a registry and store them the way Docker does."""
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True)
    try:
        where = api.login(registry, username, password, insecure)
    except ModelOpsError as exc:
        raise fail(exc.info) from None
    stderr.print(f"login succeeded; credentials stored in {where}", highlight=False, soft_wrap=True)


@dev_app.command("smoke-test")
def smoke_test(
    simulations: Annotated[int, typer.Option(min=2, help="How many simulations.")] = 24,
    workers: Annotated[int, typer.Option(min=1, help="Embedded cluster workers.")] = 2,
    scheduler: Annotated[
        str | None, typer.Option(envvar="MODELOPS_SCHEDULER", help="Use this cluster instead.")
    ] = None,
) -> None:
    """Run the smoke bundle through the whole path and check every result."""
    from modelops.devtools.smoke import SmokeTestFailed, run_smoke_test

    with console.status("building the smoke bundle and starting the cluster...") as status:

        def progress(_: object) -> None:
            status.update(f"simulations done: {report_count.__next__()}")

        report_count = iter(range(1, simulations + 1))
        try:
            report = run_smoke_test(simulations, workers, scheduler, on_result=progress)
        except SmokeTestFailed as exc:
            status.stop()
            stderr.print(f"[bold red]{exc}[/]", highlight=False)
            if exc.remote_traceback:
                stderr.print(exc.remote_traceback, highlight=False, markup=False)
            raise typer.Exit(1) from None
    sample = report.sample
    assert sample is not None
    console.print(
        f"[bold green]smoke test passed[/]: {report.simulations} simulations ran on "
        f"{len(report.workers)} workers, every result valid"
    )
    console.print(f"bundle                 {report.bundle}", highlight=False, soft_wrap=True)
    console.print(f"time to first result   {report.time_to_first_result_s:.2f} s")
    console.print(f"total time             {report.total_s:.2f} s")
    console.print("sample output:")
    print_sim(console, report.bundle, sample)
