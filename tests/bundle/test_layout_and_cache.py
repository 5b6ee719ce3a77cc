"""The image-layout store and the worker-side cache: layout, integrity, path safety, locking."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from modelops.bundle import BuiltBundle, LayoutStore, build_bundle, fetch_bundle
from modelops.bundle.build import LARGE_FILE_BYTES, Blob
from modelops.bundle.config import (
    ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE,
    FILE_LAYER_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    TREE_LAYER_MEDIA_TYPE,
    BundleConfig,
    Environment,
    FileEntry,
)
from modelops.bundle.digests import read_chunks
from modelops.bundle.layout import INDEX_MEDIA_TYPE, REF_NAME_ANNOTATION, REPOSITORY_ANNOTATION
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError
from modelops.contracts.ids import canonical_json, sha256_hex

FILES: dict[str, bytes] = {
    "wire.py": b"def wire(entrypoint, params, seed):\n    return {}\n",
    "model/__init__.py": b"",
    "model/sim.py": b"def run(beta):\n    return beta * 2\n",
    "run.sh": b"#!/bin/sh\necho run\n",
    "data/params.json": b'{"beta": 0.3}\n',
    "data/big.bin": bytes(range(256)) * (LARGE_FILE_BYTES // 256),
    "requirements.txt": b"numpy>=1.26\n",
}
EXECUTABLE = {"run.sh"}


def write_project(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o755 if name in EXECUTABLE else 0o644)
    return root


def stored_bundle(tmp_path: Path, name: str = "project") -> tuple[LayoutStore, BuiltBundle]:
    store = LayoutStore(tmp_path / "store")
    bundle = build_bundle(write_project(tmp_path / name), repository="model")
    store.put(bundle)
    return store, bundle


def read_index(store: LayoutStore) -> dict:
    return json.loads((store.root / "index.json").read_text())


def blob_files(store: LayoutStore) -> dict[str, Path]:
    return {"sha256:" + p.name: p for p in (store.root / "blobs" / "sha256").iterdir()}


def snapshot(root: Path, skip: Iterable[Path] = ()) -> dict[str, tuple[int, int, int, int]]:
    """(inode, mtime_ns, mode, size) of every file and folder under `root`, except `skip`."""
    skipped = {p.resolve() for p in skip}
    out: dict[str, tuple[int, int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if (here / d).resolve() not in skipped]
        for name in [*dirnames, *filenames]:
            st = (here / name).lstat()
            out[(here / name).relative_to(root).as_posix()] = (
                st.st_ino,
                st.st_mtime_ns,
                st.st_mode,
                st.st_size,
            )
    return out


def assert_cache_clean(cache: Path, ref: BundleRef) -> None:
    """No final folder for `ref` and no half-made `.partial-*` folders or files."""
    home = cache / "bundles"
    assert not (home / ref.hex).exists()
    if home.exists():
        assert [p.name for p in home.iterdir() if p.name.startswith(".partial-")] == []


class CountingSource:
    """A BundleSource serving from a LayoutStore that counts what it is asked for."""

    def __init__(self, store: LayoutStore, delay: float = 0.0) -> None:
        self.store = store
        self.delay = delay
        self.manifests = 0
        self.downloads: Counter[str] = Counter()
        self._lock = threading.Lock()

    def read_manifest(self, ref: BundleRef) -> bytes:
        with self._lock:
            self.manifests += 1
        time.sleep(self.delay)  # widen the window in which racing fetches could overlap
        return self.store.read_manifest(ref)

    def blob_chunks(self, ref: BundleRef, digest: str) -> Iterator[bytes]:
        with self._lock:
            self.downloads[digest] += 1
        return self.store.blob_chunks(ref, digest)


class NonVerifyingSource:
    """A BundleSource that hands over blobs as they are, like a naive HTTP client would."""

    def __init__(self, store: LayoutStore) -> None:
        self.store = store

    def read_manifest(self, ref: BundleRef) -> bytes:
        return self.store.read_manifest(ref)

    def blob_chunks(self, ref: BundleRef, digest: str) -> Iterator[bytes]:
        yield self.store.blob_path(digest).read_bytes()


# --- the image layout -----------------------------------------------------------------------


def test_put_writes_a_valid_oci_image_layout(tmp_path: Path) -> None:
    store, bundle = stored_bundle(tmp_path)
    assert json.loads((store.root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = read_index(store)
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == INDEX_MEDIA_TYPE
    assert index["manifests"] == [
        {
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "digest": bundle.ref.digest,
            "size": len(bundle.manifest),
            "annotations": {REPOSITORY_ANNOTATION: "model"},
        }
    ]
    blobs = blob_files(store)
    for digest, path in blobs.items():
        assert "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert set(blobs) == {bundle.ref.digest, *(b.digest for b in bundle.blobs)}
    assert blobs[bundle.ref.digest].read_bytes() == bundle.manifest
    manifest = json.loads(bundle.manifest)
    for descriptor in [manifest["config"], *manifest["layers"]]:
        assert blobs[descriptor["digest"]].stat().st_size == descriptor["size"]
    assert store.read_manifest(bundle.ref) == bundle.manifest
    assert store.refs() == [(bundle.ref, None)]


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask 022", "umask 077"])
def test_the_store_s_files_get_the_mode_the_umask_gives(tmp_path: Path, umask: int) -> None:
    """A store on a folder a team shares is readable to the team, as the files the team's
    own tools write there are (a 0600 index once made it unreadable to all but its writer);
    a private umask keeps it private."""
    before = os.umask(umask)
    try:
        store, _ = stored_bundle(tmp_path)
    finally:
        os.umask(before)

    written = [store.root / "oci-layout", store.root / "index.json", *blob_files(store).values()]
    assert {stat.S_IMODE(path.stat().st_mode) for path in written} == {0o666 & ~umask}


def test_put_is_idempotent(tmp_path: Path) -> None:
    store, bundle = stored_bundle(tmp_path)
    index_before = read_index(store)
    blobs_before = snapshot(store.root / "blobs")
    assert store.put(bundle) == bundle.ref
    assert store.put(build_bundle(tmp_path / "project", repository="model")) == bundle.ref
    assert read_index(store) == index_before
    assert len(read_index(store)["manifests"]) == 1
    assert snapshot(store.root / "blobs") == blobs_before  # nothing rewritten


def test_putting_the_same_tag_twice_keeps_one_entry(tmp_path: Path) -> None:
    store, bundle = stored_bundle(tmp_path)
    store.put(bundle, tag="v1")
    store.put(bundle, tag="v1")
    tagged = [m for m in read_index(store)["manifests"] if REF_NAME_ANNOTATION in m["annotations"]]
    assert len(tagged) == 1
    assert tagged[0]["annotations"] == {REPOSITORY_ANNOTATION: "model", REF_NAME_ANNOTATION: "v1"}


def changed_bundle(tmp_path: Path, repository: str = "model") -> BuiltBundle:
    root = write_project(
        tmp_path / "changed", {**FILES, "model/sim.py": b"def run(b):\n    return b\n"}
    )
    return build_bundle(root, repository=repository)


def test_a_tag_moves_to_the_new_digest(tmp_path: Path) -> None:
    store, first = stored_bundle(tmp_path)
    store.put(first, tag="latest")
    second = changed_bundle(tmp_path)
    store.put(second, tag="latest")
    latest = [ref for ref, tag in store.refs() if tag == "latest"]
    assert latest == [second.ref]
    assert store.read_manifest(second.ref) == second.manifest


def test_the_same_tag_in_two_repositories_is_two_tags(tmp_path: Path) -> None:
    store, first = stored_bundle(tmp_path)
    store.put(first, tag="latest")
    other = changed_bundle(tmp_path, repository="other")
    store.put(other, tag="latest")
    assert sorted(ref for ref, tag in store.refs() if tag == "latest") == sorted(
        [first.ref, other.ref]
    )


def test_moving_a_tag_keeps_the_old_digest_readable(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "store")
    first = build_bundle(write_project(tmp_path / "project"), repository="model")
    store.put(first, tag="latest")
    second = changed_bundle(tmp_path)
    store.put(second, tag="latest")
    assert store.read_manifest(first.ref) == first.manifest
    assert sorted(store.refs()) == sorted([(first.ref, None), (second.ref, "latest")])


@pytest.mark.parametrize("case", ["empty-store", "unknown-digest", "other-repository"])
def test_read_manifest_of_an_unknown_ref_is_not_found(tmp_path: Path, case: str) -> None:
    if case == "empty-store":
        store = LayoutStore(tmp_path / "nothing-here")
        ref = BundleRef("model", "sha256:" + "0" * 64)
    else:
        store, bundle = stored_bundle(tmp_path)
        ref = (
            BundleRef("model", "sha256:" + "0" * 64)
            if case == "unknown-digest"
            else BundleRef("someone-else", bundle.ref.digest)
        )
    with pytest.raises(ModelOpsError) as excinfo:
        store.read_manifest(ref)
    assert excinfo.value.info.error_class is ErrorClass.NOT_FOUND
    assert str(ref) in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_put_refuses_a_file_that_changed_after_the_build(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project")
    bundle = build_bundle(root, repository="model")
    (root / "data" / "big.bin").write_bytes(b"changed since the build")
    store = LayoutStore(tmp_path / "store")
    with pytest.raises(ModelOpsError) as excinfo:
        store.put(bundle)
    assert excinfo.value.info.error_class is ErrorClass.BAD_BUNDLE
    assert "corrupt" in str(excinfo.value)
    big = next(b for b in bundle.layers if b.title == "data/big.bin")
    assert not store.has_blob(big.digest)
    assert not [p for p in (store.root / "blobs" / "sha256").iterdir() if p.name[0] == "."]
    assert not (store.root / "index.json").exists()


# --- fetching into the cache ----------------------------------------------------------------


def test_fetch_reproduces_every_file_with_its_mode(tmp_path: Path) -> None:
    store, bundle = stored_bundle(tmp_path)
    cache = tmp_path / "cache"
    fetched = fetch_bundle(bundle.ref, store, cache)
    assert fetched.ref == bundle.ref
    assert fetched.root == cache / "bundles" / bundle.ref.hex / "tree"
    assert fetched.config == bundle.config
    found = sorted(
        p.relative_to(fetched.root).as_posix() for p in fetched.root.rglob("*") if p.is_file()
    )
    assert found == sorted(FILES)
    for name, data in FILES.items():
        path = fetched.root / name
        assert path.read_bytes() == data
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if name in EXECUTABLE else 0o644)
    assert os.access(fetched.root / "run.sh", os.X_OK)
    assert [p.name for p in (cache / "bundles").iterdir() if p.name.startswith(".partial-")] == []


def test_a_second_fetch_changes_nothing(tmp_path: Path) -> None:
    store, bundle = stored_bundle(tmp_path)
    cache = tmp_path / "cache"
    first = fetch_bundle(bundle.ref, store, cache)
    before = snapshot(cache)
    source = CountingSource(store)
    second = fetch_bundle(bundle.ref, source, cache)
    third = fetch_bundle(BundleRef("another-name", bundle.ref.digest), source, cache)
    assert second.root == first.root == third.root
    assert second.config == first.config
    assert source.manifests == 0
    assert source.downloads == Counter()
    assert snapshot(cache) == before


@pytest.mark.parametrize("which", ["tree", "file", "config", "manifest"])
def test_a_tampered_blob_is_refused_and_leaves_nothing_behind(tmp_path: Path, which: str) -> None:
    store, bundle = stored_bundle(tmp_path)
    digest = {
        "tree": next(b for b in bundle.layers if b.media_type == TREE_LAYER_MEDIA_TYPE).digest,
        "file": next(b for b in bundle.layers if b.title == "data/big.bin").digest,
        "config": bundle.config_blob.digest,
        "manifest": bundle.ref.digest,
    }[which]
    path = store.blob_path(digest)
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))  # same size, one byte off
    cache = tmp_path / "cache"
    with pytest.raises(ModelOpsError) as excinfo:
        fetch_bundle(bundle.ref, store, cache)
    assert excinfo.value.info.error_class is ErrorClass.BAD_BUNDLE
    assert "corrupt" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    assert_cache_clean(cache, bundle.ref)

    path.write_bytes(original)  # repaired: the failed fetch left nothing in the way
    fetched = fetch_bundle(bundle.ref, store, cache)
    assert (fetched.root / "data" / "big.bin").read_bytes() == FILES["data/big.bin"]


def test_a_missing_blob_is_refused(tmp_path: Path) -> None:
    store, bundle = stored_bundle(tmp_path)
    store.blob_path(bundle.layers[0].digest).unlink()
    cache = tmp_path / "cache"
    with pytest.raises(ModelOpsError) as excinfo:
        fetch_bundle(bundle.ref, store, cache)
    assert excinfo.value.info.error_class is ErrorClass.BAD_BUNDLE
    assert "missing" in str(excinfo.value)
    assert_cache_clean(cache, bundle.ref)


def test_concurrent_fetches_download_once(tmp_path: Path) -> None:
    store, bundle = stored_bundle(tmp_path)
    cache = tmp_path / "cache"
    source = CountingSource(store, delay=0.1)
    barrier = threading.Barrier(8)
    roots: list[Path] = []
    errors: list[BaseException] = []

    def fetch() -> None:
        barrier.wait()
        try:
            roots.append(fetch_bundle(bundle.ref, source, cache).root)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(roots) == 8
    assert set(roots) == {cache / "bundles" / bundle.ref.hex / "tree"}
    assert source.manifests == 1
    tree = next(b for b in bundle.layers if b.media_type == TREE_LAYER_MEDIA_TYPE)
    assert source.downloads[tree.digest] == 1
    assert source.downloads == Counter({b.digest: 1 for b in bundle.blobs})
    assert (roots[0] / "wire.py").read_bytes() == FILES["wire.py"]


def test_file_layers_are_verified_by_the_cache_itself(tmp_path: Path) -> None:
    store, bundle = stored_bundle(tmp_path)
    big = next(b for b in bundle.layers if b.title == "data/big.bin")
    store.blob_path(big.digest).write_bytes(b"not the big file")
    cache = tmp_path / "cache"
    with pytest.raises(ModelOpsError) as excinfo:
        fetch_bundle(bundle.ref, NonVerifyingSource(store), cache)
    assert excinfo.value.info.error_class is ErrorClass.BAD_BUNDLE
    assert_cache_clean(cache, bundle.ref)


def test_a_bundle_that_builds_can_be_fetched(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", {**FILES, "data/a\\b.txt": b"x"})
    try:
        bundle = build_bundle(root, repository="model")
    except ModelOpsError as exc:  # refusing at build time is a fine answer too
        assert exc.info.error_class is ErrorClass.BAD_BUNDLE
        return
    store = LayoutStore(tmp_path / "store")
    store.put(bundle)
    fetched = fetch_bundle(bundle.ref, store, tmp_path / "cache")
    assert (fetched.root / "data" / "a\\b.txt").read_bytes() == b"x"


# --- hand-made bundles: path safety ---------------------------------------------------------


def file_entry(path: str, data: bytes, mode: int = 0o644) -> FileEntry:
    return FileEntry(path, "sha256:" + sha256_hex(data), len(data), mode)


def tar_blob(members: list[tuple[tarfile.TarInfo, bytes]]) -> Blob:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    data = buffer.getvalue()
    return Blob(TREE_LAYER_MEDIA_TYPE, "sha256:" + sha256_hex(data), len(data), data)


def file_blob(title: str, data: bytes, media_type: str = FILE_LAYER_MEDIA_TYPE) -> Blob:
    return Blob(media_type, "sha256:" + sha256_hex(data), len(data), data, title=title)


def regular(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info


def put_crafted(
    store: LayoutStore,
    layers: list[Blob],
    listed: list[FileEntry],
    artifact_type: str = ARTIFACT_TYPE,
) -> BundleRef:
    """Store a hand-made bundle through LayoutStore.put, as a malicious publisher could."""
    config = BundleConfig(
        files=tuple(listed),
        environment=Environment("none", (), "sha256:" + sha256_hex(b"{}")),
        wire="wire:wire",
    )
    config_data = config.to_bytes()
    config_blob = Blob(
        CONFIG_MEDIA_TYPE, "sha256:" + sha256_hex(config_data), len(config_data), config_data
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": artifact_type,
            "config": config_blob.descriptor(),
            "layers": [layer.descriptor() for layer in layers],
        }
    )
    ref = BundleRef("crafted", "sha256:" + sha256_hex(manifest))
    return store.put(BuiltBundle(ref, config, config_blob, tuple(layers), manifest))


OK = b"print('fine')\n"
EVIL = b"import os  # evil\n"


def evil_members(tmp_path: Path) -> dict[str, tuple[tarfile.TarInfo, str]]:
    """Tar members that must never be extracted, each with the path its config lists."""
    escape = "../" * 6 + "evil.py"  # from cache/bundles/.partial-*/tree up to tmp_path
    absolute = str(tmp_path / "abs-evil.py")
    symlink = tarfile.TarInfo("link.py")
    symlink.type = tarfile.SYMTYPE
    symlink.linkname = str(tmp_path / "target.py")
    hardlink = tarfile.TarInfo("hard.py")
    hardlink.type = tarfile.LNKTYPE
    hardlink.linkname = "ok.py"
    folder = tarfile.TarInfo("sub")
    folder.type = tarfile.DIRTYPE
    return {
        "dotdot": (regular(escape), escape),
        "dotdot-inside": (regular("model/../../evil.py"), "model/../../evil.py"),
        "absolute": (regular(absolute), absolute),
        "backslash": (regular("..\\evil.py"), "..\\evil.py"),
        "symlink": (symlink, "link.py"),
        "hardlink": (hardlink, "hard.py"),
        "directory": (folder, "sub"),
    }


@pytest.mark.parametrize(
    "case", ["dotdot", "dotdot-inside", "absolute", "backslash", "symlink", "hardlink", "directory"]
)
def test_unsafe_tar_members_are_refused(tmp_path: Path, case: str) -> None:
    member, listed_as = evil_members(tmp_path)[case]
    store = LayoutStore(tmp_path / "store")
    ref = put_crafted(
        store,
        [tar_blob([(regular("ok.py"), OK), (member, EVIL)])],
        [file_entry("ok.py", OK), file_entry(listed_as, EVIL)],
    )
    cache = tmp_path / "c1" / "c2" / "cache"
    cache.mkdir(parents=True)
    outside_before = snapshot(tmp_path, skip=[cache, store.root])
    with pytest.raises(ModelOpsError) as excinfo:
        fetch_bundle(ref, store, cache)
    message = str(excinfo.value)
    assert excinfo.value.info.error_class is ErrorClass.BAD_BUNDLE
    assert "unsafe path" in message or "not a regular file" in message
    assert "\n" not in message
    assert snapshot(tmp_path, skip=[cache, store.root]) == outside_before
    assert not (tmp_path / "evil.py").exists()
    assert not (tmp_path / "abs-evil.py").exists()
    assert_cache_clean(cache, ref)


@pytest.mark.parametrize("title", ["../x", "/tmp/x", "a/../../x", "..\\x", ""])
def test_unsafe_file_layer_titles_are_refused(tmp_path: Path, title: str) -> None:
    store = LayoutStore(tmp_path / "store")
    ref = put_crafted(
        store,
        [tar_blob([(regular("ok.py"), OK)]), file_blob(title, EVIL)],
        [file_entry("ok.py", OK), file_entry(title or "x", EVIL)],
    )
    cache = tmp_path / "c1" / "c2" / "cache"
    cache.mkdir(parents=True)
    outside_before = snapshot(tmp_path, skip=[cache, store.root])
    with pytest.raises(ModelOpsError) as excinfo:
        fetch_bundle(ref, store, cache)
    assert excinfo.value.info.error_class is ErrorClass.BAD_BUNDLE
    assert "unsafe path" in str(excinfo.value)
    assert snapshot(tmp_path, skip=[cache, store.root]) == outside_before
    assert_cache_clean(cache, ref)


def test_a_well_formed_hand_made_bundle_is_fetched(tmp_path: Path) -> None:
    """The hand-made path is sound: the same helpers without tricks give a usable bundle."""
    store = LayoutStore(tmp_path / "store")
    ref = put_crafted(
        store,
        [tar_blob([(regular("ok.py"), OK)]), file_blob("data/x.bin", EVIL)],
        [file_entry("ok.py", OK), file_entry("data/x.bin", EVIL)],
    )
    fetched = fetch_bundle(ref, store, tmp_path / "cache")
    assert (fetched.root / "ok.py").read_bytes() == OK
    assert (fetched.root / "data" / "x.bin").read_bytes() == EVIL


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("content-differs", "does not match its digest"),
        ("not-listed", "does not list"),
        ("listed-but-absent", "lacks files"),
        ("file-layer-digest-differs", "wrong digest"),
        ("unknown-layer-type", "unknown type"),
        ("not-a-modelops-bundle", "not a modelops bundle"),
    ],
)
def test_inconsistent_bundles_are_refused(tmp_path: Path, case: str, expected: str) -> None:
    tree = tar_blob([(regular("ok.py"), OK)])
    layers, listed, artifact_type = [tree], [file_entry("ok.py", OK)], ARTIFACT_TYPE
    if case == "content-differs":  # same size, other bytes (a size that differs is refused first)
        listed = [FileEntry("ok.py", file_entry("ok.py", EVIL).digest, len(OK), 0o644)]
    elif case == "not-listed":
        layers = [tar_blob([(regular("ok.py"), OK), (regular("extra.py"), EVIL)])]
    elif case == "listed-but-absent":
        listed.append(file_entry("absent.py", EVIL))
    elif case == "file-layer-digest-differs":
        layers.append(file_blob("data/x.bin", EVIL))
        listed.append(file_entry("data/x.bin", OK))
    elif case == "unknown-layer-type":
        layers.append(file_blob("data/x.bin", EVIL, media_type="application/x-unknown"))
    else:
        artifact_type = "application/vnd.example.other"
    store = LayoutStore(tmp_path / "store")
    ref = put_crafted(store, layers, listed, artifact_type)
    cache = tmp_path / "cache"
    with pytest.raises(ModelOpsError) as excinfo:
        fetch_bundle(ref, store, cache)
    assert excinfo.value.info.error_class is ErrorClass.BAD_BUNDLE
    assert expected in str(excinfo.value)
    assert_cache_clean(cache, ref)


def test_store_blobs_are_read_in_chunks_that_hash_to_their_name(tmp_path: Path) -> None:
    store, bundle = stored_bundle(tmp_path)
    for blob in bundle.blobs:
        hasher = hashlib.sha256()
        for chunk in read_chunks(store.blob_path(blob.digest)):
            hasher.update(chunk)
        assert "sha256:" + hasher.hexdigest() == blob.digest
