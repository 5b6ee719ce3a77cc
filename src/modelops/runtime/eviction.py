"""Keep the worker cache under a size: least-recently-used bundles and environments go first,
and nothing that dead workers or killed fetches left behind stays.

Recency is the mtime of a `.last-used` file that TaskRunner touches (at most once a minute
per entry). Anything used in the last ten minutes is never evicted, so a warm child's
environment does not vanish under it; the cost is that the cache can briefly exceed its size.

Leftovers are removed whenever eviction runs (and when a TaskRunner starts), whatever the
size: a child's folder whose worker died (its `.owner` lock is free), a `.partial-*` folder of
a fetch or environment build that no live process owns (its digest's lock is free), and
`.evicting-*` folders an eviction did not finish. The folders of live children count towards
the size but are never removed here: they go when their child closes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from modelops.runtime.childdir import ABANDONED_AFTER_S, CHILDREN, abandoned

LAST_USED = ".last-used"
KEEP_RECENT_S = 600.0
LEGACY_LOGS = "logs"  # per-child log folders of earlier versions, which never removed them
LEGACY_LOGS_KEEP_S = 86400.0
_TOUCH_EVERY_S = 60.0
SIZES = ".sizes"  # in cache/bundles and cache/envs: each entry's bytes, counted once


def touch(entry: Path) -> None:
    marker = entry / LAST_USED
    try:
        if time.time() - marker.stat().st_mtime < _TOUCH_EVERY_S:
            return
    except FileNotFoundError:
        pass
    with contextlib.suppress(FileNotFoundError):  # evicted meanwhile: fetched again next time
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


def _entry_size(entry: Path) -> int:
    """An entry's bytes on disk, counted once and kept beside it (`.sizes/<name>`): a
    bundle or environment does not change once in place, and counting a large venv's files
    took a quarter of a second of every new bundle's first task."""
    kept = entry.parent / SIZES / entry.name
    try:
        return int(kept.read_text())
    except (OSError, ValueError):
        pass
    size = _size(entry)
    with contextlib.suppress(OSError):  # a read-only cache counts again next time
        kept.parent.mkdir(exist_ok=True)
        temporary = kept.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{entry.name}")
        temporary.write_text(str(size))
        os.replace(temporary, kept)
    return size


def discard(entry: Path) -> None:
    """Remove a bundle or environment folder at once for everyone (renamed, then deleted),
    under its digest's lock, so no fetch or build of it is under way meanwhile."""
    with FileLock(entry.parent / f"{entry.name}.lock"):
        (entry.parent / SIZES / entry.name).unlink(missing_ok=True)
        if not entry.is_dir():
            return
        doomed = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".evicting-{entry.name[:12]}-"))
        os.rename(entry, doomed / entry.name)
        shutil.rmtree(doomed, ignore_errors=True)


def evict_lru(cache: Path, max_bytes: int, keep_recent_s: float = KEEP_RECENT_S) -> list[Path]:
    """Remove leftovers (`remove_leftovers`), then the least recently used entries of
    cache/bundles and cache/envs until they, with the folders of live children, fit in
    `max_bytes`; returns the entries it evicted."""
    remove_leftovers(cache)
    removed: list[Path] = []
    entries = [
        entry
        for kind in ("bundles", "envs")
        if (cache / kind).is_dir()
        for entry in (cache / kind).iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
    ]
    sizes = {entry: _entry_size(entry) for entry in entries}
    children = cache / CHILDREN
    live = sum(_size(folder) for folder in children.iterdir()) if children.is_dir() else 0
    total = sum(sizes.values()) + live
    if total <= max_bytes:
        return removed
    now = time.time()
    with FileLock(cache / ".eviction.lock"):
        for entry in sorted(entries, key=_last_used):
            if total <= max_bytes:
                break
            if now - _last_used(entry) < keep_recent_s:
                continue
            discard(entry)
            total -= sizes[entry]
            removed.append(entry)
    return removed


def remove_leftovers(cache: Path, grace_s: float = ABANDONED_AFTER_S) -> list[Path]:
    """Remove what no live process owns any more (see the module's docstring); returns it."""
    removed = []
    children = cache / CHILDREN
    if children.is_dir():
        for folder in children.iterdir():
            if folder.is_dir() and abandoned(folder, grace_s):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    legacy = cache / LEGACY_LOGS
    if legacy.is_dir():
        for folder in legacy.iterdir():
            if folder.is_dir() and _idle_for(folder) > LEGACY_LOGS_KEEP_S:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    for kind in ("bundles", "envs"):
        home = cache / kind
        if not home.is_dir():
            continue
        for folder in home.glob(".evicting-*"):  # an eviction's own, until it is done
            if time.time() - _mtime(folder) >= grace_s:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        for folder in home.glob(".partial-*"):
            digest_prefix = folder.name.removeprefix(".partial-")[:12]
            with _unowned(sorted(home.glob(f"{digest_prefix}*.lock"))) as free:
                if free and folder.is_dir() and time.time() - _mtime(folder) >= grace_s:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
    return removed


@contextlib.contextmanager
def _unowned(locks: list[Path]) -> Iterator[bool]:
    """True, holding them all, when no process holds any of these lock files (a fetch or
    build holds its digest's lock for as long as its partial folder exists); else False."""
    held: list[int] = []
    try:
        for lock in locks:
            try:
                fd = os.open(lock, os.O_RDONLY)
            except FileNotFoundError:
                continue
            held.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True
    finally:
        for fd in held:
            os.close(fd)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()


def _idle_for(folder: Path) -> float:
    """Seconds since anything in `folder` (one level) last changed."""
    newest = _mtime(folder)
    with contextlib.suppress(FileNotFoundError):
        for item in folder.iterdir():
            newest = max(newest, _mtime(item))
    return time.time() - newest
