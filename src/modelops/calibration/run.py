"""Run a calibration as a job: ask the search for candidates, run each candidate's replicates
on the cluster and score them there, tell each score as it arrives and ask for the next, so
`search.batch` candidates are always in flight and no worker waits for a generation.

A calibration is a job like a study's: one record, one run at a time, every simulation in
the result store and the provenance cache. What it adds lives in the job's folder under
`.modelops/calibrations/<job id>/`: the search's history (Optuna's journal, see `search`) and the
observed data as it was read when the job started, so a resume and a report score against
the same data even if the file changed since.

Replicate seeds are the calibration seed's, the same for every candidate (common random
numbers): two candidates differ only by their parameters, which makes their scores
comparable with fewer replicates, and a candidate asked again (after a stop, or proposed
twice) is the same simulations, found in the provenance cache rather than run again.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from distributed import Client, Future, as_completed

from modelops.bundle.inspect import BundleDescription, describe_bundle
from modelops.bundle.lock import LockMode
from modelops.bundle.store_in_use import store_for_call
from modelops.calibration.candidates import (
    CandidateOutcome,
    CandidateRun,
    ReplicateTables,
    Scoring,
    describe_on_worker,
    run_candidate,
)
from modelops.calibration.defaults import with_model_defaults
from modelops.calibration.search import ABANDONED, Candidate, Search, TrialRecord
from modelops.calibration.spec import CalibrationSpec
from modelops.cluster import Dashboard, SchedulerLost, cluster_kind, open_cluster, task_outcome
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError, SimReturn, SimTask
from modelops.contracts.ids import canonical_json
from modelops.contracts.seeds import replicate_seeds
from modelops.jobs.recorder import RunRecorder
from modelops.jobs.run import bundle_of, final_counts, job_manifest, stopped_early
from modelops.runtime.describe import SDK_WIRE
from modelops.settings import Settings
from modelops.store import (
    JobCounts,
    JobRecord,
    JobRecords,
    JobState,
    ResultsNotStored,
    ResultStore,
    SimMeta,
)
from modelops.store.rows import model_column_name
from modelops.study import field_problem

KIND = "calibration"
"""The `kind` a calibration job's spec records (a study's has none)."""
SEARCH_FILE = "search.journal"
OBSERVED_FOLDER = "observed"
THREADS_EVERY_S = 2.0  # how often the cluster's size is read again, for utilisation
TELL_EVERY_S = 1.0  # scores wait at most this long (or half a batch) for their flush


@dataclass
class CalibrationProgress:
    """What a progress display shows; updated after every candidate."""

    job_id: str
    trials: int
    complete: int = 0
    failed: int = 0
    running: int = 0
    best: float | None = None
    utilisation: float | None = None
    started: float = field(default_factory=time.monotonic)
    dashboard: str | None = None

    @property
    def done(self) -> int:
        return self.complete + self.failed


CalibrationCallback = Callable[[CalibrationProgress], None]


def calibration_folder(settings: Settings, job_id: str) -> Path:
    """Where a calibration job keeps its search history and observed data."""
    return settings.jobs_db.parent / "calibrations" / job_id


def run_calibration(
    spec: CalibrationSpec,
    settings: Settings | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    cluster: str | None = None,
    on_start: Callable[[JobRecord], None] | None = None,
    on_progress: CalibrationCallback | None = None,
    lock: LockMode = LockMode.UPDATE,
) -> JobRecord:
    """Publish the calibration's bundle, complete the file from the model's description (on
    a worker, in the environment simulations use), record a new job and run it to the end."""
    settings = settings or Settings.from_env()
    scheduler = scheduler or settings.scheduler
    kind = cluster_kind(scheduler, cluster, settings)  # checked before anything is built
    with bundle_of(spec, settings, lock) as (_, bundle):
        pass  # built and published (or located) and described; the description outlives the store
    dashboard = Dashboard()
    with open_cluster(scheduler, n_workers, kind=kind, dashboard=dashboard) as client:
        spec = _completed(spec, bundle, client)
        records = JobRecords(settings.jobs_db)
        job = records.create(
            name=spec.name,
            bundle=str(bundle.ref),
            spec={**spec.model_dump(mode="json"), "kind": KIND},
            results=settings.results_root,
            total=spec.search.trials * spec.replicates,
        )
        folder = calibration_folder(settings, job.job_id)
        _save_observed(folder, spec.observed)
        if on_start:
            on_start(job)
        store = ResultStore(settings.results_root)
        return _run(job, spec, bundle, records, store, folder, client, dashboard, on_progress)


def resume_calibration(
    job_id: str,
    settings: Settings | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    cluster: str | None = None,
    on_progress: CalibrationCallback | None = None,
) -> JobRecord:
    """Continue a stopped calibration: its told trials stand, trials in flight when it
    stopped are asked again, and simulations already stored are not run again."""
    settings = settings or Settings.from_env()
    scheduler = scheduler or settings.scheduler
    kind = cluster_kind(scheduler, cluster, settings)
    records = JobRecords(settings.jobs_db)
    job = records.get(job_id)
    spec = stored_spec(job, settings)
    with store_for_call(settings) as bundle_store:
        bundle = describe_bundle(BundleRef.parse(job.bundle), bundle_store)
    folder = calibration_folder(settings, job.job_id)
    dashboard = Dashboard()
    with open_cluster(scheduler, n_workers, kind=kind, dashboard=dashboard) as client:
        store = ResultStore(job.results)
        return _run(job, spec, bundle, records, store, folder, client, dashboard, on_progress)


def stored_spec(job: JobRecord, settings: Settings) -> CalibrationSpec:
    """The calibration a job runs, as recorded when it started, with its observed data."""
    if job.kind != KIND:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"job {job.job_id} is a {job.kind}, not a calibration; see `mops jobs show "
            f"{job.job_id}`",
        )
    recorded = {key: value for key, value in job.spec.items() if key != "kind"}
    spec = CalibrationSpec.model_validate(recorded)
    folder = calibration_folder(settings, job.job_id) / OBSERVED_FOLDER
    try:
        observed = {name: pl.read_parquet(folder / f"{name}.parquet") for name in spec.targets}
    except FileNotFoundError as exc:
        raise ModelOpsError(
            ErrorClass.NOT_FOUND,
            f"calibration {job.job_id} has lost its observed data ({exc.filename} is gone)",
        ) from None
    return spec.model_copy(update={"observed": observed})


def _completed(spec: CalibrationSpec, bundle: BundleDescription, client: Client) -> CalibrationSpec:
    """The file's parameters completed from the model's own declaration; a bundle without
    the SDK's wire cannot describe itself, so its file gives every bound."""
    if bundle.config.wire != SDK_WIRE:
        return with_model_defaults(spec, None)
    try:
        models = client.submit(describe_on_worker, bundle.ref, pure=False).result()
    except ModelOpsError as exc:
        raise field_problem(spec, ("bundle",), exc) from None
    return with_model_defaults(spec, models)


