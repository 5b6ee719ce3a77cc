"""What a stored bundle holds, read from its manifest and config alone (no layer download).

A description keeps the bytes it was read from, so one call reads a bundle's manifest and
config once: it passes the description down, and `DescribedSource` serves those bytes to a
fetch that follows, which then reads only the layers from the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from modelops.bundle.build import BuiltBundle
from modelops.bundle.cache import BundleSource, parse_manifest
from modelops.bundle.config import MAX_CONFIG_BYTES, BundleConfig
from modelops.bundle.digests import bounded, verify_bytes
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError


@dataclass(frozen=True)
class BundleDescription:
    ref: BundleRef
    config: BundleConfig
    layers: tuple[dict, ...]  # manifest layer descriptors
    manifest: bytes = field(repr=False)  # verified against ref's digest
    config_digest: str = field(repr=False)
    config_bytes: bytes = field(repr=False)  # verified against config_digest

    @property
    def size(self) -> int:
        return sum(layer["size"] for layer in self.layers)

    def to_dict(self) -> dict:
        env = self.config.environment
        return {
            "bundle": str(self.ref),
            "format": self.config.format,
            "created_by": "modelops",
            "wire": self.config.wire,
            "environment": {
                "kind": env.kind,
                "files": list(env.files),
                "lock_digest": env.lock_digest,
            },
            "files": [
                {"path": f.path, "size": f.size, "mode": oct(f.mode), "digest": f.digest}
                for f in self.config.files
            ],
            "layers": list(self.layers),
            "size": self.size,
        }


def describe_bundle(ref: BundleRef, source: BundleSource) -> BundleDescription:
    """Checked as a worker checks them: the manifest and config are bounded, verified and
    parsed field by field, so a hostile bundle is refused here too, in one line."""
    raw = verify_bytes(source.read_manifest(ref), ref.digest, f"manifest of {ref}")
    config_descriptor, _ = parse_manifest(ref, raw)
    if config_descriptor.size > MAX_CONFIG_BYTES:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"config of {ref} declares {config_descriptor.size} bytes, more than the "
            f"{MAX_CONFIG_BYTES} allowed; refused",
        )
    what, digest = f"config of {ref}", config_descriptor.digest
    chunks = bounded(source.blob_chunks(ref, digest), config_descriptor.size, what)
    config_bytes = verify_bytes(b"".join(chunks), digest, what)
    config = BundleConfig.from_bytes(config_bytes, what)
    return BundleDescription(
        ref, config, tuple(json.loads(raw)["layers"]), raw, digest, config_bytes
    )


def describe_built(bundle: BuiltBundle) -> BundleDescription:
    """A bundle this process just built, described from what it built: nothing read back."""
    config_bytes = bundle.config_blob.source
    assert isinstance(config_bytes, bytes)  # a config is built in memory, never from a file
    return BundleDescription(
        bundle.ref,
        bundle.config,
        tuple(json.loads(bundle.manifest)["layers"]),
        bundle.manifest,
        bundle.config_blob.digest,
        config_bytes,
    )


class DescribedSource:
    """A bundle store with one described bundle's manifest and config already in hand, so
    fetching that bundle reads only its layers from the store. The cache verifies what it
    is served all the same."""

    def __init__(self, store: BundleSource, bundle: BundleDescription) -> None:
        self.store = store
        self.bundle = bundle

    def read_manifest(self, ref: BundleRef) -> bytes:
        if ref == self.bundle.ref:
            return self.bundle.manifest
        return self.store.read_manifest(ref)

    def blob_chunks(self, ref: BundleRef, digest: str) -> Iterator[bytes]:
        if ref == self.bundle.ref and digest == self.bundle.config_digest:
            return iter([self.bundle.config_bytes])
        return self.store.blob_chunks(ref, digest)
