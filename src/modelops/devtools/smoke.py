"""The smoke test: a small study of the smoke bundle, run as a job through the public API,
every stored result checked.

It exercises everything a study does (bundle build and store, cluster, worker plugin, uv
environment, warm children, Arrow outputs, the result store and job records) and says which
stage failed. The job runs in a scratch project of its own, so every run takes the full
path (no cached results) and nothing is left in the user's project; the bundle store and
the environment cache (MODELOPS_HOME) are the user's, so they stay warm.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from modelops import api
from modelops.contracts import BundleRef, SimReturn

SMOKE_BUNDLE = Path(__file__).parent / "smoke_bundle"
SMOKE_SEED = 20261129
RESULT_COLUMNS = ["day", "susceptible", "infected", "recovered", "incidence"]
BETAS = (0.2, 0.3, 0.4, 0.5)
DAYS = 60
POPULATION = 1000
META_COLUMNS = ("job_id", "sim_id", "param_set", "replicate", "seed")
OUTPUTS = ["metadata", "result"]


class SmokeTestFailed(Exception):
    def __init__(
        self,
        stage: str,
        message: str,
        task_id: str = "",
        remote_traceback: str = "",
        params: dict[str, Any] | None = None,
    ):
        where = ", ".join(
            part
            for part in (
                f"task {task_id}" if task_id else "",
                f"params {json.dumps(params, sort_keys=True)}" if params is not None else "",
            )
            if part
        )
        super().__init__(
            f"smoke test failed at {stage}" + (f" ({where})" if where else "") + f": {message}"
        )
        self.stage = stage
        self.task_id = task_id
        self.remote_traceback = remote_traceback
        self.params = params


@dataclass
class SmokeReport:
    bundle: BundleRef
    simulations: int = 0
    time_to_first_result_s: float = 0.0
    total_s: float = 0.0
    workers: set[str] = field(default_factory=set)
    sample: SimReturn | None = None


def smoke_study(bundle: BundleRef, simulations: int) -> api.StudySpec:
    """Exactly `simulations` runs of `sir` over the betas: as few parameter sets as cover
    them all (cycling through the betas when the count calls for more), each replicated."""
    sets = next(
        n for n in range(min(len(BETAS), simulations), simulations + 1) if simulations % n == 0
    )
    return api.StudySpec.model_validate(
        {
            "name": "smoke-test",
            "bundle": str(bundle),
            "entrypoint": "sir",
            "seed": SMOKE_SEED,
            "replicates": simulations // sets,
            "parameters": {
                "sampler": "list",
                "sets": [{"beta": BETAS[i % len(BETAS)]} for i in range(sets)],
                "fixed": {"days": DAYS},
            },
        }
    )


@contextmanager
def scratch_project() -> Iterator[Path]:
    """A temporary project folder for the smoke job, its records and its results; the
    environment is restored (and the folder removed) afterwards."""
    names = ("MODELOPS_PROJECT_DIR", "MODELOPS_RESULTS")
    saved = {name: os.environ.get(name) for name in names}
    with tempfile.TemporaryDirectory(prefix="mops-smoke-", ignore_cleanup_errors=True) as tmp:
        os.environ["MODELOPS_PROJECT_DIR"] = tmp
        os.environ.pop("MODELOPS_RESULTS", None)  # results go to the scratch project too
        try:
            yield Path(tmp)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def run_smoke_test(
    simulations: int = 24,
    n_workers: int = 2,
    scheduler: str | None = None,
    on_progress: Callable[[api.JobProgress], None] | None = None,
) -> SmokeReport:
    started = time.perf_counter()
    try:
        bundle = _publish_smoke_bundle()
    except Exception as exc:
        raise SmokeTestFailed("bundle build", str(exc)) from exc
    report = SmokeReport(bundle)

    def progress(state: api.JobProgress) -> None:
        if state.done and not report.time_to_first_result_s:
            report.time_to_first_result_s = time.perf_counter() - started
        if on_progress:
            on_progress(state)

    with scratch_project():
        try:
            job = api.run(
                smoke_study(bundle, simulations),
                scheduler=scheduler,
                workers=n_workers,
                progress=progress,
            )
        except Exception as exc:
            raise SmokeTestFailed("study run", f"{type(exc).__name__}: {exc}") from exc
        _check_job(job, simulations)
        first = _validate(job, report)
        report.sample = _check_determinism(bundle, first, job, scheduler)
    report.total_s = time.perf_counter() - started
    return report


def _check_job(job: api.Job, simulations: int) -> None:
    """A failed simulation is reported with its remote traceback; any other way a job
    ends short of `succeeded` with its state and counts."""
    failures = job.failures(limit=1) if job.counts.failed else None
    if failures and failures.groups:
        failed = failures.groups[0].example
        raise SmokeTestFailed(
            "simulation",
            failed.one_line(),
            failed.sim_id,
            failed.traceback or "",
            failed.params,
        )
    if job.state == "cancelled":
        raise KeyboardInterrupt
    c = job.counts
    if job.state != "succeeded" or c.succeeded != simulations:
        raise SmokeTestFailed(
            "study run",
            f"job ended {job.state}: {c.succeeded} succeeded, {c.failed} failed, "
            f"{c.cached} cached of {c.total}; expected {simulations} succeeded",
        )


@dataclass(frozen=True)
class _Sim:
    sim_id: str
    params: dict[str, Any]
    seed: int


def _validate(job: api.Job, report: SmokeReport) -> _Sim:
    """Check every stored simulation; the first in study order is returned."""
    results = job.results
    sims = (
        results.simulations()
        .sort("param_set", "replicate")
        .select("sim_id", "params_json", "seed", "worker")
        .collect()
    )
    first = sims.row(0, named=True)
    if results.outputs() != OUTPUTS:
        raise SmokeTestFailed(
            "validation", f"outputs are {results.outputs()}, expected {OUTPUTS}", first["sim_id"]
        )
    frame = results["result"].collect()
    params = json.loads(first["params_json"])
    model_columns = [c for c in frame.columns if c not in (*META_COLUMNS, *params)]
    if model_columns != RESULT_COLUMNS:
        raise SmokeTestFailed(
            "validation",
            f"result columns are {model_columns}, expected {RESULT_COLUMNS}",
            first["sim_id"],
        )
    tables = frame.partition_by("sim_id", as_dict=True)
    metadata = {
        row["sim_id"]: row["data"]
        for row in results["metadata"].select("sim_id", "data").collect().iter_rows(named=True)
    }
    for row in sims.iter_rows(named=True):
        sim = _Sim(row["sim_id"], json.loads(row["params_json"]), row["seed"])

        def fail(message: str, sim: _Sim = sim) -> SmokeTestFailed:
            return SmokeTestFailed("validation", message, sim.sim_id, params=sim.params)

        table = tables.get((sim.sim_id,))
        if table is None or sim.sim_id not in metadata:
            raise fail("the job stored no result or no metadata for this simulation")
        _check_table(table, sim.params["days"], fail)
        echoed = json.loads(metadata[sim.sim_id])
        if echoed["seed"] != sim.seed or echoed["params"] != sim.params:
            raise fail("metadata does not echo the simulation's seed and params")
        if not _in_bundle_environment(echoed["python"]):
            raise fail(f"model ran in {echoed['python']}, not in a bundle environment")
        report.simulations += 1
        if row["worker"]:
            report.workers.add(row["worker"])
    return _Sim(first["sim_id"], params, first["seed"])


def _publish_smoke_bundle() -> BundleRef:
    """Into the bundle store in use: pushed, when a registry is set, so workers that share no
    disk with this machine pull it by digest; else the embedded store."""
    if api.Settings.from_env().bundle_registry:
        return api.push(SMOKE_BUNDLE).ref
    return api.build(SMOKE_BUNDLE)


def _in_bundle_environment(python: str) -> bool:
    """`<cache>/envs/<64 hex>/bin/python`: an environment a worker built for a bundle, on
    whichever machine ran it (its cache is its own, not this machine's)."""
    parts = Path(python).parts
    return len(parts) >= 4 and parts[-4] == "envs" and len(parts[-3]) == 64


def _check_table(table: pl.DataFrame, days: int, fail: Callable[[str], SmokeTestFailed]) -> None:
    if table.height != days:
        raise fail(f"result has {table.height} rows, expected {days}")
    totals = table.select(pl.sum_horizontal(RESULT_COLUMNS[1:4]).unique().sort())
    if totals.to_series().to_list() != [POPULATION]:
        raise fail(
            f"S+I+R is not the population of {POPULATION} on every day: "
            f"{totals.to_series().to_list()[:5]}"
        )


def _check_determinism(
    bundle: BundleRef, sim: _Sim, job: api.Job, scheduler: str | None
) -> SimReturn:
    """Run one stored simulation again, by itself: the same seed must give the same table."""
    again = api.simulate(bundle, "sir", sim.params, sim.seed, scheduler=scheduler)
    if again.error is not None:
        raise SmokeTestFailed(
            "simulation", again.error.one_line(), again.task_id, again.error.traceback, sim.params
        )
    stored = (
        job.results["result"]
        .filter(pl.col("sim_id") == sim.sim_id)
        .select(RESULT_COLUMNS)
        .sort("day")
        .collect()
    )
    rerun = pl.from_arrow(again.outputs["result"].table())
    if not isinstance(rerun, pl.DataFrame) or not rerun.select(RESULT_COLUMNS).equals(stored):
        raise SmokeTestFailed(
            "determinism",
            "the same simulation (same seed) gave a different result when run again: "
            "seeding is broken",
            sim.sim_id,
            params=sim.params,
        )
    return again
