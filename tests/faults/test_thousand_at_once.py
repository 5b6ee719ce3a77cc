"""Issue 14, fault 7: a thousand simulations at once of a bundle no worker has fetched yet,
on two worker processes that share one cache folder (one machine)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from distributed import Client

from modelops.bundle.build import LARGE_FILE_BYTES
from modelops.contracts import BundleRef
from modelops.jobs import run_study
from modelops.runtime.env import ENV_RECORD
from modelops.runtime.eviction import SIZES
from modelops.store import JobState
from modelops.study import load_study
from tests.faults.conftest import (
    Cluster,
    attempts,
    blob_gets,
    layer_digests,
    manifest_gets,
    stored_manifest,
    worker_pids,
    write_study,
)
from tests.registry_servers import RunningRegistry

SIMS = 1000


def test_a_thousand_simulations_of_an_unfetched_bundle_fetch_it_and_build_its_env_once(
    own_registry: RunningRegistry, project: Path, cluster: Cluster, probe: Client
) -> None:
    # Two files large enough to be layers of their own, besides the tree layer.
    rng = random.Random(14)
    data = {f"data-{i}.bin": rng.randbytes(LARGE_FILE_BYTES + 1024) for i in range(2)}
    study = write_study(project, SIMS, sleep=0, batch_size=1, files=data)
    assert not cluster.cache.exists()  # nothing fetched yet on this machine
    workers = worker_pids(probe)

    job = run_study(load_study(study), scheduler=cluster.address)

    assert job.state is JobState.SUCCEEDED, job
    assert (job.counts.total, job.counts.succeeded, job.counts.failed) == (SIMS, SIMS, 0)
    rows = attempts(job.job_id)
    assert rows.height == SIMS  # each simulation stored exactly once
    assert rows["sim_id"].n_unique() == SIMS
    assert rows["status"].to_list() == ["succeeded"] * SIMS
    assert set(rows["worker"]) == set(workers)  # both worker processes ran simulations
    # Fetched from the registry once for the machine: the manifest, the config and each
    # layer blob exactly once.
    ref = BundleRef.parse(job.bundle)
    layers = layer_digests(own_registry, ref.digest)
    assert len(layers) == 3
    config = stored_manifest(own_registry, ref.digest)["config"]["digest"]
    for digest in [config, *layers]:
        assert blob_gets(own_registry, ref.repository, digest) == 1, digest
    assert manifest_gets(own_registry, ref.repository, ref.digest) == 1
    # one copy in the shared cache, under its digest, and no scratch folder left (beside the
    # entries' recorded sizes)
    bundles = [p.name for p in (cluster.cache / "bundles").iterdir() if p.is_dir()]
    assert [name for name in bundles if name != SIZES] == [ref.hex]
    # and its environment built once: one venv in the shared cache, no scratch folder left
    envs = [p for p in (cluster.cache / "envs").iterdir() if p.is_dir() and p.name != SIZES]
    assert len(envs) == 1, envs
    built_by = json.loads((envs[0] / ENV_RECORD).read_text())["built_by_pid"]
    assert built_by in workers.values()
