"""Issue 10: what the worker-side cache takes from a source is checked and bounded.

One file's bytes at two paths; environments keyed on a lock digest recomputed from the files;
blobs read no further than their declared size; sparse and special tar members; manifest and
config caps; malformed manifests and digests that would make paths; scratch folders of a fetch
that was killed; a bundle evicted from under a worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.bundle.test_layout_and_cache import (
    OK,
    CountingSource,
    assert_cache_clean,
    file_blob,
    file_entry,
    regular,
    snapshot,
    tar_blob,
)
from tests.registry_servers import RunningRegistry

from modelops import api
from modelops.bundle import BuiltBundle, LayoutStore, build_bundle, fetch_bundle
from modelops.bundle import build as build_module
from modelops.bundle.build import LARGE_FILE_BYTES, Blob, manifest_bytes
from modelops.bundle.config import (
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    TREE_LAYER_MEDIA_TYPE,
    BundleConfig,
    Environment,
    FileEntry,
    lock_digest,
)
from modelops.bundle.digests import CHUNK
from modelops.bundle.inspect import describe_bundle
from modelops.bundle.layout import INDEX_MEDIA_TYPE, REPOSITORY_ANNOTATION
from modelops.bundle.registry import RegistryClient, RegistryHost, RegistrySource, push_bundle
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError, SimTask
from modelops.contracts.ids import canonical_json, sha256_hex
from modelops.runtime import TaskRunner
from modelops.runtime.childdir import CHILDREN
from modelops.runtime.env import env_digest
from modelops.runtime.eviction import LAST_USED, evict_lru
from modelops.settings import Settings

WIRE = b"def wire(entrypoint, params, seed):\n    return {}\n"
NO_ENV = Environment("none", (), lock_digest({}, ()))


def digest_of(data: bytes) -> str:
    return "sha256:" + sha256_hex(data)


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def tree_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def crafted(
    layers: list[Blob],
    listed: list[FileEntry],
    environment: Environment = NO_ENV,
    repository: str = "crafted",
) -> BuiltBundle:
    """A hand-made bundle, as a careless or malicious publisher could make one."""
    config = BundleConfig(files=tuple(listed), environment=environment, wire="wire:wire")
    data = config.to_bytes()
    config_blob = Blob(CONFIG_MEDIA_TYPE, digest_of(data), len(data), data)
    manifest = manifest_bytes(config_blob, layers)
    return BuiltBundle(
        BundleRef(repository, digest_of(manifest)), config, config_blob, tuple(layers), manifest
    )


def store_raw(
    store: LayoutStore, manifest: object, blobs: list[bytes] = (), repository: str = "raw"
) -> BundleRef:
    """Write an OCI image layout by hand (any tool could): blobs, a manifest of any shape,
    an index entry. `LayoutStore.put` would refuse some of these; a worker must too."""
    data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    folder = store.root / "blobs" / "sha256"
    folder.mkdir(parents=True, exist_ok=True)
    (store.root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    for blob in [*blobs, data]:
        (folder / sha256_hex(blob)).write_bytes(blob)
    index_path = store.root / "index.json"
    index = (
        json.loads(index_path.read_text())
        if index_path.exists()
        else {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}
    )
    index["manifests"].append(
        {
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": digest_of(data),
            "size": len(data),
            "annotations": {REPOSITORY_ANNOTATION: repository},
        }
    )
    index_path.write_text(json.dumps(index))
    return BundleRef(repository, digest_of(data))


def manifest_of(bundle: BuiltBundle) -> dict:
    return json.loads(bundle.manifest)


def blob_bytes(bundle: BuiltBundle) -> list[bytes]:
    return [blob.source for blob in bundle.blobs]  # crafted bundles hold bytes only


def refused(fetch: Callable[[], object]) -> str:
    """The message of the bad-bundle error `fetch` raises; it must be one line."""
    with pytest.raises(ModelOpsError) as excinfo:
        fetch()
    assert excinfo.value.info.error_class is ErrorClass.BAD_BUNDLE, excinfo.value.info
    assert "\n" not in str(excinfo.value)
    return excinfo.value.info.message


def client_for(registry: RunningRegistry) -> RegistryClient:
    return RegistryClient(RegistryHost.parse(registry.host), backoff_s=0.05)


# --- 1. one file's bytes at two paths -------------------------------------------------------

TWIN = bytes(range(256)) * (LARGE_FILE_BYTES // 256 + 1)  # over the line: a layer of its own
TWIN_WIRE = b"""
import hashlib, pathlib

def wire(entrypoint, params, seed):
    data = pathlib.Path(__file__).parent / "data"
    return {n: hashlib.sha256((data / f"{n}.bin").read_bytes()).hexdigest().encode()
            for n in ("a", "b", "c")}
