"""Issue 14, fault 1: a Dask worker process is killed (SIGKILL) in the middle of a stored
study whose bundle comes from a real registry."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
from distributed import Client

from modelops.contracts import BundleRef
from modelops.jobs import run_study
from modelops.store import JobRecord, JobState
from modelops.study import load_study
from tests.cluster.external import START_TIMEOUT_S
from tests.faults.conftest import (
    Background,
    Cluster,
    attempts,
    blob_gets,
    busy_workers,
    layer_digests,
    wait_for,
    worker_pids,
    write_study,
)
from tests.registry_servers import RunningRegistry

SIMS = 240
SLEEP_S = 0.08  # ~10 s of simulations on two workers; results are first stored after 5 s


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_worker_killed_mid_study_loses_no_simulation_and_stores_each_once(
    own_registry: RunningRegistry, project: Path, cluster: Cluster, probe: Client
) -> None:
    study = write_study(project, SIMS, SLEEP_S)
    before = worker_pids(probe)
    started: list[JobRecord] = []
    run = Background(
        lambda: run_study(load_study(study), scheduler=cluster.address, on_start=started.append)
    )
    job_id = wait_for(lambda: started and started[0].job_id, "the job to start")
    # Results are committed to the store in flushes: wait for the first, then kill a
    # worker that is running a task at that moment.
    stored_then = wait_for(lambda: attempts(job_id).height, "a first flush of stored results")
    busy = wait_for(lambda: busy_workers(probe), "a worker running a task")
    address, pid = next(iter(busy.items()))
    assert run.alive() and stored_then < SIMS  # the study is in flight
    children = psutil.Process(pid).children(recursive=True)  # its warm child
    os.kill(pid, signal.SIGKILL)

    job = run.result()

    assert not alive(pid)
    wait_for(lambda: not any(alive(child.pid) for child in children), "its children to exit", 30)
    probe.wait_for_workers(2, timeout=START_TIMEOUT_S)  # its nanny started a new one
    after = worker_pids(probe)
    assert address not in after  # the scheduler saw that worker die
    assert len(after) == 2 and set(after.values()) != set(before.values())
    assert job.state is JobState.SUCCEEDED, job
    assert (job.counts.succeeded, job.counts.failed) == (SIMS, 0)
    ref = BundleRef.parse(job.bundle)
    layers = layer_digests(own_registry, ref.digest)  # fetched from the registry, once
    assert layers and all(blob_gets(own_registry, ref.repository, d) == 1 for d in layers)
    rows = attempts(job_id)
    assert rows.height == SIMS  # one stored attempt per simulation: nothing doubled
    assert rows["sim_id"].n_unique() == SIMS  # and none lost
    assert rows["status"].to_list() == ["succeeded"] * SIMS
    assert rows["error_class"].null_count() == SIMS
    assert sorted(rows["replicate"].to_list()) == list(range(SIMS))
    assert address in set(rows["worker"])  # the killed worker had stored results too
