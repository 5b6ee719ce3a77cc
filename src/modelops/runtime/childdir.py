"""A child's own folder: a working copy of its bundle's files, a scratch folder, its logs.

    cache/children/<bundle hex, 12>-<random>/
        .owner     flock'ed by the worker process for as long as the child lives
        tree/      the bundle's files, copied from the cache: the model's working directory
                   and the first entry of its sys.path
        scratch/   MODELOPS_SCRATCH: the model's to write, for as long as the child lives
        logs/      startup.log, task.stdout, task.stderr

The cached tree (cache/bundles/<hex>/tree) is never the model's working directory, so a model
that writes its own files changes only its own copy; the folder goes when the child closes.
Models run with the worker's rights (often root, so file modes prove nothing): a model that
writes into the cache by its absolute path is caught too, because every copy is checked
against the cache's state as this process last verified it by hashing, a fingerprint of
(size, mtime_ns, ctime_ns, inode, device) per file. A write changes mtime and ctime, and user
space can set mtime but not ctime, so a changed file is hashed again before it is copied; one
that no longer matches its digest makes the whole cached bundle stale (`StaleBundle`), and the
runner fetches it again. Each process hashes a bundle's files once, on its first copy; later
copies cost one stat and one copy (a reflink where the file system has them) per file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath

from modelops.bundle.cache import FetchedBundle
from modelops.bundle.config import FileEntry
from modelops.contracts import ErrorClass, ModelOpsError

CHILDREN = "children"
OWNER = ".owner"
ABANDONED_AFTER_S = 60.0  # a folder younger than this may be one a worker is still creating
_CHUNK = 1 << 20
_FICLONE = 0x40049409  # Linux ioctl: share the source's blocks copy-on-write (btrfs, XFS)

Fingerprint = tuple[int, int, int, int, int]

_verified: dict[tuple[str, str], dict[str, Fingerprint]] = {}
_verified_lock = threading.Lock()
_no_reflink: set[int] = set()  # devices where FICLONE failed once


class StaleBundle(Exception):
    """The cached tree is gone, or no longer holds the bundle's files: fetch it again."""


class ChildFolder:
    def __init__(self, path: Path, owner_fd: int) -> None:
        self.path = path
        self._owner_fd: int | None = owner_fd

    @property
    def tree(self) -> Path:
        return self.path / "tree"

    @property
    def scratch(self) -> Path:
        return self.path / "scratch"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @classmethod
    def create(cls, root: Path, bundle: FetchedBundle) -> ChildFolder:
        """A new folder under `root` with a verified copy of the bundle's files; raises
        StaleBundle when the cache no longer holds them."""
        root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(dir=root, prefix=f"{bundle.ref.hex[:12]}-"))
        owner = os.open(path / OWNER, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(owner, fcntl.LOCK_EX)  # held until remove(), or until this process dies
        folder = cls(path, owner)
        try:
            folder.logs.mkdir()
            folder.scratch.mkdir()
            copy_bundle(bundle, folder.tree)
        except BaseException:
            folder.remove()
            raise
        return folder

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._owner_fd is not None:
            os.close(self._owner_fd)  # the lock goes with it
            self._owner_fd = None


def abandoned(folder: Path, grace_s: float = ABANDONED_AFTER_S) -> bool:
    """Whether no live worker owns `folder`: its owner lock is free (its worker closed it or
    died) and it is older than `grace_s`."""
    try:
        if time.time() - folder.stat().st_mtime < grace_s:
            return False
        fd = os.open(folder / OWNER, os.O_RDONLY)
    except FileNotFoundError:
        return folder.is_dir()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def copy_bundle(bundle: FetchedBundle, dest: Path) -> None:
    """Copy the files the bundle's config lists, and nothing else, from the cache to `dest`,
    each checked against the fingerprint this process verified (hashing it when there is
    none or it changed)."""
    key = (str(bundle.root), bundle.ref.digest)
    with _verified_lock:
        known = dict(_verified.get(key, {}))
    seen: dict[str, Fingerprint] = {}
    dest.mkdir()
    made = {dest}
    for entry in bundle.config.files:
        relative = PurePosixPath(entry.path)
        if relative.is_absolute() or ".." in relative.parts:
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE, f"bundle {bundle.ref} lists an unsafe path {entry.path!r}"
            )
        source = bundle.root / entry.path
        target = dest / entry.path
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        fingerprint = _fingerprint(source, entry)
        if known.get(entry.path) == fingerprint:
            _clone(source, target, fingerprint[4])
        else:
            _copy_verified(source, target, entry)
        os.chmod(target, 0o755 if entry.mode & 0o111 else 0o644)
        seen[entry.path] = fingerprint
    with _verified_lock:
        _verified[key] = seen


def _fingerprint(source: Path, entry: FileEntry) -> Fingerprint:
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        raise StaleBundle(f"{entry.path} is missing from the cached bundle") from None
    if not stat.S_ISREG(st.st_mode):
        raise StaleBundle(f"{entry.path} in the cached bundle is not a regular file")
    if st.st_size != entry.size:
        raise StaleBundle(
            f"{entry.path} in the cached bundle has {st.st_size} bytes, not {entry.size}"
        )
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _copy_verified(source: Path, target: Path, entry: FileEntry) -> None:
    hasher = hashlib.sha256()
    try:
        with source.open("rb") as src, target.open("wb") as out:
            while chunk := src.read(_CHUNK):
                hasher.update(chunk)
                out.write(chunk)
    except FileNotFoundError:
        raise StaleBundle(f"{entry.path} is missing from the cached bundle") from None
    if f"sha256:{hasher.hexdigest()}" != entry.digest:
        raise StaleBundle(f"{entry.path} in the cached bundle no longer matches its digest")


def _clone(source: Path, target: Path, device: int) -> None:
    """A copy of `source`: a reflink where the file system shares blocks copy-on-write (a
    write to either file never reaches the other), else an ordinary copy. Never a hard link:
    that is the same file, and a model's write would reach the cache."""
    try:
        if device not in _no_reflink:
            with source.open("rb") as src, target.open("wb") as out:
                try:
                    fcntl.ioctl(out.fileno(), _FICLONE, src.fileno())
                    return
                except OSError:
                    _no_reflink.add(device)
        shutil.copyfile(source, target)
    except FileNotFoundError:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        raise StaleBundle(f"{source.name} vanished from the cached bundle") from None
