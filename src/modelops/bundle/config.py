"""The bundle config blob: what a bundle holds, its environment and its wire function."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelops.contracts import ErrorClass, Isolation, ModelOpsError
from modelops.contracts.ids import canonical_json

FORMAT_VERSION = 1
ARTIFACT_TYPE = "application/vnd.modelops.bundle.v1"
CONFIG_MEDIA_TYPE = "application/vnd.modelops.bundle.config.v1+json"
TREE_LAYER_MEDIA_TYPE = "application/vnd.modelops.bundle.tree.v1.tar"
FILE_LAYER_MEDIA_TYPE = "application/vnd.modelops.bundle.file.v1"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
TITLE_ANNOTATION = "org.opencontainers.image.title"


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
    def from_bytes(cls, data: bytes) -> BundleConfig:
        try:
            raw: dict[str, Any] = json.loads(data)
            if raw.get("format") != FORMAT_VERSION:
                raise ModelOpsError(
                    ErrorClass.BAD_BUNDLE,
                    f"bundle format {raw.get('format')!r} is not supported by this modelops "
                    f"(it reads format {FORMAT_VERSION}); upgrade modelops",
                )
            env = raw["environment"]
            runtime = raw.get("runtime", {})
            return cls(
                files=tuple(FileEntry(**f) for f in raw["files"]),
                environment=Environment(env["kind"], tuple(env["files"]), env["lock_digest"]),
                wire=raw["wire"],
                runtime=RuntimeDefaults(
                    Isolation(runtime.get("isolation", "warm")),
                    runtime.get("max_tasks_per_process"),
                ),
                import_paths=tuple(raw.get("import_paths", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE, f"bundle config is malformed: {exc!r}"
            ) from exc
