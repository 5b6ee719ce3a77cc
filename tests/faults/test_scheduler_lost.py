"""Beyond issue 14's list: the scheduler is killed (SIGKILL) in the middle of a study, as when
an HPC allocation ends, while the client (`mops run --scheduler ADDRESS`) runs it."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import polars as pl

from modelops.settings import Settings
from modelops.store import JobRecords, JobState
from tests.cluster.external import external_cluster
from tests.faults.conftest import Cluster, Mops, attempts, newest_job, wait_for, write_study
from tests.registry_servers import RunningRegistry

SIMS = 240
SLEEP_S = 0.08  # ~10 s of simulations on two workers; results are first stored after 5 s


def test_a_scheduler_killed_mid_study_stops_the_run_in_one_line_and_a_resume_completes(
    own_registry: RunningRegistry,
    project: Path,
    cluster: Cluster,
    mops: Callable[..., Mops],
    tmp_path: Path,
) -> None:
    write_study(project, SIMS, SLEEP_S)
    run = mops("run", "study.toml", "--scheduler", cluster.address)
    job = wait_for(newest_job, "the job to start")
    wait_for(lambda: attempts(job.job_id).height, "a first flush of stored results")
    cluster.external.scheduler.send_signal(signal.SIGKILL)
    cluster.external.scheduler.wait(30)

    # at once, not after Dask's two minutes of trying to reconnect
    assert run.wait(60) == 1, run.output()
    last = run.err.read_text().strip().splitlines()[-1]
    assert last == (
        f"worker_lost: lost the connection to the Dask scheduler at {cluster.address}: the "
        f"results stored before stay; `mops jobs resume {job.job_id} --scheduler ADDRESS` "
        "runs the rest on a scheduler that is up"
    ), run.output()
    records = JobRecords(Settings.from_env().jobs_db)
    stopped = records.get(job.job_id)
    assert stopped.state is JobState.PARTIAL  # finished from what it stored, not left running
    before = attempts(job.job_id)
    assert 0 < before.height < SIMS
    assert before["status"].to_list() == ["succeeded"] * before.height  # none stored as failed
    assert stopped.counts.succeeded == before.height and stopped.counts.failed == 0

    # a new scheduler and workers, at a new address, as a new allocation would have
    folder = tmp_path / "cluster-again"
    folder.mkdir()
    env = {"MODELOPS_BUNDLE_REGISTRY": own_registry.host, "MODELOPS_HOME": str(cluster.home)}
    with external_cluster(folder, n_workers=2, preload=True, worker_env=env) as again:
        resumed = mops("jobs", "resume", job.job_id, "--scheduler", again.address)
        assert resumed.wait() == 0, resumed.output()

    final = records.get(job.job_id)
    assert final.state is JobState.SUCCEEDED
    assert (final.counts.succeeded, final.counts.failed) == (SIMS, 0)
    rows = attempts(job.job_id)
    assert rows.height == SIMS and rows["sim_id"].n_unique() == SIMS  # nothing ran twice
    kept = rows.filter(pl.col("sim_id").is_in(before["sim_id"].implode()))
    assert kept.sort("sim_id").equals(before.sort("sim_id"))
