"""Results of a job as polars LazyFrames: `modelops.results.open(job_id)["incidence"]`.

A job's own rows, plus the rows of simulations it found in the provenance cache (read from
the job that computed them, labelled with this job's id), and one row per simulation in
`simulations` — the last attempt, when a resumed job ran a simulation again.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from modelops.settings import Settings
from modelops.store import JobRecord, JobRecords, JobResults, ResultStore


@dataclass(frozen=True)
class Results:
    job: JobRecord
    _stored: JobResults

    @property
    def outputs(self) -> list[str]:
        return self._stored.outputs()

    def __getitem__(self, output: str) -> pl.LazyFrame:
        return self._stored.scan(output)

    def scan(self, output: str) -> pl.LazyFrame:
        return self._stored.scan(output)

    @property
    def simulations(self) -> pl.LazyFrame:
        return self._stored.simulations().unique(subset="sim_id", keep="last", maintain_order=True)


def open(job_id: str, settings: Settings | None = None) -> Results:
    """The results of a job of this project (a unique prefix of its id will do)."""
    settings = settings or Settings.from_env()
    job = JobRecords(settings.jobs_db).get(job_id)
    store = ResultStore(job.results)
    own = store.open(job.job_id)
    cached = (
        own.simulations()
        .filter(pl.col("status") == "cached")
        .select("sim_id", "cached_from")
        .unique(subset="sim_id")
        .collect()
    )
    cached_from = dict(
        zip(cached["sim_id"].to_list(), cached["cached_from"].to_list(), strict=True)
    )
    return Results(job, store.open(job.job_id, cached_from=cached_from))