"""


def twins_project(root: Path) -> Path:
    return write_files(
        root,
        {
            "wire.py": TWIN_WIRE,
            "data/a.bin": TWIN,
            "data/b.bin": TWIN,
            "data/c.bin": TWIN[::-1],
        },
    )


def test_one_large_file_at_two_paths_is_fetched_from_the_embedded_store(tmp_path: Path) -> None:
    bundle = build_bundle(twins_project(tmp_path / "twins"), repository="twins")
    twin_layers = [layer for layer in bundle.layers if layer.digest == digest_of(TWIN)]
    assert len(twin_layers) == 2  # the shape that could not be fetched
    store = LayoutStore(tmp_path / "store")
    store.put(bundle)
    source = CountingSource(store)

    fetched = fetch_bundle(bundle.ref, source, tmp_path / "cache")

    assert tree_files(fetched.root) == tree_files(tmp_path / "twins")
    assert source.downloads[digest_of(TWIN)] == 1  # downloaded once, placed twice
    a, b = (fetched.root / "data" / name for name in ("a.bin", "b.bin"))
    assert a.stat().st_ino != b.stat().st_ino and a.stat().st_nlink == 1  # copies, not links
    assert [p.name for p in (tmp_path / "cache" / "bundles").glob(".partial-*")] == []


def test_one_large_file_at_two_paths_is_pulled_from_a_registry(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    project = twins_project(tmp_path / "twins")
    report = api.push(project, registry=registry.host, repository="twins-pull")
    ref, dest = api.pull(str(report.ref), tmp_path / "pulled", registry=registry.host)
    assert ref == report.ref
    assert tree_files(dest) == tree_files(project)


def test_a_worker_runs_a_bundle_with_one_large_file_at_two_paths(
    runner: TaskRunner, store: LayoutStore, tmp_path: Path
) -> None:
    ref = store.put(build_bundle(twins_project(tmp_path / "twins"), repository="twins-run"))
    result = runner.run(SimTask(ref, "", {}, seed=1))
    assert result.ok, result.error
    assert {name: out.data for name, out in result.outputs.items()} == {
        "a": sha256_hex(TWIN).encode(),
        "b": sha256_hex(TWIN).encode(),
        "c": sha256_hex(TWIN[::-1]).encode(),
    }


# --- 2. the lock digest is recomputed, not believed -----------------------------------------


def requirements_bundle(requirements: bytes, claimed_lock: str | None = None) -> BuiltBundle:
    """A bundle whose environment is `requirements`; it claims `claimed_lock` if given."""
    listed = [file_entry("requirements.txt", requirements), file_entry("wire.py", WIRE)]
    true_lock = lock_digest({e.path: e.digest for e in listed}, ("requirements.txt",))
    environment = Environment("requirements.txt", ("requirements.txt",), claimed_lock or true_lock)
    layers = [tar_blob([(regular("wire.py"), WIRE)]), file_blob("requirements.txt", requirements)]
    return crafted(layers, listed, environment, repository="liar" if claimed_lock else "honest")


def test_the_lock_digest_is_the_one_the_build_records(tmp_path: Path) -> None:
    """Recomputing gives what build_bundle wrote, for every kind of environment."""
    projects = {
        "uv.lock": {
            "pyproject.toml": b'[project]\nname = "x"\nversion = "0"\ndependencies = ["six"]\n',
            "uv.lock": b"version = 1\n",
            ".python-version": b"3.11\n",
        },
        "requirements.txt": {"requirements.txt": b"six\n"},
        "pyproject.toml": {
            "pyproject.toml": b'[project]\nname = "x"\nversion = "0"\ndependencies = ["six"]\n'
        },
        "none": {".python-version": b"3.11\n"},
    }
    store = LayoutStore(tmp_path / "store")
    for kind, files in projects.items():
        bundle = build_bundle(write_files(tmp_path / kind, {"wire.py": WIRE, **files}), "kinds")
        environment = bundle.config.environment
        assert environment.kind == kind
        digests = {f.path: f.digest for f in bundle.config.files}
        assert lock_digest(digests, environment.files) == environment.lock_digest
        store.put(bundle)
        assert fetch_bundle(bundle.ref, store, tmp_path / "cache").config == bundle.config


def test_a_bundle_claiming_another_bundles_lock_digest_is_refused(tmp_path: Path) -> None:
    honest = requirements_bundle(b"# the honest environment\n")
    honest_lock = honest.config.environment.lock_digest
    liar = requirements_bundle(b"evil-package==6.6.6\n", claimed_lock=honest_lock)
    store = LayoutStore(tmp_path / "store")
    store.put(honest)
    store.put(liar)  # the store keeps what it is given; a worker must not believe it
    cache = tmp_path / "cache"

    message = refused(lambda: fetch_bundle(liar.ref, store, cache))

    true_lock = lock_digest(
        {"requirements.txt": digest_of(b"evil-package==6.6.6\n")}, ["requirements.txt"]
    )
    assert f"config of {liar.ref} claims environment lock digest {honest_lock}" in message
    assert f"but its environment files (requirements.txt) give {true_lock}; refused" in message
    assert_cache_clean(cache, liar.ref)
    assert fetch_bundle(honest.ref, store, cache).config == honest.config


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        (Environment("requirements.txt", (), lock_digest({}, ())), "built from 'requirements.txt'"),
        (
            Environment("pip.lock", (), lock_digest({}, ())),
            "environment kind 'pip.lock' is unknown",
        ),
        (
            Environment("none", ("absent.txt",), "sha256:" + "1" * 64),
            "environment file 'absent.txt' is not among its files",
        ),
        (Environment("none", (), "sha256:ABC"), "lock_digest is not"),
    ],
)
def test_an_environment_that_does_not_add_up_is_refused(
    tmp_path: Path, environment: Environment, expected: str
) -> None:
    bundle = crafted([tar_blob([(regular("wire.py"), WIRE)])], [file_entry("wire.py", WIRE)])
    config = json.loads(bundle.config.to_bytes())
    config["environment"] = {
        "kind": environment.kind,
        "files": list(environment.files),
        "lock_digest": environment.lock_digest,
    }
    config_data = canonical_json(config)
    manifest = manifest_of(bundle)
    manifest["config"].update(digest=digest_of(config_data), size=len(config_data))
    store = LayoutStore(tmp_path / "store")
    ref = store_raw(store, manifest, [config_data, bundle.layers[0].source])
    assert expected in refused(lambda: fetch_bundle(ref, store, tmp_path / "cache"))


def test_a_registry_bundle_claiming_another_lock_digest_is_refused(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    honest = requirements_bundle(b"# honest, in a registry\n")
    liar = requirements_bundle(b"# not honest\n", honest.config.environment.lock_digest)
    client = client_for(registry)
    push_bundle(liar, client)
    cache = tmp_path / "cache"
    message = refused(lambda: fetch_bundle(liar.ref, RegistrySource(client), cache))
    assert "claims environment lock digest" in message
    assert_cache_clean(cache, liar.ref)


def test_a_worker_never_builds_an_environment_for_a_false_lock_claim(
    runner: TaskRunner, store: LayoutStore
) -> None:
    honest = requirements_bundle(b"# the environment the liar wants to build\n")
    liar = requirements_bundle(
        b"# a different environment\n", honest.config.environment.lock_digest
    )
    store.put(honest)
    store.put(liar)
    cache = Settings.from_env().cache

    failed = runner.run(SimTask(liar.ref, "", {}, seed=1))

    assert failed.error is not None
    assert failed.error.error_class is ErrorClass.BAD_BUNDLE
    assert "claims environment lock digest" in failed.error.message
    honest_env = cache / "envs" / env_digest(fetch_bundle(honest.ref, store, cache)).split(":")[1]
    assert not honest_env.exists()  # the liar built nothing in the honest bundle's place
    assert runner.run(SimTask(honest.ref, "", {}, seed=1)).ok
    assert honest_env.is_dir()


CONFIG_FAULTS: dict[str, tuple[Callable[[dict], object], str]] = {
    "a JSON list": (lambda c: [c], "it is a JSON list, not an object"),
    "runtime a list": (
        lambda c: {**c, "runtime": ["warm"]},
        "runtime is a JSON list, not an object",
    ),
    "isolation a list": (
        lambda c: {**c, "runtime": {"isolation": ["warm"]}},
        "runtime.isolation \"['warm']\" is unknown",
    ),
    "files an object": (lambda c: {**c, "files": {}}, "files is a JSON object, not a list"),
    "file digest a path": (
        lambda c: {**c, "files": [{**c["files"][0], "digest": "sha256:../x"}]},
        "files[0].digest is not 'sha256:' and 64 lowercase hex",
    ),
    "file size a string": (
        lambda c: {**c, "files": [{**c["files"][0], "size": "14"}]},
        "files[0].size is not a whole number of bytes",
    ),
    "a path twice": (lambda c: {**c, "files": c["files"] * 2}, "it lists 'wire.py' twice"),
    "no wire": (lambda c: {k: v for k, v in c.items() if k != "wire"}, "it has no wire"),
    "environment files a string": (
        lambda c: {**c, "environment": {**c["environment"], "files": "uv.lock"}},
        "environment.files is a JSON string, not a list",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_FAULTS))
def test_a_malformed_config_is_a_bad_bundle_saying_what_is_wrong(tmp_path: Path, case: str) -> None:
    change, expected = CONFIG_FAULTS[case]
    bundle = crafted([tar_blob([(regular("wire.py"), WIRE)])], [file_entry("wire.py", WIRE)])
    config_data = json.dumps(change(json.loads(bundle.config.to_bytes()))).encode()
    manifest = manifest_of(bundle)
    manifest["config"].update(digest=digest_of(config_data), size=len(config_data))
    store = LayoutStore(tmp_path / "store")
    ref = store_raw(store, manifest, [config_data, bundle.layers[0].source])
    cache = tmp_path / "cache"
    message = refused(lambda: fetch_bundle(ref, store, cache))
    assert message == f"config of {ref} is malformed: {expected}"
    assert_cache_clean(cache, ref)


# --- 3. bounds: declared sizes, sparse and special members, manifest and config caps -------


def sparse_tar(tmp_path: Path, tar_format: str) -> tuple[bytes, FileEntry]:
    """A tree layer of a few KiB holding a 64 MiB GNU sparse member (made by GNU tar),
    and the config entry that truly describes the member's expanded content."""
    folder = tmp_path / f"sparse-{tar_format}"
    folder.mkdir()
    with (folder / "big.bin").open("wb") as fh:
        fh.write(b"hello")
        fh.truncate(64 << 20)
    subprocess.run(
        ["tar", "--sparse", f"--format={tar_format}", "-cf", "layer.tar", "big.bin"],
        cwd=folder,
        check=True,
    )
    with (folder / "big.bin").open("rb") as fh:
        digest = "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()
    return (folder / "layer.tar").read_bytes(), FileEntry("big.bin", digest, 64 << 20, 0o644)


