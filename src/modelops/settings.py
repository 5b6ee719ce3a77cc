"""Where ModelOps keeps things and which services it uses, from one ordered set of sources.

Each setting is read from the first source that has it: the command line (a flag the
caller passes), the environment (`MODELOPS_*`), the project's `modelops.toml`, the user's
config file (`$XDG_CONFIG_HOME/modelops/config.toml`, or `MODELOPS_CONFIG`), then the
default. `mops config show` prints each value with the source it came from.

Read where it is used: on a worker the worker's own environment decides, not the client's.
A value that cannot be used is a one-line `bad_input` error naming where it came from and
what it takes, never a traceback. Secrets are never read from these files: registry
passwords and tokens come from the environment or the Docker credential store.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.contracts.sizes import parse_size_mb

PROJECT_FILE = "modelops.toml"
CLUSTER_KINDS = ("embedded", "scheduler", "slurm", "kubernetes")
DEFAULT = "default"
ENVIRONMENT = "environment"


@dataclass(frozen=True)
class Settings:
    home: Path
    project: Path = Path(".")  # MODELOPS_PROJECT_DIR, else the working directory
    results_url: str | None = None  # a folder or fsspec URL for results
    bundle_registry: str | None = None  # a registry host, e.g. localhost:5000
    registry_insecure: bool = False  # plain HTTP to a registry off loopback
    cache_max_gb: float = 50.0  # bundles and envs beyond are evicted, least recently used
    child_threads: int = 1  # OMP/MKL/OPENBLAS threads per child
    cluster: str | None = None  # embedded, scheduler, slurm or kubernetes; None: decided
    scheduler: str | None = None  # a Dask scheduler address; None: the embedded cluster
    tls_ca: Path | None = None  # for a tls:// scheduler: the CA that signed its certificate
    tls_cert: Path | None = None  # this client's certificate
    tls_key: Path | None = None  # and its key
    slurm_queue: str | None = None  # the partition workers' jobs go to; None: Slurm's default
    slurm_cores: int = 1  # cores per worker job (one thread per core)
    slurm_memory: str = "4GB"  # memory per worker job
    slurm_walltime: str = "01:00:00"  # time limit per worker job
    kubernetes_name: str = "modelops"  # the DaskCluster to connect to (or create)
    kubernetes_namespace: str | None = None  # None: the kubeconfig's namespace
    kubernetes_image: str | None = None  # NAME@sha256:...: create the cluster from it
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Setting name -> where its value came from (`mops config show`)."""

    @classmethod
    def from_env(cls) -> Settings:
        """The settings as this process sees them: environment, then the project's
        `modelops.toml`, then the user's config file, then the defaults."""
        project = Path(os.environ.get("MODELOPS_PROJECT_DIR") or Path.cwd()).expanduser()
        project = project.resolve()
        layers = [
            _environment(),
            _config_file(project / PROJECT_FILE),
            _config_file(user_config_path()),
        ]
        values: dict[str, Any] = {"project": project}
        sources: dict[str, str] = {"project": _project_source()}
        for spec in SETTINGS:
            for source, raw in layers:
                if spec.name in raw:
                    values[spec.name] = spec.read(raw[spec.name], source)
                    sources[spec.name] = source.name
                    break
            else:
                sources[spec.name] = DEFAULT
        values.setdefault("home", (Path.home() / ".modelops").resolve())
        return cls(**values, sources=sources)

    def shown(self) -> list[tuple[str, str, str, str]]:
        """(setting, variable, value, source) for every setting: `mops config show`."""
        rows = [
            (
                "project",
                "MODELOPS_PROJECT_DIR",
                str(self.project),
                self.sources.get("project", DEFAULT),
            )
        ]
        for spec in SETTINGS:
            value = getattr(self, spec.name)
            shown = "" if value is None else str(value)
            rows.append((spec.key_text, spec.env, shown, self.sources.get(spec.name, DEFAULT)))
        return rows

    @property
    def bundle_store(self) -> Path:
        """The embedded bundle store: an OCI image-layout folder."""
        return self.home / "bundles"

    @property
    def jobs_db(self) -> Path:
        """Job records of this project: SQLite in its `.modelops/`."""
        return self.project / ".modelops" / "jobs.db"

    @property
    def results_root(self) -> str:
        """Where results go: the results setting, else the project's `.modelops/results`."""
        return self.results_url or str(self.project / ".modelops" / "results")

    @property
    def cache(self) -> Path:
        """Worker-side cache of extracted bundles and environments."""
        return self.home / "cache"


