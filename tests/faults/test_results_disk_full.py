"""Issue 14: the disk that holds the result store fills up in the middle of a study. The
result store is a real tmpfs mounted for the test (root only, as in CI); the client is
`mops run --scheduler ADDRESS` on a scheduler and workers of their own processes."""

from __future__ import annotations

import os
import random
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

import modelops
from modelops.settings import Settings
from modelops.store import JobRecords, JobState
from tests.faults.conftest import Cluster, Mops, attempts, newest_job, write_study

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

SIMS = 24
BLOB_BYTES = 6 * 2**20  # random, so Parquet cannot compress it: 11 make a flush (64 MiB)
BIG_OUTPUT_MODEL = f"""
import random

def wire(entrypoint, params, seed):
    return {{"blob": random.Random(seed).randbytes({BLOB_BYTES})}}
"""


@pytest.fixture
def results_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 100 MiB disk for the result store: one flush fits, two do not."""
    disk = tmp_path / "results-disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m", "tmpfs", str(disk)], check=True)
    monkeypatch.setenv("MODELOPS_RESULTS", str(disk / "results"))
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_result_store_stops_the_study_in_one_line_keeping_what_it_stored_and_resumes(
    project: Path, cluster: Cluster, mops: Callable[..., Mops], results_disk: Path
) -> None:
    write_study(project, SIMS, sleep=0, batch_size=1)
    (project / "model" / "wire.py").write_text(textwrap.dedent(BIG_OUTPUT_MODEL).lstrip())

    run = mops("run", "study.toml", "--scheduler", cluster.address)

    assert run.wait() == 1, run.output()
    job = newest_job()
    assert job is not None
    lines = run.err.read_text().strip().splitlines()
    root = results_disk / "results"
    assert lines[-1] == (
        f"internal: no space left on the disk that holds the result store {root} "
        f"(storing job {job.job_id}): the results stored before stay; free space there, "
        f"then `mops jobs resume {job.job_id}` runs the rest"
    ), run.output()
    records = JobRecords(Settings.from_env().jobs_db)
    stopped = records.get(job.job_id)
    assert stopped.state is JobState.PARTIAL  # finished, not left running
    before = attempts(job.job_id)  # the flush that fitted, readable and whole
    assert 0 < before.height < SIMS
    assert before["sim_id"].n_unique() == before.height
    assert stopped.counts.succeeded == before.height
    assert_blobs_are_the_models(job.job_id)

    subprocess.run(["mount", "-o", "remount,size=1g", str(results_disk)], check=True)
    resumed = mops("jobs", "resume", job.job_id, "--scheduler", cluster.address)

    assert resumed.wait() == 0, resumed.output()
    final = records.get(job.job_id)
    assert final.state is JobState.SUCCEEDED
    assert (final.counts.succeeded, final.counts.failed) == (SIMS, 0)
    rows = attempts(job.job_id)
    assert rows.height == SIMS  # one attempt per simulation: none stored twice
    assert sorted(rows["replicate"].to_list()) == list(range(SIMS))
    kept = rows.filter(pl.col("sim_id").is_in(before["sim_id"].implode()))
    assert kept.sort("sim_id").equals(before.sort("sim_id"))  # not run again
    assert_blobs_are_the_models(job.job_id)


def assert_blobs_are_the_models(job_id: str) -> None:
    """Each stored blob is the one its simulation's seed makes: no torn or mixed rows."""
    results = modelops.results(job_id)
    blobs = results.scan("blob").select("sim_id", "seed", "data").collect()
    assert sorted(blobs["sim_id"]) == sorted(results.simulations().collect()["sim_id"])
    for seed, data in zip(blobs["seed"].to_list(), blobs["data"].to_list(), strict=True):
        assert data == random.Random(seed).randbytes(BLOB_BYTES)