def _save_observed(folder: Path, observed: dict[str, pl.DataFrame]) -> None:
    target_folder = folder / OBSERVED_FOLDER
    target_folder.mkdir(parents=True, exist_ok=True)
    for name, table in observed.items():
        table.write_parquet(target_folder / f"{name}.parquet")


def _run(
    job: JobRecord,
    spec: CalibrationSpec,
    bundle: BundleDescription,
    records: JobRecords,
    store: ResultStore,
    folder: Path,
    client: Client,
    dashboard: Dashboard,
    on_progress: CalibrationCallback | None,
) -> JobRecord:
    """One run of a calibration job, holding its run lock throughout."""
    with records.running(job.job_id):
        records.start(job.job_id, os.getpid())
        # results an earlier run committed but was killed before reporting: reported now
        for stored in store.open(job.job_id).stored_here():
            records.record_results(job.job_id, stored)
        loop = _CalibrationLoop(
            job, spec, bundle.ref, records, store, folder, dashboard, on_progress
        )
        started = time.time()
        state: JobState | None = JobState.FAILED
        stopped: ResultsNotStored | SchedulerLost | None = None
        try:
            loop.run(client)
            state = None  # decided from the search below
        except KeyboardInterrupt:
            state = JobState.CANCELLED
        except (ResultsNotStored, SchedulerLost) as exc:
            stopped, state = exc, None  # decided from the search, as a run that ended
        finally:
            stopped = loop.close() or stopped
            finished = stopped is None and loop.remaining() == 0 and not loop.in_flight
            counts = final_counts(store, job.job_id, spec.search.trials * spec.replicates)
            if finished:
                counts = JobCounts(counts.done, counts.succeeded, counts.failed, counts.cached)
            records.set_counts(job.job_id, counts)
            if state is None:
                if not finished:
                    state = JobState.PARTIAL
                else:
                    state = JobState.SUCCEEDED if loop.progress.complete else JobState.FAILED
            records.finish(job.job_id, state)
            if not isinstance(stopped, ResultsNotStored):  # a full store takes no manifest
                store.write_manifest(job.job_id, loop.manifest(bundle, state, started, counts))
        if stopped is not None:
            raise stopped_early(stopped, f"mops calibrate resume {job.job_id}") from stopped
        return records.get(job.job_id)