@pytest.mark.parametrize("tar_format", ["gnu", "posix"])
def test_a_sparse_tar_member_is_refused_before_anything_is_written(
    tmp_path: Path, tar_format: str
) -> None:
    layer, entry = sparse_tar(tmp_path, tar_format)
    assert len(layer) <= 20 << 10
    bundle = crafted([Blob(TREE_LAYER_MEDIA_TYPE, digest_of(layer), len(layer), layer)], [entry])
    store = LayoutStore(tmp_path / "store")
    store.put(bundle)
    cache = tmp_path / "cache"
    message = refused(lambda: fetch_bundle(bundle.ref, store, cache))
    assert "'big.bin', which is not a regular file (a sparse file" in message
    assert_cache_clean(cache, bundle.ref)


def special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


@pytest.mark.parametrize(
    ("kind", "described"),
    [
        (tarfile.FIFOTYPE, "a fifo"),
        (tarfile.CHRTYPE, "a character device"),
        (tarfile.BLKTYPE, "a block device"),
        (tarfile.CONTTYPE, "a contiguous file"),
    ],
)
def test_special_tar_members_are_refused(tmp_path: Path, kind: bytes, described: str) -> None:
    member = special("odd.py", kind)
    layer = tar_blob([(regular("wire.py"), WIRE), (member, OK)])
    bundle = crafted([layer], [file_entry("wire.py", WIRE), file_entry("odd.py", OK)])
    store = LayoutStore(tmp_path / "store")
    store.put(bundle)
    cache = tmp_path / "cache"
    message = refused(lambda: fetch_bundle(bundle.ref, store, cache))
    assert f"'odd.py', which is not a regular file ({described}" in message
    assert_cache_clean(cache, bundle.ref)
    assert not list(cache.rglob("odd.py"))


