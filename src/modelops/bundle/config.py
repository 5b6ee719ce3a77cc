"""The bundle config blob: what a bundle holds, its environment and its wire function."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelops.contracts import ErrorClass, Isolation, ModelOpsError
from modelops.contracts.ids import canonical_json, sha256_hex
from modelops.contracts.refs import is_digest

FORMAT_VERSION = 1
ARTIFACT_TYPE = "application/vnd.modelops.bundle.v1"
CONFIG_MEDIA_TYPE = "application/vnd.modelops.bundle.config.v1+json"
TREE_LAYER_MEDIA_TYPE = "application/vnd.modelops.bundle.tree.v1.tar"
FILE_LAYER_MEDIA_TYPE = "application/vnd.modelops.bundle.file.v1"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
TITLE_ANNOTATION = "org.opencontainers.image.title"
# What a worker reads whole into memory is capped: a manifest at the distribution spec's
# 4 MiB, a config (about 150 bytes per file) at 16 MiB, some 100,000 files.
MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 16 << 20
# The files each environment kind is built from (.python-version may join any of them).
ENVIRONMENT_FILES: dict[str, tuple[str, ...]] = {
    "uv.lock": ("pyproject.toml", "uv.lock"),
    "requirements.txt": ("requirements.txt",),
    "pyproject.toml": ("pyproject.toml",),
    "none": (),
}


@dataclass(frozen=True)
class FileEntry:
    path: str
    digest: str
    size: int
    mode: int


@dataclass(frozen=True)
class Environment:
    """How a worker builds the bundle's environment; `lock_digest` covers the files that
    decide it, so bundles that differ only in code share one environment."""

    kind: str  # "uv.lock" | "requirements.txt" | "pyproject.toml" | "none"
    files: tuple[str, ...]
    lock_digest: str


@dataclass(frozen=True)
class RuntimeDefaults:
    """How the bundle's author wants its processes reused (`[tool.modelops]` in pyproject);
    a study may override both."""

    isolation: Isolation = Isolation.WARM
    max_tasks_per_process: int | None = None


@dataclass(frozen=True)
class BundleConfig:
    files: tuple[FileEntry, ...]
    environment: Environment
    wire: str  # "module:function"; "" when a package of the environment provides it
    runtime: RuntimeDefaults = RuntimeDefaults()
    import_paths: tuple[str, ...] = ()  # folders besides the root on sys.path, e.g. "src"
    format: int = FORMAT_VERSION

    def to_bytes(self) -> bytes:
        # written only when set, so bundles of flat projects keep the digests they had
        paths = {"import_paths": list(self.import_paths)} if self.import_paths else {}
        return canonical_json(
            {
                **paths,
                "format": self.format,
                "created_by": "modelops",
                "wire": self.wire,
                "runtime": {
                    "isolation": self.runtime.isolation.value,
                    "max_tasks_per_process": self.runtime.max_tasks_per_process,
                },
                "environment": {
                    "kind": self.environment.kind,
                    "files": list(self.environment.files),
                    "lock_digest": self.environment.lock_digest,
                },
                "files": [
                    {"path": f.path, "digest": f.digest, "size": f.size, "mode": f.mode}
                    for f in self.files
                ],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "bundle config") -> BundleConfig:
        """Parse and check a config: every field of the right type, every digest well
        formed, each path listed once, and the environment's lock digest the one its files
        give (workers share environments by it, so a bundle must not claim another's)."""
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise _malformed(what, "it is not JSON") from exc
        if not isinstance(raw, dict):
            raise _malformed(what, f"it is a JSON {json_type(raw)}, not an object")
        if raw.get("format") != FORMAT_VERSION:
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE,
                f"bundle format {repr(raw.get('format'))[:20]} is not supported by this modelops "
                f"(it reads format {FORMAT_VERSION}); upgrade modelops",
            )
        files = tuple(
            _file_entry(what, i, f) for i, f in enumerate(_field(what, raw, "files", list))
        )
        env = _field(what, raw, "environment", dict)
        environment = Environment(
            _field(what, env, "kind", str, "environment."),
            tuple(_strings(what, env, "files", "environment.")),
            _field(what, env, "lock_digest", str, "environment."),
        )
        runtime = _field(what, raw, "runtime", dict, default={})
        isolation = runtime.get("isolation", "warm")
        if not isinstance(isolation, str) or isolation not in {i.value for i in Isolation}:
            raise _malformed(what, f"runtime.isolation {str(isolation)[:50]!r} is unknown")
        max_tasks = runtime.get("max_tasks_per_process")
        if max_tasks is not None and (
            isinstance(max_tasks, bool) or not isinstance(max_tasks, int | float) or max_tasks <= 0
        ):
            raise _malformed(what, "runtime.max_tasks_per_process is not a positive number")
        config = cls(
            files=files,
            environment=environment,
            wire=_field(what, raw, "wire", str),
            runtime=RuntimeDefaults(Isolation(isolation), max_tasks),
            import_paths=tuple(_strings(what, raw, "import_paths", default=[])),
        )
        config._check(what)
        return config

    def _check(self, what: str) -> None:
        digests: dict[str, str] = {}
        for entry in self.files:
            if entry.path in digests:
                raise _malformed(what, f"it lists {entry.path[:200]!r} twice")
            digests[entry.path] = entry.digest
        env = self.environment
        if env.kind not in ENVIRONMENT_FILES:
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE,
                f"{what}: environment kind {env.kind[:50]!r} is unknown to this modelops "
                f"(it knows {', '.join(sorted(ENVIRONMENT_FILES))}); upgrade modelops",
            )
        unlisted = [p for p in ENVIRONMENT_FILES[env.kind] if p not in env.files]
        if unlisted:
            raise _malformed(
                what,
                f"an environment of kind {env.kind!r} is built from {unlisted[0]!r}, which "
                "environment.files does not list",
            )
        absent = [p for p in env.files if p not in digests]
        if absent:
            raise _malformed(what, f"environment file {absent[0][:200]!r} is not among its files")
        if not is_digest(env.lock_digest):
            raise _malformed(what, "environment.lock_digest is not 'sha256:' and 64 hex")
        actual = lock_digest(digests, env.files)
        if actual != env.lock_digest:
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE,
                f"{what} claims environment lock digest {env.lock_digest}, but its environment "
                f"files ({', '.join(env.files) or 'none'}) give {actual}; refused",
            )


