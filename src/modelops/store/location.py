"""Where results live: a local folder or any fsspec URL, with atomic writes on either.

Readers trust only final names (`part-*.parquet`, `manifest.json`); everything is written
under a `.tmp-<uuid>` name first and moved into place when complete, so a crash leaves at
worst an ignored temporary file, never a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote

import fsspec
from fsspec.implementations.local import LocalFileSystem

from modelops.contracts import ErrorClass, ModelOpsError

_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SAFE_NAME_CHARS = "-_."


@dataclass(frozen=True)
class Location:
    """A root folder on one fsspec filesystem."""

    fs: fsspec.AbstractFileSystem
    root: str

    @classmethod
    def open(cls, root: str | Path, storage_options: Mapping[str, Any] | None = None) -> Location:
        fs, path = fsspec.core.url_to_fs(str(root), **dict(storage_options or {}))
        return cls(fs, path.rstrip("/") or "/")

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def join(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def url(self, path: str) -> str:
        """What a person or another process passes back in: a plain path when local."""
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def write_atomic(self, path: str, write: Callable[[IO[bytes]], None]) -> None:
        """Write `path` through a temporary sibling moved into place only when complete."""
        folder, name = posixpath.split(path)
        suffix = posixpath.splitext(name)[1]
        temporary = posixpath.join(folder, f".tmp-{uuid.uuid4().hex}{suffix}")
        self.fs.makedirs(folder, exist_ok=True)
        try:
            with self.fs.open(temporary, "wb") as file:
                write(file)
            if self.is_local:
                os.replace(temporary, path)  # atomic on one filesystem, and overwrites
            else:
                self.fs.mv(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):  # FileNotFoundError included
                self.fs.rm(temporary)
            raise

    def list_names(self, folder: str) -> list[str]:
        """Base names in `folder`; none if it does not exist (object stores have no folders)."""
        try:
            entries = self.fs.ls(folder, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(posixpath.basename(str(entry).rstrip("/")) for entry in entries)


def check_job_id(job_id: str) -> str:
    """Job ids become folder names: refuse anything that could leave the results root."""
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"job id {job_id!r} must be letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        )
    return job_id


def encode_name(name: str) -> str:
    """An output name as one safe path component (and file stem): percent-encoded, reversible."""
    if not name:
        raise ModelOpsError(ErrorClass.BAD_OUTPUT, "an output name must not be empty")
    encoded = quote(name, safe=_SAFE_NAME_CHARS)
    if encoded.startswith("."):  # never hidden, never '.' or '..'
        encoded = "%2E" + encoded[1:]
    return encoded


def decode_name(encoded: str) -> str:
    return unquote(encoded)
