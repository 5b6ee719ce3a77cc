"""Nothing lost, nothing doubled: a client killed (SIGKILL) at each step of storing a flush
leaves a store whose every read has one row set per simulation, before and after the job
is resumed, and a resume runs only what was not committed."""

from __future__ import annotations

import multiprocessing
import signal
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from modelops.store import JobRecords, ResultsNotStored, ResultStore
from modelops.store.rows import FLUSH
from tests.store import crash_writer, crashfs
from tests.store.helpers import meta

SIMS = list(range(12))  # six flushes of two simulations: F1 = sims 0-1, F2 = sims 2-3, ...
F1 = {meta(i).task_id for i in (0, 1)}
F2 = {meta(i).task_id for i in (2, 3)}

# (part, when, skip, committed, recorded): every crash below happens in the second flush,
# F2, except the last, which happens as F3 starts. Each flush writes the incidence part, the
# summary part, then the simulations part (its commit), then tells the job records.
CRASHES = {
    "an output part half written": ("outputs", "write", 2, F1, F1),
    "between one output's part and the next": ("outputs", "open", 3, F1, F1),
    "after the output parts, before the simulations part": ("simulations", "open", 1, F1, F1),
    "the simulations part half written": ("simulations", "write", 1, F1, F1),
    "after the simulations part, before the job records commit": (
        "simulations",
        "unreported",
        1,
        F1 | F2,
        F1,
    ),
    "after the job records commit": ("outputs", "open", 4, F1 | F2, F1 | F2),
}


def run_and_crash(root: Path, db: Path, job_id: str, crash: str) -> int:
    context = multiprocessing.get_context("spawn")
    process = context.Process(
        target=crash_writer.write_and_crash, args=(str(root), str(db), job_id, SIMS, crash)
    )
    process.start()
    process.join(timeout=120)
    return process.exitcode


def resume(root: Path, db: Path, job_id: str) -> list[int]:
    """What a resumed run of the job does (jobs/run.py): tell the provenance cache what the
    store holds, then run only the simulations it still lacks. The ones it ran."""
    records = JobRecords(db)
    store = ResultStore(root)
    for stored in store.open(job_id).stored_here():
        records.record_results(job_id, stored)
    known = records.cached_results(meta(i).task_id for i in SIMS)
    missing = [i for i in SIMS if meta(i).task_id not in known]
    crash_writer.write(str(root), str(db), job_id, missing, attempt=2)
    return missing


def raw_rows(folder: Path) -> int:
    return sum(pq.read_metadata(part).num_rows for part in folder.glob("part-*.parquet"))


def check_one_row_set_each(store: ResultStore, job_id: str, sims: set[str]) -> pl.DataFrame:
    """Every read of the job holds exactly `sims`, each once (three incidence rows, one
    summary row, one simulations row, all of one attempt); the incidence rows."""
    results = store.open(job_id)
    simulations = results.simulations().collect()
    assert sorted(simulations["sim_id"]) == sorted(sims)
    assert set(simulations["status"]) <= {"succeeded"}
    assert FLUSH not in simulations.columns
    incidence = results["incidence"].collect()
    assert FLUSH not in incidence.columns
    assert set(incidence["sim_id"]) == sims
    per_sim = incidence.group_by("sim_id").agg(pl.len(), pl.col("attempt").n_unique())
    assert per_sim["len"].to_list() == [3] * len(sims)
    assert per_sim["attempt"].to_list() == [1] * len(sims)
    summary = results["summary"].collect()
    assert sorted(summary["sim_id"]) == sorted(sims)
    return incidence


@pytest.mark.parametrize("case", list(CRASHES))
def test_a_client_killed_at_any_step_leaves_one_row_set_per_simulation(
    tmp_path: Path, case: str
) -> None:
    part, when, skip, committed, recorded = CRASHES[case]
    root, db, job_id = tmp_path / "results", tmp_path / ".modelops" / "jobs.db", "job-crash"
    JobRecords(db).close()
    crash = crashfs.crash_spec(part, when, skip, db=db)
    assert run_and_crash(root, db, job_id, crash) == -signal.SIGKILL
    store = ResultStore(root)
    job = root / "jobs" / job_id

    # as the crash left it: only what a committed flush wrote is read, once
    every = {meta(i).task_id for i in SIMS}
    assert set(JobRecords(db).cached_results(every)) == recorded
    check_one_row_set_each(store, job_id, committed)
    if case in (
        "between one output's part and the next",
        "after the output parts, before the simulations part",
        "the simulations part half written",
    ):  # the crash really left F2's incidence on disk, uncommitted
        assert raw_rows(job / "outputs" / "incidence") == 3 * len(committed) + 6
    if when == "write":  # and a half-written temporary file
        assert list((job / part).rglob(".tmp-*.parquet"))

    ran_again = resume(root, db, job_id)

    assert {meta(i).task_id for i in ran_again} == {meta(i).task_id for i in SIMS} - committed
    results = store.open(job_id)
    incidence = results["incidence"].collect()
    assert incidence.height == 3 * len(SIMS)
    per_sim = incidence.group_by("sim_id").agg(pl.len(), pl.col("attempt").unique())
    assert set(per_sim["sim_id"]) == every and set(per_sim["len"]) == {3}
    attempt_of = {row["sim_id"]: row["attempt"] for row in per_sim.iter_rows(named=True)}
    assert all(attempt_of[sim] == [1] for sim in committed)  # kept, not run again
    assert all(attempt_of[sim] == [2] for sim in every - committed)
    assert results["summary"].collect().height == len(SIMS)
    assert results.simulations().collect().height == len(SIMS)
    assert results.attempts().collect()["sim_id"].n_unique() == len(SIMS)
    assert results.attempts().collect().height == len(SIMS)  # no simulation ran twice
    assert len(JobRecords(db).cached_results(every)) == len(SIMS)

    exported = results.export(tmp_path / "export", "csv")
    assert [path.name for path in exported] == [
        "incidence.csv",
        "summary.csv",
        "simulations.csv",
    ]
    assert pl.read_csv(exported[0]).height == 3 * len(SIMS)
    assert pl.read_csv(exported[1]).height == len(SIMS)
    assert pl.read_csv(exported[2]).height == len(SIMS)


