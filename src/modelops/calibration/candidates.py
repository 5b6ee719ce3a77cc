"""A candidate on a worker: its replicates run through the worker's warm runner, then scored
against the observed data right there, so the client receives a score per target and the
targets' output tables (for the result store), never the observed data back or a
replicate's other outputs (the tasks ask the model for the targets' outputs only).

The scoring rules and observed tables travel to each worker once (scattered by the client);
a task carries only its candidate's simulations, and the tables of replicates the
provenance cache already holds, which it does not run again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from distributed import get_worker

from modelops.calibration.scores import TargetScoring, candidate_score
from modelops.calibration.spec import CalibrationSpec
from modelops.cluster.plugin import worker_runner
from modelops.contracts import BundleRef, ErrorClass, ErrorInfo, ModelOpsError, SimReturn, SimTask
from modelops.runtime.describe import describe_with

ReplicateTables = dict[str, pl.DataFrame]
"""One replicate's output tables by output name."""


@dataclass(frozen=True)
class Scoring:
    """How every candidate of one calibration is scored: each target's rule, observed data
    and weight."""

    rules: dict[str, TargetScoring]
    observed: dict[str, pl.DataFrame]

    @classmethod
    def of(cls, spec: CalibrationSpec) -> Scoring:
        rules = {
            name: TargetScoring(
                name=name,
                output=target.output,
                join=tuple(target.join),
                observed=target.observed,
                simulated=target.simulated_column,
                loss=target.loss,
                weight=target.weight,
                replicates=target.replicates,
                dispersion=target.dispersion,
                sigma=target.sigma,
                trials=target.trials,
                missing_penalty=target.missing_penalty,
            )
            for name, target in spec.targets.items()
        }
        return cls(rules, dict(spec.observed))

    def columns(self) -> dict[str, list[str]]:
        """Output name -> the columns scoring reads from it."""
        needed: dict[str, list[str]] = {}
        for rule in self.rules.values():
            wanted = needed.setdefault(rule.output, [])
            for column in (*rule.join, rule.simulated):
                if column is not None and column not in wanted:
                    wanted.append(column)
        return needed

    def score(self, replicates: list[ReplicateTables]) -> tuple[float, dict[str, float]]:
        """The candidate's weighted score and each target's own."""
        per_target = {
            name: rule.score(self.observed[name], [tables[rule.output] for tables in replicates])
            for name, rule in self.rules.items()
        }
        weights = {name: rule.weight for name, rule in self.rules.items()}
        return candidate_score(per_target, weights), per_target


@dataclass(frozen=True)
class CandidateRun:
    """One candidate's replicates: tasks to run, and tables of those already stored."""

    number: int
    tasks: list[SimTask]
    held: list[ReplicateTables] = field(default_factory=list)


@dataclass(frozen=True)
class CandidateOutcome:
    """What a worker sends back for one candidate: the simulations it ran (with the targets'
    outputs, for the store) and the score, or why there is none."""

    number: int
    results: list[SimReturn]
    score: float | None
    targets: dict[str, float]
    error: ErrorInfo | None
    busy_s: float
    """Seconds the worker thread spent on this candidate: simulations and scoring."""


def run_candidate(run: CandidateRun, scoring: Scoring) -> CandidateOutcome:
    """The Dask task: run a candidate's missing replicates one after another on this worker,
    then score all of them. A failed replicate fails the candidate (it is told as failed);
    nothing here raises for a model's or a scoring's failure."""
    started = time.perf_counter()
    worker = get_worker()
    runner = worker_runner(worker)
    if runner is None:
        raise RuntimeError(f"ModelOps is not loaded on worker {worker.address}")
    results = []
    for task in run.tasks:
        result = runner.run(task, worker=worker.address)
        results.append(result)
        if not result.ok:  # the candidate cannot be scored: skip its other replicates
            break

    def outcome(
        score: float | None, targets: dict[str, float], error: ErrorInfo | None
    ) -> CandidateOutcome:
        busy = time.perf_counter() - started
        return CandidateOutcome(run.number, results, score, targets, error, busy)

    failed = next((result for result in results if not result.ok), None)
    if failed is not None:
        return outcome(None, {}, failed.error)
    try:
        tables = [*run.held, *(_tables(result, scoring) for result in results)]
        score, targets = scoring.score(tables)
    except ModelOpsError as exc:
        return outcome(None, {}, exc.info)
    return outcome(score, targets, None)


def _tables(result: SimReturn, scoring: Scoring) -> ReplicateTables:
    tables = {}
    for output in scoring.columns():
        artifact = result.outputs.get(output)
        if artifact is None:
            raise ModelOpsError(
                ErrorClass.BAD_OUTPUT, f"the model returned no output {output!r} to score"
            )
        if artifact.table_format is None:
            raise ModelOpsError(
                ErrorClass.BAD_OUTPUT,
                f"output {output!r} is opaque bytes, not a table a target can compare with",
            )
        tables[output] = pl.from_arrow(artifact.table())
    return tables


def describe_on_worker(ref: BundleRef) -> dict[str, Any]:
    """The Dask task that asks a bundle's SDK models about themselves on a worker, where the
    environment the simulations use is built (and stays warm for them)."""
    worker = get_worker()
    runner = worker_runner(worker)
    if runner is None:
        raise RuntimeError(f"ModelOps is not loaded on worker {worker.address}")
    return describe_with(runner, ref)
