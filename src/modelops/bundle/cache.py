"""The worker-side cache: a bundle fetched once per machine by digest, verified, extracted.

Concurrent tasks and worker processes on one machine share the cache: a file lock per digest
means one of them fetches while the others wait, and a bundle appears under its final name
only when complete, so nothing half-extracted is ever used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from filelock import FileLock

from modelops.bundle.config import (
    ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE,
    FILE_LAYER_MEDIA_TYPE,
    TITLE_ANNOTATION,
    TREE_LAYER_MEDIA_TYPE,
    BundleConfig,
    FileEntry,
)
from modelops.bundle.digests import CHUNK, verify_bytes, write_verified
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError

PARALLEL_DOWNLOADS = 4


class BundleSource(Protocol):
    """Where bundles come from (the image-layout store, a registry). A source only delivers
    bytes; the cache verifies every one of them against its digest, whatever the source."""

    def read_manifest(self, ref: BundleRef) -> bytes: ...

    def blob_chunks(self, ref: BundleRef, digest: str) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class FetchedBundle:
    ref: BundleRef
    root: Path  # the project's files, as built
    config: BundleConfig


def fetch_bundle(ref: BundleRef, source: BundleSource, cache: Path) -> FetchedBundle:
    home = cache / "bundles"
    final = home / ref.hex
    if not final.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        with FileLock(home / f"{ref.hex}.lock"):
            if not final.is_dir():
                _fetch_into(ref, source, home, final)
    config = BundleConfig.from_bytes((final / "config.json").read_bytes())
    return FetchedBundle(ref, final / "tree", config)


def _fetch_into(ref: BundleRef, source: BundleSource, home: Path, final: Path) -> None:
    work = Path(tempfile.mkdtemp(dir=home, prefix=f".partial-{ref.hex[:12]}-"))
    try:
        raw = verify_bytes(source.read_manifest(ref), ref.digest, f"manifest of {ref}")
        manifest = _parse_manifest(ref, raw)
        _download(source, ref, manifest["config"]["digest"], work / "config.json")
        config = BundleConfig.from_bytes((work / "config.json").read_bytes())
        expected = {entry.path: entry for entry in config.files}
        tree = work / "tree"
        tree.mkdir()
        layers = manifest["layers"]
        for layer in layers:
            if layer["mediaType"] not in (TREE_LAYER_MEDIA_TYPE, FILE_LAYER_MEDIA_TYPE):
                raise ModelOpsError(
                    ErrorClass.BAD_BUNDLE,
                    f"bundle {ref} has a layer of unknown type {layer['mediaType']!r}",
                )
        blobs = [work / "blobs" / layer["digest"].replace(":", "-") for layer in layers]
        with ThreadPoolExecutor(PARALLEL_DOWNLOADS) as pool:
            list(
                pool.map(
                    lambda layer, blob: _download(source, ref, layer["digest"], blob), layers, blobs
                )
            )
        for layer, blob in zip(layers, blobs, strict=True):
            if layer["mediaType"] == TREE_LAYER_MEDIA_TYPE:
                _extract_tree(ref, blob, tree, expected)
            else:
                title = layer.get("annotations", {}).get(TITLE_ANNOTATION, "")
                entry = _expected_entry(ref, title, expected)
                if entry.digest != layer["digest"]:
                    raise ModelOpsError(
                        ErrorClass.BAD_BUNDLE, f"bundle {ref}: layer for {title} has wrong digest"
                    )
                target = tree / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(blob, target)
                target.chmod(_normal_mode(entry.mode))
        missing = sorted(p for p in expected if not (tree / p).is_file())
        if missing:
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE, f"bundle {ref} lacks files its config lists: {missing[:5]}"
            )
        shutil.rmtree(work / "blobs", ignore_errors=True)
        os.rename(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _download(source: BundleSource, ref: BundleRef, digest: str, dest: Path) -> None:
    write_verified(source.blob_chunks(ref, digest), dest, digest, f"blob {digest} of {ref}")


def _normal_mode(mode: int) -> int:
    """Only the executable bit survives from a bundle: no setuid, no group/world write."""
    return 0o755 if mode & 0o111 else 0o644


def _parse_manifest(ref: BundleRef, data: bytes) -> dict:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise ModelOpsError(ErrorClass.BAD_BUNDLE, f"manifest of {ref} is not JSON") from exc
    if (
        manifest.get("artifactType") != ARTIFACT_TYPE
        or manifest.get("config", {}).get("mediaType") != CONFIG_MEDIA_TYPE
    ):
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"{ref} is not a modelops bundle (artifactType {manifest.get('artifactType')!r})",
        )
    return manifest


def _expected_entry(ref: BundleRef, name: str, expected: dict[str, FileEntry]) -> FileEntry:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"bundle {ref} contains an unsafe path {name!r}; refused"
        )
    entry = expected.get(path.as_posix())
    if entry is None:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"bundle {ref} contains {name!r}, which its config does not list"
        )
    return entry


def _extract_tree(ref: BundleRef, blob: Path, tree: Path, expected: dict[str, FileEntry]) -> None:
    """Extract regular files only, each checked against the config's path, size and digest."""
    with tarfile.open(blob, mode="r:") as tar:
        for member in tar:
            if not member.isreg():
                raise ModelOpsError(
                    ErrorClass.BAD_BUNDLE,
                    f"bundle {ref} contains {member.name!r}, which is not a regular file "
                    "(links and devices are refused)",
                )
            entry = _expected_entry(ref, member.name, expected)
            target = tree / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            hasher = hashlib.sha256()
            source = tar.extractfile(member)
            assert source is not None  # regular members always have a file object
            with target.open("wb") as out:
                while chunk := source.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
            if "sha256:" + hasher.hexdigest() != entry.digest:
                raise ModelOpsError(
                    ErrorClass.BAD_BUNDLE, f"bundle {ref}: {entry.path} does not match its digest"
                )
            target.chmod(_normal_mode(entry.mode))
