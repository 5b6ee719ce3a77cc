"""A client writing a job's results as `jobs/run.py` does, for tests that kill it midway
(spawned: importable top-level functions; the crash comes from `crashfs`)."""

from __future__ import annotations

import os
from pathlib import Path

from modelops.contracts import Artifact, SimReturn
from modelops.store import JobRecords, ResultStore
from tests.store import crashfs
from tests.store.helpers import meta, table_artifact

FLUSH_ROWS = 6  # two simulations' incidence (3 rows each) fill a flush


def result(i: int, attempt: int) -> SimReturn:
    """Simulation i's result; its rows say which attempt wrote them."""
    m = meta(i)
    incidence = table_artifact(
        {"t": [0, 1, 2], "infected": [i, i + 1, i + 2], "attempt": [attempt] * 3}
    )
    summary = Artifact.from_bytes(f'{{"sim": {i}, "attempt": {attempt}}}'.encode())
    return SimReturn(m.task_id, outputs={"incidence": incidence, "summary": summary})


def write(root: str, db: str, job_id: str, sims: list[int], attempt: int) -> None:
    """Store `sims` in job `job_id`, telling the provenance cache after each flush."""
    records = JobRecords(Path(db))
    store = ResultStore(root)
    writer = store.writer(
        job_id,
        flush_rows=FLUSH_ROWS,
        output_rows=FLUSH_ROWS,
        flush_seconds=3600,
        on_flush=lambda ids: records.record_results(job_id, ids),
    )
    with writer:
        for i in sims:
            writer.add(meta(i), result(i, attempt))


def write_and_crash(root: str, db: str, job_id: str, sims: list[int], crash: str) -> None:
    """`write`, in a process the crash filesystem kills at the step `crash` describes."""
    os.environ[crashfs.CRASH_ENV] = crash
    crashfs.install()
    write(root, db, job_id, sims, attempt=1)
    raise SystemExit("the crash never came")
