"""Issue 14, fault 1: a Dask worker process is killed (SIGKILL) in the middle of a stored
study whose bundle comes from a real registry."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
from distributed import Client
from tests.faults.conftest import (
    Background,
    Cluster,
    attempts,
    busy_workers,
    wait_for,
    worker_pids,
    write_study,
)

from modelops.contracts import BundleRef
from modelops.jobs import run_study
from modelops.store import JobRecord, JobState
from modelops.study import load_study

SIMS = 160
SLEEP_S = 0.08  # ~7 s of simulations on two workers: the kill lands mid-study


@pytest.mark.slow
def test_a_worker_killed_mid_study_loses_no_simulation_and_stores_each_once(
    project: Path, cluster: Cluster, probe: Client
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
    os.kill(pid, signal.SIGKILL)

    job = run.result()

    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    after = worker_pids(probe)
    assert address not in after  # the scheduler saw that worker die (its nanny started anew)
    assert len(after) == 2 and set(after.values()) != set(before.values())
    assert job.state is JobState.SUCCEEDED, job
    assert (job.counts.succeeded, job.counts.failed) == (SIMS, 0)
    assert BundleRef.parse(job.bundle).repository == "model"
    rows = attempts(job_id)
    assert rows.height == SIMS  # one stored attempt per simulation: nothing doubled
    assert rows["sim_id"].n_unique() == SIMS  # and none lost
    assert rows["status"].to_list() == ["succeeded"] * SIMS
    assert rows["error_class"].null_count() == SIMS
    assert sorted(rows["replicate"].to_list()) == list(range(SIMS))
    assert address in set(rows["worker"])  # the killed worker had stored results too
