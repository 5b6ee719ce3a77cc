"""`check_bundle` opens the bundle store once and reads the bundle's manifest and config at
most once, though it both publishes or locates the bundle and fetches it into an empty
cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.bundle.store_use import count_store_use
from tests.conftest import write_project

from modelops import api
from modelops.bundle import LayoutStore, build_bundle
from modelops.settings import Settings


@pytest.mark.parametrize("given", ["reference", "folder"])
def test_check_bundle_opens_the_store_once_and_reads_the_bundle_at_most_once(
    given: str, tmp_path: Path, store: LayoutStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire = f"def wire(entrypoint, params, seed):\n    return {{{given!r}: b''}}\n"
    project = write_project(tmp_path / "checked-once", {"wire.py": wire})
    built = build_bundle(project)
    if given == "reference":
        store.put(built)
    fetched = Settings.from_env().cache / "bundles" / built.ref.hex
    assert not fetched.exists()  # so the check fetches it, and a fetch reads the store too
    use = count_store_use(monkeypatch)

    check = api.check_bundle(str(built.ref) if given == "reference" else str(project))

    assert check.ref == built.ref and check.wire == "wire:wire"
    assert fetched.is_dir()
    assert use.opened == 1
    assert use.manifest_reads[built.ref] <= 1
    assert use.blob_reads[built.config_blob.digest] <= 1
