"""The Python API, `import modelops`: everything `mops` does, as functions.

Bundles: `build`, `push`, `pull`, `inspect`, `list_bundles`, `login`, `check_bundle`, and
`simulate` for one simulation. Studies and jobs: `sample_study`, `run`, `resume`, `cancel`,
`job`, `list_jobs` and `results`; a `Job` holds a job's state and counts and leads to its
results and failures. Calibrations: `load_calibration`, `calibrate` and `calibration_job`;
a `Calibration` holds a calibration job's best trial, its trials and its report.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from modelops import API_NAMES
from modelops.bundle import LayoutStore, fetch_bundle, publish
from modelops.bundle.inspect import BundleDescription, DescribedSource, describe_bundle
from modelops.bundle.lock import LockMode
from modelops.bundle.registry import Credentials, PushReport, RegistryClient, RegistryHost
from modelops.bundle.registry.credentials import store_credentials
from modelops.bundle.store_in_use import Registry, parse_reference, store_for_call
from modelops.cluster import cluster_kind, open_cluster, run_tasks
from modelops.contracts import (
    BundleRef,
    ErrorClass,
    ModelOpsError,
    RunLimits,
    SimReturn,
    SimTask,
)
from modelops.runtime.describe import BundleCheck
from modelops.runtime.describe import check_bundle as runtime_check_bundle
from modelops.settings import Settings
from modelops.study import StudySpec, study_toml
from modelops.study import StudyWarning as StudyWarning
from modelops.study import load_study as load_study_file
from modelops.study import sample_study as study_from_words
from modelops.templates import LockWarning as LockWarning
from modelops.templates import ProjectError as ProjectError
from modelops.templates import create_project

if TYPE_CHECKING:
    from modelops.calibration.results import BestTrial, CalibrationSummary
    from modelops.calibration.run import CalibrationCallback, CalibrationProgress
    from modelops.calibration.search import TrialRecord
    from modelops.calibration.spec import CalibrationSpec
    from modelops.jobs import Progress as JobProgress
    from modelops.jobs.run import ProgressCallback
    from modelops.store import JobCounts, JobRecord, JobResults
    from modelops.store.failures import FailureSummary

# Names loaded on first use: the calibration brings scipy and optuna, which a study, a
# simulation or `mops sim` never needs (half a second of every command's start); jobs and
# the result store bring polars, which one simulation does not need (a fifth of a second).
_LAZY_NAMES = {
    "JobProgress": ("modelops.jobs", "Progress"),
    "ProgressCallback": ("modelops.jobs.run", "ProgressCallback"),
    "JobCounts": ("modelops.store", "JobCounts"),
    "JobRecord": ("modelops.store", "JobRecord"),
    "JobResults": ("modelops.store", "JobResults"),
    "FailedSimulation": ("modelops.store.failures", "FailedSimulation"),
    "FailureSummary": ("modelops.store.failures", "FailureSummary"),
}
_CALIBRATION_NAMES = {
    "BestTrial": "modelops.calibration.results",
    "CalibrationSummary": "modelops.calibration.results",
    "CalibrationProgress": "modelops.calibration.run",
    "TrialRecord": "modelops.calibration.search",
    "CalibrationSpec": "modelops.calibration.spec",
}


def __getattr__(name: str) -> Any:
    if name in _CALIBRATION_NAMES:
        return getattr(importlib.import_module(_CALIBRATION_NAMES[name]), name)
    if name in _LAZY_NAMES:
        module, attribute = _LAZY_NAMES[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'modelops.api' has no attribute {name!r}")


__all__ = list(API_NAMES)  # one list, in modelops/__init__.py, that `import modelops` serves
# Beside them, `modelops.api` holds the types they take and give (BundleCheck, FailureSummary,
# JobResults, PushReport, RunLimits, Settings, SimReturn, StudyWarning, ...) for annotations
# and `except` clauses; the CLI imports nothing else.


def build(
    project: str | Path,
    repository: str | None = None,
    tag: str | None = None,
    lock: LockMode = LockMode.UPDATE,
) -> BundleRef:
    """Build a bundle from a project folder and put it in the embedded bundle store; a
    uv.lock out of date with pyproject.toml is locked again first (see `LockMode`)."""
    return publish.store_locally(Path(project), Settings.from_env(), repository, tag, lock)


def push(
    project: str | Path,
    registry: Registry | str | None = None,
    repository: str | None = None,
    tag: str | None = None,
    force: bool = False,
    lock: LockMode = LockMode.UPDATE,
) -> PushReport:
    """Build a bundle and push it to a registry (a host, or a `Registry` with credentials;
    default MODELOPS_BUNDLE_REGISTRY)."""
    settings = Settings.from_env()
    return publish.push_project(
        Path(project), settings, Registry.of(registry), repository, tag, force, lock
    )


def pull(
    reference: str, dest: str | Path | None = None, registry: Registry | str | None = None
) -> tuple[BundleRef, Path]:
    """Fetch a bundle (verified, through this machine's cache) and copy its files to `dest`
    (default: a folder named after the repository), which must not exist or be empty."""
    settings = Settings.from_env()
    with store_for_call(settings, Registry.of(registry)) as store:
        ref = parse_reference(reference, store)
        target = Path(dest) if dest else Path(ref.repository.rsplit("/", 1)[-1])
        if target.exists() and any(target.iterdir()):
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"{target} already exists and is not empty; choose another --dest",
            )
        fetched = fetch_bundle(ref, store, settings.cache)
    shutil.copytree(fetched.root, target, dirs_exist_ok=True)
    return ref, target


def inspect(reference: str, registry: Registry | str | None = None) -> BundleDescription:
    """What a stored bundle holds, read from its manifest and config alone."""
    with store_for_call(Settings.from_env(), Registry.of(registry)) as store:
        return describe_bundle(parse_reference(reference, store), store)


def list_bundles(registry: Registry | str | None = None) -> list[tuple[str, list[str]]]:
    """(repository, tags-or-digests) for every bundle the store will list."""
    with store_for_call(Settings.from_env(), Registry.of(registry)) as store:
        if isinstance(store, LayoutStore):
            listed: dict[str, list[str]] = {}
            for ref, tag in store.refs():
                listed.setdefault(ref.repository, []).append(tag or ref.digest)
            return sorted(listed.items())
        client = store.client
        return [(name, _tags_of(client, name)) for name in sorted(client.repositories())]


def _tags_of(client: RegistryClient, repository: str) -> list[str]:
    """A repository holding only untagged bundles has no tag list (distribution answers
    404): it is listed with no tags, not an error."""
    try:
        return sorted(client.tags(repository))
    except ModelOpsError as exc:
        if exc.info.error_class is ErrorClass.NOT_FOUND:
            return []
        raise


def login(registry: Registry) -> str:
    """Check the registry's credentials against it, then store them the Docker way."""
    if not registry.host or registry.username is None or registry.password is None:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT, "login needs a registry host, a username and a password"
        )
    host = RegistryHost.parse(registry.host, insecure=registry.insecure)
    credentials = Credentials(registry.username, registry.password)
    with RegistryClient(host, credentials) as client:
        client.check()
    return store_credentials(host, credentials)


