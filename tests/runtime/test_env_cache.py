"""Environments built once per machine, atomically, and the cache kept to its size."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from modelops.bundle import LayoutStore, fetch_bundle
from modelops.contracts import BundleRef
from modelops.runtime.env import ENV_RECORD, ensure_env, env_digest
from modelops.runtime.eviction import LAST_USED, _size, evict_lru

ENSURE = """
import json, sys
from pathlib import Path
from modelops.bundle import LayoutStore, fetch_bundle
from modelops.contracts import BundleRef
from modelops.runtime.env import ensure_env, ENV_RECORD
store, ref, cache = LayoutStore(Path(sys.argv[1])), BundleRef.parse(sys.argv[2]), Path(sys.argv[3])
python = ensure_env(fetch_bundle(ref, store, cache), cache)
print(json.loads((python.parent.parent / ENV_RECORD).read_text())["built_by_pid"])
"""

SIX = {"wire.py": "import six\n\ndef wire(e, p, s):\n    return {}\n", "requirements.txt": "six\n"}


def start_ensure(store: LayoutStore, ref: BundleRef, cache: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", ENSURE, str(store.root), str(ref), str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_two_processes_asking_at_once_build_the_env_once(
    make_bundle, store: LayoutStore, tmp_path: Path
) -> None:
    ref = make_bundle(SIX, name="built-once")
    cache = tmp_path / "cache"
    processes = [start_ensure(store, ref, cache) for _ in range(2)]
    builders = set()
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        builders.add(int(out))
    assert len(builders) == 1
    assert builders <= {p.pid for p in processes}
    assert len([p for p in (cache / "envs").iterdir() if p.is_dir()]) == 1


def test_a_build_killed_midway_leaves_nothing_that_looks_valid(
    make_bundle, store: LayoutStore, tmp_path: Path
) -> None:
    ref = make_bundle(SIX, name="killed-build")
    cache = tmp_path / "cache"
    doomed = start_ensure(store, ref, cache)
    envs = cache / "envs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(envs.glob(".partial-*")):
        time.sleep(0.005)
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    bundle = fetch_bundle(ref, store, cache)
    final = envs / env_digest(bundle).removeprefix("sha256:")
    assert not final.exists() or (final / ENV_RECORD).is_file()  # complete, or absent

    python = ensure_env(bundle, cache)
    record = json.loads((python.parent.parent / ENV_RECORD).read_text())
    assert record["env_digest"] == env_digest(bundle)
    assert not list(envs.glob(".partial-*"))
    check = subprocess.run([str(python), "-c", "import six"], capture_output=True)
    assert check.returncode == 0


def fake_entry(cache: Path, kind: str, name: str, size: int, age_s: float) -> Path:
    entry = cache / kind / name
    entry.mkdir(parents=True)
    (entry / "payload").write_bytes(b"x" * size)
    marker = entry / LAST_USED
    marker.touch()
    then = time.time() - age_s
    os.utime(marker, (then, then))
    return entry


def test_cache_evicts_least_recently_used_first_and_never_recent_entries(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    oldest_env = fake_entry(cache, "envs", "a" * 64, 400_000, age_s=7200)
    old_bundle = fake_entry(cache, "bundles", "b" * 64, 400_000, age_s=3600)
    recent_env = fake_entry(cache, "envs", "c" * 64, 400_000, age_s=1800)
    in_use = fake_entry(cache, "bundles", "d" * 64, 400_000, age_s=5)

    removed = evict_lru(cache, max_bytes=900_000)

    assert removed == [oldest_env, old_bundle]
    assert not oldest_env.exists() and not old_bundle.exists()
    assert recent_env.exists() and in_use.exists()
    assert evict_lru(cache, max_bytes=1) == [recent_env]  # in_use is too recent to go
    assert in_use.exists()


def test_an_entrys_size_is_counted_once_and_forgotten_with_it(tmp_path: Path) -> None:
    """Entries do not change once in place: eviction counts each one's files once."""
    cache = tmp_path / "cache"
    old = fake_entry(cache, "envs", "a" * 64, 400_000, age_s=7200)
    recent = fake_entry(cache, "bundles", "b" * 64, 400_000, age_s=5)
    assert evict_lru(cache, max_bytes=10 << 20) == []
    kept = {path.name: int(path.read_text()) for path in cache.glob("*/.sizes/*")}
    assert kept == {"a" * 64: _size(old), "b" * 64: _size(recent)}
    assert kept["a" * 64] >= 400_000

    (recent / "payload").unlink()  # were it counted again, the cache would fit
    assert evict_lru(cache, max_bytes=600_000, keep_recent_s=60) == [old]
    assert not (cache / "envs" / ".sizes" / old.name).exists()
    assert (cache / "bundles" / ".sizes" / recent.name).exists()
