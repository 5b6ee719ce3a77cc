"""`mops run`, `mops jobs …` and `mops results …`: studies as jobs, and what they produced."""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Iterator
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
    lock_mode,
    stderr,
)
from modelops.cli.render import (
    column_priority,
    errors_table,
    failures_view,
    fitted_table,
    hidden_note,
    literal,
    scriptable,
    simulation_view,
)

if TYPE_CHECKING:
    from modelops.api import FailureSummary, Job, JobProgress


JobIdArgument = Annotated[str, typer.Argument(help="A job id or a unique prefix of one.")]

jobs_app = typer.Typer(no_args_is_help=True, help="List, inspect, resume and cancel jobs.")
results_app = typer.Typer(no_args_is_help=True, help="Show and export the results of a job.")

EXIT_CODES = {"succeeded": 0, "partial": 1, "failed": 1, "cancelled": 130}  # by job state
FAILURE_GROUPS = 5  # causes of failure shown by `mops run` and `mops jobs show`


class _Bar:
    """A rich progress bar fed by the job runner's progress callback; its first call, before
    any result, says which job this is."""

    def __init__(self, progress: Progress, headline: str) -> None:
        self.progress = progress
        self.headline = headline
        self.task: TaskID | None = None
        self.dashboard: str | None = None

    def __call__(self, state: JobProgress) -> None:
        if self.task is None:
            console.print(f"job {state.job_id}: {self.headline}", highlight=False)
            self.task = self.progress.add_task("simulations", total=state.total, detail="")
        if state.dashboard and state.dashboard != self.dashboard:
            self.dashboard = state.dashboard
            console.print(f"dashboard {state.dashboard}", highlight=False, soft_wrap=True)
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


def _summary(job: Job) -> None:
    table = Table(title=f"job {job.id}: {job.state}", title_justify="left")
    for column in ("total", "succeeded", "failed", "cached"):
        table.add_column(column, justify="right")
    counts = job.counts
    table.add_row(*(str(v) for v in (counts.total, counts.succeeded, counts.failed, counts.cached)))
    console.print(table)
    console.print(f"results  {job.results_url}", highlight=False, markup=False, soft_wrap=True)


def _failures(job: Job) -> FailureSummary | None:
    """The job's failures grouped by cause; None when it has none, or when its results
    cannot be read (said on stderr: the job's record and counts are shown all the same)."""
    from modelops.api import ModelOpsError

    if not job.counts.failed:
        return None
    try:
        return job.failures(FAILURE_GROUPS)
    except ModelOpsError as exc:
        stderr.print(literal(f"cannot read the failures of job {job.id}: {exc}"))
        return None


def _next_step(job: Job) -> list[str]:
    """What to do about a job that ended with simulations failed or not run. A resume keeps
    the job's bundle and study, so it cures only causes outside them; the second line says
    so, since a fix to the model's code or the study file needs a new run instead."""
    if job.state not in ("partial", "failed"):
        return []
    counts = job.counts
    missing = counts.total - counts.done
    todo = " and ".join(
        part
        for part in (
            f"{counts.failed} failed" if counts.failed else "",
            f"{missing} not yet run" if missing > 0 else "",
        )
        if part
    )
    if not todo:
        return []
    kept = counts.succeeded + counts.cached
    finished = f" (the {kept} finished are kept)" if kept else ""
    if not counts.failed:
        return [f"next: `mops jobs resume {job.id}` runs the {todo} simulations{finished}"]
    return [
        f"next: fix the cause, then `mops jobs resume {job.id}` runs the {todo} "
        f"simulations again{finished}",
        "      a resume keeps this job's bundle and study: if the fix is in the model's code "
        "or the study file, run the study again instead",
    ]


def _report(job: Job) -> None:
    """Counts, then each cause of failure with an example, then what to do next."""
    _summary(job)
    failures = _failures(job)
    if failures is not None and failures.failed:
        console.print()
        console.print(failures_view(failures, job.id), soft_wrap=True)
    steps = _next_step(job)
    if steps:
        console.print()
    for line in steps:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _finish(job: Job) -> None:
    """The end of `mops run` and `mops jobs resume`: the report, the last line `job: ID`,
    and the exit code of the job's state (non-zero when anything failed)."""
    _report(job)
    if job.state == "cancelled":
        stderr.print(f"cancelled; what finished is kept: `mops jobs resume {job.id}`")
    print(f"job: {job.id}")
    raise typer.Exit(EXIT_CODES.get(job.state, 1))