def resolve(path_or_ref: str, lock: LockMode = LockMode.UPDATE) -> BundleRef:
    """A project folder is built and published; a reference must name a stored bundle."""
    with store_for_call(Settings.from_env()) as store:
        return publish.resolve_bundle(path_or_ref, store, lock).ref


def simulate(
    bundle: str | Path | BundleRef,
    entrypoint: str = "",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    outputs: Iterable[str] | None = None,
    scheduler: str | None = None,
    cluster: str | None = None,
    limits: RunLimits | None = None,
    lock: LockMode = LockMode.UPDATE,
) -> SimReturn:
    """Run one simulation of a project folder or a stored bundle through the full worker
    path (plugin, environment, warm child)."""
    settings = Settings.from_env()
    scheduler = scheduler or settings.scheduler
    cluster = cluster_kind(scheduler, cluster, settings)  # checked before anything is built
    task = SimTask(
        bundle if isinstance(bundle, BundleRef) else resolve(str(bundle), lock),
        entrypoint,
        params or {},
        seed,
        config or {},
        tuple(outputs) if outputs is not None else None,
        limits or RunLimits(),
    )
    with open_cluster(scheduler, n_workers=1, kind=cluster) as client:
        return next(run_tasks(client, [task]))


def check_cluster(scheduler: str | None = None, cluster: str | None = None) -> str:
    """The kind of cluster these choices and the settings give (`embedded`, `scheduler`,
    `slurm`, `kubernetes`), checked: an unknown kind, a scheduler kind without an address or
    a `tls://` address without certificates is one line, before anything is built."""
    settings = Settings.from_env()
    return cluster_kind(scheduler or settings.scheduler, cluster, settings)


