"""Issue 14: the workers' cache damaged on disk between two studies (a byte of a cached
bundle file changed, the environment's `bin/python` gone), on a scheduler and two workers
of their own processes fetching from a real registry: the next study notices, fetches and
builds again, and stores every simulation as succeeded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from modelops.contracts import BundleRef
from modelops.store import JobState
from tests.faults.conftest import Cluster, Mops, attempts, newest_job, write_study

SIMS = 4


def test_a_damaged_worker_cache_is_noticed_repaired_and_every_simulation_stored(
    project: Path, cluster: Cluster, mops: Callable[..., Mops]
) -> None:
    study = write_study(project, SIMS, sleep=0)
    first = mops("run", "study.toml", "--scheduler", cluster.address)
    assert first.wait() == 0, first.output()
    job = newest_job()
    assert job is not None
    ref = BundleRef.parse(job.bundle)
    wire = cluster.cache / "bundles" / ref.hex / "tree" / "wire.py"
    original = wire.read_bytes()
    [python] = (cluster.cache / "envs").glob("*/bin/python")

    wire.write_bytes(original.replace(b"import", b"IMPORT", 1))  # in place, same size
    python.unlink()
    # new seeds (nothing cached), and a new child for every simulation, which is when a
    # worker checks the bundle's files
    text = study.read_text().replace("seed = 14", "seed = 15")
    study.write_text(text + '[resources]\nisolation = "cold"\n')
    second = mops("run", "study.toml", "--scheduler", cluster.address)

    assert second.wait() == 0, second.output()
    again = newest_job()
    assert again is not None and again.job_id != job.job_id
    assert again.state is JobState.SUCCEEDED
    rows = attempts(again.job_id)
    assert rows.height == SIMS and rows["sim_id"].n_unique() == SIMS
    assert rows["status"].to_list() == ["succeeded"] * SIMS
    assert wire.read_bytes() == original  # fetched again from the registry, whole
    assert python.exists()  # the environment built again
