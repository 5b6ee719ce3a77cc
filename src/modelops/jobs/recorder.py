"""What one run of a job writes as it goes, the same for studies and calibrations: results
through the store's writer, and the job's counts to its record about every second, so that
`mops jobs show` follows a run and a killed run loses at most a second of counts."""

from __future__ import annotations

import time
from collections.abc import Callable

from modelops.store import JobRecords, ResultsNotStored, ResultStore

CHECKPOINT_S = 1.0  # how often stored results are marked in the cache and counts written
COUNTED = ("succeeded", "failed", "cached")


class RunRecorder:
    """The store's writer for one run of one job, and the counts it has not yet written to
    the job's record. The provenance cache learns of a result only once a flush made it
    durable, so a cache hit always points at stored rows."""

    def __init__(self, job_id: str, records: JobRecords, store: ResultStore) -> None:
        self.job_id = job_id
        self.records = records
        self.writer = store.writer(job_id, on_flush=lambda ids: records.record_results(job_id, ids))
        self._unwritten = dict.fromkeys(COUNTED, 0)
        self._last_checkpoint = time.monotonic()

    def count(self, kind: str) -> None:
        """One more simulation `kind` (one of COUNTED); a checkpoint when one is due."""
        self._unwritten[kind] += 1
        self.checkpoint_if_due()

    def checkpoint_if_due(self) -> None:
        if time.monotonic() - self._last_checkpoint >= CHECKPOINT_S:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Buffered results are flushed when due; the counts reach the record."""
        self.writer.flush_if_due()
        self._write_counts()

    def _write_counts(self) -> None:
        if any(self._unwritten.values()):
            self.records.add_counts(self.job_id, **self._unwritten)
            self._unwritten = dict.fromkeys(COUNTED, 0)
        self._last_checkpoint = time.monotonic()

    def close(self, before: Callable[[], None] | None = None) -> ResultsNotStored | None:
        """Store what is buffered and write the counts; `before` runs first, under the same
        guard (a calibration tells its search there, once the store holds the scores'
        simulations). A store that refuses is returned, not raised, so the job's record is
        still finished."""
        try:
            if before is not None:
                before()
            self.writer.close()
        except ResultsNotStored as exc:
            return exc
        finally:
            self._write_counts()
        return None
