"""Push a built bundle: blobs the registry lacks (in parallel, streamed), then the manifest
by digest, then the tag, refusing to move a tag that someone else moved meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from modelops.bundle.build import Blob, BuiltBundle
from modelops.bundle.config import MANIFEST_MEDIA_TYPE
from modelops.bundle.digests import CHUNK
from modelops.bundle.registry.client import RegistryClient
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError

PARALLEL_UPLOADS = 4
MANIFEST_ATTEMPTS = 3


@dataclass
class PushReport:
    ref: BundleRef
    registry: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    uploaded_bytes: int = 0
    manifest_uploaded: bool = False
    tag: str | None = None


def push_bundle(
    bundle: BuiltBundle, client: RegistryClient, tag: str | None = None, force: bool = False
) -> PushReport:
    repository = bundle.ref.repository
    report = PushReport(bundle.ref, str(client.host), tag=tag)
    tag_before = client.manifest_digest(repository, tag) if tag else None

    def push_blob(blob: Blob) -> bool:
        if client.has_blob(repository, blob.digest):
            return False
        client.upload_blob(repository, blob.digest, blob.size, _range_reader(blob))
        return True

    blobs = list(bundle.blobs)
    with ThreadPoolExecutor(PARALLEL_UPLOADS) as pool:
        for blob, uploaded in zip(blobs, pool.map(push_blob, blobs), strict=True):
            (report.uploaded if uploaded else report.skipped).append(blob.digest)
            report.uploaded_bytes += blob.size if uploaded else 0

    def put_manifest(reference: str) -> None:
        for attempt in range(MANIFEST_ATTEMPTS):
            try:
                client.put_manifest(repository, reference, bundle.manifest, MANIFEST_MEDIA_TYPE)
                return
            except ModelOpsError as exc:
                # Someone pushing the same blob at the same moment can make the registry
                # briefly deny knowing it (seen with distribution 2.8): make sure every blob
                # is there, then ask again.
                if "MANIFEST_BLOB_UNKNOWN" not in str(exc) or attempt + 1 == MANIFEST_ATTEMPTS:
                    raise
                time.sleep(0.2 * (attempt + 1))
                for blob in blobs:
                    push_blob(blob)

    if not client.has_manifest(repository, bundle.ref.digest):
        put_manifest(bundle.ref.digest)
        report.manifest_uploaded = True
    if tag:
        tag_now = client.manifest_digest(repository, tag)
        if tag_now not in (tag_before, bundle.ref.digest) and not force:
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"tag {repository}:{tag} moved during the push (from {tag_before} to {tag_now}); "
                f"the bundle is stored as {bundle.ref}; pass --force to move the tag anyway",
            )
        if tag_now != bundle.ref.digest:
            put_manifest(tag)
    return report


def _range_reader(blob: Blob):
    """`read_range(start, end)` for a blob: slices of bytes in memory, or a file read in
    CHUNK pieces so a large data file is never held whole."""

    def read_range(start: int, end: int) -> Iterator[bytes]:
        if isinstance(blob.source, bytes):
            yield blob.source[start:end]
            return
        yield from _file_range(blob.source, start, end)

    return read_range


def _file_range(path: Path, start: int, end: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        fh.seek(start)
        remaining = end - start
        while remaining > 0:
            piece = fh.read(min(CHUNK, remaining))
            if not piece:
                raise ModelOpsError(
                    ErrorClass.BAD_BUNDLE, f"{path} changed size during the push; build again"
                )
            remaining -= len(piece)
            yield piece
