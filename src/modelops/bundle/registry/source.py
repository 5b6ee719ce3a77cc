"""A registry as a BundleSource: what workers fetch from when MODELOPS_BUNDLE_REGISTRY is set."""

from __future__ import annotations

from collections.abc import Iterator

from modelops.bundle.registry.client import RegistryClient
from modelops.contracts import BundleRef


class RegistrySource:
    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"RegistrySource({str(self.client.host)!r})"

    def read_manifest(self, ref: BundleRef) -> bytes:
        return self.client.get_manifest(ref.repository, ref.digest).data

    def blob_chunks(self, ref: BundleRef, digest: str) -> Iterator[bytes]:
        return self.client.blob_chunks(ref.repository, digest)

    def resolve_tag(self, repository: str, tag: str) -> BundleRef:
        return BundleRef(repository, self.client.get_manifest(repository, tag).digest)