def run(
    study: Annotated[Path, typer.Argument(help="The study file (TOML).")],
    scheduler: SchedulerOption = None,
    cluster: ClusterOption = None,
    workers: WorkersOption = None,
    locked: LockedOption = False,
    frozen: FrozenOption = False,
) -> None:
    """Run a study: every simulation not already in the store, results streamed to it."""
    from modelops import api

    with errors_end_the_command():
        lock = lock_mode(locked, frozen)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", api.StudyWarning)
            spec = api.load_study(study)
        for warning in caught:
            stderr.print(
                f"warning: {warning.message}", highlight=False, markup=False, soft_wrap=True
            )
        with _progress() as progress:
            bar = _Bar(progress, f"{spec.n_simulations} simulations")
            job = api.run(spec, scheduler, workers, lock, progress=bar, cluster=cluster)
    _finish(job)


def _jobs_json(job: Job) -> dict:
    from modelops.api import FailureSummary

    failures = _failures(job)
    counts = job.counts
    return {
        "job": job.id,
        "name": job.name,
        "state": job.state,
        "counts": {
            "total": counts.total,
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "cached": counts.cached,
        },
        "bundle": job.bundle,
        "results": job.results_url,
        "created": job.record.created,
        "started": job.record.started,
        "ended": job.record.ended,
        "failures": (failures or FailureSummary(failed=0)).to_dict(),
    }


@jobs_app.command("list")
def jobs_list(limit: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """This project's jobs, newest first."""
    from modelops import api

    with errors_end_the_command():
        jobs = api.list_jobs(limit)
    table = Table()
    for column in ("job", "name", "state", "done", "failed", "cached", "total"):
        table.add_column(column)
    for job in jobs:
        c = job.counts
        table.add_row(
            job.id,
            literal(job.name or ""),
            job.state,
            str(c.done),
            str(c.failed),
            str(c.cached),
            str(c.total),
        )
    console.print(table)


@jobs_app.command("show")
def jobs_show(
    job_id: JobIdArgument,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """A job's state, counts, bundle, where its results are, and why simulations failed."""
    from modelops import api

    with errors_end_the_command():
        job = api.job(job_id)
    if as_json:
        print(json.dumps(_jobs_json(job)))
        return
    console.print(f"bundle   {job.bundle}", highlight=False, markup=False, soft_wrap=True)
    _report(job)  # exits 0: it only shows; `mops run` and `mops jobs resume` exit by state


@jobs_app.command("errors")
def jobs_errors(
    job_id: JobIdArgument,
    sim: Annotated[
        str | None,
        typer.Option(
            "--sim", help="One simulation (its id or a unique prefix): traceback and logs."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=0, help="Failed simulations to list; 0 lists all.")
    ] = 50,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON document: every failed simulation (a list, without tracebacks), "
            "or with --sim one simulation's object, traceback and logs included.",
        ),
    ] = False,
) -> None:
    """The failed simulations of a job, one per line; one in full with --sim."""
    import polars as pl

    from modelops import api

    with errors_end_the_command():
        opened = api.results(job_id)
        if sim is not None:
            found = opened.simulation(sim)
            if as_json:
                print(json.dumps(found.to_dict()))
            else:
                console.print(simulation_view(found, opened.job_id), soft_wrap=True)
            return
        failed = opened.failed_simulations()
        if as_json:
            _write_json_list(
                row.to_dict(full=False) for row in api.FailedSimulation.from_rows(failed.collect())
            )
            return
        total = failed.select(pl.len()).collect().item()
        shown = failed.head(limit).collect() if limit else failed.collect()
    job = opened.job_id
    console.print(
        f"job {job}: {total} failed simulation{'s' if total != 1 else ''}"
        + (f" (showing {shown.height})" if shown.height < total else ""),
        highlight=False,
        markup=False,
    )
    if not total:
        return
    console.print(errors_table(api.FailedSimulation.from_rows(shown)))
    more = "" if shown.height == total else "; --limit 0 lists all"
    console.print(
        f"one in full: mops jobs errors {job} --sim SIM{more}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _write_json_list(items: Iterator[dict]) -> None:
    """A JSON list written an item at a time: the document is never one string in memory."""
    out = sys.stdout
    out.write("[")
    for n, item in enumerate(items):
        out.write(",\n" if n else "\n")
        out.write(json.dumps(item))
    out.write("\n]\n")


@jobs_app.command("resume")
def jobs_resume(
    job_id: JobIdArgument,
    scheduler: SchedulerOption = None,
    cluster: ClusterOption = None,
    workers: WorkersOption = None,
) -> None:
    """Run what a job has not finished: its missing and failed simulations (a calibration
    continues its search, as `mops calibrate resume`)."""
    from modelops import api

    with errors_end_the_command():
        kind = api.job(job_id).record.kind
    if kind == "calibration":
        from modelops.cli.calibrate import calibrate_resume

        calibrate_resume(job_id, scheduler, cluster, workers)  # ends the command
        return
    with errors_end_the_command(), _progress() as progress:
        bar = _Bar(progress, "resumed")
        job = api.resume(job_id, scheduler, workers, progress=bar, cluster=cluster)
    _finish(job)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: JobIdArgument,
) -> None:
    """Stop a running job; what it finished is kept."""
    from modelops import api

    with errors_end_the_command():
        job = api.cancel(job_id)
    console.print(f"job {job.id}: {job.state}")


