"""The worker-side cache: a bundle fetched once per machine by digest, verified, extracted.

Concurrent tasks and worker processes on one machine share the cache: a file lock per digest
means one of them fetches while the others wait, and a bundle appears under its final name
only when complete, so nothing half-extracted is ever used. Everything read from a source is
bounded before it is trusted: the manifest and the config by a fixed cap, every blob by the
size its descriptor declares, every extracted file by the size its config lists.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from filelock import FileLock

from modelops.bundle.config import (
    ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE,
    FILE_LAYER_MEDIA_TYPE,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    TITLE_ANNOTATION,
    TREE_LAYER_MEDIA_TYPE,
    BundleConfig,
    FileEntry,
    json_type,
)
from modelops.bundle.digests import CHUNK, read_limited, verify_bytes, write_verified
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError
from modelops.contracts.refs import is_digest

PARALLEL_DOWNLOADS = 4
_REGULAR_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
_MEMBER_KINDS = {
    tarfile.SYMTYPE: "a symlink",
    tarfile.LNKTYPE: "a hard link",
    tarfile.DIRTYPE: "a directory",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a fifo",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}

CONFIG_FILE = "config.json"
CONFIG_DIGEST_FILE = "config.digest"  # the config's digest as the manifest named it


class BundleSource(Protocol):
    """Where bundles come from (the image-layout store, a registry). A source only delivers
    bytes; the cache verifies every one of them against its digest, whatever the source."""

    def read_manifest(self, ref: BundleRef) -> bytes: ...

    def blob_chunks(self, ref: BundleRef, digest: str) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class FetchedBundle:
    ref: BundleRef
    root: Path  # the project's files, as built
    config: BundleConfig


@dataclass(frozen=True)
class Descriptor:
    """A checked manifest descriptor: its digest is safe to put in a path or a request."""

    media_type: str
    digest: str
    size: int
    title: str | None = None


def fetch_bundle(ref: BundleRef, source: BundleSource, cache: Path) -> FetchedBundle:
    """The bundle in the cache, fetched first if it is not there, and fetched again if its
    cached config was damaged since (its digest is checked on every call; the tree's files
    are checked when a child copies them)."""
    home = cache / "bundles"
    final = home / ref.hex
    config = _cached_config(ref, final)
    if config is None:
        home.mkdir(parents=True, exist_ok=True)
        with FileLock(home / f"{ref.hex}.lock"):
            config = _cached_config(ref, final)
            if config is None:
                if final.is_dir():  # damaged: put aside for everyone, then fetched again
                    doomed = Path(tempfile.mkdtemp(dir=home, prefix=f".evicting-{ref.hex[:12]}-"))
                    os.rename(final, doomed / final.name)
                    shutil.rmtree(doomed, ignore_errors=True)
                _remove_stale_partials(home, ref)
                _fetch_into(ref, source, home, final)
    if config is None:
        data = read_limited(final / CONFIG_FILE, MAX_CONFIG_BYTES, f"config of {ref}")
        config = BundleConfig.from_bytes(data, f"config of {ref}")
    return FetchedBundle(ref, final / "tree", config)


def _cached_config(ref: BundleRef, final: Path) -> BundleConfig | None:
    """The cached bundle's config if it is the one its manifest named; None if the bundle is
    not cached, or its config is gone, changed or unreadable."""
    try:
        expected = (final / CONFIG_DIGEST_FILE).read_text().strip()
        data = read_limited(final / CONFIG_FILE, MAX_CONFIG_BYTES, f"config of {ref}")
        if "sha256:" + hashlib.sha256(data).hexdigest() != expected:
            return None
        return BundleConfig.from_bytes(data, f"config of {ref}")
    except (OSError, ModelOpsError):
        return None


def _partial_prefix(ref: BundleRef) -> str:
    return f".partial-{ref.hex}-"


def _remove_stale_partials(home: Path, ref: BundleRef) -> None:
    """Scratch folders of this digest left by a fetch that was killed: we hold the digest's
    lock, so no live fetch owns them. (`.partial-<12 hex>-` is how earlier versions named
    them; a full-digest name never matches that pattern.)"""
    for prefix in (_partial_prefix(ref), f".partial-{ref.hex[:12]}-"):
        for stale in home.glob(f"{prefix}*"):
            shutil.rmtree(stale, ignore_errors=True)


def _fetch_into(ref: BundleRef, source: BundleSource, home: Path, final: Path) -> None:
    work = Path(tempfile.mkdtemp(dir=home, prefix=_partial_prefix(ref)))
    try:
        raw = source.read_manifest(ref)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE,
                f"manifest of {ref} is {len(raw)} bytes, more than the {MAX_MANIFEST_BYTES} "
                "allowed; refused",
            )
        config_descriptor, layers = parse_manifest(
            ref, verify_bytes(raw, ref.digest, f"manifest of {ref}")
        )
        _download(source, ref, config_descriptor, work / CONFIG_FILE)
        (work / CONFIG_DIGEST_FILE).write_text(config_descriptor.digest)
        config = BundleConfig.from_bytes((work / CONFIG_FILE).read_bytes(), f"config of {ref}")
        expected = {entry.path: entry for entry in config.files}
        file_entries = _check_layers(ref, layers, expected)  # before any layer is downloaded
        blobs = {
            layer.digest: work / "blobs" / layer.digest.removeprefix("sha256:") for layer in layers
        }
        unique = list({layer.digest: layer for layer in layers}.values())
        with ThreadPoolExecutor(PARALLEL_DOWNLOADS) as pool:
            list(pool.map(lambda layer: _download(source, ref, layer, blobs[layer.digest]), unique))
        tree = work / "tree"
        tree.mkdir()
        placed: set[str] = set()
        uses_left = Counter(layer.digest for layer in layers)
        for index, layer in enumerate(layers):
            uses_left[layer.digest] -= 1
            blob = blobs[layer.digest]
            if layer.media_type == TREE_LAYER_MEDIA_TYPE:
                _extract_tree(ref, blob, tree, expected, placed)
                continue
            entry = file_entries[index]
            target = _target(ref, tree, entry, placed)
            if uses_left[layer.digest]:  # one file's bytes at two paths: copy all but the last
                shutil.copyfile(blob, target)
            else:
                os.replace(blob, target)
            target.chmod(_normal_mode(entry.mode))
        missing = sorted(p for p in expected if p not in placed)
        if missing:
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE, f"bundle {ref} lacks files its config lists: {missing[:5]}"
            )
        shutil.rmtree(work / "blobs", ignore_errors=True)
        os.rename(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _download(source: BundleSource, ref: BundleRef, descriptor: Descriptor, dest: Path) -> None:
    """Stream a blob into `dest`; reading stops at its declared size, and it is kept only
    if it is exactly that long and hashes to its digest."""
    write_verified(
        source.blob_chunks(ref, descriptor.digest),
        dest,
        descriptor.digest,
        f"blob {descriptor.digest} of {ref}",
        size=descriptor.size,
    )


def _normal_mode(mode: int) -> int:
    """Only the executable bit survives from a bundle: no setuid, no group/world write."""
    return 0o755 if mode & 0o111 else 0o644


# --- the manifest ---------------------------------------------------------------------------


def parse_manifest(ref: BundleRef, data: bytes) -> tuple[Descriptor, tuple[Descriptor, ...]]:
    """The config and layer descriptors of a modelops bundle's manifest, every field checked;
    anything else is a one-line bad-bundle error saying what is wrong."""
    what = f"manifest of {ref}"
    if len(data) > MAX_MANIFEST_BYTES:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"{what} is {len(data)} bytes, more than the {MAX_MANIFEST_BYTES} allowed; refused",
        )
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise ModelOpsError(ErrorClass.BAD_BUNDLE, f"{what} is not JSON") from exc
    if not isinstance(manifest, dict):
        raise _malformed(what, f"it is a JSON {json_type(manifest)}, not an object")
    config = manifest.get("config")
    if manifest.get("artifactType") != ARTIFACT_TYPE or (
        isinstance(config, dict) and config.get("mediaType") != CONFIG_MEDIA_TYPE
    ):
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"{ref} is not a modelops bundle (artifactType {_short(manifest.get('artifactType'))})",
        )
    if "config" not in manifest:
        raise _malformed(what, "it has no config")
    if "layers" not in manifest:
        raise _malformed(what, "it has no layers")
    layers = manifest["layers"]
    if not isinstance(layers, list):
        raise _malformed(what, f"layers is a JSON {json_type(layers)}, not a list")
    descriptors = tuple(_descriptor(what, f"layers[{i}]", raw) for i, raw in enumerate(layers))
    for descriptor in descriptors:
        if descriptor.media_type not in (TREE_LAYER_MEDIA_TYPE, FILE_LAYER_MEDIA_TYPE):
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE,
                f"bundle {ref} has a layer of unknown type {_short(descriptor.media_type)}",
            )
    sizes: dict[str, int] = {}
    for descriptor in descriptors:
        if sizes.setdefault(descriptor.digest, descriptor.size) != descriptor.size:
            raise _malformed(what, f"it declares two sizes for layer {descriptor.digest}")
    config_descriptor = _descriptor(what, "config", config)
    if config_descriptor.size > MAX_CONFIG_BYTES:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"config of {ref} declares {config_descriptor.size} bytes, more than the "
            f"{MAX_CONFIG_BYTES} allowed; refused",
        )
    return config_descriptor, descriptors


def _descriptor(what: str, where: str, raw: Any) -> Descriptor:
    if not isinstance(raw, dict):
        raise _malformed(what, f"{where} is a JSON {json_type(raw)}, not an object")
    for key, kind, kind_name in (
        ("mediaType", str, "string"),
        ("digest", str, "string"),
        ("size", int, "whole number"),
    ):
        if key not in raw:
            raise _malformed(what, f"{where} has no {key}")
        if not isinstance(raw[key], kind) or isinstance(raw[key], bool):
            raise _malformed(
                what, f"{where}.{key} is a JSON {json_type(raw[key])}, not a {kind_name}"
            )
    if not is_digest(raw["digest"]):
        raise _malformed(
            what,
            f"{where}.digest {_short(raw['digest'])} is not 'sha256:' and 64 lowercase hex "
            "characters",
        )
    if raw["size"] < 0:
        raise _malformed(what, f"{where}.size is negative")
    annotations = raw.get("annotations", {})
    if not isinstance(annotations, dict):
        raise _malformed(what, f"{where}.annotations is a JSON {json_type(annotations)}")
    title = annotations.get(TITLE_ANNOTATION)
    if title is not None and not isinstance(title, str):
        raise _malformed(what, f"{where} has a title that is a JSON {json_type(title)}")
    return Descriptor(raw["mediaType"], raw["digest"], raw["size"], title)


def _malformed(what: str, why: str) -> ModelOpsError:
    return ModelOpsError(ErrorClass.BAD_BUNDLE, f"{what} is malformed: {why}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- layers and files -----------------------------------------------------------------------


def _check_layers(
    ref: BundleRef, layers: tuple[Descriptor, ...], expected: dict[str, FileEntry]
) -> dict[int, FileEntry]:
    """The config entry of each file layer (by index), checked against its descriptor."""
    entries: dict[int, FileEntry] = {}
    for index, layer in enumerate(layers):
        if layer.media_type != FILE_LAYER_MEDIA_TYPE:
            continue
        title = layer.title or ""
        entry = _expected_entry(ref, title, expected)
        if entry in entries.values():
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE, f"bundle {ref} contains {entry.path!r} twice; refused"
            )
        if entry.digest != layer.digest:
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE, f"bundle {ref}: layer for {title} has wrong digest"
            )
        if entry.size != layer.size:
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE,
                f"bundle {ref}: layer for {title} declares {layer.size} bytes, but its config "
                f"lists {entry.size}",
            )
        entries[index] = entry
    return entries


def _expected_entry(ref: BundleRef, name: str, expected: dict[str, FileEntry]) -> FileEntry:
    path = PurePosixPath(name)
    if (
        not name
        or path.is_absolute()
        or ".." in path.parts
        or "\\" in name
        or path.as_posix() != name  # "", ".", "a//b", "./a", "a/": not one plain path
    ):
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"bundle {ref} contains an unsafe path {name!r}; refused"
        )
    entry = expected.get(name)
    if entry is None:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"bundle {ref} contains {name!r}, which its config does not list"
        )
    return entry


def _target(ref: BundleRef, tree: Path, entry: FileEntry, placed: set[str]) -> Path:
    """Where `entry` goes in the tree, once: a path the bundle holds twice is refused."""
    if entry.path in placed:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"bundle {ref} contains {entry.path!r} twice; refused"
        )
    placed.add(entry.path)
    target = tree / entry.path
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"bundle {ref} lists {entry.path!r} inside another of its files; refused",
        ) from exc
    if target.is_dir():
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"bundle {ref} lists {entry.path!r} as a file and as a folder; refused",
        )
    return target


def _extract_tree(
    ref: BundleRef, blob: Path, tree: Path, expected: dict[str, FileEntry], placed: set[str]
) -> None:
    """Extract regular files only, each checked against the config's path, size and digest
    before a byte of it is written, so extraction writes no more than the config lists."""
    try:
        with tarfile.open(blob, mode="r:") as tar:
            for member in tar:
                _extract_member(ref, tar, member, tree, expected, placed)
    except tarfile.TarError as exc:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"bundle {ref}: its tree layer is not a readable tar ({exc})"
        ) from exc


def _extract_member(
    ref: BundleRef,
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    tree: Path,
    expected: dict[str, FileEntry],
    placed: set[str],
) -> None:
    if member.type not in _REGULAR_TYPES or member.issparse():
        kind = "a sparse file" if member.issparse() else _MEMBER_KINDS.get(member.type, "special")
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"bundle {ref} contains {member.name!r}, which is not a regular file ({kind}; "
            "links, devices, fifos, folders and sparse files are refused)",
        )
    entry = _expected_entry(ref, member.name, expected)
    if member.size != entry.size:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"bundle {ref}: {entry.path} is {member.size} bytes in its tree layer, but its "
            f"config lists {entry.size}",
        )
    target = _target(ref, tree, entry, placed)
    hasher = hashlib.sha256()
    source = tar.extractfile(member)
    assert source is not None  # regular members always have a file object
    with target.open("wb") as out:
        while chunk := source.read(CHUNK):
            hasher.update(chunk)
            out.write(chunk)
    if "sha256:" + hasher.hexdigest() != entry.digest:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"bundle {ref}: {entry.path} does not match its digest"
        )
    target.chmod(_normal_mode(entry.mode))
