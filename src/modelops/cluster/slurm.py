"""Workers as Slurm jobs, through dask-jobqueue's `SLURMCluster`: `mops run --cluster slurm`.

The client starts the scheduler in its own process (on the login node) and submits one
Slurm job per worker. Each job runs one Dask worker with as many threads as the job has
cores, started the way the container image starts workers (`dask worker --preload
modelops.cluster.preload`), so ModelOps is loaded before the worker joins.

What the jobs ask for comes from the `slurm` settings (queue, cores, memory, walltime);
everything else dask-jobqueue offers (account, interface, local directory, extra `#SBATCH`
lines, the python on the compute nodes) comes from Dask's own configuration
(`jobqueue.slurm.*`, e.g. `~/.config/dask/jobqueue.yaml`), which is honoured as it is.

The job script exports the worker settings the client resolved (its `MODELOPS_*` values
from the environment or a config file), and only those: no password or token is ever
written into a job script, which Slurm keeps and shows to anyone who can read the job.
Registry credentials reach workers through their own environment (the one `sbatch` passes
on from the submitting shell, or the Docker credential store in the user's home).
"""

from __future__ import annotations

import math
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, fields
from typing import TYPE_CHECKING, Any

import dask.config

from modelops.cluster import preload
from modelops.contracts import ErrorClass, ModelOpsError
from modelops.contracts.sizes import parse_size_mb
from modelops.settings import DEFAULT, SETTINGS, Settings

if TYPE_CHECKING:
    from dask_jobqueue import SLURMCluster

PRELOAD = preload.__name__  # the workers' command line, as in the image
JOB_NAME = "modelops-worker"
# Seconds a worker waits for the scheduler before giving up; generous, as for every cluster.
DEATH_TIMEOUT_S = 120
SBATCH_TIMEOUT_S = 60
# The settings a worker reads (plugin.install_runner, bundle.store_in_use); none is secret.
WORKER_SETTINGS = ("home", "cache_max_gb", "child_threads", "bundle_registry", "registry_insecure")


def slurm_options(settings: Settings) -> dict[str, Any]:
    """The `SLURMCluster` job options for these settings: one single-process worker per
    job, threads = cores, the ModelOps preload, and a prologue that exports the worker
    settings and `OMP_NUM_THREADS=1`. Dask's `jobqueue.slurm` configuration fills the rest;
    its own prologue lines and worker arguments are kept, after ours."""
    config = dask.config.get("jobqueue.slurm", {})
    memory_mb = math.ceil(parse_size_mb(settings.slurm_memory))  # 1 GB is 1024 MB here
    worker_args = list(config.get("worker-extra-args") or [])
    if PRELOAD not in worker_args:
        worker_args += ["--preload", PRELOAD]
    return {
        "queue": settings.slurm_queue,  # None: jobqueue.slurm.queue, else Slurm's default
        "cores": settings.slurm_cores,
        "processes": 1,
        "memory": f"{memory_mb}MiB",  # the worker's memory limit
        "job_mem": f"{memory_mb}M",  # what the job asks Slurm for (Slurm's M is MiB)
        "walltime": settings.slurm_walltime,
        "job_name": JOB_NAME,
        "death_timeout": DEATH_TIMEOUT_S,
        "worker_extra_args": worker_args,
        "job_script_prologue": _prologue(settings) + list(config.get("job-script-prologue") or []),
        "log_directory": config.get("log-directory")
        or str(settings.project / ".modelops" / "slurm"),
    }


def job_script(settings: Settings, scheduler: str = "tcp://SCHEDULER:8786") -> str:
    """The script one worker's job runs, as `sbatch` receives it (the worker's name and
    the scheduler's address are placeholders until the cluster starts)."""
    _require_jobqueue()
    from dask_jobqueue.slurm import SLURMJob

    return SLURMJob(scheduler, name="WORKER", **slurm_options(settings)).job_script()


@contextmanager
def slurm_cluster(settings: Settings, n_workers: int) -> Iterator[SLURMCluster]:
    """A `SLURMCluster` asked for `n_workers` jobs, one worker each; closing it cancels
    them. Before anything starts, `sbatch --test-only` checks the job script, so a queue,
    memory or time limit Slurm refuses is one line here rather than a run that waits for
    workers forever. The workers join as Slurm starts their jobs."""
    _require_jobqueue()
    if shutil.which("sbatch") is None:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            "the slurm cluster kind needs Slurm's sbatch on PATH; run on a Slurm login "
            "node (or load Slurm, e.g. `module load slurm`), or choose another cluster "
            "kind: --cluster embedded, or [cluster] kind in modelops.toml",
        )
    _test_submission(job_script(settings))
    from dask_jobqueue import SLURMCluster

    options = slurm_options(settings)
    config = dask.config.get("jobqueue.slurm", {})
    # A free port for the dashboard unless configured: two users of one login node must not
    # fight over 8787.
    scheduler_options = {"dashboard_address": ":0", **(config.get("scheduler-options") or {})}
    cluster = SLURMCluster(scheduler_options=scheduler_options, **options)
    try:
        cluster.scale(jobs=n_workers)
        yield cluster
    finally:
        cluster.close()


def _require_jobqueue() -> None:
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            "the slurm cluster kind needs dask-jobqueue: pip install dask-jobqueue",
        ) from None


def _prologue(settings: Settings) -> list[str]:
    """`export` lines for the worker settings that were set (not defaults), and one thread
    per numerical library: the model's child sets its own from `child_threads`."""
    defaults = {f.name: f.default for f in fields(Settings)}
    lines = []
    for spec in SETTINGS:
        if spec.name not in WORKER_SETTINGS:
            continue
        value = getattr(settings, spec.name)
        source = settings.sources.get(spec.name)
        # Set by the user: a source other than the default, or, for settings made in code
        # (no sources), a value other than the default.
        given = source != DEFAULT if source else value != defaults.get(spec.name, MISSING)
        if value is None or not given:
            continue
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        lines.append(f"export {spec.env}={shlex.quote(text)}")
    lines.append("export OMP_NUM_THREADS=1")
    return lines


def _test_submission(script: str) -> None:
    """`sbatch --test-only`: Slurm checks the job (queue, limits, its controller reachable)
    and submits nothing. A refusal is one line with Slurm's own words."""
    try:
        done = subprocess.run(
            ["sbatch", "--test-only"],
            input=script,
            capture_output=True,
            text=True,
            timeout=SBATCH_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ModelOpsError(
            ErrorClass.TIMEOUT,
            f"sbatch --test-only did not answer in {SBATCH_TIMEOUT_S} s: is Slurm's "
            "controller up (sinfo)?",
        ) from None
    if done.returncode != 0:
        said = [
            line.strip().removeprefix("sbatch: error: ").strip()
            for line in (done.stderr or done.stdout).splitlines()
            if line.strip()
        ]
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            "Slurm refused the worker job ([slurm] queue, cores, memory, walltime in "
            f"modelops.toml): {'; '.join(said) or f'sbatch exited with {done.returncode}'}",
        )
