"""Run a study as a job: plan it, skip what the provenance cache already holds, submit the
rest through a bounded window, stream every result into the store, keep the record current.

Memory stays flat whatever the study size: simulations are planned lazily, only the tasks
in flight are remembered, and results go to the store as they arrive. A job that stops for
any reason (Ctrl-C, a killed client, a lost cluster) keeps everything stored so far, and
running it again (`resume_job`) runs only what is missing or failed.

A job runs in one process at a time (`JobRecords.running`); a run first tells the provenance
cache about any results an earlier, killed run stored but did not live to report, so they
are neither run again nor stored twice.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

from modelops import __version__
from modelops.bundle.inspect import BundleDescription, DescribedSource, describe_bundle
from modelops.bundle.lock import LockMode
from modelops.bundle.publish import resolve_bundle
from modelops.bundle.store_in_use import StoreInUse, store_for_call
from modelops.cluster import Dashboard, SchedulerLost, cluster_kind, open_cluster, run_tasks
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError, SimReturn, SimTask
from modelops.jobs.recorder import RunRecorder
from modelops.runtime.describe import SDK_WIRE, describe_models
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
from modelops.store.results import last_attempts
from modelops.study import StudySpec, field_problem, plan
from modelops.study.run import RunSpec
from modelops.study.validate import check_study

PLAN_CHUNK = 1000  # simulations looked up in the provenance cache at a time


@dataclass
class Progress:
    """What a progress bar shows; updated after every result."""

    job_id: str
    total: int
    succeeded: int = 0
    failed: int = 0
    cached: int = 0
    running: int = 0
    started: float = field(default_factory=time.monotonic)
    dashboard: str | None = None  # Dask's dashboard, once the cluster is open

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cached


ProgressCallback = Callable[[Progress], None]


def run_study(
    spec: StudySpec,
    settings: Settings | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    on_start: Callable[[JobRecord], None] | None = None,
    on_progress: ProgressCallback | None = None,
    lock: LockMode = LockMode.UPDATE,
    cluster: str | None = None,
) -> JobRecord:
    """Publish the study's bundle, record a new job, and run it to the end."""
    settings = settings or Settings.from_env()
    scheduler = scheduler or settings.scheduler
    cluster = cluster_kind(scheduler, cluster, settings)  # checked before anything is built
    with bundle_of(spec, settings, lock) as (bundle_store, bundle):
        if scheduler is None:  # the models can be asked here, in the environment workers use
            _check_against_models(spec, bundle, bundle_store, settings)
    records = JobRecords(settings.jobs_db)
    store = ResultStore(settings.results_root)
    job = records.create(
        name=spec.name,
        bundle=str(bundle.ref),
        spec=spec.model_dump(mode="json"),
        results=settings.results_root,
        total=spec.n_simulations,
    )
    if on_start:
        on_start(job)
    where = _Where(scheduler, n_workers, cluster)
    return _run(job, spec, bundle, records, store, where, on_progress)


def resume_job(
    job_id: str,
    settings: Settings | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    on_progress: ProgressCallback | None = None,
    cluster: str | None = None,
) -> JobRecord:
    """Run what a job has not finished: missing and failed simulations, nothing else."""
    settings = settings or Settings.from_env()
    scheduler = scheduler or settings.scheduler
    cluster = cluster_kind(scheduler, cluster, settings)
    records = JobRecords(settings.jobs_db)
    job = records.get(job_id)  # a unique prefix will do; the lock is taken by the full id
    if job.kind != "study":
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"job {job.job_id} is a {job.kind}: resume it with `mops calibrate resume "
            f"{job.job_id}` (or modelops.resume)",
        )
    # a record written before studies had seed_bits was planned with 64-bit seeds
    spec = StudySpec.model_validate({"seed_bits": 64, **job.spec})
    with store_for_call(settings) as bundle_store:
        bundle = describe_bundle(BundleRef.parse(job.bundle), bundle_store)
    store = ResultStore(job.results)
    where = _Where(scheduler, n_workers, cluster)
    return _run(job, spec, bundle, records, store, where, on_progress)


def cancel_job(job_id: str, settings: Settings | None = None) -> JobRecord:
    """Stop a running job (its client process gets Ctrl-C and cancels cleanly), or mark a
    job whose client is gone as cancelled. The process signalled is the one the record
    names by pid *and* start time: a pid since given to another process is left alone."""
    settings = settings or Settings.from_env()
    records = JobRecords(settings.jobs_db)
    job = records.get(job_id)
    if job.state not in (JobState.PENDING, JobState.RUNNING):
        return job
    process = _process_of(job)
    if process is not None and process.pid != os.getpid():
        # psutil checks again that the pid was not reused; an error: it ended meanwhile
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and records.get(job.job_id).state is JobState.RUNNING:
            time.sleep(0.2)
    job = records.get(job.job_id)
    if job.state in (JobState.PENDING, JobState.RUNNING):
        records.finish(job.job_id, JobState.CANCELLED)
    return records.get(job.job_id)