def test_a_tree_member_whose_size_differs_from_the_config_is_refused(tmp_path: Path) -> None:
    listed = FileEntry("wire.py", digest_of(WIRE), len(WIRE) + 1, 0o644)
    bundle = crafted([tar_blob([(regular("wire.py"), WIRE)])], [listed])
    store = LayoutStore(tmp_path / "store")
    store.put(bundle)
    message = refused(lambda: fetch_bundle(bundle.ref, store, tmp_path / "cache"))
    assert f"wire.py is {len(WIRE)} bytes in its tree layer, but its config lists" in message


def test_a_file_layer_whose_size_differs_from_the_config_is_refused(tmp_path: Path) -> None:
    data = b"x" * 100
    listed = [file_entry("wire.py", WIRE), FileEntry("data/x.bin", digest_of(data), 99, 0o644)]
    bundle = crafted(
        [tar_blob([(regular("wire.py"), WIRE)]), file_blob("data/x.bin", data)], listed
    )
    store = LayoutStore(tmp_path / "store")
    store.put(bundle)
    source = CountingSource(store)
    message = refused(lambda: fetch_bundle(bundle.ref, source, tmp_path / "cache"))
    assert "layer for data/x.bin declares 100 bytes, but its config lists 99" in message
    assert source.downloads[digest_of(data)] == 0  # refused before it was downloaded


