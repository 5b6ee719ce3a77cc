"""Job records and the provenance cache index, in one SQLite file per project.

`jobs` holds one row per job (state, counts, where its results are, which process runs it);
`stored_results` maps a simulation's provenance key (its task id) to the job that stored its
outputs, which is how a rerun finds results it need not compute again.

A job runs in one process at a time: `JobRecords.running` holds a lock file per job (next to
the database) for the whole run, so two resumes of one job never write the same parts.
A running job's process is known by its pid *and* its start time, so a pid the system has
since given to another process is never taken for the job's.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock, Timeout

import modelops
from modelops.contracts import ErrorClass, ModelOpsError
from modelops.store.location import check_job_id
from modelops.store.sqlite import Connections

SCHEMA_VERSION = 2
LOOKUP_BATCH = 500  # ids per query: well under SQLite's limit on bound parameters
START_TIME_SLACK_S = 1.0  # start times read twice may differ when the wall clock was set

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    name TEXT,
    bundle TEXT NOT NULL,
    spec TEXT NOT NULL,
    results TEXT NOT NULL,
    total INTEGER NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    cached INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    pid INTEGER,
    modelops_version TEXT NOT NULL,
    pid_started REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created);
CREATE TABLE IF NOT EXISTS stored_results (
    task_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL
) WITHOUT ROWID;
"""
_MIGRATIONS = {  # from schema version N to N + 1, for databases written before
    1: ("ALTER TABLE jobs ADD COLUMN pid_started REAL",),
}
_COLUMNS = (
    "job_id, state, name, bundle, spec, results, total, succeeded, failed, cached, "
    "created, started, ended, pid, modelops_version, pid_started"
)


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING)


