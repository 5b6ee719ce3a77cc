"""Copy bytes while checking their digest, so nothing unverified lands where it is trusted."""

from __future__ import annotations

import hashlib
import os
import queue
import secrets
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.contracts.refs import is_digest

CHUNK = 1 << 20


def check_digest(digest: object, what: str) -> str:
    """`digest` if it is 'sha256:' and 64 lowercase hex characters, else a one-line
    bad-bundle error: only such a digest is ever put into a path or a request."""
    if not is_digest(digest):
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"{what} has an invalid digest {str(digest)[:100]!r}: expected 'sha256:' and 64 "
            "lowercase hex characters",
        )
    assert isinstance(digest, str)
    return digest


def bounded(chunks: Iterable[bytes], size: int, what: str) -> Iterator[bytes]:
    """`chunks`, refused as corrupt the moment they pass `size` bytes (nothing past it is
    handed on, and the source is not read further) or if they end before it."""
    received = 0
    source = iter(chunks)
    try:
        for chunk in source:
            received += len(chunk)
            if received > size:
                raise ModelOpsError(
                    ErrorClass.BAD_BUNDLE,
                    f"{what} is corrupt: it is larger than its declared size of {size} bytes",
                )
            yield chunk
    finally:
        close_source(source)  # a download stops here, its connection released
    if received != size:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"{what} is corrupt: it has {received} bytes, not its declared {size}",
        )


def write_verified(
    chunks: Iterable[bytes], dest: Path, digest: str, what: str, size: int | None = None
) -> None:
    """Write `chunks` to `dest` atomically, only if they hash to `digest` (and, when `size`
    is given, are exactly that long: reading stops as soon as they are longer)."""
    expected = check_digest(digest, what).removeprefix("sha256:")
    source = bounded(chunks, size, what) if size is not None else iter(chunks)
    try:
        _write_verified(source, dest, digest, expected, what)
    finally:
        close_source(source)


def close_source(source: Iterator[bytes]) -> None:
    """Close a chunk generator the moment its reader stops, whyever it stops. Left to the
    garbage collector, a download's generator is finalized at a random point in whatever
    thread runs the collection, possibly one inside the HTTP connection pool's lock, which
    the response's close then waits on forever."""
    close = getattr(source, "close", None)
    if close is not None:
        close()


def _write_verified(
    chunks: Iterator[bytes], dest: Path, digest: str, expected: str, what: str
) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    fd, tmp = create_partial(dest.parent)
    try:
        with _BackgroundWriter(fd) as out:
            for chunk in chunks:
                hasher.update(chunk)
                out.write(chunk)
        if hasher.hexdigest() != expected:
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE,
                f"{what} is corrupt: expected {digest}, got sha256:{hasher.hexdigest()}",
            )
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_partial(folder: Path) -> tuple[int, Path]:
    """A new file in `folder`, open for writing, to be renamed into place once complete. Its
    mode is what the user's own tools would give it (0666 less the umask), not mkstemp's
    0600, so a bundle store on a folder a team shares stays readable to the team."""
    path = folder / f".partial-{secrets.token_hex(8)}"
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path


class _BackgroundWriter:
    """Writes chunks on a thread of its own, so receiving and hashing the next chunk overlap
    with the disk write of this one; a bounded queue keeps memory at a few chunks."""

    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "wb")
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, daemon=True)

    def __enter__(self) -> _BackgroundWriter:
        self._thread.start()
        return self

    def write(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def _drain(self) -> None:
        try:
            while (chunk := self._queue.get()) is not None:
                self._file.write(chunk)
        except BaseException as exc:
            self._error = exc
            while self._queue.get() is not None:  # keep the producer from blocking
                pass

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        self._file.close()
        if self._error is not None:
            raise self._error


def read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def read_limited(path: Path, limit: int, what: str) -> bytes:
    """The bytes of `path`, refused as a bad bundle (without reading them) if more than
    `limit`."""
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"{what} is larger than the {limit} bytes allowed; refused"
        )
    return data


def verify_bytes(data: bytes, digest: str, what: str) -> bytes:
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"{what} is corrupt: expected {digest}, got {actual}"
        )
    return data
