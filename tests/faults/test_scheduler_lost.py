"""Beyond issue 14's list: the scheduler is killed (SIGKILL) in the middle of a study or a
calibration, as when an HPC allocation ends, while the client (`mops run --scheduler ADDRESS`,
`mops calibrate run …`) runs it."""

from __future__ import annotations

import contextlib
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path

import polars as pl

from modelops.calibration.run import SEARCH_FILE, calibration_folder
from modelops.calibration.search import read_trials
from modelops.settings import Settings
from modelops.store import JobRecords, JobState
from tests.calibration.test_cli import scored_trials
from tests.calibration.test_run import GROWTH, calibration, observed
from tests.cluster.external import ExternalCluster, external_cluster
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

    with new_cluster(own_registry, cluster, tmp_path) as again:
        resumed = mops("jobs", "resume", job.job_id, "--scheduler", again.address)
        assert resumed.wait() == 0, resumed.output()

    final = records.get(job.job_id)
    assert final.state is JobState.SUCCEEDED
    assert (final.counts.succeeded, final.counts.failed) == (SIMS, 0)
    rows = attempts(job.job_id)
    assert rows.height == SIMS and rows["sim_id"].n_unique() == SIMS  # nothing ran twice
    kept = rows.filter(pl.col("sim_id").is_in(before["sim_id"].implode()))
    assert kept.sort("sim_id").equals(before.sort("sim_id"))


def new_cluster(
    registry: RunningRegistry, lost: Cluster, tmp_path: Path
) -> contextlib.AbstractContextManager[ExternalCluster]:
    """A new scheduler and workers at a new address (the same cache), as a new allocation."""
    folder = tmp_path / "cluster-again"
    folder.mkdir()
    env = {"MODELOPS_BUNDLE_REGISTRY": registry.host, "MODELOPS_HOME": str(lost.home)}
    return external_cluster(folder, n_workers=2, preload=True, worker_env=env)


TRIALS = 24


def test_a_scheduler_killed_mid_calibration_stops_it_in_one_line_and_a_resume_completes(
    own_registry: RunningRegistry,
    project: Path,
    cluster: Cluster,
    mops: Callable[..., Mops],
    tmp_path: Path,
) -> None:
    body = textwrap.dedent(GROWTH).replace("trials = 60", f"trials = {TRIALS}")
    body = body.replace("days = 30", "days = 30\nsleep = 0.2")  # ~5 s of candidates
    calibration(project, body, {"observed.csv": observed(r=0.1)})
    records = JobRecords(Settings.from_env().jobs_db)
    run = mops("calibrate", "run", "calibration.toml", "--scheduler", cluster.address)
    assert scored_trials(records, at_least=2) >= 2, run.output()
    job = records.list(limit=1)[0]
    cluster.external.scheduler.send_signal(signal.SIGKILL)
    cluster.external.scheduler.wait(30)

    assert run.wait(60) == 1, run.output()
    last = run.err.read_text().strip().splitlines()[-1]
    assert last == (
        f"worker_lost: lost the connection to the Dask scheduler at {cluster.address}: the "
        f"results stored before stay; `mops calibrate resume {job.job_id} --scheduler "
        "ADDRESS` runs the rest on a scheduler that is up"
    ), run.output()
    assert records.get(job.job_id).state is JobState.PARTIAL
    search = calibration_folder(Settings.from_env(), job.job_id) / SEARCH_FILE
    told = read_trials(search)
    assert not [t for t in told if t.state == "failed"]  # the lost candidates were not told
    assert 2 <= sum(t.state == "complete" for t in told) < TRIALS

    with new_cluster(own_registry, cluster, tmp_path) as again:
        resumed = mops("calibrate", "resume", job.job_id, "--scheduler", again.address)
        assert resumed.wait() == 0, resumed.output()

    assert records.get(job.job_id).state is JobState.SUCCEEDED
    trials = read_trials(search)
    assert sum(t.state == "complete" for t in trials) == TRIALS
    rows = attempts(job.job_id)
    assert rows["sim_id"].n_unique() == rows.height  # no simulation stored twice
