"""The seed's path, end to end: with a registry set and a scheduler given, `mops dev
smoke-test` pushes the smoke bundle, and workers that share no disk with the client pull it
by digest and run it; the check passes without the client building or caching anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cluster.external import external_cluster
from tests.registry.test_worker_fetch import registry_requests
from tests.registry_servers import RunningRegistry


def test_smoke_test_pushes_and_workers_with_their_own_home_pull_by_digest(
    own_registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_home = tmp_path / "client-home"
    worker_home = tmp_path / "worker-home"
    monkeypatch.setenv("MODELOPS_BUNDLE_REGISTRY", own_registry.host)
    worker_env = {"MODELOPS_HOME": str(worker_home)}
    with external_cluster(tmp_path, n_workers=2, preload=True, worker_env=worker_env) as cluster:
        smoke = ["dev", "smoke-test", "--simulations", "8", "--scheduler", cluster.address]
        done = subprocess.run(
            [sys.executable, "-m", "modelops.cli", *smoke],
            capture_output=True,
            text=True,
            env={**os.environ, "MODELOPS_HOME": str(client_home)},
            cwd=tmp_path,
            timeout=600,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke test passed: 8 simulations ran on 2 workers" in done.stdout
    bundle = next(line for line in done.stdout.splitlines() if line.startswith("bundle "))
    ref = bundle.split()[-1]
    repository, digest = ref.split("@")
    pulled = registry_requests(own_registry, repository)
    assert any(f"/manifests/{digest}" in line for line in pulled)  # workers pulled by digest
    # the workers built the environment in their own home; the client built and cached none
    assert any((worker_home / "cache" / "envs").iterdir())
    assert not (client_home / "cache").exists()
