"""`mops bundle …`: build, push, pull, inspect, list, login."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelops.cli.common import (
    FrozenOption,
    LockedOption,
    console,
    errors_end_the_command,
    lock_mode,
    stderr,
)
from modelops.cli.render import bundle_view, print_check

if TYPE_CHECKING:
    from modelops.api import Registry

bundle_app = typer.Typer(no_args_is_help=True, help="Build, publish and inspect bundles.")


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


def registry_of(
    host: str | None, insecure: bool, username: str | None, password_stdin: bool
) -> Registry:
    """The registry options as the one object the API takes."""
    from modelops.api import Registry

    password = sys.stdin.read().rstrip("\r\n") if password_stdin else None
    return Registry(host, username, password, insecure)


@bundle_app.command("build")
def bundle_build(
    path: Annotated[Path, typer.Argument(help="The project folder.")] = Path("."),
    repository: Annotated[str | None, typer.Option(help="Defaults to the project name.")] = None,
    tag: Annotated[str | None, typer.Option(help="A name for people; refs use the digest.")] = None,
    locked: LockedOption = False,
    frozen: FrozenOption = False,
) -> None:
    """Build a bundle, store it in the embedded bundle store, print its reference."""
    from modelops import api

    with errors_end_the_command():
        ref = api.build(path, repository, tag, lock_mode(locked, frozen))
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
    locked: LockedOption = False,
    frozen: FrozenOption = False,
) -> None:
    """Build a bundle and push it to a registry; prints repository@sha256:…"""
    from modelops import api

    with errors_end_the_command():
        report = api.push(
            path,
            registry_of(registry, insecure, username, password_stdin),
            repository,
            tag,
            force,
            lock=lock_mode(locked, frozen),
        )
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
    from modelops import api

    with errors_end_the_command():
        ref, target = api.pull(
            reference, dest, registry_of(registry, insecure, username, password_stdin)
        )
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
    from modelops import api

    with errors_end_the_command():
        description = api.inspect(
            reference, registry_of(registry, insecure, username, password_stdin)
        )
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
    from modelops import api

    with errors_end_the_command():
        listed = api.list_bundles(registry_of(registry, insecure, username, password_stdin))
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
    from modelops import api

    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True)
    with errors_end_the_command():
        where = api.login(api.Registry(registry, username, password, insecure))
    stderr.print(f"login succeeded; credentials stored in {where}", highlight=False, soft_wrap=True)


@bundle_app.command("check")
def bundle_check(
    path: Annotated[str, typer.Argument(help="Project folder or reference.")] = ".",
    locked: LockedOption = False,
    frozen: FrozenOption = False,
) -> None:
    """Build the environment and import the wire; for an SDK bundle, import every model and
    list their params, scenarios, outputs and entrypoints."""
    from modelops import api

    with errors_end_the_command():
        check = api.check_bundle(path, lock_mode(locked, frozen))
    print_check(console, check)
