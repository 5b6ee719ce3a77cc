"""What a stored bundle holds, read from its manifest and config alone (no layer download)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from modelops.bundle.cache import BundleSource, parse_manifest
from modelops.bundle.config import MAX_CONFIG_BYTES, BundleConfig
from modelops.bundle.digests import bounded, verify_bytes
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError


@dataclass(frozen=True)
class BundleDescription:
    ref: BundleRef
    config: BundleConfig
    layers: tuple[dict, ...]  # manifest layer descriptors

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
    return BundleDescription(ref, config, tuple(json.loads(raw)["layers"]))
