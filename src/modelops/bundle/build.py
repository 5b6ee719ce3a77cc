"""Build a bundle from a project folder: same files in, same digest out, on any machine.

Layers (docs/bundle-format.md): every environment file and every file of 1 MiB or more is a
layer of its own (raw bytes, titled with its path), so a code change never re-uploads data
or the lock; all other files travel together in one reproducible tar.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelops.bundle.config import (
    ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE,
    FILE_LAYER_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    TITLE_ANNOTATION,
    TREE_LAYER_MEDIA_TYPE,
    BundleConfig,
    Environment,
    FileEntry,
    RuntimeDefaults,
    lock_digest,
)
from modelops.bundle.discover import (
    environment_kind,
    find_wire,
    import_paths,
    read_pyproject,
    runtime_defaults,
)
from modelops.bundle.ignore import ignore_spec
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError
from modelops.contracts.ids import canonical_json, sha256_hex

LARGE_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Blob:
    """One blob of a bundle and where its bytes are: in memory, or a file in the project."""

    media_type: str
    digest: str
    size: int
    source: bytes | Path
    title: str | None = None

    def descriptor(self) -> dict[str, object]:
        out: dict[str, object] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.title is not None:
            out["annotations"] = {TITLE_ANNOTATION: self.title}
        return out


@dataclass(frozen=True)
class BuiltBundle:
    ref: BundleRef
    config: BundleConfig
    config_blob: Blob
    layers: tuple[Blob, ...]
    manifest: bytes

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config_blob, *self.layers)


def build_bundle(project: Path, repository: str | None = None) -> BuiltBundle:
    root = Path(project).resolve()
    if not root.is_dir():
        raise ModelOpsError(ErrorClass.BAD_BUNDLE, f"{project} is not a folder")
    pyproject = read_pyproject(root)
    files = _collect_files(root)
    by_path = {f.path: f for f in files}
    env_kind, env_files = environment_kind(root, pyproject)
    wire = find_wire(root, pyproject, set(by_path), has_dependencies=env_kind != "none")
    missing = [p for p in env_files if p not in by_path]
    if missing:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"{root} has {env_kind} but {', '.join(missing)} is missing or ignored; "
            "a uv lock needs its pyproject.toml",
        )
    environment = Environment(
        env_kind,
        env_files,
        lock_digest({p: f.digest for p, f in by_path.items()}, env_files),
    )
    config = BundleConfig(
        files=tuple(files),
        environment=environment,
        wire=wire,
        runtime=RuntimeDefaults(*runtime_defaults(pyproject)),
        import_paths=import_paths(pyproject, set(by_path)),
    )

    own_layer = [f for f in files if f.path in env_files or f.size >= LARGE_FILE_BYTES]
    in_tree = [f for f in files if f not in own_layer]
    layers: list[Blob] = []
    if in_tree:
        layers.append(_bytes_blob(TREE_LAYER_MEDIA_TYPE, _reproducible_tar(root, in_tree)))
    layers += [
        Blob(FILE_LAYER_MEDIA_TYPE, f.digest, f.size, root / f.path, title=f.path)
        for f in own_layer
    ]
    config_blob = _bytes_blob(CONFIG_MEDIA_TYPE, config.to_bytes())
    manifest = manifest_bytes(config_blob, layers)
    if config_blob.size > MAX_CONFIG_BYTES or len(manifest) > MAX_MANIFEST_BYTES:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"{root} has {len(files)} files in {len(layers)} layers, more than a bundle can "
            "describe (workers read at most a 16 MiB config and a 4 MiB manifest); list "
            "generated or output folders in .modelopsignore",
        )
    ref = BundleRef(
        repository or _repository_name(root, pyproject), "sha256:" + sha256_hex(manifest)
    )
    return BuiltBundle(ref, config, config_blob, tuple(layers), manifest)


def manifest_bytes(config_blob: Blob, layers: Sequence[Blob]) -> bytes:
    """The OCI manifest of a bundle: canonical JSON, so its digest is the bundle's."""
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": config_blob.descriptor(),
            "layers": [layer.descriptor() for layer in layers],
        }
    )


def _bytes_blob(media_type: str, data: bytes) -> Blob:
    return Blob(media_type, "sha256:" + sha256_hex(data), len(data), data)


def _collect_files(root: Path) -> list[FileEntry]:
    spec = ignore_spec(root)
    entries: list[FileEntry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in list(dirnames):
            if spec.match_file(prefix + name + "/"):
                dirnames.remove(name)
            elif (here / name).is_symlink():
                raise ModelOpsError(
                    ErrorClass.BAD_BUNDLE,
                    f"{here / name} is a symlink to a folder; bundles hold regular files only "
                    f"(copy the folder in, or list it in .modelopsignore)",
                )
        for name in filenames:
            rel = prefix + name
            if not spec.match_file(rel):
                entries.append(_file_entry(root, rel))
    return sorted(entries, key=lambda e: e.path)


def _file_entry(root: Path, rel: str) -> FileEntry:
    path = root / rel
    if "\\" in rel:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"{path} has a backslash in its name, which workers refuse as unsafe; rename it "
            "or list it in .modelopsignore",
        )
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(root):
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE,
                f"{path} links outside the project (to {target}); copy the file in instead",
            )
        if not target.exists():
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE,
                f"{path} is a symlink to {target}, which does not exist; fix or remove the link",
            )
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE,
            f"{path} is not a regular file; list it in .modelopsignore",
        )
    with path.open("rb") as fh:
        digest = "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()
    mode = 0o755 if st.st_mode & 0o111 else 0o644
    return FileEntry(rel, digest, st.st_size, mode)


def _reproducible_tar(root: Path, files: list[FileEntry]) -> bytes:
    """A tar whose bytes depend only on paths, contents and normalised modes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in files:
            info = tarfile.TarInfo(entry.path)
            info.size = entry.size
            info.mode = entry.mode
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with (root / entry.path).open("rb") as fh:
                tar.addfile(info, fh)
    return buffer.getvalue()


def _repository_name(root: Path, pyproject: dict[str, object]) -> str:
    project = pyproject.get("project")
    name = project.get("name") if isinstance(project, dict) else None
    raw = str(name or root.name).lower()
    cleaned = re.sub(r"[^a-z0-9]+", "-", raw).strip("-")
    return cleaned or "bundle"
