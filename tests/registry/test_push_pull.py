"""Bundles through a real docker-registry: push, pull, dedup, verification, skopeo's view."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
from tests.conftest import SMOKE_BUNDLE, write_project
from tests.registry_servers import RunningRegistry

from modelops import api
from modelops.bundle import build_bundle, fetch_bundle
from modelops.bundle.config import (
    ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    TREE_LAYER_MEDIA_TYPE,
    BundleConfig,
    Environment,
    FileEntry,
)
from modelops.bundle.registry import RegistryClient, RegistryHost, RegistrySource, push_bundle
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError
from modelops.contracts.ids import canonical_json, sha256_hex

BIG = 3 << 20  # over the 1 MiB line: travels as a layer of its own


def data_project(root: Path, model: str = "def wire(e, p, s):\n    return {}\n") -> Path:
    write_project(root, {"wire.py": model, "requirements.txt": "# none\n"})
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "contacts.bin").write_bytes(bytes(range(256)) * (BIG // 256))
    return root


def client_for(registry: RunningRegistry) -> RegistryClient:
    return RegistryClient(RegistryHost.parse(registry.host), backoff_s=0.05)


def tree_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_push_then_pull_gives_back_the_same_files(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    project = data_project(tmp_path / "model")
    report = api.push(project, registry=registry.host, repository="team/model", tag="v1")
    ref, dest = api.pull("team/model:v1", tmp_path / "pulled", registry=registry.host)

    assert ref == report.ref == build_bundle(project, "team/model").ref
    assert tree_files(dest) == tree_files(project)
    assert report.tag == "v1" and report.manifest_uploaded


def test_second_push_uploads_nothing_and_code_change_uploads_only_code(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    project = data_project(tmp_path / "dedup")
    first = api.push(project, registry=registry.host, repository="dedup")
    again = api.push(project, registry=registry.host, repository="dedup")
    (project / "wire.py").write_text("def wire(e, p, s):\n    return {'v': b'2'}\n")
    changed = api.push(project, registry=registry.host, repository="dedup")

    assert len(first.uploaded) == 4  # config, tree, requirements.txt, the data file
    assert again.uploaded == [] and again.uploaded_bytes == 0 and not again.manifest_uploaded
    assert changed.ref != first.ref
    built = build_bundle(project, "dedup")
    by_digest = {blob.digest: blob for blob in built.blobs}
    re_uploaded = {by_digest[d].media_type for d in changed.uploaded}
    assert re_uploaded == {CONFIG_MEDIA_TYPE, TREE_LAYER_MEDIA_TYPE}
    assert changed.uploaded_bytes < BIG


def test_unknown_repository_or_digest_is_not_found_naming_it(registry: RunningRegistry) -> None:
    api.push(SMOKE_BUNDLE, registry=registry.host)
    missing_digest = "sha256:" + "e" * 64
    for reference in ("no-such-repo:latest", f"smoke-bundle@{missing_digest}"):
        with pytest.raises(ModelOpsError) as failed:
            api.inspect(reference, registry=registry.host)
        assert failed.value.info.error_class is ErrorClass.NOT_FOUND
        assert "not found in registry" in str(failed.value)
        assert reference.split(":")[0].split("@")[0] in str(failed.value)


def test_tampered_blob_in_registry_storage_is_refused(
    own_registry: RunningRegistry, tmp_path: Path
) -> None:
    project = data_project(tmp_path / "tampered")
    report = api.push(project, registry=own_registry.host, repository="tampered")
    big = next(b for b in build_bundle(project, "tampered").layers if b.size == BIG)
    stored = own_registry.blob_path(big.digest)
    stored.write_bytes(b"x" + stored.read_bytes()[1:])
    cache = tmp_path / "cache"

    with pytest.raises(ModelOpsError) as failed:
        fetch_bundle(report.ref, RegistrySource(client_for(own_registry)), cache)

    assert failed.value.info.error_class is ErrorClass.BAD_BUNDLE
    assert "corrupt" in str(failed.value) and big.digest in str(failed.value)
    assert not (cache / "bundles" / report.ref.hex).exists()
    assert [p.name for p in (cache / "bundles").iterdir() if p.is_dir()] == []


def push_raw(
    client: RegistryClient, repository: str, tar_members: list[tuple[str, bytes]]
) -> BundleRef:
    """Push a hand-made bundle whose tree layer holds exactly `tar_members`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in tar_members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    layer = buffer.getvalue()
    config = BundleConfig(
        files=tuple(
            FileEntry(name, "sha256:" + sha256_hex(data), len(data), 0o644)
            for name, data in tar_members
        ),
        environment=Environment("none", (), "sha256:" + sha256_hex(b"{}")),
        wire="wire:wire",
    ).to_bytes()
    blobs = {"sha256:" + sha256_hex(data): data for data in (layer, config)}
    for digest, data in blobs.items():
        client.upload_blob(repository, digest, len(data), lambda s, e, d=data: iter([d[s:e]]))
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": {
                "mediaType": CONFIG_MEDIA_TYPE,
                "digest": "sha256:" + sha256_hex(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": TREE_LAYER_MEDIA_TYPE,
                    "digest": "sha256:" + sha256_hex(layer),
                    "size": len(layer),
                }
            ],
        }
    )
    digest = "sha256:" + sha256_hex(manifest)
    client.put_manifest(repository, digest, manifest, MANIFEST_MEDIA_TYPE)
    return BundleRef(repository, digest)