def user_config_path() -> Path:
    """MODELOPS_CONFIG, else `modelops/config.toml` in XDG_CONFIG_HOME (default ~/.config)."""
    if os.environ.get("MODELOPS_CONFIG"):
        return Path(os.environ["MODELOPS_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base).expanduser() / "modelops" / "config.toml"


@dataclass(frozen=True)
class _Source:
    """Where raw values came from: its name for people, and the folder a relative path in
    it is relative to."""

    name: str
    folder: Path

    def problem(self, spec: Setting, raw: object, expected: str) -> ModelOpsError:
        where = (
            f"{spec.env}={raw!r}"
            if self.name == ENVIRONMENT
            else f"{self.name}: {spec.key_text} = {raw!r}"
        )
        return ModelOpsError(ErrorClass.BAD_INPUT, f"{where} is not usable: expected {expected}")


@dataclass(frozen=True)
class Setting:
    """One setting: its name in `Settings`, its variable, its place in a config file
    (`[table] key`), and how a raw value (text from the environment, a TOML value from a
    file) becomes the value."""

    name: str
    env: str
    table: str
    key: str
    read_value: Callable[[object], Any]
    expected: str

    @property
    def key_text(self) -> str:
        return f"{self.table}.{self.key}"

    def read(self, raw: object, source: _Source) -> Any:
        try:
            value = self.read_value(raw)
        except (TypeError, ValueError):
            raise source.problem(self, raw, self.expected) from None
        if isinstance(value, Path):  # relative to the file it is written in
            value = (source.folder / value).resolve()
        return value


def _text(raw: object) -> str | None:
    if not isinstance(raw, str):
        raise TypeError(raw)
    return raw.strip() or None


def _path(raw: object) -> Path:
    text = _text(raw)
    if text is None:
        raise ValueError(raw)
    return Path(text).expanduser()


def _flag(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower() if isinstance(raw, str) else None
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _one_of(choices: tuple[str, ...]) -> Callable[[object], str]:
    def read(raw: object) -> str:
        text = _text(raw)
        if text not in choices:
            raise ValueError(raw)
        return text

    return read


def _size(raw: object) -> str:
    text = _text(raw)
    if text is None:
        raise ValueError(raw)
    parse_size_mb(text)  # a ValueError when it is no size
    return text


def _walltime(raw: object) -> str:
    text = _text(raw)
    if text is None or not re.fullmatch(r"(\d+-)?\d{1,2}:\d{2}:\d{2}", text):
        raise ValueError(raw)
    return text


def _positive(kind: type) -> Callable[[object], Any]:
    def read(raw: object) -> Any:
        if isinstance(raw, bool):
            raise TypeError(raw)
        if isinstance(raw, str):
            value = kind(raw.strip())
        else:  # a TOML number: 50 is a fine number of gigabytes, 1.5 no number of threads
            value = float(raw) if kind is float and isinstance(raw, int) else raw
        if not isinstance(value, kind) or not math.isfinite(value) or value <= 0:
            raise ValueError(raw)
        return value

    return read


SETTINGS = (
    Setting("home", "MODELOPS_HOME", "cache", "home", _path, "a folder"),
    Setting(
        "cache_max_gb",
        "MODELOPS_CACHE_MAX_GB",
        "cache",
        "max_gb",
        _positive(float),
        "a positive number of gigabytes, e.g. 50",
    ),
    Setting(
        "child_threads",
        "MODELOPS_CHILD_THREADS",
        "runtime",
        "child_threads",
        _positive(int),
        "a positive whole number of threads, e.g. 1",
    ),
    Setting(
        "cluster",
        "MODELOPS_CLUSTER",
        "cluster",
        "kind",
        _one_of(CLUSTER_KINDS),
        f"one of {', '.join(CLUSTER_KINDS)}",
    ),
    Setting("scheduler", "MODELOPS_SCHEDULER", "cluster", "scheduler", _text, "an address"),
    Setting(
        "bundle_registry", "MODELOPS_BUNDLE_REGISTRY", "registry", "host", _text, "a host[:port]"
    ),
    Setting(
        "registry_insecure",
        "MODELOPS_REGISTRY_INSECURE",
        "registry",
        "insecure",
        _flag,
        "true or false (1 or 0)",
    ),
    Setting("results_url", "MODELOPS_RESULTS", "results", "url", _text, "a folder or a URL"),
    Setting("tls_ca", "MODELOPS_TLS_CA", "tls", "ca", _path, "a PEM file"),
    Setting("tls_cert", "MODELOPS_TLS_CERT", "tls", "cert", _path, "a PEM file"),
    Setting("tls_key", "MODELOPS_TLS_KEY", "tls", "key", _path, "a PEM file"),
    Setting("slurm_queue", "MODELOPS_SLURM_QUEUE", "slurm", "queue", _text, "a partition"),
    Setting(
        "slurm_cores",
        "MODELOPS_SLURM_CORES",
        "slurm",
        "cores",
        _positive(int),
        "a positive whole number of cores, e.g. 4",
    ),
    Setting("slurm_memory", "MODELOPS_SLURM_MEMORY", "slurm", "memory", _size, "a size, e.g. 8GB"),
    Setting(
        "slurm_walltime",
        "MODELOPS_SLURM_WALLTIME",
        "slurm",
        "walltime",
        _walltime,
        "a time limit as HH:MM:SS, e.g. 01:00:00",
    ),
    Setting("kubernetes_name", "MODELOPS_KUBERNETES_NAME", "kubernetes", "name", _text, "a name"),
    Setting(
        "kubernetes_namespace",
        "MODELOPS_KUBERNETES_NAMESPACE",
        "kubernetes",
        "namespace",
        _text,
        "a namespace",
    ),
    Setting(
        "kubernetes_image",
        "MODELOPS_KUBERNETES_IMAGE",
        "kubernetes",
        "image",
        _text,
        "an image pinned by digest, NAME@sha256:...",
    ),
)
_BY_KEY = {(spec.table, spec.key): spec for spec in SETTINGS}
_SECRET_WORDS = ("password", "token", "secret")


def _project_source() -> str:
    return ENVIRONMENT if os.environ.get("MODELOPS_PROJECT_DIR") else "working directory"


def _environment() -> tuple[_Source, dict[str, object]]:
    """Set, non-empty variables: an empty one is as good as unset."""
    raw = {
        spec.name: os.environ[spec.env] for spec in SETTINGS if os.environ.get(spec.env, "").strip()
    }
    return _Source(ENVIRONMENT, Path.cwd()), raw


def _config_file(path: Path) -> tuple[_Source, dict[str, object]]:
    """A config file's settings by name; a missing file has none. An unknown table or key
    is refused, naming it and the keys that exist, so a typo is never silently ignored."""
    source = _Source(str(path), path.parent)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return source, {}
    except OSError as exc:
        raise ModelOpsError(ErrorClass.BAD_INPUT, f"cannot read {path}: {exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelOpsError(ErrorClass.BAD_INPUT, f"{path}: not valid TOML: {exc}") from None
    raw: dict[str, object] = {}
    for table, entries in document.items():
        if not isinstance(entries, dict):
            raise _unknown(path, table)
        for key, value in entries.items():
            if any(word in key.lower() for word in _SECRET_WORDS):
                raise ModelOpsError(
                    ErrorClass.BAD_INPUT,
                    f"{path}: {table}.{key}: secrets are never read from config files; use "
                    "`mops bundle login` or MODELOPS_REGISTRY_USERNAME/MODELOPS_REGISTRY_PASSWORD",
                )
            spec = _BY_KEY.get((table, key))
            if spec is None:
                raise _unknown(path, f"{table}.{key}")
            raw[spec.name] = value
    return source, raw


def _unknown(path: Path, name: str) -> ModelOpsError:
    known = ", ".join(spec.key_text for spec in SETTINGS)
    return ModelOpsError(
        ErrorClass.BAD_INPUT, f"{path}: no setting '{name}'; the settings are {known}"
    )