@contextlib.contextmanager
def bundle_of(
    spec: RunSpec, settings: Settings, lock: LockMode
) -> Iterator[tuple[StoreInUse, BundleDescription]]:
    """The bundle store in use, opened once for the run's set-up, and the study's bundle in
    it: built and published, or located, and described, before any job exists; a problem
    (opening the store included) names the study's line."""
    folder = spec.bundle_path()
    with contextlib.ExitStack() as stack:
        try:
            bundle_store = stack.enter_context(store_for_call(settings))
            where = folder if folder is not None else spec.bundle
            bundle = resolve_bundle(where, bundle_store, lock)
        except ModelOpsError as exc:
            raise field_problem(spec, ("bundle",), exc) from None
        yield bundle_store, bundle


def _check_against_models(
    spec: StudySpec, bundle: BundleDescription, bundle_store: StoreInUse, settings: Settings
) -> None:
    if bundle.config.wire != SDK_WIRE:
        return
    try:
        # the fetch that asks the models reads only layers: manifest and config are in hand
        models = describe_models(bundle.ref, DescribedSource(bundle_store, bundle), settings.cache)
    except ModelOpsError as exc:
        raise field_problem(spec, ("bundle",), exc) from None
    check_study(spec, models)


def _process_of(job: JobRecord) -> psutil.Process | None:
    """The live process that runs `job`, or None: none recorded, gone, or its pid reused."""
    if job.pid is None:
        return None
    try:
        process = psutil.Process(job.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return process if job.runs_in(process) else None


class _JobRun:
    """The mutable state of one run of one job, driven from a single thread."""

    def __init__(
        self,
        job: JobRecord,
        spec: StudySpec,
        ref: BundleRef,
        records: JobRecords,
        store: ResultStore,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.job = job
        self.spec = spec
        self.ref = ref
        self.records = records
        self.recorder = RunRecorder(job.job_id, records, store)
        self.on_progress = on_progress
        self.progress = Progress(job.job_id, spec.n_simulations)
        self.dashboard = Dashboard()  # its link is set once Dask's dashboard serves
        self.in_flight: dict[str, SimMeta] = {}
        self.limits = spec.limits()
        self.outputs = tuple(spec.outputs) if spec.outputs else None

    def tasks(self) -> Iterator[SimTask]:
        """The simulations still to run; cache hits are recorded here and never submitted."""
        planned = plan(self.spec)
        while chunk := list(itertools.islice(planned, PLAN_CHUNK)):
            sets: dict[int, SimTask] = {}  # one checked task per parameter set of the chunk
            pairs = []
            for sim in chunk:
                first = sets.get(sim.param_set)
                if first is None:
                    first = sets[sim.param_set] = SimTask(
                        self.ref,
                        self.spec.entrypoint,
                        sim.params,
                        sim.seed,
                        self.spec.config,
                        self.outputs,
                        self.limits,
                    )
                pairs.append((sim, first.with_seed(sim.seed)))
            held = self.records.cached_results(task.task_id for _, task in pairs)
            for sim, task in pairs:
                # the set's params, one dict shared by its replicates' rows (and tasks)
                meta = SimMeta(task.task_id, sim.param_set, sim.replicate, sim.seed, task.params)
                source = held.get(task.task_id)
                if source == self.job.job_id:  # stored by an earlier run of this job
                    self.progress.succeeded += 1
                elif source is not None:
                    self.recorder.writer.add(
                        meta, SimReturn(task.task_id, cached=True), cached_from=source
                    )
                    self._count("cached")
                else:
                    self.in_flight[task.task_id] = meta
                    yield task
            self.recorder.checkpoint_if_due()

    def cluster_opened(self) -> None:
        """Said to the progress display at once: the dashboard shows the workers live (an
        embedded cluster's shows with a later result, once loaded)."""
        self.progress.dashboard = self.dashboard.link
        if self.on_progress:
            self.on_progress(self.progress)

    def record(self, result: SimReturn) -> None:
        meta = self.in_flight.pop(result.task_id)
        self.recorder.writer.add(meta, result)
        self._count("succeeded" if result.ok else "failed")

    def _count(self, kind: str) -> None:
        self.recorder.count(kind)
        setattr(self.progress, kind, getattr(self.progress, kind) + 1)
        self.progress.running = len(self.in_flight)
        self.progress.dashboard = self.dashboard.link
        if self.on_progress:
            self.on_progress(self.progress)

    def counts(self) -> JobCounts:
        """The job's counts as this run saw them, right once it saw every simulation: each
        was stored by an earlier run, found in the cache, or run now. (Reading them back
        from the store instead grew the client by 50 MB at 200,000 simulations.)"""
        progress = self.progress
        return JobCounts(progress.total, progress.succeeded, progress.failed, progress.cached)


@dataclass(frozen=True)
class _Where:
    """Where a job's simulations run: a scheduler address, or a cluster of a kind and size."""

    scheduler: str | None
    n_workers: int | None
    cluster: str | None


def _run(
    job: JobRecord,
    spec: StudySpec,
    bundle: BundleDescription,
    records: JobRecords,
    store: ResultStore,
    where: _Where,
    on_progress: ProgressCallback | None,
) -> JobRecord:
    """One run of `job`, holding its run lock throughout: one process per job."""
    with records.running(job.job_id):
        records.start(job.job_id, os.getpid())
        # results an earlier run committed but was killed before reporting: reported now
        for stored in store.open(job.job_id).stored_here():
            records.record_results(job.job_id, stored)
        run = _JobRun(job, spec, bundle.ref, records, store, on_progress)
        if on_progress:  # the job's id and size show before its first result
            on_progress(run.progress)
        started = time.time()
        state = JobState.FAILED
        stopped: ResultsNotStored | SchedulerLost | None = None
        try:
            pending = run.tasks()
            first = next(pending, None)
            if first is not None:  # a study that is all cache hits needs no cluster at all
                with open_cluster(
                    where.scheduler, where.n_workers, kind=where.cluster, dashboard=run.dashboard
                ) as client:
                    run.cluster_opened()
                    tasks = itertools.chain([first], pending)
                    for result in run_tasks(client, tasks, batch_size=spec.resources.batch_size):
                        run.record(result)
            state = None  # decided from the stored counts below
        except KeyboardInterrupt:
            state = JobState.CANCELLED
        except (ResultsNotStored, SchedulerLost) as exc:
            stopped, state = exc, None  # decided from the stored counts, as a run that ended
        finally:
            stopped = run.recorder.close() or stopped
            if state is None and stopped is None and run.progress.done == spec.n_simulations:
                counts = run.counts()  # it saw every simulation: no need to read them back
            else:
                counts = final_counts(store, job.job_id, spec.n_simulations)
            records.set_counts(job.job_id, counts)
            if state is None:
                state = _state_of(counts)
            records.finish(job.job_id, state)
            if not isinstance(stopped, ResultsNotStored):  # a full store takes no manifest
                store.write_manifest(
                    job.job_id, job_manifest(job.job_id, spec, bundle, state, started, counts)
                )
        if stopped is not None:
            raise stopped_early(stopped, f"mops jobs resume {job.job_id}") from stopped
        return records.get(job.job_id)


def stopped_early(stop: ResultsNotStored | SchedulerLost, resume: str) -> ModelOpsError:
    """The job's one line when it stopped before its end (the result store refused its
    results, or the scheduler was lost): what happened, that what was stored stays, and
    how to run the rest."""
    if isinstance(stop, ResultsNotStored):
        then = f"free space there, then `{resume}` runs the rest"
    else:
        then = f"`{resume} --scheduler ADDRESS` runs the rest on a scheduler that is up"
    return ModelOpsError(
        stop.info.error_class,
        f"{stop.info.message}: the results stored before stay; {then}",
        type=stop.info.type,
    )


def job_manifest(
    job_id: str,
    spec: RunSpec,
    bundle: BundleDescription,
    state: JobState,
    started: float,
    counts: JobCounts,
) -> dict[str, Any]:
    """What a job's manifest in the result store says of it: its spec, bundle, environment,
    state, times and counts (a calibration adds its own section)."""
    environment = bundle.config.environment
    return {
        "job": job_id,
        "name": spec.name,
        "state": state.value,
        "spec": spec.model_dump(mode="json"),
        "bundle": str(bundle.ref),
        "environment": {
            "kind": environment.kind,
            "files": list(environment.files),
            "lock_digest": environment.lock_digest,
        },
        "modelops_version": __version__,
        "started": started,
        "ended": time.time(),
        "counts": {
            "total": counts.total,
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "cached": counts.cached,
        },
    }


def final_counts(store: ResultStore, job_id: str, total: int) -> JobCounts:
    """Counts from what is stored: the last row of each simulation decides its status."""
    # only the two columns read: the last attempts of every column cost the client's memory
    # 40 MB more for 200,000 simulations
    attempts = store.open(job_id).attempts().select("sim_id", "status")
    table = last_attempts(attempts).group_by("status").len().collect()
    by_status = dict(zip(table["status"].to_list(), table["len"].to_list(), strict=True))
    return JobCounts(
        total=total,
        succeeded=by_status.get("succeeded", 0),
        failed=by_status.get("failed", 0),
        cached=by_status.get("cached", 0),
    )


def _state_of(counts: JobCounts) -> JobState:
    if counts.done < counts.total:
        return JobState.PARTIAL if counts.done else JobState.FAILED
    if counts.failed == 0:
        return JobState.SUCCEEDED
    return JobState.PARTIAL if counts.failed < counts.total else JobState.FAILED
