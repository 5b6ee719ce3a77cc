"""`mops run`, `mops jobs …` and `mops results …`: studies as jobs, and what they produced."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Annotated

import polars as pl
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

from modelops import results as job_results
from modelops.cli.common import FrozenOption, LockedOption, console, fail, lock_mode, stderr
from modelops.cli.render import literal
from modelops.contracts import ModelOpsError
from modelops.jobs import Progress as JobProgress
from modelops.jobs import cancel_job, resume_job, run_study
from modelops.settings import Settings
from modelops.store import JobRecord, JobRecords, JobState, ResultStore
from modelops.store.export import export_job
from modelops.study import StudyWarning, load_study

jobs_app = typer.Typer(no_args_is_help=True, help="List, inspect, resume and cancel jobs.")
results_app = typer.Typer(no_args_is_help=True, help="Show and export the results of a job.")

SchedulerOption = Annotated[
    str | None,
    typer.Option(envvar="MODELOPS_SCHEDULER", help="tcp://host:8786; default: embedded cluster"),
]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="Embedded cluster size (default: cores).")
]
EXIT_CODES = {
    JobState.SUCCEEDED: 0,
    JobState.PARTIAL: 1,
    JobState.FAILED: 1,
    JobState.CANCELLED: 130,
}


class _Bar:
    """A rich progress bar fed by the job runner's progress callback."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def __call__(self, state: JobProgress) -> None:
        if self.task is None:
            self.task = self.progress.add_task("simulations", total=state.total, detail="")
        elapsed = max(time.monotonic() - state.started, 1e-9)
        self.progress.update(
            self.task,
            completed=state.done,
            detail=(
                f"ok {state.succeeded}  failed {state.failed}  cached {state.cached}  "
                f"running {state.running}  {(state.done) / elapsed:.1f}/s"
            ),
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


def _summary(job: JobRecord) -> None:
    table = Table(title=f"job {job.job_id}: {job.state.value}", title_justify="left")
    for column in ("total", "succeeded", "failed", "cached"):
        table.add_column(column, justify="right")
    counts = job.counts
    table.add_row(*(str(v) for v in (counts.total, counts.succeeded, counts.failed, counts.cached)))
    console.print(table)
    console.print(f"results  {_results_url(job)}", highlight=False, markup=False, soft_wrap=True)


def _results_url(job: JobRecord) -> str:
    return ResultStore(job.results).job_url(job.job_id)


def _finish(job: JobRecord) -> None:
    _summary(job)
    if job.state is JobState.CANCELLED:
        stderr.print(f"cancelled; what finished is kept: `mops jobs resume {job.job_id}`")
    print(f"job: {job.job_id}")
    raise typer.Exit(EXIT_CODES.get(job.state, 1))


def run(
    study: Annotated[Path, typer.Argument(help="The study file (TOML).")],
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    locked: LockedOption = False,
    frozen: FrozenOption = False,
) -> None:
    """Run a study: every simulation not already in the store, results streamed to it."""
    try:
        lock = lock_mode(locked, frozen)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", StudyWarning)
            spec = load_study(study)
        for warning in caught:
            stderr.print(
                f"warning: {warning.message}", highlight=False, markup=False, soft_wrap=True
            )
        with _progress() as progress:
            bar = _Bar(progress)

            def started(job: JobRecord) -> None:
                console.print(f"job {job.job_id}: {spec.n_simulations} simulations")

            job = run_study(
                spec,
                scheduler=scheduler,
                n_workers=workers,
                on_start=started,
                on_progress=bar,
                lock=lock,
            )
    except ModelOpsError as exc:
        raise fail(exc.info) from None
    _finish(job)


def _jobs_json(job: JobRecord) -> dict:
    return {
        "job": job.job_id,
        "name": job.name,
        "state": job.state.value,
        "counts": {
            "total": job.counts.total,
            "succeeded": job.counts.succeeded,
            "failed": job.counts.failed,
            "cached": job.counts.cached,
        },
        "bundle": job.bundle,
        "results": _results_url(job),
        "created": job.created,
        "started": job.started,
        "ended": job.ended,
    }


@jobs_app.command("list")
def jobs_list(limit: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """This project's jobs, newest first."""
    records = JobRecords(Settings.from_env().jobs_db)
    table = Table()
    for column in ("job", "name", "state", "done", "failed", "cached", "total"):
        table.add_column(column)
    for job in records.list(limit):
        c = job.counts
        table.add_row(
            job.job_id,
            literal(job.name or ""),
            job.state.value,
            str(c.done),
            str(c.failed),
            str(c.cached),
            str(c.total),
        )
    console.print(table)


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="A job id or a unique prefix of one.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """A job's state, counts, bundle and where its results are."""
    try:
        job = JobRecords(Settings.from_env().jobs_db).get(job_id)
    except ModelOpsError as exc:
        raise fail(exc.info) from None
    if as_json:
        print(json.dumps(_jobs_json(job)))
        return
    console.print(f"bundle   {job.bundle}", highlight=False, markup=False, soft_wrap=True)
    _summary(job)


@jobs_app.command("resume")
def jobs_resume(
    job_id: Annotated[str, typer.Argument(help="A job id or a unique prefix of one.")],
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
) -> None:
    """Run what a job has not finished: its missing and failed simulations."""
    try:
        with _progress() as progress:
            job = resume_job(
                job_id, scheduler=scheduler, n_workers=workers, on_progress=_Bar(progress)
            )
    except ModelOpsError as exc:
        raise fail(exc.info) from None
    _finish(job)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="A job id or a unique prefix of one.")],
) -> None:
    """Stop a running job; what it finished is kept."""
    try:
        job = cancel_job(job_id)
    except ModelOpsError as exc:
        raise fail(exc.info) from None
    console.print(f"job {job.job_id}: {job.state.value}")