def check_bundle(path_or_ref: str, lock: LockMode = LockMode.UPDATE) -> BundleCheck:
    """Build the bundle's environment and import its wire in a child; for an SDK bundle,
    import every declared model and return what each declares, so a missing dependency or
    a typo shows before any job. Another bundle's wire is imported, never called: its
    entrypoints are whatever it accepts (`models` is None)."""
    settings = Settings.from_env()
    with store_for_call(settings) as bundle_store:
        bundle = publish.resolve_bundle(path_or_ref, bundle_store, lock)
        # the check's fetch reads only layers from the store: manifest and config are in hand
        source = DescribedSource(bundle_store, bundle)
        return runtime_check_bundle(bundle.ref, source, settings.cache)


# --- studies and jobs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """A job as it was when asked: its id, state and counts, and the way to its results.
    `refresh()` asks again; a notebook shows it as one line."""

    record: JobRecord

    @property
    def id(self) -> str:
        return self.record.job_id

    @property
    def state(self) -> str:
        return self.record.state.value

    @property
    def counts(self) -> JobCounts:
        return self.record.counts

    @property
    def name(self) -> str | None:
        return self.record.name

    @property
    def bundle(self) -> str:
        return self.record.bundle

    @property
    def results_url(self) -> str:
        """Where the job's Parquet parts are: a folder or an fsspec URL."""
        from modelops.store import ResultStore

        return ResultStore(self.record.results).job_url(self.id)

    @property
    def results(self) -> JobResults:
        """The job's outputs as polars LazyFrames: `job.results["incidence"].collect()`."""
        return results(self.id)

    def failures(self, limit: int = 5) -> FailureSummary:
        """Failed simulations grouped by cause, each with an example: what `mops run` shows."""
        return self.results.failures(limit)

    def refresh(self) -> Job:
        return job(self.id)

    def __repr__(self) -> str:
        c = self.counts
        return (
            f"<Job {self.id} {self.state}: {c.succeeded} succeeded, {c.failed} failed, "
            f"{c.cached} cached of {c.total}>"
        )


def load_study(path: str | Path) -> StudySpec:
    """A study file, read and checked: a mistake is one line naming the file, line and key."""
    return load_study_file(Path(path))


def sample_study(
    bundle: str | Path,
    *,
    sampler: str = "sobol",
    n: int | None = None,
    dims: Iterable[str] = (),
    fixed: Iterable[str] = (),
    replicates: int = 1,
    seed: int = 0,
    seed_bits: int = 32,
    entrypoint: str = "",
    outputs: Iterable[str] | None = None,
    name: str | None = None,
    out: str | Path | None = None,
    force: bool = False,
) -> StudySpec:
    """A study of the common cases in the words `mops study sample` takes: `dims` like
    `beta=0.1:0.9` or `contacts=int:2:20`, `fixed` like `days=90`. With `out`, the study is
    also written there as a study file; an existing file is replaced only with `force`."""
    if out is not None and Path(out).exists() and not force:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT, f"{out} exists; pass --force (force=True) to overwrite it"
        )
    spec = study_from_words(
        bundle,
        sampler=sampler,
        n=n,
        dims=list(dims),
        fixed=list(fixed),
        replicates=replicates,
        seed=seed,
        seed_bits=seed_bits,
        entrypoint=entrypoint,
        outputs=list(outputs) if outputs is not None else None,
        name=name,
        out=Path(out) if out is not None else None,
    )
    if out is not None:
        Path(out).write_text(study_toml(spec))
    return spec