@pytest.mark.parametrize("which", ["tree", "file", "config"])
@pytest.mark.parametrize("declared", ["smaller", "larger"])
def test_a_blob_of_another_size_than_declared_is_refused(
    tmp_path: Path, which: str, declared: str
) -> None:
    data = b"y" * 5000
    bundle = crafted(
        [tar_blob([(regular("wire.py"), WIRE)]), file_blob("data/y.bin", data)],
        [file_entry("wire.py", WIRE), file_entry("data/y.bin", data)],
    )
    manifest = manifest_of(bundle)
    descriptor = {
        "tree": manifest["layers"][0],
        "file": manifest["layers"][1],
        "config": manifest["config"],
    }[which]
    if which == "file":  # the config must agree, or the fetch stops before downloading
        config = json.loads(bundle.config.to_bytes())
        size = 4999 if declared == "smaller" else 5001
        config["files"][1]["size"] = size  # files[1] is data/y.bin
        config_data = canonical_json(config)
        manifest["config"].update(digest=digest_of(config_data), size=len(config_data))
        blobs = [config_data, *(blob.source for blob in bundle.layers)]
    else:
        blobs = blob_bytes(bundle)
    descriptor["size"] += -1 if declared == "smaller" else 1
    store = LayoutStore(tmp_path / "store")
    ref = store_raw(store, manifest, blobs)
    cache = tmp_path / "cache"
    message = refused(lambda: fetch_bundle(ref, store, cache))
    if declared == "smaller":
        assert f"is corrupt: it is larger than its declared size of {descriptor['size']}" in message
    else:
        assert f"is corrupt: it has {descriptor['size'] - 1} bytes, not its declared" in message
    assert_cache_clean(cache, ref)


