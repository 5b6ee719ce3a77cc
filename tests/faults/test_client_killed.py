"""Issue 14, fault 2: the client (`mops run --scheduler ADDRESS`) is killed (SIGKILL) in the
middle of a study, while the separate scheduler, its workers and the registry keep running."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import polars as pl
from distributed import Client

from modelops.contracts import BundleRef
from modelops.settings import Settings
from modelops.store import JobRecords, JobState
from tests.faults.conftest import (
    Cluster,
    Mops,
    attempts,
    blob_gets,
    layer_digests,
    newest_job,
    wait_for,
    worker_pids,
    write_study,
)
from tests.registry_servers import RunningRegistry

SIMS = 240
SLEEP_S = 0.08  # ~10 s of simulations on two workers; results are first stored after 5 s


def test_a_client_killed_mid_study_resumes_on_the_same_cluster_running_nothing_twice(
    own_registry: RunningRegistry,
    project: Path,
    cluster: Cluster,
    probe: Client,
    mops: Callable[..., Mops],
) -> None:
    write_study(project, SIMS, SLEEP_S)
    workers = worker_pids(probe)
    run = mops("run", "study.toml", "--scheduler", cluster.address)
    job = wait_for(newest_job, "the job to start")
    wait_for(lambda: attempts(job.job_id).height, "a first flush of stored results")
    assert run.process.poll() is None, run.output()  # the study is in flight
    os.killpg(run.process.pid, signal.SIGKILL)  # its session is the client alone
    assert run.wait(60) == -signal.SIGKILL

    records = JobRecords(Settings.from_env().jobs_db)
    assert records.get(job.job_id).state is JobState.RUNNING  # nobody lived to say otherwise
    before = attempts(job.job_id)  # what the killed client had committed
    assert 0 < before.height < SIMS
    assert worker_pids(probe) == workers  # the cluster lived on

    resumed = mops("jobs", "resume", job.job_id, "--scheduler", cluster.address)

    assert resumed.wait() == 0, resumed.output()
    final = records.get(job.job_id)
    assert final.state is JobState.SUCCEEDED
    assert (final.counts.total, final.counts.succeeded, final.counts.failed) == (SIMS, SIMS, 0)
    rows = attempts(job.job_id)
    assert rows.height == SIMS  # total attempts: one per simulation
    assert rows["sim_id"].n_unique() == SIMS
    assert rows["status"].to_list() == ["succeeded"] * SIMS
    assert sorted(rows["replicate"].to_list()) == list(range(SIMS))
    # What was committed before the kill was not run again: the same rows, same worker,
    # same timings; the resume ran only the others.
    kept = rows.filter(pl.col("sim_id").is_in(before["sim_id"].implode()))
    assert kept.sort("sim_id").equals(before.sort("sim_id"))
    assert worker_pids(probe) == workers  # one cluster served both runs
    ref = BundleRef.parse(final.bundle)
    layers = layer_digests(own_registry, ref.digest)
    assert layers and all(blob_gets(own_registry, ref.repository, d) == 1 for d in layers)
