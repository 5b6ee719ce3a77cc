"""The disk that holds the bundle cache fills up while a bundle is fetched or its environment
is built: one clear line naming the cache and what to do, and no cache entry left that could
pass for the bundle or the environment. The disk is a real tmpfs mounted for the test (root
only, as in CI)."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops.bundle import LayoutStore
from modelops.bundle.digests import CHUNK, write_verified
from modelops.contracts import ErrorClass, SimTask
from modelops.runtime import TaskRunner
from modelops.runtime.eviction import SIZES

WIRE = "def wire(entrypoint, params, seed):\n    return {'ok': b'1'}\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def resize(disk: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "small-disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_cache_disk_is_one_clear_line_and_leaves_no_entry(
    store: LayoutStore, make_bundle, small_disk: Path
) -> None:
    ref = make_bundle({"wire.py": WIRE, "data/big.bin": "x" * (3 * 2**20)})
    cache = small_disk / "cache"
    runner = TaskRunner(store, cache)
    try:
        result = runner.run(SimTask(ref, "", {}, seed=1))
    finally:
        runner.close()

    assert result.error is not None
    assert result.error.error_class is ErrorClass.INTERNAL
    message = result.error.message
    assert message.startswith(f"no space left on the disk that holds the cache {cache}")
    assert "MODELOPS_CACHE_MAX_GB" in message and "\n" not in message
    bundles = cache / "bundles"
    left = sorted(path.name for path in bundles.iterdir()) if bundles.exists() else []
    assert ref.hex not in left  # nothing that could pass for the bundle
    assert not [name for name in left if name.startswith(".partial-")]


@pytest.mark.parametrize("declared_size", [True, False], ids=["bounded", "unbounded"])
def test_a_download_stopped_by_a_full_disk_is_closed_before_the_error_is_raised(
    small_disk: Path, declared_size: bool
) -> None:
    """A download's generator holds an HTTP response; left for the garbage collector, it was
    once finalized inside the connection pool's lock of another download, and that worker
    waited on the lock forever (seen in CI with two workers fetching into a full cache)."""
    closed: list[bool] = []
    data = bytes(3 * CHUNK)  # three times what the disk holds

    def download() -> Iterator[bytes]:
        try:
            for start in range(0, len(data), CHUNK):
                yield data[start : start + CHUNK]
        finally:
            closed.append(True)

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    size = len(data) if declared_size else None
    with pytest.raises(OSError) as raised:
        write_verified(download(), small_disk / "blob", digest, "blob", size=size)

    assert raised.value.errno == errno.ENOSPC
    assert closed == [True]  # closed by write_verified, while the error still holds its frame
    assert list(small_disk.iterdir()) == []  # no partial file left


def test_a_full_disk_under_an_environment_build_is_one_clear_line_then_space_freed_builds_it(
    store: LayoutStore, make_bundle, small_disk: Path
) -> None:
    """The bundle fits; its environment (pyarrow, copied: uv cannot hard-link across disks)
    does not. uv's own error is recognised as the full disk it is."""
    resize(small_disk, "16m")
    wire = "import pyarrow\n\ndef wire(entrypoint, params, seed):\n    return {'ok': b'1'}\n"
    ref = make_bundle({"wire.py": wire, "requirements.txt": "pyarrow\n"})
    cache = small_disk / "cache"
    runner = TaskRunner(store, cache)
    try:
        failed = runner.run(SimTask(ref, "", {}, seed=1))
        envs = cache / "envs"
        left = sorted(p.name for p in envs.iterdir() if p.is_dir() and p.name != SIZES)
        bundle_files = sorted(p.name for p in (cache / "bundles" / ref.hex / "tree").iterdir())

        resize(small_disk, "1g")  # the fix the message names: free space there
        again = runner.run(SimTask(ref, "", {}, seed=2))
    finally:
        runner.close()

    assert failed.error is not None
    assert failed.error.error_class is ErrorClass.INTERNAL
    message = failed.error.message
    assert message.startswith(f"no space left on the disk that holds the cache {cache}")
    assert f"{envs}/.partial-" in message  # it was writing the environment
    assert "MODELOPS_CACHE_MAX_GB" in message and "\n" not in message
    assert left == []  # neither an environment nor a scratch folder stays
    assert bundle_files == ["requirements.txt", "wire.py"]  # the fetched bundle stays whole
    assert again.ok, again.error
    assert again.outputs["ok"].data == b"1"
