"""The `mops` command: parses arguments, calls modelops.api, renders what comes back."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.text import Text

from modelops.cli.bundle import bundle_app
from modelops.cli.calibrate import calibrate_app
from modelops.cli.common import (
    ClusterOption,
    FrozenOption,
    LockedOption,
    SchedulerOption,
    console,
    errors_end_the_command,
    fail,
    lock_mode,
    parse_size,
    show_warnings_as_lines,
    stderr,
)
from modelops.cli.config import config_app
from modelops.cli.init import init
from modelops.cli.jobs import jobs_app, results_app, run
from modelops.cli.render import print_sim, sim_json
from modelops.cli.study import study_app

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="ModelOps: run simulation models from content-addressed bundles on Dask.",
)
dev_app = typer.Typer(no_args_is_help=True, help="Check an installation.")
app.add_typer(bundle_app, name="bundle")
app.add_typer(calibrate_app, name="calibrate")
app.add_typer(config_app, name="config")
app.add_typer(dev_app, name="dev")
app.add_typer(jobs_app, name="jobs")
app.add_typer(results_app, name="results")
app.add_typer(study_app, name="study")
app.command()(run)
app.command()(init)


@app.callback()
def main() -> None:
    """ModelOps: run simulation models from content-addressed bundles on Dask."""
    from modelops.settings import Settings  # not through the API: `mops run --help` stays fast

    show_warnings_as_lines()
    with errors_end_the_command():  # an unusable MODELOPS_* setting stops every command alike
        Settings.from_env()


@app.command()
def sim(
    path_or_ref: Annotated[str, typer.Argument(help="A project folder or repository@sha256:…")],
    entrypoint: Annotated[str, typer.Option("--entrypoint", "-e", help="Passed to wire().")] = "",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="name=value, repeatable; value as in TOML, e.g. 0.3."),
    ] = None,
    seed: Annotated[int, typer.Option(help="The simulation's seed.")] = 0,
    output: Annotated[
        list[str] | None, typer.Option("--output", "-o", help="Keep only these outputs.")
    ] = None,
    scheduler: SchedulerOption = None,
    cluster: ClusterOption = None,
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
    locked: LockedOption = False,
    frozen: FrozenOption = False,
) -> None:
    """Run one simulation of a bundle through the full worker path."""
    from modelops import api
    from modelops.contracts import (
        BundleRef,
        ErrorClass,
        ErrorInfo,
        ModelOpsError,
        RunLimits,
        SimReturn,
        check_seed,
    )
    from modelops.contracts.assignments import read_assignments

    bundle: BundleRef | None = None
    result: SimReturn | None = None
    error: ErrorInfo | None = None
    try:
        params = {name: value for name, (_, value) in read_assignments(param or [], "-p").items()}
        check_seed(seed)  # before the folder is built and published
        limits = RunLimits(
            timeout_s=timeout,
            memory_limit_mb=parse_size(memory_limit) if memory_limit else None,
            isolation=isolation,
        )
        cluster = api.check_cluster(scheduler, cluster)
        bundle = api.resolve(path_or_ref, lock_mode(locked, frozen))
        result = api.simulate(
            bundle,
            entrypoint,
            params,
            seed,
            outputs=output,
            scheduler=scheduler,
            cluster=cluster,
            limits=limits,
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


@dev_app.command("smoke-test")
def smoke_test(
    simulations: Annotated[int, typer.Option(min=2, help="How many simulations.")] = 24,
    workers: Annotated[int, typer.Option(min=1, help="Embedded cluster workers.")] = 2,
    scheduler: SchedulerOption = None,
) -> None:
    """Run the smoke bundle through the whole path and check every result."""
    from modelops.api import JobProgress
    from modelops.devtools.smoke import SmokeTestFailed, run_smoke_test

    with console.status("building the smoke bundle and starting the cluster...") as status:

        def progress(state: JobProgress) -> None:
            status.update(f"simulations done: {state.done} of {state.total}")

        try:
            report = run_smoke_test(simulations, workers, scheduler, on_progress=progress)
        except SmokeTestFailed as exc:
            status.stop()
            stderr.print(Text(str(exc), style="bold red"))
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
