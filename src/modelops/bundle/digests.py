"""Copy bytes while checking their digest, so nothing unverified lands where it is trusted."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from modelops.contracts import ErrorClass, ModelOpsError

CHUNK = 1 << 20


def write_verified(chunks: Iterable[bytes], dest: Path, digest: str, what: str) -> None:
    """Write `chunks` to `dest` atomically, only if they hash to `digest`."""
    algorithm, _, expected = digest.partition(":")
    if algorithm != "sha256":
        raise ModelOpsError(ErrorClass.BAD_BUNDLE, f"{what}: unsupported digest {digest!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as out:
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


def read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def verify_bytes(data: bytes, digest: str, what: str) -> bytes:
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"{what} is corrupt: expected {digest}, got {actual}"
        )
    return data
