"""The result store: each job's outputs and simulation records as Parquet parts under one
root (a folder or an fsspec URL), and reading them back as polars LazyFrames.

    <root>/jobs/<job_id>/manifest.json
    <root>/jobs/<job_id>/outputs/<output name>/part-00000.parquet, ...
    <root>/jobs/<job_id>/simulations/part-00000.parquet, ...

Output names are percent-encoded into one path component (`location.encode_name`).

Reads return one row set per simulation whatever happened while writing: `simulations()`
holds each simulation's last attempt, and an output holds only the rows that attempt wrote
(see `writer` for how a flush commits).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.store.export import Format, export_job
from modelops.store.failures import (
    FailedSimulation,
    FailureSummary,
    failed_simulations,
    failure_summary,
    find_simulation,
    simulation_params,
)
from modelops.store.jobs import JobRecords
from modelops.store.location import Location, check_job_id, decode_name, encode_name
from modelops.store.parts import list_parts
from modelops.store.rows import FLUSH, SIMULATIONS_SCHEMA, SimMeta
from modelops.store.scan import KEY, Source, scan_sources, with_flush
from modelops.store.writer import JobWriter, OnFlush

__all__ = [
    "JobResults",
    "JobWriter",
    "ResultStore",
    "SimMeta",
    "last_attempts",
    "open_job_results",
]

_MANIFEST = "manifest.json"
STORED_BATCH = 500  # task ids per batch from `JobResults.stored_here`


def last_attempts(simulations: pl.LazyFrame) -> pl.LazyFrame:
    """One row per simulation: the latest, since parts are read in the order written."""
    return simulations.unique(subset="sim_id", keep="last", maintain_order=True)


class ResultStore:
    """Results of every job under one root."""

    def __init__(
        self, root: str | Path, *, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self.location = Location.open(root, storage_options)

    @property
    def url(self) -> str:
        return self.location.url(self.location.root)

    def job_path(self, job_id: str) -> str:
        """The job's folder as the filesystem names it."""
        return self.location.join("jobs", check_job_id(job_id))

    def job_url(self, job_id: str) -> str:
        """The job's folder, as a path (local) or URL (elsewhere)."""
        return self.location.url(self.job_path(job_id))

    def writer(
        self,
        job_id: str,
        flush_rows: int = 2000,
        flush_seconds: float = 5.0,
        *,
        flush_bytes: int = 64 * 2**20,
        output_rows: int = 100_000,
        on_flush: OnFlush | None = None,
    ) -> JobWriter:
        """A writer appending to the job's results (after any parts already there)."""
        return JobWriter(
            self.location,
            check_job_id(job_id),
            flush_rows=flush_rows,
            flush_seconds=flush_seconds,
            flush_bytes=flush_bytes,
            output_rows=output_rows,
            on_flush=on_flush,
        )

    def write_manifest(self, job_id: str, manifest: dict[str, Any]) -> None:
        """Replace the job's manifest atomically: readers see the old one or the new one."""
        try:
            data = json.dumps(manifest, sort_keys=True, indent=2, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise ModelOpsError(
                ErrorClass.BAD_INPUT, f"manifest of job {job_id} is not JSON data: {exc}"
            ) from exc
        path = f"{self.job_path(job_id)}/{_MANIFEST}"
        self.location.write_atomic(path, lambda file: file.write(data))

    def read_manifest(self, job_id: str) -> dict[str, Any]:
        path = f"{self.job_path(job_id)}/{_MANIFEST}"
        try:
            with self.location.fs.open(path, "rb") as file:
                return json.loads(file.read())
        except FileNotFoundError:
            raise ModelOpsError(
                ErrorClass.NOT_FOUND, f"no manifest for job '{job_id}' in {self.url}"
            ) from None

    def exists(self, job_id: str) -> bool:
        """Whether anything is stored for the job yet (a manifest or any part)."""
        return bool(self.location.list_names(self.job_path(job_id)))

    def open(self, job_id: str, cached_from: Mapping[str, str] | None = None) -> JobResults:
        """Read a job's results. `cached_from` (task id -> job id holding its outputs) names
        results taken from the provenance cache; by default it is read from the job's own
        `simulations` rows, which record where each cached result came from.

        A job with nothing stored yet opens as empty (an object store has no empty folders
        to tell it from an unknown id); `JobRecords.get` is where unknown ids are caught."""
        return JobResults(self, check_job_id(job_id), cached_from)


class JobResults:
    """One job's results as LazyFrames, including rows it took from earlier jobs' results."""

    def __init__(
        self, store: ResultStore, job_id: str, cached_from: Mapping[str, str] | None = None
    ) -> None:
        self._store = store
        self.job_id = job_id
        self._cached_from = dict(cached_from) if cached_from is not None else None

    def __repr__(self) -> str:
        return f"JobResults({self._store.job_url(self.job_id)!r})"

    def _output_folder(self, job_id: str, output: str) -> str:
        return f"{self._store.job_path(job_id)}/outputs/{encode_name(output)}"

    def _outputs_of(self, job_id: str) -> set[str]:
        folder = f"{self._store.job_path(job_id)}/outputs"
        return {decode_name(name) for name in self._store.location.list_names(folder)}

    def cached_from(self) -> dict[str, str]:
        """Task id -> the job whose stored outputs this job uses for that simulation."""
        if self._cached_from is None:
            rows = (
                self.simulations()
                .filter(pl.col("cached_from").is_not_null())
                .select("sim_id", "cached_from")
                .collect()
            )
            self._cached_from = dict(zip(rows["sim_id"], rows["cached_from"], strict=True))
        return self._cached_from

    def _sources_by_job(self) -> dict[str, frozenset[str]]:
        by_job: dict[str, set[str]] = {}
        for task_id, job_id in self.cached_from().items():
            if job_id is not None and job_id != self.job_id:
                by_job.setdefault(job_id, set()).add(task_id)
        return {job_id: frozenset(ids) for job_id, ids in by_job.items()}

    def outputs(self) -> list[str]:
        """Names of this job's outputs, with those of the jobs it took cached results from."""
        names = self._outputs_of(self.job_id)
        for job_id in self._sources_by_job():
            names |= self._outputs_of(job_id)
        return sorted(names)

    def scan(self, output: str) -> pl.LazyFrame:
        """All rows of `output`: this job's rows of each simulation's last committed attempt,
        plus its cached simulations' rows from the jobs that stored them, relabelled with
        this job's id."""
        location = self._store.location
        own = list_parts(location, self._output_folder(self.job_id, output))
        sources = [Source(tuple(own), committed=self._committed())]
        for job_id, task_ids in sorted(self._sources_by_job().items()):
            files = list_parts(location, self._output_folder(job_id, output))
            committed = JobResults(self._store, job_id, cached_from={})._committed()
            sources.append(
                Source(tuple(files), only_sims=task_ids, as_job=self.job_id, committed=committed)
            )
        if not any(source.files for source in sources):
            known = ", ".join(self.outputs()) or "none"
            raise ModelOpsError(
                ErrorClass.NOT_FOUND,
                f"job '{self.job_id}' has no output '{output}' (outputs: {known})",
            )
        return scan_sources(location, sources).drop(FLUSH)

    def __getitem__(self, output: str) -> pl.LazyFrame:
        return self.scan(output)

    def simulations(self) -> pl.LazyFrame:
        """One row per simulation this job has a result for (succeeded, failed or cached):
        its last attempt, when a resumed job ran it again."""
        return last_attempts(self._attempts()).drop(FLUSH)

    def attempts(self) -> pl.LazyFrame:
        """Every simulations row this job stored, in the order written: a simulation that
        ran again (a failure retried by a resume) has one row per attempt."""
        return self._attempts().drop(FLUSH)

    def stored_here(self) -> Iterator[list[str]]:
        """Task ids, in batches, of the simulations whose last attempt stored its outputs in
        this job: what the provenance cache should point at this job for. A client killed
        between committing a flush and telling the cache leaves some untold; the next run
        of the job tells it (`JobRecords.record_results`) rather than run them again."""
        ids = (
            self.simulations()
            .filter(pl.col("status") != "failed", pl.col("cached_from").is_null())
            .select("sim_id")
            .collect()["sim_id"]
        )
        for start in range(0, len(ids), STORED_BATCH):
            yield ids[start : start + STORED_BATCH].to_list()

    def failures(self, limit: int = 5) -> FailureSummary:
        """Failed simulations grouped by cause (`store.failures`), the `limit` commonest
        causes each with a real example: what `mops run` shows."""
        return failure_summary(self, limit)

    def failed_simulations(self) -> pl.LazyFrame:
        """One row per failed simulation in study order, without tracebacks or logs; rows
        become objects with `FailedSimulation.from_rows`."""
        return failed_simulations(self)

    def simulation(self, sim_id: str) -> FailedSimulation:
        """One simulation's last attempt in full, traceback and logs included; a unique
        prefix of its id will do."""
        return find_simulation(self, sim_id)

    def params_of(self, sim_ids: Iterable[str]) -> dict[str, dict]:
        """sim_id -> the parameters it ran with, for these simulations only."""
        return simulation_params(self, sim_ids)

    def export(self, out_dir: Path, fmt: Format = "parquet") -> list[Path]:
        """Each output and the simulations table as one Parquet or CSV file in `out_dir`."""
        return export_job(self, out_dir, fmt)

    def _attempts(self) -> pl.LazyFrame:
        location = self._store.location
        files = list_parts(location, f"{self._store.job_path(self.job_id)}/simulations")
        empty = pl.DataFrame(SIMULATIONS_SCHEMA.empty_table()).schema
        return with_flush(scan_sources(location, [Source(tuple(files))], empty=empty))

    def _committed(self) -> pl.LazyFrame:
        """`sim_id` and flush id of each simulation's last attempt: the rows to trust."""
        return last_attempts(self._attempts()).select(KEY)


def open_job_results(job_id: str, jobs_db: Path) -> JobResults:
    """The results of a job recorded in `jobs_db` (a unique prefix of its id will do),
    wherever the job wrote them."""
    job = JobRecords(jobs_db).get(job_id)
    return ResultStore(job.results).open(job.job_id)
