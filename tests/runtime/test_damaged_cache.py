"""A cache damaged on disk (a venv that lost or cut short a file, a cached bundle config that
changed) is detected when next used, and built or fetched again: the task runs as if the
cache had been fine, with real venvs, a real bundle store and real child processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.bundle import LayoutStore, fetch_bundle
from modelops.bundle.cache import CONFIG_DIGEST_FILE, CONFIG_FILE
from modelops.contracts import BundleRef, SimTask
from modelops.runtime import TaskRunner
from modelops.runtime.env import ENV_RECORD, ensure_env

SIX = {
    "wire.py": "import six\n\ndef wire(e, p, s):\n    return {'v': six.__name__.encode()}\n",
    "requirements.txt": "six\n",
}


def run_once(store: LayoutStore, ref: BundleRef, cache: Path) -> bytes:
    """One task through a new runner (a new worker: nothing remembered in memory)."""
    runner = TaskRunner(store, cache)
    try:
        result = runner.run(SimTask(ref, "", {}, seed=1))
    finally:
        runner.close()
    assert result.ok, result.error
    return result.outputs["v"].data


@pytest.fixture
def warm(tmp_path: Path, store: LayoutStore, make_bundle) -> tuple[BundleRef, Path, Path]:
    """A bundle that ran once: its venv built and its bundle fetched, in this test's cache."""
    ref = make_bundle(SIX)
    cache = tmp_path / "cache"
    run_once(store, ref, cache)
    venv = ensure_env(fetch_bundle(ref, store, cache), cache).parent.parent
    return ref, cache, venv


def six_module(venv: Path) -> Path:
    [found] = venv.glob("lib/python*/site-packages/six.py")
    return found


@pytest.mark.parametrize("damage", ["deleted", "cut short", "cut short in place", "python gone"])
def test_a_damaged_venv_is_built_again(
    store: LayoutStore, warm: tuple[BundleRef, Path, Path], damage: str
) -> None:
    ref, cache, venv = warm
    version = run_once(store, ref, cache)
    module = six_module(venv)
    original = module.read_bytes()
    built = (venv / ENV_RECORD).stat().st_mtime_ns
    if damage == "deleted":
        module.unlink()
    elif damage == "cut short":
        module.unlink()
        module.write_bytes(original[:100])
    elif damage == "cut short in place":  # as a model writing into its venv would
        # the venv's own copy: were it hard-linked to uv's cache, writing it would damage
        # that cache and every venv built from it (the rebuild below would bring it back)
        assert module.stat().st_nlink == 1
        module.write_bytes(original[:100])
    else:
        (venv / "bin" / "python").unlink()

    assert run_once(store, ref, cache) == version

    assert six_module(venv).read_bytes() == original
    assert (venv / "bin" / "python").exists()
    assert (venv / ENV_RECORD).stat().st_mtime_ns > built  # a new build wrote its record
    assert not list((cache / "envs").glob(".evicting-*"))  # the damaged one is gone


def test_a_venv_that_python_wrote_bytecode_into_is_not_rebuilt(
    store: LayoutStore, warm: tuple[BundleRef, Path, Path]
) -> None:
    ref, cache, venv = warm
    built = (venv / ENV_RECORD).stat().st_mtime_ns
    cached = six_module(venv).parent / "__pycache__"
    cached.mkdir(exist_ok=True)
    (cached / "six.cpython-311.pyc").write_bytes(b"\0" * 64)
    run_once(store, ref, cache)
    assert (venv / ENV_RECORD).stat().st_mtime_ns == built


@pytest.mark.parametrize("damage", ["garbage", "edited", "digest file gone"])
def test_a_cached_bundle_whose_config_changed_is_fetched_again(
    store: LayoutStore, warm: tuple[BundleRef, Path, Path], damage: str
) -> None:
    ref, cache, _ = warm
    folder = cache / "bundles" / ref.hex
    config = (folder / CONFIG_FILE).read_bytes()
    if damage == "garbage":
        (folder / CONFIG_FILE).unlink()
        (folder / CONFIG_FILE).write_bytes(b"\x00not json")
    elif damage == "edited":  # still valid JSON: only the digest tells
        (folder / CONFIG_FILE).unlink()
        (folder / CONFIG_FILE).write_bytes(config + b" ")
    else:  # as a cache written before the digest was kept
        (folder / CONFIG_DIGEST_FILE).unlink()

    fetched = fetch_bundle(ref, store, cache)

    assert (folder / CONFIG_FILE).read_bytes() == config
    assert (folder / CONFIG_DIGEST_FILE).exists()
    assert fetched.config.files  # the real config, parsed
    run_once(store, ref, cache)