def test_path_traversal_bundle_from_a_registry_is_refused(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    client = client_for(registry)
    ref = push_raw(
        client,
        "evil",
        [("wire.py", b"def wire(e,p,s): return {}"), ("../escaped.py", b"print('owned')")],
    )
    cache = tmp_path / "cache"
    with pytest.raises(ModelOpsError) as failed:
        fetch_bundle(ref, RegistrySource(client), cache)
    assert failed.value.info.error_class is ErrorClass.BAD_BUNDLE
    assert "unsafe path '../escaped.py'" in str(failed.value)
    assert not (cache / "bundles" / "escaped.py").exists()
    assert not list(tmp_path.rglob("escaped.py"))


def test_skopeo_reads_what_we_push(registry: RunningRegistry, tmp_path: Path) -> None:
    project = data_project(tmp_path / "skopeo-model")
    report = api.push(project, registry=registry.host, repository="skopeo-model", tag="v1")
    image = f"docker://{registry.host}/skopeo-model:v1"

    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", image],
        capture_output=True,
        check=True,
    ).stdout
    assert "sha256:" + sha256_hex(raw) == report.ref.digest
    manifest = json.loads(raw)
    assert manifest["artifactType"] == ARTIFACT_TYPE

    layout = tmp_path / "copied"
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", image, f"oci:{layout}:v1"],
        capture_output=True,
        check=True,
    )
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [report.ref.digest]
    for descriptor in [manifest["config"], *manifest["layers"]]:
        blob = layout / "blobs" / "sha256" / descriptor["digest"].removeprefix("sha256:")
        assert "sha256:" + sha256_hex(blob.read_bytes()) == descriptor["digest"]
        assert os.path.getsize(blob) == descriptor["size"]


def test_a_tag_moved_during_push_is_not_moved_back_without_force(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    ours = build_bundle(data_project(tmp_path / "ours"), "raced")
    theirs = build_bundle(
        data_project(tmp_path / "theirs", "def wire(e, p, s):\n    return {'t': b''}\n"), "raced"
    )
    client = client_for(registry)

    class RacedClient(RegistryClient):
        """Someone else pushes `latest` while our blobs upload: a real second push."""

        def upload_blob(self, *args, **kwargs) -> None:
            if client.manifest_digest("raced", "latest") != theirs.ref.digest:
                push_bundle(theirs, client, tag="latest")
            super().upload_blob(*args, **kwargs)

    raced = RacedClient(RegistryHost.parse(registry.host))
    with pytest.raises(ModelOpsError) as failed:
        push_bundle(ours, raced, tag="latest")
    assert "tag raced:latest moved during the push" in str(failed.value)
    assert "--force" in str(failed.value)
    assert client.manifest_digest("raced", "latest") == theirs.ref.digest
    assert client.has_manifest("raced", ours.ref.digest)  # stored by digest all the same

    push_bundle(ours, client, tag="latest", force=True)
    assert client.manifest_digest("raced", "latest") == ours.ref.digest


def test_simultaneous_pushes_of_one_bundle_all_succeed(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    """Four clients push the same bundle at the same moment (a sweep launched from a loop)."""
    errors: list[Exception] = []
    for round_ in range(8):
        bundle = build_bundle(data_project(tmp_path / str(round_)), f"simultaneous-{round_}")

        def push(bundle=bundle, errors=errors) -> None:
            try:
                push_bundle(bundle, client_for(registry), tag="latest")
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=push) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client_for(registry).manifest_digest(bundle.ref.repository, "latest") == (
            bundle.ref.digest
        )
    assert errors == []
