"""Which bundle store is in use: a registry when one is named (flag or
MODELOPS_BUNDLE_REGISTRY), else the embedded image-layout folder. The client, the CLI and
every worker decide the same way, each from its own settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

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


StoreInUse = LayoutStore | RegistrySource  # what `open_store` opens: the folder or a registry


def registry_client(
    registry: str,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
) -> RegistryClient:
    host = RegistryHost.parse(registry, insecure=insecure)
    return RegistryClient(host, resolve_credentials(host, username, password))


@dataclass(frozen=True)
class Registry:
    """Where bundles go and how to get in, travelling together (as Dask's `Security` does):
    a registry host, never a repository path; credentials, else the Docker credential store
    and MODELOPS_REGISTRY_USERNAME/PASSWORD; and whether plain HTTP is allowed off this
    machine. No host means MODELOPS_BUNDLE_REGISTRY, or the embedded store without it.
    The password shows in no repr, and a Registry refuses to be pickled into a task graph."""

    host: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    insecure: bool = False

    @classmethod
    def of(cls, registry: Registry | str | None) -> Registry:
        """A Registry as given, or one for a bare host."""
        return registry if isinstance(registry, Registry) else cls(registry)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Registry holds credentials and is never pickled; workers read theirs")

    def client(self, settings: Settings) -> RegistryClient | None:
        """A client for this registry (settings fill what it leaves out); None when no
        registry is named anywhere: the embedded store is in use."""
        host = self.host or settings.bundle_registry
        if not host:
            return None
        insecure = self.insecure or settings.registry_insecure
        return registry_client(host, insecure, self.username, self.password)


def open_store(settings: Settings, registry: Registry | None = None) -> StoreInUse:
    """The bundle store in use, opened once per call and handed to whatever in the call
    reads or publishes bundles."""
    client = (registry or Registry()).client(settings)
    return LayoutStore(settings.bundle_store) if client is None else RegistrySource(client)


@contextmanager
def store_for_call(settings: Settings, registry: Registry | None = None) -> Iterator[StoreInUse]:
    """`open_store` for one call: a registry's connections are closed when the call ends
    (a worker's store, which lives as long as the worker, is opened with `open_store`)."""
    store = open_store(settings, registry)
    try:
        yield store
    finally:
        if isinstance(store, RegistrySource):
            store.client.close()


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
