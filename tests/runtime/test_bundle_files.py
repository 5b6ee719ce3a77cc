"""A fresh child sees exactly the bundle's verified files, whatever a model wrote before.

We run as root here, as workers often do, so file modes prove nothing: a model really can
write anywhere the worker can. Each child gets its own working copy of the bundle and its
own scratch folder; the cached tree is never the model's working directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from modelops.bundle import LayoutStore, fetch_bundle
from modelops.contracts import BundleRef, Isolation, RunLimits, SimTask
from modelops.runtime import TaskRunner
from modelops.settings import Settings

TAMPERING = """
import json, os, sys
from pathlib import Path

def wire(entrypoint, params, seed):
    here = Path.cwd()
    scratch = Path(os.environ["MODELOPS_SCRATCH"])
    if entrypoint == "tamper":
        with open("data.bin", "r+b") as data:  # in place: a hard link would share this write
            data.write(b"TAMPERED")
        Path("planted.py").write_text("PLANTED = True\\n")
        with open("wire.py", "a") as code:
            code.write("\\nraise SystemExit('tampered code')\\n")
    (scratch / "note.txt").write_text(f"written by {os.getpid()}")
    return {"seen": json.dumps({
        "pid": os.getpid(),
        "cwd": str(here),
        "path0": sys.path[0],
        "head": Path("data.bin").read_bytes()[:8].decode(),
        "files": sorted(str(p.relative_to(here)) for p in here.rglob("*") if p.is_file()),
        "scratch": str(scratch),
        "scratch_files": sorted(p.name for p in scratch.iterdir()),
    }).encode()}
"""

ORIGINAL_HEAD = "ORIGINAL"
BUNDLE_FILES = ["data.bin", "wire.py"]


@pytest.fixture
def tampering(make_bundle) -> BundleRef:
    return make_bundle({"wire.py": TAMPERING, "data.bin": ORIGINAL_HEAD + "-" * 4096}, "tamper")


def seen(runner: TaskRunner, ref: BundleRef, entrypoint: str = "", **limits) -> dict:
    result = runner.run(SimTask(ref, entrypoint, {}, seed=1, limits=RunLimits(**limits)))
    assert result.ok, result.error
    return json.loads(result.outputs["seen"].data)


def assert_cache_intact(store: LayoutStore, ref: BundleRef, cache: Path) -> None:
    bundle = fetch_bundle(ref, store, cache)
    on_disk = sorted(str(p.relative_to(bundle.root)) for p in bundle.root.rglob("*"))
    assert on_disk == sorted(entry.path for entry in bundle.config.files)
    for entry in bundle.config.files:
        digest = hashlib.sha256((bundle.root / entry.path).read_bytes()).hexdigest()
        assert f"sha256:{digest}" == entry.digest, entry.path


def test_a_model_writing_its_own_files_never_changes_what_later_children_see(
    runner: TaskRunner, store: LayoutStore, tampering: BundleRef
) -> None:
    cache = Settings.from_env().cache
    tampered = seen(runner, tampering, "tamper")  # a warm child, kept in the pool
    assert tampered["head"] == "TAMPERED"
    assert "planted.py" in tampered["files"]
    assert Path(tampered["cwd"]) == Path(tampered["path0"])
    assert not Path(tampered["cwd"]).is_relative_to(cache / "bundles")

    cold = seen(runner, tampering, isolation=Isolation.COLD)
    fresh_runner = TaskRunner(store, cache)  # another worker of the same machine
    try:
        warm_elsewhere = seen(fresh_runner, tampering)
    finally:
        fresh_runner.close()
    runner.pool.close()  # the tampering warm child goes; the next ones are new
    recycled = seen(runner, tampering, isolation=Isolation.RECYCLE, max_tasks_per_process=1)
    warm_again = seen(runner, tampering)

    for fresh in (cold, recycled, warm_elsewhere, warm_again):
        assert fresh["pid"] != tampered["pid"]
        assert fresh["head"] == ORIGINAL_HEAD
        assert fresh["files"] == BUNDLE_FILES
        assert fresh["cwd"] != tampered["cwd"]
    assert_cache_intact(store, tampering, cache)


def test_a_changed_cache_is_noticed_and_fetched_again(
    runner: TaskRunner, store: LayoutStore, tampering: BundleRef
) -> None:
    """Whatever writes into the cached tree (a model using an absolute path, an operator),
    the next child's files are the bundle's: the cache is checked before each copy."""
    cache = Settings.from_env().cache
    first = seen(runner, tampering, isolation=Isolation.COLD)
    tree = fetch_bundle(tampering, store, cache).root
    with (tree / "data.bin").open("r+b") as data:
        data.write(b"TAMPERED")
    (tree / "planted.py").write_text("PLANTED = True\n")

    again = seen(runner, tampering, isolation=Isolation.COLD)
    assert first["head"] == again["head"] == ORIGINAL_HEAD
    assert again["files"] == BUNDLE_FILES
    assert_cache_intact(store, tampering, cache)


def test_each_child_has_its_own_scratch_folder_removed_when_it_closes(
    runner: TaskRunner, tampering: BundleRef
) -> None:
    warm = [seen(runner, tampering) for _ in range(2)]
    cold = [seen(runner, tampering, isolation=Isolation.COLD) for _ in range(2)]

    assert warm[0]["scratch"] == warm[1]["scratch"]  # one warm child: one scratch folder
    assert warm[1]["scratch_files"] == ["note.txt"]
    assert Path(warm[0]["scratch"]).is_dir()  # the warm child is still alive
    assert cold[0]["scratch"] != cold[1]["scratch"]
    for first in cold:
        assert first["scratch_files"] == ["note.txt"]
        assert not Path(first["scratch"]).exists()  # cold children are closed after one task
        assert not Path(first["cwd"]).exists()
    runner.close()
    assert not Path(warm[0]["scratch"]).exists()