def run(
    study: str | Path | StudySpec,
    scheduler: str | None = None,
    workers: int | None = None,
    lock: LockMode = LockMode.UPDATE,
    progress: bool | ProgressCallback = True,
    cluster: str | None = None,
) -> Job:
    """Run a study file (or a `StudySpec`) to the end: every simulation the store does not
    hold yet, results streamed into it. `progress` shows rich's bar (notebooks display it
    too); False shows nothing, and a function gets a `JobProgress` after every result.
    `cluster` is `embedded`, `scheduler`, `slurm` or `kubernetes` (default: the settings;
    docs/configuration.md)."""
    from modelops.jobs import run_study

    spec = study if isinstance(study, StudySpec) else load_study(study)
    with _progress_bar(progress, spec.n_simulations) as on_progress:
        record = run_study(
            spec,
            scheduler=scheduler,
            n_workers=workers,
            on_progress=on_progress,
            lock=lock,
            cluster=cluster,
        )
    return Job(record)


def resume(
    job_id: str,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool | ProgressCallback = True,
    cluster: str | None = None,
) -> Job:
    """Run what a job has not finished: its missing and failed simulations, nothing else.
    A calibration job continues its search (`Calibration.resume`, with its own progress)."""
    record = job(job_id).record
    if record.kind == "calibration":  # a study's progress callback cannot follow trials
        shown = progress if isinstance(progress, bool) else False
        return Job(calibration_job(job_id).resume(scheduler, workers, shown, cluster).record)
    from modelops.jobs import resume_job

    total = record.counts.total
    with _progress_bar(progress, total) as on_progress:
        record = resume_job(
            job_id, scheduler=scheduler, n_workers=workers, on_progress=on_progress, cluster=cluster
        )
    return Job(record)


def init_project(name: str, template: str = "sir", directory: str | Path = ".") -> Path:
    """Create a model project from a template (`sir` or `blank`) in `directory/name`, with
    a uv.lock, ready for `modelops.run(folder / "study.toml")`."""
    return create_project(name, template, Path(directory))


def cancel(job_id: str) -> Job:
    """Stop a running job (what finished is kept), or mark one whose client is gone."""
    from modelops.jobs import cancel_job

    return Job(cancel_job(job_id))


def job(job_id: str) -> Job:
    """A job of this project; a unique prefix of its id will do."""
    from modelops.store import JobRecords

    return Job(JobRecords(Settings.from_env().jobs_db).get(job_id))


def list_jobs(limit: int = 50) -> list[Job]:
    """This project's jobs, newest first."""
    from modelops.store import JobRecords

    return [Job(record) for record in JobRecords(Settings.from_env().jobs_db).list(limit)]


def results(job_id: str) -> JobResults:
    """A job's outputs as polars LazyFrames (`results(id)["incidence"]`); `simulations()`
    has one row per simulation, its last attempt."""
    from modelops.store import open_job_results

    return open_job_results(job_id, Settings.from_env().jobs_db)


