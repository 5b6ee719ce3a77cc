"""One simulation to run (SimTask) and what comes back from it (SimReturn)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from modelops.contracts.artifacts import Artifact
from modelops.contracts.errors import ErrorClass, ErrorInfo, ModelOpsError
from modelops.contracts.ids import canonical_json, plain_value, sha256_hex
from modelops.contracts.refs import BundleRef

PROTOCOL_VERSION = 1
"""Version of SimTask/SimReturn and of the parent-child wire messages; bumped on any change."""

_MAX_SEED = 2**64


def check_seed(seed: object) -> int:
    """Any seed a model can take: a whole number in [0, 2**64). Studies hand out narrower
    ones (32 bits unless `seed_bits = 64`); one simulation may ask for any of these."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ModelOpsError(ErrorClass.BAD_INPUT, f"seed must be an integer, got {seed!r}")
    if not 0 <= seed < _MAX_SEED:
        raise ModelOpsError(ErrorClass.BAD_INPUT, f"seed must be in [0, 2**64), got {seed}")
    return seed


class Isolation(StrEnum):
    """How a bundle's child processes are reused: `warm` serves many tasks per process,
    `recycle` replaces it after `max_tasks_per_process`, `cold` starts one per task (for
    models whose native state leaks between runs)."""

    WARM = "warm"
    RECYCLE = "recycle"
    COLD = "cold"


@dataclass(frozen=True)
class RunLimits:
    """How a task may run, not what it computes: never part of the provenance key.
    None means the bundle's own setting (isolation) or no limit."""

    timeout_s: float | None = None
    memory_limit_mb: float | None = None
    isolation: Isolation | None = None
    max_tasks_per_process: int | None = None
    retries: int = 1

    def __post_init__(self) -> None:
        # finite as well as positive: no clock fires after nan seconds, none can wait for inf
        for name in ("timeout_s", "memory_limit_mb"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ModelOpsError(ErrorClass.BAD_INPUT, f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ModelOpsError(
                    ErrorClass.BAD_INPUT, f"{name} must be a finite number above 0, got {value}"
                )
        count = self.max_tasks_per_process
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"max_tasks_per_process must be a whole number >= 1, got {count!r}",
            )
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ModelOpsError(
                ErrorClass.BAD_INPUT, f"retries must be a whole number >= 0, got {self.retries!r}"
            )
        if self.isolation is not None:
            object.__setattr__(self, "isolation", _isolation(self.isolation))

    def to_dict(self) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for name in (
                "timeout_s",
                "memory_limit_mb",
                "isolation",
                "max_tasks_per_process",
                "retries",
            )
        }


def _isolation(value: object) -> Isolation:
    try:
        return Isolation(value)
    except ValueError:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"isolation must be one of warm, recycle, cold; got {value!r}",
        ) from None


@dataclass(frozen=True)
class SimTask:
    """Everything that decides a simulation's result, and nothing else."""

    bundle: BundleRef
    entrypoint: str
    params: dict[str, Any]
    seed: int
    config: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] | None = None
    limits: RunLimits = field(default_factory=RunLimits)
    protocol: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        check_seed(self.seed)
        if not isinstance(self.entrypoint, str):
            raise ModelOpsError(ErrorClass.BAD_INPUT, "entrypoint must be a string")
        object.__setattr__(self, "params", plain_value(self.params, "params"))
        object.__setattr__(self, "config", plain_value(self.config, "config"))
        if self.outputs is not None:
            object.__setattr__(self, "outputs", tuple(sorted(set(self.outputs))))

    def provenance(self) -> dict[str, Any]:
        """The fields of the provenance key (DESIGN.md): same provenance, same result."""
        return {
            "bundle": self.bundle.digest,
            "entrypoint": self.entrypoint,
            "params": self.params,
            "config": self.config,
            "seed": self.seed,
            "outputs": list(self.outputs) if self.outputs is not None else None,
        }

    @property
    def task_id(self) -> str:
        """128-bit id of the provenance key; the repository name is not part of it.
        Computed once: a study asks for it several times per simulation."""
        cached = self.__dict__.get("_task_id")
        if cached is None:
            cached = sha256_hex(self._id_prefix() + b"%d}" % self.seed)[:32]
            object.__setattr__(self, "_task_id", cached)
        return cached

    def with_seed(self, seed: int) -> SimTask:
        """The same simulation with another seed: a study's replicates of one parameter set.
        Made without checking the params again, and sharing the part of the id they make."""
        check_seed(seed)
        self._id_prefix()  # made once here, copied with the rest
        task = object.__new__(SimTask)  # a copy without __post_init__: nothing to check again
        task.__dict__.update(self.__dict__, seed=seed)
        task.__dict__.pop("_task_id", None)
        return task

    def _id_prefix(self) -> bytes:
        """The canonical JSON of the provenance key up to its seed, which sorts last: the
        key's JSON is this, the seed, and `}`."""
        prefix = self.__dict__.get("_prefix")
        if prefix is None:
            key = self.provenance()
            del key["seed"]
            prefix = canonical_json(key)[:-1] + b',"seed":'
            object.__setattr__(self, "_prefix", prefix)
        return prefix


@dataclass(frozen=True)
class SimReturn:
    """The outcome of one SimTask: named outputs, or an error with its remote traceback."""

    task_id: str
    outputs: dict[str, Artifact] = field(default_factory=dict)
    error: ErrorInfo | None = None
    timings: dict[str, float] = field(default_factory=dict)
    logs: str = ""
    cached: bool = False
    worker: str = ""
    protocol: int = PROTOCOL_VERSION

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failure(cls, task_id: str, error: ErrorInfo, **kwargs: Any) -> SimReturn:
        return cls(task_id=task_id, error=error, **kwargs)
