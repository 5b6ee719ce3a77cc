"""The embedded bundle store: an OCI image-layout folder (`oci-layout`, `index.json`, blobs).

One folder holds many repositories; each index entry names its repository in the
`io.modelops.repository` annotation, and its tag, if any, in `org.opencontainers.image.ref.name`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from modelops.bundle.build import BuiltBundle
from modelops.bundle.config import (
    ARTIFACT_TYPE,
    MANIFEST_MEDIA_TYPE,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
)
from modelops.bundle.digests import (
    check_digest,
    create_partial,
    read_chunks,
    read_limited,
    write_verified,
)
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
REPOSITORY_ANNOTATION = "io.modelops.repository"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"


class LayoutStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LayoutStore({str(self.root)!r})"

    def blob_path(self, digest: str) -> Path:
        """Where a blob lives; only a well-formed digest is ever made into a path."""
        check_digest(digest, f"a blob asked of the bundle store at {self.root}")
        return self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def put(self, bundle: BuiltBundle, tag: str | None = None) -> BundleRef:
        """Store every blob the store lacks, then the manifest, then the index entry. A
        bundle no worker would read (a manifest or config over its cap) is refused first."""
        for what, size, cap in (
            ("manifest", len(bundle.manifest), MAX_MANIFEST_BYTES),
            ("config", bundle.config_blob.size, MAX_CONFIG_BYTES),
        ):
            if size > cap:
                raise ModelOpsError(
                    ErrorClass.BAD_BUNDLE,
                    f"the {what} of {bundle.ref} is {size} bytes, more than the {cap} a worker "
                    "reads; bundle fewer files (see .modelopsignore)",
                )
        self._init_layout()
        for blob in bundle.blobs:
            if self.has_blob(blob.digest):
                continue
            chunks = [blob.source] if isinstance(blob.source, bytes) else read_chunks(blob.source)
            write_verified(
                chunks, self.blob_path(blob.digest), blob.digest, f"blob {blob.digest}", blob.size
            )
        if not self.has_blob(bundle.ref.digest):
            write_verified(
                [bundle.manifest], self.blob_path(bundle.ref.digest), bundle.ref.digest, "manifest"
            )
        self._add_to_index(bundle.ref, len(bundle.manifest), tag)
        return bundle.ref

    def read_manifest(self, ref: BundleRef) -> bytes:
        """The manifest's bytes as stored, at most MAX_MANIFEST_BYTES of them (a larger one is
        refused unread); the reader verifies them against the digest."""
        if not any(entry_ref == ref for entry_ref, _ in self._entries()):
            raise ModelOpsError(
                ErrorClass.NOT_FOUND, f"bundle {ref} is not in the bundle store at {self.root}"
            )
        return read_limited(
            self._blob(ref, ref.digest), MAX_MANIFEST_BYTES, f"manifest of {ref} in {self.root}"
        )

    def blob_chunks(self, ref: BundleRef, digest: str) -> Iterator[bytes]:
        return read_chunks(self._blob(ref, digest))

    def _blob(self, ref: BundleRef, digest: str) -> Path:
        path = self.blob_path(digest)
        if not path.is_file():
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE, f"blob {digest} of {ref} is missing from {self.root}"
            )
        return path

    def resolve_tag(self, repository: str, tag: str) -> BundleRef:
        for ref, ref_tag in self._entries():
            if ref.repository == repository and ref_tag == tag:
                return ref
        raise ModelOpsError(
            ErrorClass.NOT_FOUND,
            f"tag {repository}:{tag} is not in the bundle store at {self.root}",
        )

    def refs(self) -> list[tuple[BundleRef, str | None]]:
        return self._entries()

    def _entries(self) -> list[tuple[BundleRef, str | None]]:
        index = self._read_index()
        out = []
        for entry in index["manifests"]:
            annotations = entry.get("annotations", {})
            if REPOSITORY_ANNOTATION in annotations:
                ref = BundleRef(annotations[REPOSITORY_ANNOTATION], entry["digest"])
                out.append((ref, annotations.get(REF_NAME_ANNOTATION)))
        return out

    def _read_index(self) -> dict:
        path = self.root / "index.json"
        if not path.is_file():
            return {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}
        return json.loads(path.read_text())

    def _init_layout(self) -> None:
        layout = self.root / "oci-layout"
        if not layout.is_file():
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            _atomic_write(layout, b'{"imageLayoutVersion":"1.0.0"}')

    def _add_to_index(self, ref: BundleRef, size: int, tag: str | None) -> None:
        annotations = {REPOSITORY_ANNOTATION: ref.repository}
        if tag:
            annotations[REF_NAME_ANNOTATION] = tag
        entry = {
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "digest": ref.digest,
            "size": size,
            "annotations": annotations,
        }
        with FileLock(self.root / ".index.lock"):
            index = self._read_index()
            manifests = index["manifests"]
            if tag:  # a tag names one manifest per repository: untag the one it named
                for other in manifests:
                    annotations = other.get("annotations", {})
                    if (
                        annotations.get(REPOSITORY_ANNOTATION) == ref.repository
                        and annotations.get(REF_NAME_ANNOTATION) == tag
                    ):
                        del annotations[REF_NAME_ANNOTATION]
            deduplicated = []
            for other in [*manifests, entry]:
                if other not in deduplicated:
                    deduplicated.append(other)
            manifests = deduplicated
            index["manifests"] = manifests
            _atomic_write(self.root / "index.json", json.dumps(index, indent=2).encode())


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = create_partial(path.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