def lock_digest(file_digests: Mapping[str, str], env_files: Iterable[str]) -> str:
    """The digest of the files that decide an environment: sha256 of their canonical
    `{path: digest}` map. Builds record it; fetches recompute it from verified digests."""
    return "sha256:" + sha256_hex(canonical_json({p: file_digests[p] for p in env_files}))


def _malformed(what: str, why: str) -> ModelOpsError:
    return ModelOpsError(ErrorClass.BAD_BUNDLE, f"{what} is malformed: {why}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def json_type(value: object) -> str:
    """What a parsed JSON value is, in JSON's words, for one-line errors."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", float: "fraction"}
    return names.get(type(value), "null" if value is None else "number")


_MISSING = object()


def _field(
    what: str, raw: dict, key: str, kind: type, prefix: str = "", default: Any = _MISSING
) -> Any:
    value = raw.get(key, default)
    if value is _MISSING:
        raise _malformed(what, f"it has no {prefix}{key}")
    if not isinstance(value, kind):
        expected = {dict: "an object", list: "a list", str: "a string"}[kind]
        raise _malformed(what, f"{prefix}{key} is a JSON {json_type(value)}, not {expected}")
    return value


def _strings(what: str, raw: dict, key: str, prefix: str = "", default: Any = _MISSING) -> list:
    values = _field(what, raw, key, list, prefix, default)
    if not all(isinstance(v, str) for v in values):
        raise _malformed(what, f"{prefix}{key} holds something other than strings")
    return values


def _file_entry(what: str, index: int, raw: object) -> FileEntry:
    where = f"files[{index}]"
    if not isinstance(raw, dict) or set(raw) != {"path", "digest", "size", "mode"}:
        raise _malformed(what, f"{where} is not an object of path, digest, size and mode")
    path, digest, size, mode = raw["path"], raw["digest"], raw["size"], raw["mode"]
    if not isinstance(path, str) or not path:
        raise _malformed(what, f"{where}.path is not a non-empty string")
    if not is_digest(digest):
        raise _malformed(what, f"{where}.digest is not 'sha256:' and 64 lowercase hex")
    if not _is_int(size) or size < 0:
        raise _malformed(what, f"{where}.size is not a whole number of bytes")
    if not _is_int(mode) or not 0 <= mode <= 0o7777:
        raise _malformed(what, f"{where}.mode is not a file mode")
    return FileEntry(path, digest, size, mode)
