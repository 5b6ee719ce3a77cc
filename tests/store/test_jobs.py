"""Job records and the provenance cache index in a real SQLite file, across real processes."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from filelock import FileLock

import modelops
from modelops.contracts import ErrorClass, ModelOpsError
from modelops.store import JobCounts, JobRecords, JobState, new_job_id
from tests.store import concurrent_procs

SPEC = {"study": "sir", "params": {"beta": [0.1, 0.2]}, "replicates": 3}


@pytest.fixture
def records(tmp_path: Path) -> Iterator[JobRecords]:
    with JobRecords(tmp_path / ".modelops" / "jobs.db") as records:
        yield records


def test_job_ids_are_short_sortable_utc_stamps() -> None:
    job_id = new_job_id(1_795_962_153.0)  # 2026-11-29 14:22:33 UTC
    assert re.fullmatch(r"20261129-142233-[0-9a-f]{4}", job_id)
    assert new_job_id(1_000_000_000.0) < new_job_id(2_000_000_000.0)


def test_lifecycle(records: JobRecords, tmp_path: Path) -> None:
    created = records.create("sweep", "sir@sha256:" + "a" * 64, SPEC, "/results/x", total=6)
    assert created.state is JobState.PENDING
    assert created.spec == SPEC
    assert created.counts == JobCounts(6, 0, 0, 0)
    assert created.started is None and created.ended is None and created.pid is None
    assert created.modelops_version == modelops.__version__
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", created.job_id)

    records.start(created.job_id, pid=os.getpid())
    running = records.get(created.job_id)
    assert running.state is JobState.RUNNING and running.pid == os.getpid()
    assert running.started is not None and running.started >= created.created

    records.add_counts(created.job_id, succeeded=2, cached=1)
    records.add_counts(created.job_id, failed=1)
    assert records.get(created.job_id).counts == JobCounts(6, 2, 1, 1)
    assert records.get(created.job_id).counts.done == 4
    records.set_counts(created.job_id, JobCounts(6, 4, 1, 1))

    records.finish(created.job_id, JobState.PARTIAL)
    finished = records.get(created.job_id)
    assert finished.state is JobState.PARTIAL and finished.state == "partial"
    assert finished.counts.done == 6
    assert finished.ended is not None and finished.ended >= finished.started

    records.start(created.job_id, pid=1)  # resumed: running again, no end yet
    assert records.get(created.job_id).ended is None
    records.finish(created.job_id, JobState.PARTIAL)

    with pytest.raises(ModelOpsError) as not_final:
        records.finish(created.job_id, JobState.RUNNING)
    assert not_final.value.info.error_class is ErrorClass.BAD_INPUT

    reopened = JobRecords(tmp_path / ".modelops" / "jobs.db")  # a second process's view
    assert reopened.get(created.job_id) == records.get(created.job_id)
    reopened.close()
    mode = sqlite3.connect(tmp_path / ".modelops" / "jobs.db").execute("PRAGMA journal_mode")
    assert mode.fetchone()[0] == "wal"


def test_lookup_by_prefix_and_errors(records: JobRecords) -> None:
    first = records.create(None, "b@sha256:" + "0" * 64, {}, "r", total=1)
    second = records.create(None, "b@sha256:" + "0" * 64, {}, "r", total=1)
    common = 0
    while first.job_id[common] == second.job_id[common]:
        common += 1
    assert records.get(first.job_id[: common + 1]) == first
    assert records.get(second.job_id[: common + 1]) == second
    common_prefix = first.job_id[:common]

    with pytest.raises(ModelOpsError) as ambiguous:
        records.get(common_prefix)
    assert ambiguous.value.info.error_class is ErrorClass.BAD_INPUT
    assert first.job_id in str(ambiguous.value) and second.job_id in str(ambiguous.value)
    assert "\n" not in str(ambiguous.value)

    with pytest.raises(ModelOpsError) as missing:
        records.get("19990101-000000-dead")
    assert str(missing.value) == (
        f"not_found: no job '19990101-000000-dead' in {records.path}; "
        "`mops jobs list` shows the jobs"
    )
    for update in (
        lambda: records.start("nope", 1),
        lambda: records.add_counts("nope", succeeded=1),
        lambda: records.finish("nope", JobState.FAILED),
    ):
        with pytest.raises(ModelOpsError) as unknown:
            update()
        assert unknown.value.info.error_class is ErrorClass.NOT_FOUND

    with pytest.raises(ModelOpsError) as not_json:
        records.create(None, "b", {"f": object()}, "r", total=1)
    assert not_json.value.info.error_class is ErrorClass.BAD_INPUT


def test_list_is_newest_first(records: JobRecords) -> None:
    made = [records.create(f"job {i}", "b", {}, "r", total=i) for i in range(4)]
    listed = records.list()
    assert [r.job_id for r in listed] == [r.job_id for r in reversed(made)]
    assert [r.name for r in records.list(limit=2)] == ["job 3", "job 2"]


def test_cached_results_and_record_results_in_batches(records: JobRecords) -> None:
    job_a = records.create("a", "b", {}, "r", total=5000).job_id
    job_b = records.create("b", "b", {}, "r", total=5000).job_id
    ids = [f"{i:032x}" for i in range(5000)]
    assert records.cached_results(ids) == {}
    records.record_results(job_a, (task_id for task_id in ids[:3000]))  # any iterable
    records.record_results(job_b, ids[2000:])  # the first job to store a result keeps it
    found = records.cached_results(iter(ids))
    assert len(found) == 5000
    assert {found[t] for t in ids[:3000]} == {job_a}
    assert {found[t] for t in ids[3000:]} == {job_b}
    assert records.cached_results(["unknown", ids[4999]]) == {ids[4999]: job_b}


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    JobRecords(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(ModelOpsError) as newer:
        JobRecords(path)
    assert "newer modelops" in str(newer.value)


def test_readers_never_see_locks_or_partial_rows_while_a_writer_works(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with JobRecords(path) as records:
        job_id = records.create("busy", "b", {}, "r", total=0).job_id
    context = multiprocessing.get_context("spawn")
    done = context.Event()
    report = context.Queue()
    processes = [
        context.Process(
            target=concurrent_procs.writer, args=(str(path), job_id, 2.0, done, report)
        ),
        *(
            context.Process(target=concurrent_procs.reader, args=(str(path), job_id, done, report))
            for _ in range(2)
        ),
    ]
    for process in processes:
        process.start()
    outcomes = [report.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    errors = [error for _, _, error in outcomes if error]
    assert not errors, errors[0]
    loops = {role: n for role, n, _ in outcomes if role == "writer"}
    assert loops["writer"] > 50  # the writer made real progress alongside the readers
    assert all(n >= 20 for role, n, _ in outcomes if role == "reader")
    with JobRecords(path) as records:
        counts = records.get(job_id).counts
        assert counts.succeeded == counts.failed == loops["writer"]
        ids = [t for i in range(loops["writer"]) for t in concurrent_procs.batch_ids(i)]
        assert len(records.cached_results(ids)) == len(ids)


SCHEMA_1 = """
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY, state TEXT NOT NULL, name TEXT, bundle TEXT NOT NULL,
    spec TEXT NOT NULL, results TEXT NOT NULL, total INTEGER NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    cached INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, started REAL, ended REAL,
    pid INTEGER, modelops_version TEXT NOT NULL
);
CREATE INDEX jobs_by_created ON jobs (created);
CREATE TABLE stored_results (task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO jobs VALUES ('20260101-000000-0abc', 'running', 'old', 'b', '{}', 'r', 3, 1, 0, 0,
    1767225600.0, 1767225601.0, NULL, 4242, '0.1.0');
INSERT INTO stored_results VALUES ('t1', '20260101-000000-0abc');
PRAGMA user_version = 1;
"""


def test_a_database_of_schema_1_gains_process_start_times_and_keeps_its_jobs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_1)
    with JobRecords(path) as records:
        old = records.get("20260101-000000-0abc")
        assert (old.state, old.name, old.pid, old.pid_started) == (
            JobState.RUNNING,
            "old",
            4242,
            None,
        )
        assert old.counts == JobCounts(3, 1, 0, 0)
        assert records.cached_results(["t1"]) == {"t1": old.job_id}
        records.start(old.job_id, os.getpid())
        assert records.get(old.job_id).pid_started == pytest.approx(psutil.Process().create_time())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        columns = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    assert columns[-1] == "pid_started"
    JobRecords(path).close()  # opening a current database again changes nothing


HOLD = """
import sys, time
from pathlib import Path
from modelops.store import JobRecords
with JobRecords(Path(sys.argv[1])).running(sys.argv[2]):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_job_runs_in_one_process_at_a_time_and_a_killed_holder_frees_it(
    records: JobRecords,
) -> None:
    job_id = records.create("once", "b", {}, "r", total=1).job_id
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(records.path), job_id], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(ModelOpsError) as busy, records.running(job_id):
            pass
        assert busy.value.info.error_class is ErrorClass.BAD_INPUT
        assert str(busy.value) == (
            f"bad_input: job {job_id} is already running (pid {holder.pid}); wait for it, or "
            f"stop it with `mops jobs cancel {job_id}`"
        )
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with records.running(job_id):  # the kernel released the dead holder's lock
            assert records.lock_path(job_id).exists()
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(ModelOpsError) as bad:
        records.lock_path("../escape")
    assert bad.value.info.error_class is ErrorClass.BAD_INPUT


def test_a_refusal_names_the_live_holder_not_a_killed_one_whose_pid_file_was_left(
    records: JobRecords,
) -> None:
    """The window between a new holder taking the lock and writing its pid: the file still
    names the killed holder before it."""
    job_id = records.create("once", "b", {}, "r", total=1).job_id
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file = records.lock_path(job_id).with_suffix(".pid")
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{dead.pid}\n")
    new_holder = FileLock(records.lock_path(job_id), timeout=0)
    new_holder.acquire()
    late_write = threading.Timer(0.3, pid_file.write_text, (f"{os.getpid()}\n",))
    late_write.start()
    try:
        with pytest.raises(ModelOpsError) as busy, records.running(job_id):
            pass
    finally:
        late_write.join()
        new_holder.release()
    assert f"is already running (pid {os.getpid()})" in str(busy.value)

    pid_file.write_text(f"{dead.pid}\n")  # a holder that never writes: no wrong pid named
    with new_holder, pytest.raises(ModelOpsError) as unnamed, records.running(job_id):
        pass
    assert "is already running (another process)" in str(unnamed.value)
