"""Results of a job as polars LazyFrames: `modelops.results.open(job_id)["incidence"]`.

A job's own rows, plus the rows of simulations it found in the provenance cache (read from
the job that computed them, labelled with this job's id), and one row per simulation in
`simulations()`: its last attempt, when a resumed job ran a simulation again.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from modelops.settings import Settings
from modelops.store import JobRecord, JobRecords, JobResults, ResultStore
from modelops.store.results import last_attempts

__all__ = ["Results", "last_attempts", "open"]


@dataclass(frozen=True)
class Results:
    job: JobRecord
    stored: JobResults

    def outputs(self) -> list[str]:
        return self.stored.outputs()

    def scan(self, output: str) -> pl.LazyFrame:
        return self.stored.scan(output)

    def __getitem__(self, output: str) -> pl.LazyFrame:
        return self.stored.scan(output)

    def simulations(self) -> pl.LazyFrame:
        """One row per simulation: its last attempt."""
        return self.stored.simulations()

    def attempts(self) -> pl.LazyFrame:
        """Every attempt of every simulation, in the order they were stored."""
        return self.stored.attempts()


def open(job_id: str, settings: Settings | None = None) -> Results:
    """The results of a job of this project (a unique prefix of its id will do)."""
    settings = settings or Settings.from_env()
    job = JobRecords(settings.jobs_db).get(job_id)
    return Results(job, ResultStore(job.results).open(job.job_id))
