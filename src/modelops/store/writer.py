"""Streaming one job's results into Parquet parts with bounded memory.

Results arrive one at a time; rows are buffered per output and written as one new part per
output per flush. A flush happens when any buffer holds `flush_rows` rows, when buffered
payloads reach `flush_bytes`, or when `flush_seconds` have passed since the last one, so
neither a large study nor a slow one keeps more than one buffer's worth in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from modelops.contracts import ArtifactKind, ErrorClass, ModelOpsError, SimReturn
from modelops.store.location import Location, encode_name
from modelops.store.parts import PartSequence
from modelops.store.rows import OutputRows, SimMeta, SimulationRows

OnFlush = Callable[[list[str]], None]


class JobWriter:
    """Writes one running job's results; used from one thread only.

    `on_flush`, if given, is called after each flush with the task ids whose outputs that
    flush made durable in this job, so the provenance cache is only ever told about
    results that can be read back (`JobRecords.record_results`)."""

    def __init__(
        self,
        location: Location,
        job_id: str,
        *,
        flush_rows: int = 2000,
        flush_seconds: float = 5.0,
        flush_bytes: int = 64 * 2**20,
        on_flush: OnFlush | None = None,
    ) -> None:
        if flush_rows < 1 or flush_seconds < 0 or flush_bytes < 1:
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                "flush_rows and flush_bytes must be positive and flush_seconds not negative",
            )
        self._location = location
        self._job_id = job_id
        self._job_dir = location.join("jobs", job_id)
        self._flush_rows = flush_rows
        self._flush_seconds = flush_seconds
        self._flush_bytes = flush_bytes
        self._on_flush = on_flush
        self._outputs: dict[str, OutputRows] = {}
        self._simulations = SimulationRows(job_id)
        self._buffered_bytes = 0  # payload bytes of the buffered outputs
        self._full = False  # some output holds flush_rows rows
        self._stored: list[str] = []  # task ids whose outputs the next flush stores
        self._sequences: dict[str, PartSequence] = {}
        self._last_flush = time.monotonic()
        self._closed = False
        location.fs.makedirs(self._job_dir, exist_ok=True)

    @property
    def job_id(self) -> str:
        return self._job_id

    def add(self, meta: SimMeta, result: SimReturn, cached_from: str | None = None) -> None:
        """Buffer one result. Outputs are stored only for a success whose outputs are not
        already stored in another job (`cached_from`); every result gets a simulations row."""
        if self._closed:
            raise ModelOpsError(ErrorClass.INTERNAL, f"writer of job {self._job_id} is closed")
        if meta.task_id != result.task_id:
            raise ModelOpsError(
                ErrorClass.INTERNAL,
                f"result of task {result.task_id} added with the meta of task {meta.task_id}",
            )
        if result.ok and cached_from is None:
            for name, artifact in result.outputs.items():
                rows = self._outputs.get(name)
                if rows is None:
                    rows = self._outputs[name] = OutputRows()
                if artifact.kind is ArtifactKind.TABLE:
                    rows.add_table(meta, artifact.table(), artifact.size)
                else:
                    rows.add_bytes(meta, artifact.data)
                self._buffered_bytes += artifact.size
                self._full = self._full or rows.rows >= self._flush_rows
            self._stored.append(meta.task_id)
        self._simulations.append(meta, result, cached_from)
        if self._due():
            self.flush()

    def _due(self) -> bool:
        return (
            self._full
            or len(self._simulations) >= self._flush_rows
            or self._buffered_bytes >= self._flush_bytes
            or time.monotonic() - self._last_flush >= self._flush_seconds
        )

    def flush_if_due(self) -> None:
        """Flush if `flush_seconds` have passed: for callers waiting on slow simulations."""
        if len(self._simulations) and self._due():
            self.flush()

    def flush(self) -> None:
        """Write every buffered row as one new part per output (and one of simulations)."""
        for name, rows in self._outputs.items():
            for table in rows.take(self._job_id):
                self._sequence(f"outputs/{encode_name(name)}").write(table)
        if len(self._simulations):
            self._sequence("simulations").write(self._simulations.take())
        self._outputs = {}
        self._buffered_bytes, self._full = 0, False
        self._last_flush = time.monotonic()
        stored, self._stored = self._stored, []
        if stored and self._on_flush is not None:
            self._on_flush(stored)

    def _sequence(self, folder: str) -> PartSequence:
        sequence = self._sequences.get(folder)
        if sequence is None:
            sequence = PartSequence(self._location, f"{self._job_dir}/{folder}")
            self._sequences[folder] = sequence
        return sequence

    def close(self) -> None:
        """Flush what is buffered; the writer takes no more results."""
        if not self._closed:
            self.flush()
            self._closed = True

    def __enter__(self) -> JobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()  # what arrived before a failure is valid and worth keeping
