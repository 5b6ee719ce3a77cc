"""Workers fetch bundles from the registry named in their own environment, once per machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import SMOKE_BUNDLE
from tests.registry_servers import RunningRegistry

from modelops import api
from modelops.bundle import build_bundle
from modelops.cluster import open_cluster, run_tasks
from modelops.contracts import SimTask


def registry_requests(registry: RunningRegistry, repository: str) -> list[str]:
    return [
        line
        for line in registry.log_path.read_text().splitlines()
        if f"/v2/{repository}/" in line and '"GET ' in line
    ]


def test_two_worker_processes_fetch_a_bundle_once_and_then_never_again(
    own_registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "home"))  # an empty cache
    monkeypatch.setenv("MODELOPS_BUNDLE_REGISTRY", own_registry.host)
    ref = api.resolve(str(SMOKE_BUNDLE))  # pushes, since a registry is configured
    blobs = [blob.digest for blob in build_bundle(SMOKE_BUNDLE).blobs]
    tasks = [SimTask(ref, "sir", {"beta": 0.3, "days": 20}, seed) for seed in range(8)]
    pushed = len(registry_requests(own_registry, ref.repository))

    with open_cluster(n_workers=2, threads_per_worker=2) as client:
        first = list(run_tasks(client, tasks, window=8))
        after_first = registry_requests(own_registry, ref.repository)[pushed:]
        again = list(run_tasks(client, [SimTask(ref, "sir", {}, 99)]))
    with open_cluster(n_workers=2, threads_per_worker=2) as client:
        fresh_workers = list(run_tasks(client, tasks[:4]))
    after_all = registry_requests(own_registry, ref.repository)[pushed:]

    assert all(r.ok for r in first + again + fresh_workers), [r.error for r in first if not r.ok]
    assert len({r.worker for r in first}) == 2
    for digest in blobs:
        assert sum(f"/blobs/{digest}" in line for line in after_first) == 1, digest
    assert sum(f"/manifests/{ref.digest}" in line for line in after_first) == 1
    assert after_all == after_first  # cached on disk: no registry call from any later task
