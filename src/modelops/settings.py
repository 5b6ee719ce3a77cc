"""Where ModelOps keeps things on this machine, read from `MODELOPS_*` environment variables.

Read where it is used: on a worker the worker's own environment decides, not the client's.
A value that cannot be used is a one-line `bad_input` error naming the variable and what it
takes, never a traceback.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops.contracts import ErrorClass, ModelOpsError


@dataclass(frozen=True)
class Settings:
    home: Path
    project: Path = Path(".")  # MODELOPS_PROJECT_DIR, else the working directory
    results_url: str | None = None  # MODELOPS_RESULTS: a folder or fsspec URL for results
    bundle_registry: str | None = None  # MODELOPS_BUNDLE_REGISTRY: a host, e.g. localhost:5000
    registry_insecure: bool = False  # MODELOPS_REGISTRY_INSECURE: plain HTTP off loopback
    cache_max_gb: float = 50.0  # MODELOPS_CACHE_MAX_GB: bundles and envs beyond are evicted, LRU
    child_threads: int = 1  # MODELOPS_CHILD_THREADS: OMP/MKL/OPENBLAS threads per child

    @classmethod
    def from_env(cls) -> Settings:
        home = os.environ.get("MODELOPS_HOME") or Path.home() / ".modelops"
        project = os.environ.get("MODELOPS_PROJECT_DIR") or Path.cwd()
        return cls(
            home=Path(home).expanduser().resolve(),
            project=Path(project).expanduser().resolve(),
            results_url=os.environ.get("MODELOPS_RESULTS") or None,
            bundle_registry=os.environ.get("MODELOPS_BUNDLE_REGISTRY") or None,
            registry_insecure=os.environ.get("MODELOPS_REGISTRY_INSECURE", "") in ("1", "true"),
            cache_max_gb=_number(
                "MODELOPS_CACHE_MAX_GB", 50.0, float, "a positive number of gigabytes, e.g. 50"
            ),
            child_threads=_number(
                "MODELOPS_CHILD_THREADS", 1, int, "a positive whole number of threads, e.g. 1"
            ),
        )

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
        """Where results go: MODELOPS_RESULTS, else the project's `.modelops/results`."""
        return self.results_url or str(self.project / ".modelops" / "results")

    @property
    def cache(self) -> Path:
        """Worker-side cache of extracted bundles and environments."""
        return self.home / "cache"


def _number(name: str, default: float, kind: type, expected: str) -> Any:
    """The positive, finite `kind` in variable `name`, `default` when unset or empty."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw.strip())
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT, f"{name}={raw!r} is not usable: expected {expected}"
        )
    return value
