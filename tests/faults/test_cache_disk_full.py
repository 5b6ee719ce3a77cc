"""Issue 14: the disk that holds the workers' bundle cache is too small for the bundle they
fetch from the registry. The cache is a real tmpfs mounted for the test (root only, as in
CI), shared by a scheduler's two workers of their own processes."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelops.bundle.build import LARGE_FILE_BYTES
from modelops.contracts import BundleRef
from modelops.runtime.eviction import SIZES
from modelops.settings import Settings
from modelops.store import JobRecords, JobState
from tests.cluster.external import external_cluster
from tests.faults.conftest import Cluster, Mops, attempts, newest_job, write_study
from tests.registry_servers import RunningRegistry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

SIMS = 6
DATA_BYTES = 3 * 2**20  # one layer of its own; the disk holds 2 MiB


@pytest.fixture
def small_cache_cluster(own_registry: RunningRegistry, tmp_path: Path) -> Iterator[Cluster]:
    """The workers' cache on a 2 MiB disk of its own, mounted before they start."""
    home = tmp_path / "workers-home"
    disk = home / "cache"
    disk.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        folder = tmp_path / "cluster"
        folder.mkdir()
        env = {"MODELOPS_BUNDLE_REGISTRY": own_registry.host, "MODELOPS_HOME": str(home)}
        with external_cluster(folder, n_workers=2, preload=True, worker_env=env) as running:
            yield Cluster(running, home)
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_cache_disk_fails_the_fetch_in_one_line_leaves_no_entry_and_a_resume_completes(
    project: Path, small_cache_cluster: Cluster, mops: Callable[..., Mops]
) -> None:
    assert DATA_BYTES > LARGE_FILE_BYTES
    data = {"data.bin": random.Random(14).randbytes(DATA_BYTES)}
    write_study(project, SIMS, sleep=0, files=data)
    cluster = small_cache_cluster

    run = mops("run", "study.toml", "--scheduler", cluster.address)

    assert run.wait() == 1, run.output()  # every simulation failed
    job = newest_job()
    assert job is not None and job.state is JobState.FAILED
    failed = attempts(job.job_id)
    assert failed.height == SIMS and failed["sim_id"].n_unique() == SIMS
    assert failed["error_class"].to_list() == ["internal"] * SIMS
    for message in failed["error_message"]:
        assert message.startswith(
            f"no space left on the disk that holds the cache {cluster.cache} (writing "
        ), message
        assert message.endswith("or keep the cache smaller (MODELOPS_CACHE_MAX_GB)")
    assert "no space left on the disk that holds the cache" in run.output()  # the summary says it
    ref = BundleRef.parse(job.bundle)
    bundles = cluster.cache / "bundles"
    left = sorted(p.name for p in bundles.iterdir() if p.is_dir() and p.name != SIZES)
    assert left == []  # no entry that could pass for the bundle, no scratch folder
    assert not (bundles / ref.hex).exists()

    subprocess.run(["mount", "-o", "remount,size=64m", str(cluster.cache)], check=True)
    resumed = mops("jobs", "resume", job.job_id, "--scheduler", cluster.address)

    assert resumed.wait() == 0, resumed.output()
    final = JobRecords(Settings.from_env().jobs_db).get(job.job_id)
    assert final.state is JobState.SUCCEEDED
    assert (final.counts.succeeded, final.counts.failed) == (SIMS, 0)
    fetched = bundles / ref.hex / "tree" / "data.bin"
    assert fetched.read_bytes() == data["data.bin"]  # whole, as built
