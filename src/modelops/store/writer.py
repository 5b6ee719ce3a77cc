"""Streaming one job's results into Parquet parts with bounded memory.

Results arrive one at a time; rows are buffered per output and written as one new part per
output per flush. A flush happens when `flush_rows` simulations are buffered, when an
output's buffer holds `output_rows` rows (a model's table has many rows per simulation: one
part per few dozen simulations made most of the client's work), when buffered outputs take
`flush_bytes` in memory, or when `flush_seconds` have passed since the last one, so neither
a large study nor a slow one keeps more than one buffer's worth in memory.

A flush is committed by its `simulations` part, written after every output part of the
flush; only then is the caller told (`on_flush`) which results it stored. Every row of a
flush carries the flush's random id (`rows.FLUSH`), and readers keep an output row only if
the simulation's last committed attempt was written by that flush. So a client killed at any
point leaves, at worst, output parts nobody reads, or a committed flush the provenance cache
has not heard of (which the next run of the job tells it about, `JobResults.stored_here`):
never a simulation with two sets of rows.
"""

from __future__ import annotations

import errno
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType

import pyarrow as pa

from modelops.contracts import ArtifactKind, ErrorClass, ModelOpsError, SimReturn
from modelops.store.location import Location, encode_name
from modelops.store.parts import PartSequence
from modelops.store.rows import FLUSH, OutputRows, SimMeta, SimulationRows

OnFlush = Callable[[list[str]], None]


class ResultsNotStored(ModelOpsError):
    """The result store refused a flush (its disk full, most often). The job stops with
    what earlier flushes committed; the refused flush stays pending, to be written whole by
    the next flush or `close`."""

    def __init__(self, location: Location, job_id: str, exc: OSError) -> None:
        root = location.url(location.root)
        if exc.errno == errno.ENOSPC or "No space left" in str(exc):
            message = f"no space left on the disk that holds the result store {root}"
        else:
            message = f"could not write to the result store {root}: {exc.strerror or exc}"
        super().__init__(
            ErrorClass.INTERNAL, f"{message} (storing job {job_id})", type="ResultsNotStored"
        )


def new_flush_id() -> int:
    """63 random bits: never the id of another flush of the same job, in practice."""
    return secrets.randbits(63)


@dataclass(frozen=True)
class _Flush:
    """One flush's tables, kept until its simulations part is written (so a flush that
    failed part-way can be written again whole)."""

    outputs: tuple[tuple[str, pa.Table], ...]  # (folder, table), written first
    simulations: pa.Table  # written last: the commit
    stored: tuple[str, ...]  # task ids whose outputs this flush stores

    def restamped(self) -> _Flush:
        """The same rows under a new flush id: the parts an earlier try left stay
        uncommitted, so writing them again doubles nothing."""
        flush = new_flush_id()
        return replace(
            self,
            outputs=tuple((folder, _stamp(table, flush)) for folder, table in self.outputs),
            simulations=_stamp(self.simulations, flush),
        )


def _stamp(table: pa.Table, flush: int) -> pa.Table:
    index = table.schema.get_field_index(FLUSH)
    return table.set_column(index, FLUSH, pa.array([flush] * table.num_rows, pa.int64()))


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
        output_rows: int = 100_000,
        on_flush: OnFlush | None = None,
    ) -> None:
        if flush_rows < 1 or flush_seconds < 0 or flush_bytes < 1 or output_rows < 1:
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                "flush_rows, output_rows and flush_bytes must be positive and flush_seconds "
                "not negative",
            )
        self._location = location
        self._job_id = job_id
        self._job_dir = location.join("jobs", job_id)
        self._flush_rows = flush_rows
        self._flush_seconds = flush_seconds
        self._flush_bytes = flush_bytes
        self._output_rows = output_rows
        self._on_flush = on_flush
        self._outputs: dict[str, OutputRows] = {}
        self._simulations = SimulationRows(job_id)
        self._buffered_bytes = 0  # payload bytes of the buffered outputs
        self._full = False  # some output holds flush_rows rows
        self._stored: list[str] = []  # task ids whose outputs the next flush stores
        self._pending: _Flush | None = None  # a flush whose commit failed: written again
        self._unreported: list[str] = []  # stored, but on_flush has not taken them yet
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
                    table = artifact.table()
                    rows.add_table(meta, table, artifact.size)
                    self._buffered_bytes += max(table.nbytes, artifact.size)  # as decoded
                else:
                    rows.add_bytes(meta, artifact.data)
                    self._buffered_bytes += artifact.size
                self._full = self._full or rows.rows >= self._output_rows
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
        """Write every buffered row as one new part per output, then one part of
        `simulations`, which commits the flush; then tell `on_flush` what it stored."""
        if self._pending is not None:  # an earlier flush failed part-way: again, whole
            self._commit(self._pending.restamped())
        if len(self._simulations):
            flush = new_flush_id()
            outputs = tuple(
                (f"outputs/{encode_name(name)}", table)
                for name, rows in self._outputs.items()
                for table in rows.take(self._job_id, flush)
            )
            pending = _Flush(outputs, self._simulations.take(flush), tuple(self._stored))
            self._outputs, self._stored = {}, []
            self._buffered_bytes, self._full = 0, False
            self._commit(pending)
        self._last_flush = time.monotonic()
        if self._unreported and self._on_flush is not None:
            self._on_flush(list(self._unreported))
        self._unreported = []

    def _commit(self, pending: _Flush) -> None:
        self._pending = pending
        try:
            for folder, table in pending.outputs:
                self._sequence(folder).write(table)
            self._sequence("simulations").write(pending.simulations)  # the commit
        except OSError as exc:
            raise ResultsNotStored(self._location, self._job_id, exc) from exc
        self._pending = None
        self._unreported.extend(pending.stored)

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
