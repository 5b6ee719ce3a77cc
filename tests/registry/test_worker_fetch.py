"""Workers fetch bundles from the registry named in their own environment, once per machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import SMOKE_BUNDLE
from tests.registry_servers import RunningRegistry

from modelops import api
from modelops.bundle import build_bundle
from modelops.bundle.build import LARGE_FILE_BYTES
from modelops.bundle.registry import RegistryClient, RegistryHost, RegistrySource
from modelops.cluster import open_cluster, run_tasks
from modelops.contracts import BundleRef, ErrorClass, SimTask
from modelops.contracts.ids import sha256_hex
from modelops.runtime import TaskRunner


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


TWIN = bytes(range(256)) * (LARGE_FILE_BYTES // 256)
TWIN_WIRE = """
import hashlib, pathlib

def wire(entrypoint, params, seed):
    data = pathlib.Path(__file__).parent / "data"
    return {n: hashlib.sha256((data / n).read_bytes()).hexdigest().encode() for n in ("a", "b")}
"""


def test_a_worker_runs_a_bundle_holding_one_large_file_at_two_paths(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    """Two paths, one digest: one layer downloaded once, placed at both paths (issue 10)."""
    project = tmp_path / "twins"
    (project / "data").mkdir(parents=True)
    (project / "wire.py").write_text(TWIN_WIRE)
    for name in ("a", "b"):
        (project / "data" / name).write_bytes(TWIN)
    ref = api.push(project, registry=registry.host, repository="worker-twins").ref
    client = RegistryClient(RegistryHost.parse(registry.host))
    runner = TaskRunner(RegistrySource(client), tmp_path / "cache")
    try:
        result = runner.run(SimTask(ref, "", {}, seed=1))
    finally:
        runner.close()
        client.close()
    assert result.ok, result.error
    assert {name: out.data for name, out in result.outputs.items()} == {
        "a": sha256_hex(TWIN).encode(),
        "b": sha256_hex(TWIN).encode(),
    }
    blob_gets = [
        line
        for line in registry_requests(registry, "worker-twins")
        if f"/blobs/sha256:{sha256_hex(TWIN)}" in line
    ]
    assert len(blob_gets) == 1


def test_a_batch_whose_bundle_cannot_be_fetched_asks_the_registry_once(
    own_registry: RunningRegistry, tmp_path: Path
) -> None:
    """The rest of a batch share the first task's fetch failure instead of each asking the
    registry again (in an outage, each would wait out the fetch's retries); a task of
    another bundle in the same batch still runs."""
    project = tmp_path / "present"
    project.mkdir()
    (project / "wire.py").write_text("def wire(e, p, s):\n    return {'ok': b'1'}\n")
    present = api.push(project, registry=own_registry.host, repository="present").ref
    missing = BundleRef.parse(f"missing@sha256:{'0' * 64}")
    client = RegistryClient(RegistryHost.parse(own_registry.host))
    runner = TaskRunner(RegistrySource(client), tmp_path / "cache")
    tasks = [SimTask(missing, "", {}, seed) for seed in range(4)] + [SimTask(present, "", {}, 9)]
    try:
        results = runner.run_many(tasks)
    finally:
        runner.close()
        client.close()

    assert [r.task_id for r in results] == [t.task_id for t in tasks]
    failed = results[:4]
    assert {r.error.error_class for r in failed if r.error} == {ErrorClass.NOT_FOUND}
    assert len({r.error.message for r in failed if r.error}) == 1
    assert all(not r.ok for r in failed)
    assert failed[0].timings["fetch_s"] > 0  # the failed fetch is timed, where it happened
    assert [r.timings["attempts"] for r in failed] == [1, 1, 1, 1]
    assert results[4].ok and results[4].outputs["ok"].data == b"1"
    asked = [line for line in registry_requests(own_registry, "missing") if "/manifests/" in line]
    assert len(asked) == 1, asked
