"""`mops calibrate …`: fit a model to observed data, follow the search, read what it found."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from modelops.cli.common import (
    ClusterOption,
    FrozenOption,
    LockedOption,
    SchedulerOption,
    WorkersOption,
    console,
    errors_end_the_command,
    fail,
    lock_mode,
    stderr,
)
from modelops.cli.render import literal

if TYPE_CHECKING:
    from modelops.api import Calibration, CalibrationProgress, CalibrationSummary

calibrate_app = typer.Typer(
    no_args_is_help=True, help="Fit a model to observed data on the cluster, and report the fit."
)
CalibrationIdArgument = Annotated[
    str, typer.Argument(help="A calibration's job id or a unique prefix of one.")
]
EXIT_CODES = {"succeeded": 0, "partial": 1, "failed": 1, "cancelled": 130}


class _TrialBar:
    """A rich progress bar of trials fed by the calibration's progress callback; its first
    call says which job this is."""

    def __init__(self, progress: Progress, headline: str) -> None:
        self.progress = progress
        self.headline = headline
        self.task: TaskID | None = None
        self.dashboard: str | None = None
        self.first_done: int | None = None
        self.job_id: str | None = None

    def __call__(self, state: CalibrationProgress) -> None:
        self.job_id = state.job_id
        if self.task is None:
            console.print(f"job {state.job_id}: {self.headline}", highlight=False)
            self.task = self.progress.add_task("trials", total=state.trials, detail="")
            self.first_done = state.done  # a resume's earlier trials are not this run's rate
        if state.dashboard and state.dashboard != self.dashboard:
            self.dashboard = state.dashboard
            console.print(f"dashboard {state.dashboard}", highlight=False, soft_wrap=True)
        minutes = max(time.monotonic() - state.started, 1e-9) / 60
        rate = (state.done - (self.first_done or 0)) / minutes
        best = "-" if state.best is None else f"{state.best:.6g}"
        busy = "" if state.utilisation is None else f"  busy {state.utilisation:.0%}"
        self.progress.update(
            self.task,
            completed=state.done,
            detail=f"best {best}  failed {state.failed}  {rate:.0f}/min{busy}",
        )


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _show(summary: CalibrationSummary) -> None:
    console.print(
        f"calibration {summary.job_id}{f' ({summary.name})' if summary.name else ''}: "
        f"{summary.state}, {summary.trials} of {summary.budget} trials "
        f"({summary.complete} scored, {summary.failed} failed)",
        highlight=False,
        markup=False,
    )
    if summary.utilisation is not None:
        console.print(f"worker utilisation {summary.utilisation:.0%}", highlight=False)
    best = summary.best
    if best is None:
        console.print("no trial scored yet", highlight=False)
        return
    console.print(f"best: trial {best.number}, loss {best.loss:.6g}", highlight=False)
    table = Table()
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for name, value in best.params.items():
        table.add_row(literal(name), literal(f"{value:.6g}" if isinstance(value, float) else value))
    console.print(table)
    console.print("loss by target", highlight=False)
    targets = Table()
    targets.add_column("target")
    targets.add_column("loss", justify="right")
    for name, loss in best.targets.items():
        targets.add_row(literal(name), f"{loss:.6g}")
    console.print(targets)


def _finish(calibration: Calibration) -> None:
    """The end of `run` and `resume`: what was found, the last line `job: ID`, and the exit
    code of the job's state."""
    with errors_end_the_command():
        summary = calibration.summary()
    _show(summary)
    if calibration.state in ("partial", "cancelled"):
        stderr.print(
            f"stopped; the trials told are kept: `mops calibrate resume {calibration.id}`",
            highlight=False,
            markup=False,
        )
    print(f"job: {calibration.id}")
    raise typer.Exit(EXIT_CODES.get(calibration.state, 1))


@calibrate_app.command("run")
def calibrate_run(
    file: Annotated[Path, typer.Argument(help="The calibration file (TOML).")],
    scheduler: SchedulerOption = None,
    cluster: ClusterOption = None,
    workers: WorkersOption = None,
    locked: LockedOption = False,
    frozen: FrozenOption = False,
) -> None:
    """Run a calibration: candidates asked, simulated and scored on the cluster."""
    from modelops import api

    with errors_end_the_command():
        lock = lock_mode(locked, frozen)
        spec = api.load_calibration(file)
    bar: _TrialBar | None = None
    try:
        with _progress() as progress:
            bar = _TrialBar(progress, f"{spec.search.trials} trials x {spec.replicates} replicates")
            calibration = api.calibrate(spec, scheduler, workers, lock, bar, cluster)
    except api.ModelOpsError as exc:
        error = fail(exc.info)
        if bar is not None and bar.job_id is not None:  # stopped mid-run: the job is kept
            print(f"job: {bar.job_id}")
        raise error from None
    _finish(calibration)


@calibrate_app.command("resume")
def calibrate_resume(
    job_id: CalibrationIdArgument,
    scheduler: SchedulerOption = None,
    cluster: ClusterOption = None,
    workers: WorkersOption = None,
) -> None:
    """Continue a stopped calibration where it stopped."""
    from modelops import api

    with errors_end_the_command(), _progress() as progress:
        bar = _TrialBar(progress, "resumed")
        calibration = api.calibration_job(job_id).resume(scheduler, workers, bar, cluster)
    _finish(calibration)


@calibrate_app.command("show")
def calibrate_show(
    job_id: CalibrationIdArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The state, the number of trials, and the best parameters with their losses."""
    from modelops import api

    with errors_end_the_command():
        summary = api.calibration_job(job_id).summary()
    if as_json:
        print(json.dumps(summary.to_json(), indent=2))
        return
    _show(summary)


@calibrate_app.command("report")
def calibrate_report(
    job_id: CalibrationIdArgument,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the HTML report.")
    ] = Path("report.html"),
) -> None:
    """Write the report: loss and parameter traces, best fits on the data, pair plots."""
    from modelops import api

    with errors_end_the_command():
        written = api.calibration_job(job_id).report(out)
    console.print(f"report {written}", highlight=False, markup=False, soft_wrap=True)