@results_app.command("show")
def results_show(
    job_id: JobIdArgument,
    output: Annotated[
        str | None, typer.Argument(help="An output name, or `simulations`; default: the first.")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="Rows to show; 0 shows all.")] = 20,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns", help="The columns to show, in order: a,b,c (default: what fits)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="The rows as one JSON list of objects, every column.")
    ] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="The rows as CSV, every column.")] = False,
) -> None:
    """A job's results: a table that fits the terminal, or JSON or CSV for scripts."""
    import polars as pl

    from modelops import api

    if as_json and as_csv:
        raise typer.BadParameter("--json and --csv exclude each other; choose one")
    with errors_end_the_command():
        opened = api.results(job_id)
        names = opened.outputs()
        name = output or (names[0] if names else "simulations")
        if name != "simulations" and name not in names:
            raise typer.BadParameter(
                f"job {opened.job_id} has no output {name!r}; it has {', '.join(names) or 'none'}"
            )
        frame = opened.simulations() if name == "simulations" else opened[name]
        shown = (frame.head(limit) if limit else frame).collect()
        total = shown.height if not limit else frame.select(pl.len()).collect().item()
        chosen = _chosen_columns(columns, shown.columns)
        if as_json or as_csv:
            print(
                scriptable(shown.select(chosen or shown.columns), "json" if as_json else "csv"),
                end="",
            )
            if shown.height < total:
                stderr.print(f"{shown.height} of {total} rows; --limit 0 for all", highlight=False)
            return
        params = set()
        if name != "simulations" and chosen is None:
            ids = shown["sim_id"].unique().to_list() if "sim_id" in shown.columns else []
            params = {key for p in opened.params_of(ids).values() for key in p}
    priority = column_priority(shown.columns, params, simulations=name == "simulations")
    table, hidden = fitted_table(console, shown, priority, chosen)
    console.print(literal(f"{name}: {total} rows (showing {shown.height})"))
    console.print(table)
    if hidden:
        console.print(hidden_note(hidden))


def _chosen_columns(columns: str | None, available: list[str]) -> list[str] | None:
    if columns is None:
        return None
    chosen = [name.strip() for name in columns.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in available]
    if unknown or not chosen:
        raise typer.BadParameter(
            f"no column {', '.join(map(repr, unknown)) or 'given'}; the columns are "
            f"{', '.join(available)}",
            param_hint="--columns",
        )
    return chosen


@results_app.command("export")
def results_export(
    job_id: JobIdArgument,
    out: Annotated[Path, typer.Option("--out", help="Folder to write into.")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Write a job's outputs and simulations table to files."""
    from modelops import api

    if fmt not in ("parquet", "csv"):
        raise typer.BadParameter(f"--format must be parquet or csv, not {fmt!r}")
    with errors_end_the_command():
        written = api.results(job_id).export(out, fmt)
    for path in written:
        print(path)