# --- calibration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """A calibration job as it was when asked: its state, its best trial so far, every trial,
    its simulations' results (as a study's), and its report. `refresh()` asks again."""

    record: JobRecord

    @property
    def id(self) -> str:
        return self.record.job_id

    @property
    def state(self) -> str:
        return self.record.state.value

    @property
    def name(self) -> str | None:
        return self.record.name

    @property
    def job(self) -> Job:
        """The job underneath: counts of simulations, results, failures."""
        return Job(self.record)

    @property
    def results(self) -> JobResults:
        """Every simulation's outputs, as a study job's: `calibration.results["incidence"]`."""
        return results(self.id)

    def summary(self) -> CalibrationSummary:
        """State, trials told, and the best trial with each target's score."""
        from modelops.calibration import results as calibration_results

        return calibration_results.calibration_summary(self.record, Settings.from_env())

    @property
    def best(self) -> BestTrial | None:
        """The lowest-scoring trial so far; None before any is scored."""
        return self.summary().best

    def trials(self) -> list[TrialRecord]:
        """Every trial asked so far, in order: parameters, state, score, failure reason."""
        from modelops.calibration import results as calibration_results

        return calibration_results.calibration_trials(self.record, Settings.from_env())

    def report(self, out: str | Path = "report.html") -> Path:
        """Write the report: one self-contained HTML file (no network needed to open it)."""
        from modelops.calibration import results as calibration_results
        from modelops.calibration.report import write_report  # loads bokeh: only here

        data = calibration_results.report_data(self.record, Settings.from_env())
        return write_report(data, Path(out))

    def resume(
        self,
        scheduler: str | None = None,
        workers: int | None = None,
        progress: bool | CalibrationCallback = True,
        cluster: str | None = None,
    ) -> Calibration:
        """Continue a stopped calibration: trials told stand, trials in flight when it
        stopped are asked again, and simulations already stored are not run again."""
        from modelops.calibration.run import resume_calibration

        with _calibration_bar(progress) as on_progress:
            record = resume_calibration(
                self.id,
                scheduler=scheduler,
                n_workers=workers,
                cluster=cluster,
                on_progress=on_progress,
            )
        return Calibration(record)

    def refresh(self) -> Calibration:
        return calibration_job(self.id)

    def __repr__(self) -> str:
        best = self.best
        shown = (
            "no trial scored yet" if best is None else f"best loss {best.loss:.6g} {best.params}"
        )
        return f"<Calibration {self.id} {self.state}: {shown}>"


def load_calibration(path: str | Path) -> CalibrationSpec:
    """A calibration file, read and checked, its observed data loaded: a mistake is one line
    naming the file, line and key."""
    from modelops.calibration.load import load_calibration as load_calibration_file

    return load_calibration_file(Path(path))


def calibrate(
    calibration: str | Path | CalibrationSpec,
    scheduler: str | None = None,
    workers: int | None = None,
    lock: LockMode = LockMode.UPDATE,
    progress: bool | CalibrationCallback = True,
    cluster: str | None = None,
) -> Calibration:
    """Fit a model to observed data (a calibration file, or a `CalibrationSpec`): candidates
    searched and scored on the cluster, every simulation in the result store. `progress`
    shows trials done, the best loss, the rate and time left; False shows nothing, and a
    function gets a `CalibrationProgress` after every trial."""
    from modelops.calibration.run import run_calibration
    from modelops.calibration.spec import CalibrationSpec

    spec = (
        calibration if isinstance(calibration, CalibrationSpec) else load_calibration(calibration)
    )
    with _calibration_bar(progress) as on_progress:
        record = run_calibration(
            spec,
            scheduler=scheduler,
            n_workers=workers,
            cluster=cluster,
            on_progress=on_progress,
            lock=lock,
        )
    return Calibration(record)


def calibration_job(job_id: str) -> Calibration:
    """A calibration job of this project; a unique prefix of its id will do."""
    from modelops.store import JobRecords

    record = JobRecords(Settings.from_env().jobs_db).get(job_id)
    if record.kind != "calibration":
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"job {record.job_id} is a {record.kind}, not a calibration: see `mops jobs show "
            f"{record.job_id}`",
        )
    return Calibration(record)


@contextmanager
def _calibration_bar(
    progress: bool | CalibrationCallback,
) -> Iterator[CalibrationCallback | None]:
    if progress is False:
        yield None
        return
    if callable(progress):
        yield progress
        return
    with Progress(
        TextColumn("trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("trials", total=None, detail="")

        def update(state: CalibrationProgress) -> None:
            best = "-" if state.best is None else f"{state.best:.6g}"
            bar.update(task, total=state.trials, completed=state.done, detail=f"best {best}")

        yield update


@contextmanager
def _progress_bar(
    progress: bool | ProgressCallback, total: int
) -> Iterator[ProgressCallback | None]:
    if progress is False:
        yield None
        return
    if callable(progress):
        yield progress
        return
    with Progress(
        TextColumn("simulations"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as bar:
        task = bar.add_task("simulations", total=total)

        dashboard: list[str] = []

        def update(state: JobProgress) -> None:
            if state.dashboard and not dashboard:  # once: where to watch the workers
                dashboard.append(state.dashboard)
                bar.console.print(f"dashboard {state.dashboard}", highlight=False)
            bar.update(task, completed=state.done)

        yield update