def test_a_registry_blob_longer_than_its_descriptor_says_is_refused(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    """distribution stores a manifest whatever sizes it declares; the worker holds to them."""
    bundle = crafted([tar_blob([(regular("wire.py"), WIRE)])], [file_entry("wire.py", WIRE)])
    client = client_for(registry)
    push_bundle(bundle, client)
    manifest = manifest_of(bundle)
    manifest["layers"][0]["size"] -= 512
    data = canonical_json(manifest)
    client.put_manifest("crafted", digest_of(data), data, MANIFEST_MEDIA_TYPE)
    ref = BundleRef("crafted", digest_of(data))
    cache = tmp_path / "cache"
    message = refused(lambda: fetch_bundle(ref, RegistrySource(client), cache))
    assert f"is corrupt: it is larger than its declared size of {bundle.layers[0].size - 512}" in (
        message
    )
    assert_cache_clean(cache, ref)


class OverflowingSource:
    """A source that, like a hostile registry, keeps sending after a blob's declared end."""

    def __init__(self, store: LayoutStore, digest: str, extra: int) -> None:
        self.store, self.digest, self.extra = store, digest, extra
        self.sent = 0
        self.closed = False

    def read_manifest(self, ref: BundleRef) -> bytes:
        return self.store.read_manifest(ref)

    def blob_chunks(self, ref: BundleRef, digest: str) -> Iterator[bytes]:
        if digest != self.digest:
            yield from self.store.blob_chunks(ref, digest)
            return
        try:
            for chunk in [*self.store.blob_chunks(ref, digest), *[b"\0" * CHUNK] * self.extra]:
                self.sent += len(chunk)
                yield chunk
        finally:
            self.closed = True


@pytest.mark.parametrize("which", ["tree", "config"])
def test_reading_stops_at_the_declared_size(tmp_path: Path, which: str) -> None:
    bundle = crafted([tar_blob([(regular("wire.py"), WIRE)])], [file_entry("wire.py", WIRE)])
    store = LayoutStore(tmp_path / "store")
    store.put(bundle)
    blob = bundle.layers[0] if which == "tree" else bundle.config_blob
    source = OverflowingSource(store, blob.digest, extra=64)  # 64 MiB more than declared
    cache = tmp_path / "cache"
    message = refused(lambda: fetch_bundle(bundle.ref, source, cache))
    assert source.sent <= blob.size + CHUNK  # at most one chunk past the end was read
    assert source.closed  # and the download was let go
    assert f"blob {blob.digest} of {bundle.ref} is corrupt: it is larger than" in message
    assert_cache_clean(cache, bundle.ref)


def test_a_config_declared_over_the_cap_is_refused_before_downloading(tmp_path: Path) -> None:
    bundle = crafted([tar_blob([(regular("wire.py"), WIRE)])], [file_entry("wire.py", WIRE)])
    manifest = manifest_of(bundle)
    manifest["config"]["size"] = MAX_CONFIG_BYTES + 1
    store = LayoutStore(tmp_path / "store")
    ref = store_raw(store, manifest, blob_bytes(bundle))
    source = CountingSource(store)
    message = refused(lambda: fetch_bundle(ref, source, tmp_path / "cache"))
    assert f"declares {MAX_CONFIG_BYTES + 1} bytes, more than the {MAX_CONFIG_BYTES}" in message
    assert source.downloads == Counter()


class RawManifestSource:
    """A source that hands over the stored manifest as it is, whatever its size."""

    def __init__(self, store: LayoutStore) -> None:
        self.store = store

    def read_manifest(self, ref: BundleRef) -> bytes:
        return self.store.blob_path(ref.digest).read_bytes()

    def blob_chunks(self, ref: BundleRef, digest: str) -> Iterator[bytes]:
        return self.store.blob_chunks(ref, digest)


def test_a_manifest_over_4_mib_is_refused(tmp_path: Path) -> None:
    bundle = crafted([tar_blob([(regular("wire.py"), WIRE)])], [file_entry("wire.py", WIRE)])
    manifest = manifest_of(bundle)
    manifest["annotations"] = {"padding": "p" * MAX_MANIFEST_BYTES}
    store = LayoutStore(tmp_path / "store")
    ref = store_raw(store, manifest, blob_bytes(bundle))
    cache = tmp_path / "cache"

    read = refused(lambda: store.read_manifest(ref))
    fetched_from_store = refused(lambda: fetch_bundle(ref, store, cache))
    fetched_raw = refused(lambda: fetch_bundle(ref, RawManifestSource(store), cache))

    assert f"manifest of {ref} in {store.root} is larger than the 4194304 bytes" in read
    assert fetched_from_store == read
    assert f"more than the {MAX_MANIFEST_BYTES} allowed" in fetched_raw
    assert_cache_clean(cache, ref)


def test_the_store_refuses_to_put_what_no_worker_would_read(tmp_path: Path) -> None:
    bundle = crafted([tar_blob([(regular("wire.py"), WIRE)])], [file_entry("wire.py", WIRE)])
    huge = b" " * (MAX_MANIFEST_BYTES + 1)
    too_big = BuiltBundle(
        BundleRef("big", digest_of(huge)), bundle.config, bundle.config_blob, bundle.layers, huge
    )
    store = LayoutStore(tmp_path / "store")
    message = refused(lambda: store.put(too_big))
    assert f"is {MAX_MANIFEST_BYTES + 1} bytes, more than the {MAX_MANIFEST_BYTES}" in message
    assert not (store.root / "index.json").exists()


# --- 4. malformed manifests and digests that would make paths -------------------------------


def good_manifest() -> tuple[dict, list[bytes]]:
    bundle = crafted([tar_blob([(regular("wire.py"), WIRE)])], [file_entry("wire.py", WIRE)])
    return manifest_of(bundle), blob_bytes(bundle)


def without(where: dict, key: str, manifest: dict) -> dict:
    del where[key]
    return manifest


def layer_with(manifest: dict, **fields: object) -> dict:
    manifest["layers"][0].update(fields)
    return manifest


MALFORMED: dict[str, tuple[Callable[[dict], object], str]] = {
    "a JSON list": (lambda m: [m], "it is a JSON list, not an object"),
    "no layers": (lambda m: without(m, "layers", m), "it has no layers"),
    "no config": (lambda m: without(m, "config", m), "it has no config"),
    "layers not a list": (
        lambda m: {**m, "layers": {"0": m["layers"][0]}},
        "layers is a JSON object, not a list",
    ),
    "layer not an object": (
        lambda m: {**m, "layers": ["sha256:" + "0" * 64]},
        "layers[0] is a JSON string, not an object",
    ),
    "layer without digest": (
        lambda m: without(m["layers"][0], "digest", m),
        "layers[0] has no digest",
    ),
    "layer without mediaType": (
        lambda m: without(m["layers"][0], "mediaType", m),
        "layers[0] has no mediaType",
    ),
    "digest a number": (
        lambda m: layer_with(m, digest=42),
        "layers[0].digest is a JSON number, not a string",
    ),
    "size a string": (
        lambda m: layer_with(m, size="10"),
        "layers[0].size is a JSON string, not a whole number",
    ),
    "size a boolean": (
        lambda m: layer_with(m, size=True),
        "layers[0].size is a JSON boolean, not a whole number",
    ),
    "size negative": (lambda m: layer_with(m, size=-1), "layers[0].size is negative"),
    "config size fractional": (
        lambda m: {**m, "config": {**m["config"], "size": 1.5}},
        "config.size is a JSON fraction, not a whole number",
    ),
    "annotations a list": (
        lambda m: layer_with(m, annotations=["title"]),
        "layers[0].annotations is a JSON list",
    ),
    "title a number": (
        lambda m: layer_with(m, annotations={"org.opencontainers.image.title": 7}),
        "layers[0] has a title that is a JSON number",
    ),
    "config not an object": (
        lambda m: {**m, "config": "sha256:" + "0" * 64},
        "config is a JSON string, not an object",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_manifest_is_a_bad_bundle_saying_what_is_wrong(
    tmp_path: Path, case: str
) -> None:
    change, expected = MALFORMED[case]
    manifest, blobs = good_manifest()
    store = LayoutStore(tmp_path / "store")
    ref = store_raw(store, change(manifest), blobs)
    cache = tmp_path / "cache"
    message = refused(lambda: fetch_bundle(ref, store, cache))
    assert message.startswith(f"manifest of {ref} is malformed: {expected}")
    assert_cache_clean(cache, ref)


def test_a_manifest_that_is_not_json_is_a_bad_bundle(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "store")
    ref = store_raw(store, b"<html>login</html>")
    assert refused(lambda: fetch_bundle(ref, store, tmp_path / "cache")).endswith("is not JSON")


class LazySource:
    """Asks the store for a blob only when its first chunk is wanted, as the registry client
    does, and records every digest asked for."""

    def __init__(self, store: LayoutStore) -> None:
        self.store = store
        self.asked: list[str] = []

    def read_manifest(self, ref: BundleRef) -> bytes:
        return self.store.read_manifest(ref)

    def blob_chunks(self, ref: BundleRef, digest: str) -> Iterator[bytes]:
        self.asked.append(digest)
        yield from self.store.blob_chunks(ref, digest)


ESCAPING_DIGESTS = {
    "dotdot": "sha256:" + "../" * 8 + "outside/x",
    "dotdot-short": "sha256:../../x",
    "uppercase": "sha256:" + "A" * 64,
    "too-short": "sha256:" + "a" * 63,
    "other-algorithm": "sha512:" + "a" * 128,
    "newline": "sha256:" + "a" * 64 + "\n",
}


@pytest.mark.parametrize("where", ["layer", "config"])
@pytest.mark.parametrize("case", sorted(ESCAPING_DIGESTS))
def test_a_digest_that_is_not_sha256_hex_is_refused_before_it_names_a_path(
    tmp_path: Path, where: str, case: str
) -> None:
    manifest, blobs = good_manifest()
    bad = ESCAPING_DIGESTS[case]
    (manifest["layers"][0] if where == "layer" else manifest["config"])["digest"] = bad
    store = LayoutStore(tmp_path / "store")
    ref = store_raw(store, manifest, blobs)
    cache = tmp_path / "a" / "b" / "c" / "cache"
    cache.mkdir(parents=True)
    before = snapshot(tmp_path, skip=[cache, store.root])
    source = LazySource(store)

    message = refused(lambda: fetch_bundle(ref, source, cache))

    assert snapshot(tmp_path, skip=[cache, store.root]) == before
    assert not list(tmp_path.rglob("outside"))
    assert bad not in source.asked  # never put into a request either
    prefix = "layers[0]" if where == "layer" else "config"
    assert message.startswith(f"manifest of {ref} is malformed: {prefix}.digest ")
    assert message.endswith("is not 'sha256:' and 64 lowercase hex characters")
    assert [p.name for p in (cache / "bundles").iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.parametrize("case", sorted(ESCAPING_DIGESTS))
def test_the_layout_store_never_makes_a_path_of_a_malformed_digest(
    tmp_path: Path, case: str
) -> None:
    manifest, blobs = good_manifest()
    store = LayoutStore(tmp_path / "store")
    ref = store_raw(store, manifest, blobs)
    (store.root / "x").write_bytes(b"a file outside the store's blobs")
    bad = ESCAPING_DIGESTS[case]
    for call in (
        lambda: store.blob_path(bad),
        lambda: store.has_blob(bad),
        lambda: list(store.blob_chunks(ref, bad)),
    ):
        assert "has an invalid digest" in refused(call)


# --- 5. scratch folders of a fetch that was killed ------------------------------------------

STALLING_FETCH = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from modelops.bundle import LayoutStore, fetch_bundle
    from modelops.contracts import BundleRef

    ref, store, cache, stall_on, marker = sys.argv[1:]

    class Stalling:
        def __init__(self):
            self.store = LayoutStore(Path(store))
        def read_manifest(self, ref):
            return self.store.read_manifest(ref)
        def blob_chunks(self, ref, digest):
            chunks = self.store.blob_chunks(ref, digest)
            if digest == stall_on:
                yield next(chunks)
                Path(marker).touch()
                time.sleep(600)  # killed here
            yield from chunks

    fetch_bundle(BundleRef.parse(ref), Stalling(), Path(cache))
    """
)


def test_a_fetch_killed_midway_leaves_nothing_once_the_bundle_is_fetched(tmp_path: Path) -> None:
    big = bytes(range(256)) * (3 * LARGE_FILE_BYTES // 256)  # three chunks: it stalls inside
    bundle = build_bundle(write_files(tmp_path / "p", {"wire.py": WIRE, "big.bin": big}), "k")
    store = LayoutStore(tmp_path / "store")
    store.put(bundle)
    cache, marker = tmp_path / "cache", tmp_path / "stalled"
    home = cache / "bundles"
    other = home / (".partial-" + "f" * 64 + "-inflight")  # another digest's fetch: not ours
    (other / "blobs").mkdir(parents=True)
    earlier = home / f".partial-{bundle.ref.hex[:12]}-oldname"  # named as earlier versions did
    earlier.mkdir()
    args = [str(bundle.ref), str(store.root), str(cache), digest_of(big), str(marker)]
    process = subprocess.Popen([sys.executable, "-c", STALLING_FETCH, *args])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the fetch never reached the large file"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    killed = [p for p in home.iterdir() if p.name.startswith(f".partial-{bundle.ref.hex}-")]
    assert len(killed) == 1 and any(killed[0].rglob("*"))  # what the killed fetch left

    fetched = fetch_bundle(bundle.ref, store, cache)

    assert (fetched.root / "big.bin").read_bytes() == big
    partials = sorted(p.name for p in home.iterdir() if p.name.startswith(".partial-"))
    assert partials == [other.name]  # ours are gone; another digest's is left alone
    assert (other / "blobs").is_dir()


# --- 6. a bundle evicted while its environment stays ----------------------------------------


def disk_usage(cache: Path) -> int:
    """What evict_lru counts: allocated blocks of the entries of bundles/ and envs/ (not the
    locks and sizes beside them) and of the children's folders."""
    total = 0
    folders = [
        entry
        for kind in ("bundles", "envs", CHILDREN)
        if (cache / kind).is_dir()
        for entry in (cache / kind).iterdir()
        if entry.is_dir() and (kind == CHILDREN or not entry.name.startswith("."))
    ]
    for folder in folders:
        for dirpath, _, filenames in os.walk(folder):
            for name in filenames:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def test_a_worker_fetches_again_a_bundle_evicted_while_its_environment_stays(
    runner: TaskRunner, store: LayoutStore, tmp_path: Path
) -> None:
    """Until TaskRunner._prepare re-checked the bundle's folder too (not only its python),
    every later task of the bundle failed as `internal` on that worker."""
    project = write_files(tmp_path / "evicted", {"wire.py": b"def wire(e, p, s):\n    return {}\n"})
    ref = store.put(build_bundle(project, repository="evicted"))
    assert runner.run(SimTask(ref, "", {}, seed=1)).ok
    runner.pool.close()  # no idle warm child: the next task needs the bundle's files
    cache = Settings.from_env().cache
    folder = cache / "bundles" / ref.hex
    (folder / LAST_USED).touch()
    os.utime(folder / LAST_USED, (0, 0))  # the least recently used entry of the cache

    removed = evict_lru(cache, disk_usage(cache) - 1, keep_recent_s=0)
    assert removed == [folder]  # only the bundle went; its environment stays

    again = runner.run(SimTask(ref, "", {}, seed=2))
    assert again.ok, again.error
    assert (folder / "tree" / "wire.py").is_file()


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_inspect_refuses_a_malformed_manifest_as_a_worker_does(tmp_path: Path, case: str) -> None:
    """`mops bundle inspect` reads only the manifest and config, with the same checks."""
    change, expected = MALFORMED[case]
    manifest, blobs = good_manifest()
    store = LayoutStore(tmp_path / "store")
    ref = store_raw(store, change(manifest), blobs)
    message = refused(lambda: describe_bundle(ref, store))
    assert message.startswith(f"manifest of {ref} is malformed: {expected}")


def test_a_build_no_worker_could_read_is_refused_at_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caps hold at build too, where the fix (.modelopsignore) is cheapest. The cap is
    lowered for the test: 16 MiB of config would take ~100,000 files to reach."""
    root = write_files(tmp_path / "many", {f"out/{i}.csv": b"x" for i in range(40)})
    (root / "wire.py").write_text("def wire(entrypoint, params, seed):\n    return {}\n")
    monkeypatch.setattr(build_module, "MAX_CONFIG_BYTES", 2000)
    message = refused(lambda: build_bundle(root))
    assert "41 files" in message and ".modelopsignore" in message
