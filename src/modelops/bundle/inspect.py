"""What a stored bundle holds, read from its manifest and config alone (no layer download)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from modelops.bundle.cache import BundleSource
from modelops.bundle.config import BundleConfig
from modelops.bundle.digests import verify_bytes
from modelops.contracts import BundleRef


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
    manifest = json.loads(verify_bytes(source.read_manifest(ref), ref.digest, f"manifest of {ref}"))
    config_digest = manifest["config"]["digest"]
    config_bytes = b"".join(source.blob_chunks(ref, config_digest))
    config = BundleConfig.from_bytes(verify_bytes(config_bytes, config_digest, f"config of {ref}"))
    return BundleDescription(ref, config, tuple(manifest["layers"]))
