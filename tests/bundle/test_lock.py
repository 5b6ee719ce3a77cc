"""uv.lock checked against pyproject.toml before a build, the way `uv sync` does it:
relocked with one line by default, refused with --locked, used as is with --frozen."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import warnings
from pathlib import Path

import pytest
from tests.conftest import write_project
from tests.registry_servers import RunningRegistry

from modelops import api
from modelops.bundle import LayoutStore, build_bundle
from modelops.bundle.lock import LockMode, LockUpdated, check_lock, describe_drift
from modelops.bundle.publish import store_locally
from modelops.bundle.registry import RegistryClient, RegistryHost
from modelops.bundle.uv import run_uv
from modelops.contracts import ErrorClass, ModelOpsError, SimTask
from modelops.runtime import TaskRunner
from modelops.settings import Settings

WIRE = """
import json

def wire(entrypoint, params, seed):
    found = {}
    for name in ("six", "packaging"):
        try:
            found[name] = __import__(name).__name__
        except ImportError as exc:
            found[name] = f"missing: {exc}"
    return {"found": json.dumps(found).encode()}
"""


def pyproject(*dependencies: str) -> str:
    listed = ", ".join(f'"{d}"' for d in dependencies)
    return f"""
[project]
name = "drifted"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = [{listed}]
"""


def locked_project(root: Path, *dependencies: str) -> Path:
    """A project locked for `dependencies`, as `uv lock` leaves it."""
    write_project(root, {"wire.py": WIRE, "pyproject.toml": pyproject(*dependencies)})
    done = run_uv(["lock", "--project", str(root)])
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def drifted(tmp_path: Path) -> Path:
    """Locked for six; pyproject.toml then gained packaging, and nobody locked again."""
    root = locked_project(tmp_path / "drifted", "six")
    (root / "pyproject.toml").write_text(pyproject("six", "packaging>=20"))
    return root


def test_a_stale_lock_is_locked_again_with_one_line_and_the_env_has_the_package(
    drifted: Path, runner: TaskRunner, store: LayoutStore
) -> None:
    old_lock = (drifted / "uv.lock").read_text()
    assert 'name = "packaging"' not in old_lock

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = store_locally(drifted, Settings.from_env())

    notes = [str(w.message) for w in caught if issubclass(w.category, LockUpdated)]
    assert len(notes) == 1, notes
    assert notes[0].startswith(
        "uv.lock was out of date with pyproject.toml (packaging missing); locked again"
    )
    assert "+packaging " in notes[0]
    new_lock = (drifted / "uv.lock").read_text()
    assert 'name = "packaging"' in new_lock
    # the bundle carries the new lock, byte for byte
    assert build_bundle(drifted).ref.digest == ref.digest

    result = runner.run(SimTask(ref, "", {}, seed=1))
    assert result.ok, result.error
    assert json.loads(result.outputs["found"].data) == {"six": "six", "packaging": "packaging"}


def test_without_the_check_the_same_project_runs_without_the_package(
    drifted: Path, runner: TaskRunner, store: LayoutStore
) -> None:
    """The defect the check removes: --frozen installs the stale lock as it is."""
    ref = store_locally(drifted, Settings.from_env(), lock=LockMode.FROZEN)
    result = runner.run(SimTask(ref, "", {}, seed=1))
    assert result.ok, result.error
    assert json.loads(result.outputs["found"].data)["packaging"].startswith("missing")


def test_locked_refuses_a_stale_lock_and_changes_nothing(drifted: Path) -> None:
    before = (drifted / "uv.lock").read_bytes()
    with pytest.raises(ModelOpsError) as caught:
        store_locally(drifted, Settings.from_env(), lock=LockMode.LOCKED)
    message = caught.value.info.message
    assert caught.value.info.error_class is ErrorClass.BAD_BUNDLE
    assert "uv.lock is out of date with pyproject.toml (packaging missing)" in message
    assert "--locked" in message and "uv lock" in message
    assert "\n" not in message
    assert (drifted / "uv.lock").read_bytes() == before


def test_frozen_uses_the_lock_as_it_is(drifted: Path) -> None:
    before = (drifted / "uv.lock").read_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store_locally(drifted, Settings.from_env(), lock=LockMode.FROZEN)
    assert not [w for w in caught if issubclass(w.category, LockUpdated)]
    assert (drifted / "uv.lock").read_bytes() == before


def test_a_current_lock_is_left_alone_in_every_mode(tmp_path: Path) -> None:
    root = locked_project(tmp_path / "current", "six")
    before = (root / "uv.lock").read_bytes()
    for mode in LockMode:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_lock(root, mode)
        assert not [w for w in caught if issubclass(w.category, LockUpdated)]
    assert (root / "uv.lock").read_bytes() == before


def test_a_relock_that_cannot_reach_an_index_says_so_and_names_frozen(
    drifted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No index reachable: every request goes through a proxy on a closed loopback port,
    and uv's cache is empty, so nothing can be answered offline either."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, closed)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "empty-uv-cache"))
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    before = (drifted / "uv.lock").read_bytes()

    with pytest.raises(ModelOpsError) as caught:
        check_lock(drifted)

    message = caught.value.info.message
    assert "out of date with pyproject.toml (packaging missing)" in message
    assert "no package index could be reached" in message
    assert "--frozen" in message
    assert "\n" not in message
    assert (drifted / "uv.lock").read_bytes() == before
    check_lock(drifted, LockMode.FROZEN)  # the way out the message names works


def test_drift_is_described_in_words(tmp_path: Path) -> None:
    root = locked_project(tmp_path / "words", "six", "packaging")
    (root / "pyproject.toml").write_text(pyproject("packaging>=20", "pyarrow"))
    assert describe_drift(root) == "pyarrow missing, six no longer required, packaging now >=20"


def test_projects_without_a_lock_are_not_locked(tmp_path: Path) -> None:
    root = write_project(tmp_path / "unlocked", {"wire.py": WIRE, "pyproject.toml": pyproject()})
    check_lock(root, LockMode.LOCKED)
    assert not (root / "uv.lock").exists()


def test_the_cli_prints_one_line_when_it_relocks_and_fails_with_locked(drifted: Path) -> None:
    def mops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mops", *args], capture_output=True, text=True, check=False, timeout=300
        )

    refused = mops("bundle", "build", str(drifted), "--locked")
    assert refused.returncode == 1
    assert "out of date with pyproject.toml (packaging missing)" in refused.stderr
    assert "Traceback" not in refused.stderr

    built = mops("bundle", "build", str(drifted))
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip().startswith("drifted@sha256:")
    notes = [line for line in built.stderr.splitlines() if "locked again" in line]
    assert len(notes) == 1
    assert notes[0].startswith("uv.lock was out of date with pyproject.toml (packaging missing)")

    again = mops("bundle", "build", str(drifted), "--locked")
    assert again.returncode == 0, again.stderr
    assert again.stdout == built.stdout
    assert "locked again" not in again.stderr


def test_push_checks_the_lock_before_anything_is_uploaded(
    drifted: Path, registry: RunningRegistry
) -> None:
    with pytest.raises(ModelOpsError) as refused:
        api.push(drifted, registry=registry.host, repository="drift", lock=LockMode.LOCKED)
    assert "out of date with pyproject.toml (packaging missing)" in refused.value.info.message
    client = RegistryClient(RegistryHost.parse(registry.host))
    with client:
        assert "drift" not in client.repositories()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = api.push(drifted, registry=registry.host, repository="drift")
    assert [w for w in caught if issubclass(w.category, LockUpdated)]
    ref, pulled = api.pull(str(report.ref), drifted.parent / "pulled", registry=registry.host)
    assert ref == report.ref
    assert (pulled / "uv.lock").read_bytes() == (drifted / "uv.lock").read_bytes()
    assert 'name = "packaging"' in (pulled / "uv.lock").read_text()


def test_mops_run_locked_points_at_the_study_files_bundle_line(drifted: Path) -> None:
    study = drifted.parent / "study.toml"
    study.write_text('name = "drift"\nbundle = "drifted"\n')
    before = (drifted / "uv.lock").read_bytes()
    done = subprocess.run(
        ["mops", "run", str(study), "--locked"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=drifted.parent,
        env={**os.environ, "MODELOPS_PROJECT_DIR": str(drifted.parent)},
    )
    assert done.returncode == 1
    assert "study.toml:2: bundle:" in done.stderr
    assert "out of date with pyproject.toml (packaging missing)" in done.stderr
    assert (drifted / "uv.lock").read_bytes() == before
    assert not (drifted.parent / ".modelops" / "jobs.db").exists()  # no job was created
