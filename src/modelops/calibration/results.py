"""What a calibration found, read back without disturbing it: the summary `mops calibrate
show` prints, and everything the report draws. Reading takes over nothing, so it works on a
calibration another process is still running."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from modelops.calibration.candidates import Scoring
from modelops.calibration.run import (
    SEARCH_FILE,
    calibration_folder,
    candidate_tasks,
    recorded_utilisation,
    stored_spec,
    stored_tables,
)
from modelops.calibration.search import ABANDONED, TrialRecord, read_trials
from modelops.calibration.spec import CalibrationSpec
from modelops.contracts import BundleRef
from modelops.settings import Settings
from modelops.store import JobRecord, ResultStore

if TYPE_CHECKING:
    from modelops.calibration.report import ReportData

FITS_SHOWN = 3
"""How many of the best trials the report overlays on the observed data."""


@dataclass(frozen=True)
class BestTrial:
    """The lowest-scoring trial: its parameters (fixed ones too), score and each target's."""

    number: int
    params: dict[str, Any]
    loss: float
    targets: dict[str, float]


@dataclass(frozen=True)
class CalibrationSummary:
    """A calibration's state and best trial, as `mops calibrate show` prints it."""

    job_id: str
    name: str | None
    state: str
    trials: int
    """Trials told so far (complete and failed; not those in flight or asked again)."""
    budget: int
    complete: int
    failed: int
    best: BestTrial | None
    utilisation: float | None

    def to_json(self) -> dict[str, Any]:
        best = None
        if self.best is not None:
            best = {
                "trial": self.best.number,
                "params": self.best.params,
                "loss": self.best.loss,
                "targets": self.best.targets,
            }
        return {
            "job": self.job_id,
            "name": self.name,
            "state": self.state,
            "trials": self.trials,
            "budget": self.budget,
            "complete": self.complete,
            "failed": self.failed,
            "best": best,
            "utilisation": self.utilisation,
        }


def calibration_trials(job: JobRecord, settings: Settings) -> list[TrialRecord]:
    """Every trial asked so far, in order."""
    stored_spec(job, settings)  # a study's id is refused here, by name
    return read_trials(calibration_folder(settings, job.job_id) / SEARCH_FILE)


def calibration_summary(job: JobRecord, settings: Settings) -> CalibrationSummary:
    spec = stored_spec(job, settings)
    trials = read_trials(calibration_folder(settings, job.job_id) / SEARCH_FILE)
    complete = [trial for trial in trials if trial.state == "complete"]
    failed = [t for t in trials if t.state == "failed" and t.reason != ABANDONED]
    best = None
    if complete:
        top = min(complete, key=lambda trial: trial.score or 0.0)
        assert top.score is not None
        best = BestTrial(top.number, top.params, top.score, top.targets)
    return CalibrationSummary(
        job_id=job.job_id,
        name=job.name,
        state=job.state.value,
        trials=len(complete) + len(failed),
        budget=spec.search.trials,
        complete=len(complete),
        failed=len(failed),
        best=best,
        utilisation=recorded_utilisation(ResultStore(job.results), job.job_id),
    )


def report_data(job: JobRecord, settings: Settings) -> ReportData:
    """Everything the report draws: the trials, the observed data, and the stored outputs
    of the best few trials' replicates."""
    from modelops.calibration.report import ReportData  # loads bokeh: only for a report

    spec = stored_spec(job, settings)
    # an abandoned trial was asked again after a stop: its retry stands for it
    trials = [
        trial
        for trial in read_trials(calibration_folder(settings, job.job_id) / SEARCH_FILE)
        if trial.reason != ABANDONED
    ]
    complete = sorted(
        (trial for trial in trials if trial.state == "complete"),
        key=lambda trial: trial.score or 0.0,
    )
    store = ResultStore(job.results)
    ref = BundleRef.parse(job.bundle)
    fits = {trial.number: _fits(spec, ref, store, job, trial) for trial in complete[:FITS_SHOWN]}
    return ReportData(
        name=spec.name or job.job_id,
        job_id=job.job_id,
        state=job.state.value,
        parameters=dict(spec.parameters),
        fixed=dict(spec.fixed),
        targets=dict(spec.targets),
        trials=trials,
        observed=dict(spec.observed),
        fits={number: fit for number, fit in fits.items() if fit},
        utilisation=recorded_utilisation(ResultStore(job.results), job.job_id),
    )


def _fits(
    spec: CalibrationSpec, ref: BundleRef, store: ResultStore, job: JobRecord, trial: TrialRecord
) -> dict[str, list[pl.DataFrame]]:
    """Target -> the trial's replicate tables, as stored; empty if they cannot be read."""
    tasks = candidate_tasks(spec, ref, trial.params)
    columns = Scoring.of(spec).columns()
    tables = stored_tables(store, {task.task_id: job.job_id for task in tasks}, columns)
    if tables is None:
        return {}
    return {
        name: [replicate[target.output] for replicate in tables]
        for name, target in spec.targets.items()
    }
