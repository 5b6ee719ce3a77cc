"""Eviction and leftovers: a worker survives its bundle being evicted, and nothing a child,
a killed worker or a killed fetch leaves behind stays in the cache forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelops.bundle import LayoutStore, fetch_bundle
from modelops.contracts import BundleRef, ErrorClass, Isolation, RunLimits, SimTask
from modelops.runtime import TaskRunner
from modelops.runtime.env import ensure_env
from modelops.runtime.eviction import LAST_USED, evict_lru, remove_leftovers

WIRE = """
import os, sys

def wire(entrypoint, params, seed):
    print("model says hello", flush=True)
    if entrypoint == "exit":
        print("about to exit", file=sys.stderr, flush=True)
        os._exit(3)
    return {"pid": str(os.getpid()).encode()}
"""


@pytest.fixture
def model(make_bundle) -> BundleRef:
    return make_bundle({"wire.py": WIRE}, name="leftovers")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"  # this test's own cache: eviction here touches no other test


@pytest.fixture
def own_runner(store: LayoutStore, cache: Path):
    runner = TaskRunner(store, cache)
    yield runner
    runner.close()


def run(runner: TaskRunner, ref: BundleRef, entrypoint: str = "", **limits):
    return runner.run(SimTask(ref, entrypoint, {}, seed=1, limits=RunLimits(retries=0, **limits)))


def child_folders(cache: Path) -> list[Path]:
    return [
        p
        for kind in ("children", "logs")
        if (cache / kind).is_dir()
        for p in (cache / kind).iterdir()
    ]


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.mark.parametrize("isolation", [Isolation.COLD, Isolation.WARM])
def test_a_bundle_evicted_while_its_environment_stays_is_fetched_again(
    own_runner: TaskRunner, store: LayoutStore, cache: Path, model: BundleRef, isolation
) -> None:
    assert run(own_runner, model, isolation=isolation).ok
    own_runner.pool.close()  # no warm child: the next task needs the bundle's files again
    bundle = fetch_bundle(model, store, cache)
    env = ensure_env(bundle, cache).parent.parent
    age(bundle.root.parent / LAST_USED, 3600)
    (env / LAST_USED).touch()

    removed = evict_lru(cache, max_bytes=1)

    assert bundle.root.parent in removed and not bundle.root.exists()
    assert env.is_dir()
    again = run(own_runner, model, isolation=isolation)
    assert again.ok, again.error
    assert bundle.root.is_dir()


def test_children_leave_no_folder_behind_and_failures_keep_their_logs(
    own_runner: TaskRunner, cache: Path, model: BundleRef
) -> None:
    for _ in range(3):
        assert run(own_runner, model, isolation=Isolation.COLD).ok
    crashed = run(own_runner, model, "exit", isolation=Isolation.COLD)
    assert child_folders(cache) == []

    assert crashed.error is not None and crashed.error.error_class is ErrorClass.CRASH
    assert "about to exit" in crashed.error.traceback
    assert "model says hello" in crashed.logs

    assert run(own_runner, model).ok  # a warm child keeps its folder while it lives
    assert len(child_folders(cache)) == 1
    own_runner.close()
    assert child_folders(cache) == []


KILLED_WORKER = """
import os, sys
from pathlib import Path
from modelops.bundle import LayoutStore
from modelops.contracts import BundleRef, SimTask
from modelops.runtime import TaskRunner
runner = TaskRunner(LayoutStore(Path(sys.argv[1])), Path(sys.argv[2]))
assert runner.run(SimTask(BundleRef.parse(sys.argv[3]), "", {}, seed=1)).ok
print("ready", flush=True)
sys.stdin.read()
"""

HOLD_LOCK = """
import fcntl, sys
lock = open(sys.argv[1], "a")
fcntl.flock(lock, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_eviction_removes_what_dead_workers_and_fetches_left_and_nothing_live(
    store: LayoutStore, cache: Path, model: BundleRef
) -> None:
    # a worker killed with a warm child: its child folder outlives it
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER, str(store.root), str(cache), str(model)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout.readline() == "ready\n"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    [dead] = child_folders(cache)

    # fetches killed midway leave partial folders; a live one holds its digest's lock
    bundles = cache / "bundles"
    dead_partial = bundles / f".partial-{'a' * 12}-x1"
    live_partial = bundles / f".partial-{'b' * 12}-x2"
    dead_env_partial = cache / "envs" / f".partial-{'c' * 12}-x3"
    for partial in (dead_partial, live_partial, dead_env_partial):
        partial.mkdir(parents=True)
        (partial / "blob").write_bytes(b"x" * 100_000)
    (bundles / f"{'a' * 64}.lock").touch()  # released by its dead owner
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(bundles / f"{'b' * 64}.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "locked\n"

    runner = TaskRunner(store, cache)  # a live worker with a warm child of its own
    try:
        assert run(runner, model).ok
        [live] = [p for p in child_folders(cache) if p != dead]
        for leftover in (dead, dead_partial, live_partial, dead_env_partial, live):
            age(leftover, 3600)

        evicted = evict_lru(cache, max_bytes=10**12)  # under the limit: only garbage goes

        assert evicted == []  # no bundle or environment
        assert not dead.exists() and not dead_partial.exists()
        assert not dead_env_partial.exists()
        assert live_partial.is_dir() and live.is_dir()
        assert run(runner, model).ok
        assert remove_leftovers(cache) == []  # nothing left to remove
    finally:
        runner.close()
        holder.kill()
        holder.wait()


def test_the_folders_of_live_children_count_towards_the_cache_size(
    own_runner: TaskRunner, store: LayoutStore, cache: Path, make_bundle
) -> None:
    data = make_bundle({"wire.py": WIRE, "data.bin": "x" * (4 << 20)}, name="with-data")
    assert run(own_runner, data).ok  # a warm child with its own 4 MiB copy, kept alive
    old = cache / "envs" / ("e" * 64)
    old.mkdir(parents=True)
    (old / "payload").write_bytes(b"x" * 100_000)
    age(old, 3600)
    entries = sum(
        os.lstat(path).st_blocks * 512
        for kind in ("bundles", "envs")
        for path in (cache / kind).rglob("*")
        if path.is_file()
    )

    removed = evict_lru(cache, max_bytes=entries + (1 << 20))  # 1 MiB to spare, 4 used

    assert removed == [old]
    [live] = child_folders(cache)
    assert (live / "tree" / "data.bin").stat().st_size == 4 << 20
