"""Keep the worker cache under a size: least-recently-used bundles and environments go first.

Recency is the mtime of a `.last-used` file that TaskRunner touches (at most once a minute
per entry). Anything used in the last ten minutes is never evicted, so a warm child's
environment does not vanish under it; the cost is that the cache can briefly exceed its size.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from filelock import FileLock

LAST_USED = ".last-used"
KEEP_RECENT_S = 600.0
_TOUCH_EVERY_S = 60.0


def touch(entry: Path) -> None:
    marker = entry / LAST_USED
    try:
        if time.time() - marker.stat().st_mtime < _TOUCH_EVERY_S:
            return
    except FileNotFoundError:
        pass
    marker.touch()


def _last_used(entry: Path) -> float:
    try:
        return (entry / LAST_USED).stat().st_mtime
    except FileNotFoundError:
        return entry.stat().st_mtime


def _size(entry: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(entry):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def evict_lru(cache: Path, max_bytes: int, keep_recent_s: float = KEEP_RECENT_S) -> list[Path]:
    """Remove the least recently used entries of cache/bundles and cache/envs until the two
    together fit in `max_bytes`; returns what was removed."""
    entries = [
        entry
        for kind in ("bundles", "envs")
        if (cache / kind).is_dir()
        for entry in (cache / kind).iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
    ]
    sizes = {entry: _size(entry) for entry in entries}
    total = sum(sizes.values())
    removed: list[Path] = []
    if total <= max_bytes:
        return removed
    now = time.time()
    with FileLock(cache / ".eviction.lock"):
        for entry in sorted(entries, key=_last_used):
            if total <= max_bytes:
                break
            if now - _last_used(entry) < keep_recent_s:
                continue
            with FileLock(entry.parent / f"{entry.name}.lock"):
                doomed = entry.with_name(f".evicting-{entry.name}")
                os.rename(entry, doomed)  # gone at once for everyone, then deleted
                shutil.rmtree(doomed, ignore_errors=True)
            total -= sizes[entry]
            removed.append(entry)
    return removed
