"""Processes for the job-records concurrency test (spawned: importable top-level functions)."""

from __future__ import annotations

import time
import traceback
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from modelops.store import JobRecords

BATCH = 10


def batch_ids(i: int) -> list[str]:
    return [f"sim-{i:06d}-{k}" for k in range(BATCH)]


def writer(path: str, job_id: str, seconds: float, done: Event, report: Any) -> None:
    """Counts move by one success and one failure per statement; ids arrive ten at a time."""
    try:
        records = JobRecords(Path(path))
        started, i = time.monotonic(), 0
        while time.monotonic() - started < seconds:
            records.add_counts(job_id, succeeded=1, failed=1)
            records.record_results(job_id, batch_ids(i))
            i += 1
        report.put(("writer", i, None))
    except BaseException:
        report.put(("writer", 0, traceback.format_exc()))
    finally:
        done.set()


def reader(path: str, job_id: str, done: Event, report: Any) -> None:
    """Counts never go back, a row is never half-updated, a batch is all there or absent."""
    try:
        records = JobRecords(Path(path))
        last, reads = -1, 0
        while not done.is_set() or reads < 20:
            record = records.get(job_id[:12])
            counts = record.counts
            assert counts.succeeded == counts.failed, counts  # one statement moved both
            assert counts.succeeded >= last, (counts.succeeded, last)
            last = counts.succeeded
            assert records.list(limit=5)[0].job_id == job_id
            if last >= 2:  # batch i is recorded right after count i+1: last-2 is in
                assert len(records.cached_results(batch_ids(last - 2))) == BATCH
            for i in (max(0, last - 1), last, last + 1):
                found = records.cached_results(batch_ids(i))
                assert len(found) in (0, BATCH), found
                assert set(found.values()) <= {job_id}
            reads += 1
        report.put(("reader", reads, None))
    except BaseException:
        report.put(("reader", 0, traceback.format_exc()))
