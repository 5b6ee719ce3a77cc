"""How a call uses the embedded bundle store, counted on the real `LayoutStore` (a counting
wrapper around each real method, nothing faked): how many stores it opens and how often it
reads each bundle's manifest and each blob. Only the calling thread is counted: a Dask
worker opens its own store, as it must, and the embedded cluster's workers are threads of
this process."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelops.bundle import LayoutStore
from modelops.contracts import BundleRef


@dataclass
class StoreUse:
    opened: int = 0
    manifest_reads: Counter[BundleRef] = field(default_factory=Counter)
    blob_reads: Counter[str] = field(default_factory=Counter)  # by digest


def count_store_use(monkeypatch: pytest.MonkeyPatch) -> StoreUse:
    """From now until the test ends, every LayoutStore opened and read is counted."""
    use = StoreUse()
    caller = threading.current_thread()
    real_init = LayoutStore.__init__
    real_read_manifest = LayoutStore.read_manifest
    real_blob_chunks = LayoutStore.blob_chunks

    def counted() -> bool:
        return threading.current_thread() is caller

    def init(self: LayoutStore, root: Path) -> None:
        if counted():
            use.opened += 1
        real_init(self, root)

    def read_manifest(self: LayoutStore, ref: BundleRef) -> bytes:
        if counted():
            use.manifest_reads[ref] += 1
        return real_read_manifest(self, ref)

    def blob_chunks(self: LayoutStore, ref: BundleRef, digest: str) -> Iterator[bytes]:
        if counted():
            use.blob_reads[digest] += 1
        return real_blob_chunks(self, ref, digest)

    monkeypatch.setattr(LayoutStore, "__init__", init)
    monkeypatch.setattr(LayoutStore, "read_manifest", read_manifest)
    monkeypatch.setattr(LayoutStore, "blob_chunks", blob_chunks)
    return use