def test_cached_rows_come_only_from_the_committed_attempt_of_the_job_that_stored_them(
    tmp_path: Path,
) -> None:
    """A job reading another job's results (provenance cache) trusts only what that job
    committed: the orphaned rows a crash left there are not borrowed either."""
    root, db = tmp_path / "results", tmp_path / "jobs.db"
    JobRecords(db).close()
    crash = crashfs.crash_spec("simulations", "open", 1)
    assert run_and_crash(root, db, "job-first", crash) == -signal.SIGKILL
    store = ResultStore(root)
    with store.writer("job-second") as writer:
        from modelops.contracts import SimReturn

        for i in SIMS[:4]:  # 0-1 committed in job-first; 2-3 only orphaned there
            writer.add(meta(i), SimReturn(meta(i).task_id, cached=True), cached_from="job-first")
    incidence = store.open("job-second")["incidence"].collect()
    assert sorted(incidence["sim_id"].unique()) == sorted(F1)
    assert incidence.height == 6 and set(incidence["job_id"]) == {"job-second"}


def test_a_flush_that_failed_part_way_is_written_again_whole(tmp_path: Path) -> None:
    """The simulations part could not be written (its folder is a file): the output parts
    of that try stay uncommitted, and the retry at close stores each simulation once."""
    store = ResultStore(tmp_path / "results")
    job = tmp_path / "results" / "jobs" / "job-retry"
    reported: list[list[str]] = []
    writer = store.writer(
        "job-retry", flush_rows=10**6, flush_seconds=3600, on_flush=reported.append
    )
    (job / "simulations").write_text("in the way")
    for i in range(3):
        writer.add(meta(i), crash_writer.result(i, attempt=1))
    with pytest.raises(ResultsNotStored, match=r"could not write to the result store .*: File"):
        writer.flush()
    assert raw_rows(job / "outputs" / "incidence") == 9  # written, but not committed
    assert store.open("job-retry").simulations().collect().height == 0
    assert reported == []

    (job / "simulations").unlink()
    writer.add(meta(3), crash_writer.result(3, attempt=1))
    writer.close()
    assert raw_rows(job / "outputs" / "incidence") == 9 + 12
    incidence = store.open("job-retry")["incidence"].collect()
    assert incidence.height == 12
    assert incidence.group_by("sim_id").len()["len"].to_list() == [3] * 4
    assert sorted(task for batch in reported for task in batch) == [
        meta(i).task_id for i in range(4)
    ]


def test_parts_written_before_flush_ids_read_as_before(tmp_path: Path) -> None:
    """A store written by an earlier modelops (no flush column) keeps every row; a resume
    that runs a simulation again replaces that simulation's rows with the new attempt's."""
    root = tmp_path / "results"
    db = tmp_path / "jobs.db"
    crash_writer.write(str(root), str(db), "job-old", SIMS[:4], attempt=1)
    job = root / "jobs" / "job-old"
    for part in job.rglob("part-*.parquet"):  # as the earlier writer left them
        table = pq.read_table(part)
        pq.write_table(table.drop_columns([FLUSH]), part)
    store = ResultStore(root)
    old = store.open("job-old")
    assert old["incidence"].collect().height == 12
    assert old.simulations().collect().height == 4

    crash_writer.write(str(root), str(db), "job-old", [3], attempt=2)  # sim 3 again
    incidence = store.open("job-old")["incidence"].collect()
    assert incidence.height == 12
    attempts = dict(incidence.group_by("sim_id").agg(pl.col("attempt").unique()).iter_rows())
    assert attempts[meta(3).task_id] == [2]
    assert attempts[meta(0).task_id] == [1]
