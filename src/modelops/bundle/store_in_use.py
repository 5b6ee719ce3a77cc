"""Which bundle store is in use: a registry when one is named (flag or
MODELOPS_BUNDLE_REGISTRY), else the embedded image-layout folder. The client, the CLI and
every worker decide the same way, each from its own settings."""

from __future__ import annotations

from typing import Protocol

from modelops.bundle.cache import BundleSource
from modelops.bundle.layout import LayoutStore
from modelops.bundle.registry import (
    RegistryClient,
    RegistryHost,
    RegistrySource,
    resolve_credentials,
)
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError
from modelops.contracts.refs import check_repository
from modelops.settings import Settings


class BundleStore(BundleSource, Protocol):
    def resolve_tag(self, repository: str, tag: str) -> BundleRef: ...


def registry_client(
    registry: str,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
) -> RegistryClient:
    host = RegistryHost.parse(registry, insecure=insecure)
    return RegistryClient(host, resolve_credentials(host, username, password))


def open_store(
    settings: Settings,
    registry: str | None = None,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
) -> LayoutStore | RegistrySource:
    registry = registry or settings.bundle_registry
    if not registry:
        return LayoutStore(settings.bundle_store)
    client = registry_client(registry, insecure or settings.registry_insecure, username, password)
    return RegistrySource(client)


def parse_reference(text: str, store: BundleStore) -> BundleRef:
    """`repository@sha256:…` as is; `repository:tag` (or a bare repository, meaning
    `latest`) resolved to a digest once, here, and never used again."""
    if "@" in text:
        return BundleRef.parse(text)
    repository, _, tag = text.strip().rpartition(":") if ":" in text else (text, "", "latest")
    if not repository:
        raise ModelOpsError(
            ErrorClass.BAD_REFERENCE,
            f"malformed bundle reference {text!r}: expected repository@sha256:<64 hex> "
            "or repository:tag",
        )
    return store.resolve_tag(check_repository(repository), tag)