class _CalibrationLoop:
    """The mutable state of one run of one calibration, driven from a single thread."""

    def __init__(
        self,
        job: JobRecord,
        spec: CalibrationSpec,
        ref: BundleRef,
        records: JobRecords,
        store: ResultStore,
        folder: Path,
        dashboard: Dashboard,
        on_progress: CalibrationCallback | None,
    ) -> None:
        self.job = job
        self.dashboard = dashboard  # its link is set once Dask's dashboard serves
        self.spec = spec
        self.ref = ref
        self.records = records
        self.store = store
        self.on_progress = on_progress
        self.search = Search(
            folder / SEARCH_FILE,
            spec.parameters,
            spec.fixed,
            algorithm=spec.search.algorithm,
            seed=spec.seed,
        )
        self.recorder = RunRecorder(job.job_id, records, store)
        self.scoring = Scoring.of(spec)
        self.in_flight: dict[str, tuple[Candidate, dict[str, SimMeta]]] = {}
        self.written: set[str] = set()  # task ids this run stored, so a repeat is stored once
        self.untold: list[tuple[Candidate, CandidateOutcome]] = []  # scored, not yet durable
        self.last_told = time.monotonic()
        trials = self.search.trials()
        self.known = {
            _key(trial.params): (trial.score, trial.targets)
            for trial in trials
            if trial.state == "complete"
        }
        self.progress = CalibrationProgress(job.job_id, spec.search.trials)
        self.progress.complete = len(self.known)
        self.progress.failed = sum(_counts_as_failed(trial) for trial in trials)
        self.progress.best = min((t.score for t in trials if t.score is not None), default=None)
        self.busy_s = 0.0
        self.opened: float | None = None
        self.threads = 1
        self.threads_read = 0.0
        self.earlier_utilisation = recorded_utilisation(store, job.job_id)  # kept if none runs now

    def remaining(self) -> int:
        """Trials still to ask: the budget less those told, in flight, or to be told."""
        told = self.progress.done + len(self.untold)
        return self.spec.search.trials - told - len(self.in_flight)

    def run(self, client: Client) -> None:
        if self.remaining() <= 0:
            self._show()  # nothing left to run: the display still shows where it stands
            return
        self.opened = time.monotonic()
        self._read_threads(client)
        self._show()
        # the observed data and scoring rules go to each worker once, not with every task
        [scoring] = client.scatter([self.scoring], broadcast=True, hash=False)
        completed = as_completed()
        self._fill(client, scoring, completed)
        for future in completed:
            outcome = self._outcome_of(future)
            future.release()
            self._record(outcome)
            if time.monotonic() - self.threads_read >= THREADS_EVERY_S:
                self._read_threads(client)
            self._fill(client, scoring, completed)

    def _fill(self, client: Client, scoring: Future, completed: as_completed) -> None:
        """Ask for candidates until `batch` are in flight or the budget is asked for."""
        while len(self.in_flight) < self.spec.search.batch and self.remaining() > 0:
            [candidate] = self.search.ask(1)
            known = self.known.get(_key(candidate.params))
            if known is not None:  # proposed before: the same simulations, the same score
                score, targets = known
                self.search.tell(candidate, score, targets)
                self._counted(complete=True, score=score)
                continue
            completed.add(self._submit(client, scoring, candidate))

    def _submit(self, client: Client, scoring: Future, candidate: Candidate) -> Future:
        tasks = candidate_tasks(self.spec, self.ref, candidate.params)
        metas = {
            task.task_id: SimMeta(task.task_id, candidate.number, r, task.seed, candidate.params)
            for r, task in enumerate(tasks)
        }
        held = self.records.cached_results(metas)
        tables = stored_tables(self.store, held, self.scoring.columns())
        if tables is None:  # unreadable: run them again rather than fail the candidate
            held, tables = {}, []
        for task_id, source in held.items():
            if source != self.job.job_id and task_id not in self.written:
                self.recorder.writer.add(metas[task_id], SimReturn(task_id, cached=True), source)
                self.written.add(task_id)
                self.recorder.count("cached")
        run = CandidateRun(
            candidate.number, [task for task in tasks if task.task_id not in held], tables
        )
        key = f"modelops-candidate-{self.job.job_id}-{candidate.number}"
        self.in_flight[key] = (candidate, metas)
        return client.submit(run_candidate, run, scoring, key=key, pure=False, retries=0)

    def _outcome_of(self, future: Future) -> CandidateOutcome:
        candidate, _ = self.in_flight[future.key]
        outcome, error = task_outcome(future)
        if error is not None:
            return CandidateOutcome(candidate.number, [], None, {}, error, 0.0)
        return outcome

    def _record(self, outcome: CandidateOutcome) -> None:
        """Buffer a candidate's simulations for the store; its score is told once they are
        durable (`_tell`), so a told trial's simulations are always in the store."""
        key = f"modelops-candidate-{self.job.job_id}-{outcome.number}"
        candidate, metas = self.in_flight.pop(key)
        for result in outcome.results:
            if result.task_id not in self.written:
                self.recorder.writer.add(metas[result.task_id], result)
                self.written.add(result.task_id)
            self.recorder.count("succeeded" if result.ok else "failed")
        self.busy_s += outcome.busy_s
        self.untold.append((candidate, outcome))
        if outcome.error is None and outcome.score is not None and math.isfinite(outcome.score):
            self.known[_key(candidate.params)] = (outcome.score, outcome.targets)
        error = outcome.error
        scoring_failed = error is not None and all(result.ok for result in outcome.results)
        if scoring_failed and error.error_class is ErrorClass.BAD_INPUT:
            # the data and the model's output do not fit together: every candidate would
            # meet it, so the calibration stops here with the scoring's one-line error
            raise ModelOpsError.from_info(error)
        if len(self.untold) >= max(1, self.spec.search.batch // 2) or (
            time.monotonic() - self.last_told >= TELL_EVERY_S
        ):
            self._tell()

    def _tell(self) -> None:
        """Make the buffered simulations durable, then tell the search their candidates'
        scores: a search killed at any moment never holds a score whose simulations the
        store lost (those candidates are asked again, and found in the cache)."""
        self.recorder.writer.flush()
        while self.untold:
            # taken off first: an interrupt between the two leaves the trial in flight, to
            # be asked again, never told twice
            candidate, outcome = self.untold.pop(0)
            error = outcome.error
            if error is None:
                assert outcome.score is not None
                self.search.tell(candidate, outcome.score, outcome.targets)
                self._counted(complete=math.isfinite(outcome.score), score=outcome.score)
            else:
                self.search.tell_failed(candidate, f"{error.error_class.value}: {error.message}")
                self._counted(complete=False)
        self.last_told = time.monotonic()

    def _counted(self, complete: bool, score: float | None = None) -> None:
        if complete:
            self.progress.complete += 1
            if score is not None and (self.progress.best is None or score < self.progress.best):
                self.progress.best = score
        else:
            self.progress.failed += 1
        self._show()

    def _read_threads(self, client: Client) -> None:
        self.threads = max(1, sum(client.nthreads().values()))
        self.threads_read = time.monotonic()

    def utilisation(self) -> float | None:
        """Busy worker-thread time over the time the cluster's threads were there for."""
        if self.opened is None:
            return None
        elapsed = time.monotonic() - self.opened
        return min(1.0, self.busy_s / (elapsed * self.threads)) if elapsed > 0 else None

    def _show(self) -> None:
        self.progress.running = len(self.in_flight)
        self.progress.dashboard = self.dashboard.link
        self.progress.utilisation = self.utilisation()
        if self.on_progress:
            self.on_progress(self.progress)

    def close(self) -> ResultsNotStored | None:
        """Store what is buffered, tell the search what it scored, write the counts; the
        search is never told a score whose simulations the store refused."""
        return self.recorder.close(before=self._tell)

    def manifest(
        self, bundle: BundleDescription, state: JobState, started: float, counts: JobCounts
    ) -> dict[str, Any]:
        """The job's manifest in the result store, as a study's, with the calibration's
        best trial and the utilisation measured."""
        best = self.search.best()
        manifest = job_manifest(self.job.job_id, self.spec, bundle, state, started, counts)
        return {
            **manifest,
            "kind": KIND,
            "calibration": {
                "trials": self.progress.done,
                "complete": self.progress.complete,
                "failed": self.progress.failed,
                "best": None if best is None else {"params": best[0].params, "loss": best[1]},
                "utilisation": self.utilisation() if self.opened else self.earlier_utilisation,
            },
        }