@results_app.command("show")
def results_show(
    job_id: Annotated[str, typer.Argument(help="A job id or a unique prefix of one.")],
    output: Annotated[
        str | None, typer.Argument(help="An output name; default: the first.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to show.")] = 20,
) -> None:
    """A table of a job's results in the terminal."""
    try:
        opened = job_results.open(job_id)
        names = opened.outputs()
        if output is None and not names:
            frame = opened.simulations()
            title = "simulations"
        else:
            name = output or names[0]
            if name != "simulations" and name not in names:
                raise typer.BadParameter(
                    f"job {opened.job.job_id} has no output {name!r}; it has "
                    f"{', '.join(names) or 'none'}"
                )
            frame = opened.simulations() if name == "simulations" else opened[name]
            title = name
        shown = frame.head(limit).collect()
        shown = shown.drop([c for c in ("job_id",) if c in shown.columns])  # one value: the job
        total = frame.select(pl.len()).collect().item()
    except ModelOpsError as exc:
        raise fail(exc.info) from None
    heading = literal(f"{title}: {total} rows (showing {shown.height})")
    table = Table(title=heading, title_justify="left")
    for column in shown.columns:  # model text, all of it: shown as written, never as markup
        table.add_column(literal(column))
    for row in shown.iter_rows():
        table.add_row(*(literal(_cell(v)) for v in row))
    console.print(table)


def _cell(value: object) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


@results_app.command("export")
def results_export(
    job_id: Annotated[str, typer.Argument(help="A job id or a unique prefix of one.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write into.")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Write a job's outputs and simulations table to files."""
    if fmt not in ("parquet", "csv"):
        raise typer.BadParameter(f"--format must be parquet or csv, not {fmt!r}")
    try:
        written = export_job(job_results.open(job_id), out, fmt)
    except ModelOpsError as exc:
        raise fail(exc.info) from None
    for path in written:
        print(path)