@dataclass(frozen=True)
class JobCounts:
    total: int
    succeeded: int = 0
    failed: int = 0
    cached: int = 0

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cached


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    state: JobState
    name: str | None
    bundle: str
    spec: dict[str, Any]
    results: str
    counts: JobCounts
    created: float
    started: float | None
    ended: float | None
    pid: int | None
    modelops_version: str
    pid_started: float | None = None  # the start time of process `pid` (psutil create_time)

    @property
    def kind(self) -> str:
        """What the job runs: "study", or "calibration" (whose spec says so)."""
        return str(self.spec.get("kind", "study"))

    def runs_in(self, process: psutil.Process) -> bool:
        """Whether `process` is the one that runs this job, not another that was given its pid
        later: same pid and start time (a record without one: started before the job)."""
        if self.pid is None or process.pid != self.pid:
            return False
        try:
            created = process.create_time()
        except psutil.Error:
            return False
        if self.pid_started is not None:
            return abs(created - self.pid_started) <= START_TIME_SLACK_S
        return self.started is not None and created <= self.started + START_TIME_SLACK_S


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None if there is none."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def new_job_id(now: float | None = None) -> str:
    """Sortable by creation time (UTC, to the second) and short enough to type."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(2)}"


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class JobRecords:
    """The job records of one project; safe to share between processes and threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = Connections(self.path)
        version = self._connections.get().execute("PRAGMA user_version").fetchone()[0]
        self._check_schema(version)
        if version < SCHEMA_VERSION:
            with self._connections.transaction() as db:  # another process may be here too
                version = db.execute("PRAGMA user_version").fetchone()[0]
                self._check_schema(version)
                if version == 0:  # a new database: the current schema at once
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                else:  # one written by an earlier modelops: brought up to date in place
                    for step in range(version, SCHEMA_VERSION):
                        for statement in _MIGRATIONS[step]:
                            db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_schema(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"{self.path} was written by a newer modelops (schema {version}); "
                "upgrade modelops to read it",
            )

    def close(self) -> None:
        self._connections.close()

    def __enter__(self) -> JobRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs ---------------------------------------------------------------------------

    def create(
        self, name: str | None, bundle: str, spec: dict[str, Any], results: str, total: int
    ) -> JobRecord:
        """A new PENDING job with a fresh id."""
        try:
            spec_json = json.dumps(spec, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ModelOpsError(ErrorClass.BAD_INPUT, f"job spec is not JSON data: {exc}") from exc
        created = time.time()
        for _ in range(100):
            job_id = new_job_id(created)
            try:
                with self._connections.transaction() as db:
                    db.execute(
                        f"INSERT INTO jobs ({_COLUMNS}) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?, NULL, NULL, NULL, ?, NULL)",
                        (
                            job_id,
                            JobState.PENDING.value,
                            name,
                            bundle,
                            spec_json,
                            str(results),
                            int(total),
                            created,
                            modelops.__version__,
                        ),
                    )
            except sqlite3.IntegrityError:
                continue  # same second, same 4 hex digits: draw again
            return self.get(job_id)
        raise ModelOpsError(ErrorClass.INTERNAL, "could not draw an unused job id")

    def _update(self, job_id: str, sql: str, args: tuple[Any, ...]) -> None:
        with self._connections.transaction() as db:
            changed = db.execute(f"UPDATE jobs SET {sql} WHERE job_id = ?", (*args, job_id))
            if changed.rowcount == 0:
                raise self._not_found(job_id)

    def start(self, job_id: str, pid: int, pid_started: float | None = None) -> None:
        """Running in process `pid`, which started at `pid_started` (looked up if not given)."""
        if pid_started is None:
            pid_started = process_start_time(pid)
        self._update(
            job_id,
            "state = ?, started = ?, ended = NULL, pid = ?, pid_started = ?",
            (JobState.RUNNING.value, time.time(), pid, pid_started),
        )

    def lock_path(self, job_id: str) -> Path:
        """The job's run lock: a file next to the database, held while a process runs it."""
        return self.path.parent / "locks" / f"{check_job_id(job_id)}.lock"

    @contextlib.contextmanager
    def running(self, job_id: str) -> Iterator[None]:
        """Hold the job's run lock for the block, or refuse at once: `job X is already
        running (pid N)`. The lock is the operating system's (`flock`), so a process that
        dies for any reason, SIGKILL included, releases it."""
        path = self.lock_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            holder = _live_holder(path.with_suffix(".pid"))
            holder_text = f"pid {holder}" if holder is not None else "another process"
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"job {job_id} is already running ({holder_text}); wait for it, or stop it "
                f"with `mops jobs cancel {job_id}`",
            ) from None
        try:
            _write_pid(path.with_suffix(".pid"))
            yield
        finally:
            path.with_suffix(".pid").unlink(missing_ok=True)
            lock.release()

    def add_counts(self, job_id: str, succeeded: int = 0, failed: int = 0, cached: int = 0) -> None:
        """Increments in one statement, so concurrent updaters never lose each other's."""
        self._update(
            job_id,
            "succeeded = succeeded + ?, failed = failed + ?, cached = cached + ?",
            (succeeded, failed, cached),
        )

    def set_counts(self, job_id: str, counts: JobCounts) -> None:
        self._update(
            job_id,
            "total = ?, succeeded = ?, failed = ?, cached = ?",
            (counts.total, counts.succeeded, counts.failed, counts.cached),
        )

    def finish(self, job_id: str, state: JobState) -> None:
        state = JobState(state)
        if not state.finished:
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"a job finishes as succeeded, partial, failed or cancelled, not {state.value}",
            )
        self._update(job_id, "state = ?, ended = ?", (state.value, time.time()))

    def get(self, job_id: str) -> JobRecord:
        """The job with this id, or with the one id that starts with it."""
        db = self._connections.get()
        row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is not None:
            return _record(row)
        if not job_id:
            raise ModelOpsError(ErrorClass.BAD_INPUT, "no job id given")
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE substr(job_id, 1, ?) = ? ORDER BY job_id LIMIT 11",
            (len(job_id), job_id),
        ).fetchall()
        if len(rows) == 1:
            return _record(rows[0])
        if not rows:
            raise self._not_found(job_id)
        shown = ", ".join(row[0] for row in rows[:10]) + (", ..." if len(rows) > 10 else "")
        raise ModelOpsError(
            ErrorClass.BAD_INPUT, f"job id prefix '{job_id}' matches several jobs: {shown}"
        )

    def _not_found(self, job_id: str) -> ModelOpsError:
        return ModelOpsError(
            ErrorClass.NOT_FOUND,
            f"no job '{job_id}' in {self.path}; `mops jobs list` shows the jobs",
        )

    # -- the provenance cache -----------------------------------------------------------

    def cached_results(self, task_ids: Iterable[str]) -> dict[str, str]:
        """Task id -> the job that stored its outputs, for the ids that have one."""
        db = self._connections.get()
        found: dict[str, str] = {}
        for batch in _batches(task_ids, LOOKUP_BATCH):
            marks = ", ".join("?" * len(batch))
            found.update(
                db.execute(
                    f"SELECT task_id, job_id FROM stored_results WHERE task_id IN ({marks})",
                    batch,
                ).fetchall()
            )
        return found

    def record_results(self, job_id: str, task_ids: Iterable[str]) -> None:
        """These simulations' outputs are stored in `job_id`. The first job to store a
        result keeps it: later jobs that reused it point at that job too."""
        with self._connections.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO stored_results (task_id, job_id) VALUES (?, ?)",
                ((task_id, job_id) for task_id in task_ids),
            )

    def list(self, limit: int = 50) -> builtins.list[JobRecord]:
        """The newest jobs first."""
        rows = (
            self._connections.get()
            .execute(
                f"SELECT {_COLUMNS} FROM jobs ORDER BY created DESC, job_id DESC LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [_record(row) for row in rows]


def _write_pid(path: Path) -> None:
    """Who holds a lock, for the message the next process gets: written after taking it."""
    temporary = path.with_name(f".tmp-{secrets.token_hex(8)}-{path.name}")
    temporary.write_text(f"{os.getpid()}\n")
    os.replace(temporary, path)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _live_holder(path: Path, wait_s: float = 2.0) -> int | None:
    """The lock holder's pid. A holder writes its pid just after taking the lock, so the file
    may still name a killed holder before it: wait briefly for a pid that is alive."""
    deadline = time.monotonic() + wait_s
    while True:
        pid = _read_pid(path)
        if pid is not None and psutil.pid_exists(pid):
            return pid
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def _record(row: tuple[Any, ...]) -> JobRecord:
    (
        job_id,
        state,
        name,
        bundle,
        spec,
        results,
        total,
        succeeded,
        failed,
        cached,
        created,
        started,
        ended,
        pid,
        version,
        pid_started,
    ) = row
    return JobRecord(
        job_id=job_id,
        state=JobState(state),
        name=name,
        bundle=bundle,
        spec=json.loads(spec),
        results=results,
        counts=JobCounts(total, succeeded, failed, cached),
        created=created,
        started=started,
        ended=ended,
        pid=pid,
        modelops_version=version,
        pid_started=pid_started,
    )