def candidate_tasks(spec: CalibrationSpec, ref: BundleRef, params: dict[str, Any]) -> list[SimTask]:
    """A candidate's replicates: its parameters with each of the calibration's seeds."""
    seeds = replicate_seeds(spec.seed, 0, spec.replicates, spec.seed_bits)
    outputs = tuple(spec.outputs)
    return [
        SimTask(ref, spec.entrypoint, params, seed, spec.config, outputs, spec.limits())
        for seed in seeds
    ]


def stored_tables(
    store: ResultStore, held: dict[str, str], columns: dict[str, list[str]]
) -> list[ReplicateTables] | None:
    """The named columns of stored simulations' outputs (`held`: task id -> the job that
    stored it), one dict of tables per simulation; None if any cannot be read."""
    by_task: dict[str, ReplicateTables] = {task_id: {} for task_id in held}
    by_job: dict[str, list[str]] = {}
    for task_id, source in held.items():
        by_job.setdefault(source, []).append(task_id)
    try:
        for source, task_ids in by_job.items():
            results = store.open(source)
            for output, names in columns.items():
                stored = {model_column_name(name): name for name in names}
                table = (
                    results.scan(output)
                    .filter(pl.col("sim_id").is_in(task_ids))
                    .select("sim_id", *stored)
                    .collect()
                    .rename(stored)
                )
                for task_id in task_ids:
                    by_task[task_id][output] = table.filter(pl.col("sim_id") == task_id).drop(
                        "sim_id"
                    )
    except (ModelOpsError, pl.exceptions.PolarsError, OSError):
        return None
    return list(by_task.values())


def recorded_utilisation(store: ResultStore, job_id: str) -> float | None:
    """The utilisation an earlier run of the job measured, from its manifest; None if none."""
    try:
        return store.read_manifest(job_id).get("calibration", {}).get("utilisation")
    except (ModelOpsError, OSError, ValueError):
        return None


def _key(params: dict[str, Any]) -> str:
    """Which simulations a candidate is: within one calibration its parameters decide them."""
    return canonical_json(params, "params").decode()


def _counts_as_failed(trial: TrialRecord) -> bool:
    """A failed trial uses up the budget, unless it was abandoned (it is asked again)."""
    return trial.state == "failed" and trial.reason != ABANDONED
