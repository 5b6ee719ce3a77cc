"""What a study and a calibration share: which bundle and model they run, with which config,
from which seed, how many replicates of each parameter set, within which limits, and the
file they were read from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from pydantic import Field, field_validator

from modelops.contracts import BundleRef, ModelOpsError, RunLimits, SeedBits
from modelops.study.base import StudyModel, check_values
from modelops.study.errors import field_error, show
from modelops.study.resources import Resources
from modelops.study.values import TOML_INT_MAX

MAX_REPLICATES = 10**6
"""Replicates of one parameter set: planning holds one set's seeds (to keep them distinct)."""


class RunSpec(StudyModel):
    """The fields of a file that runs a bundle's model many times. `source` is the file it
    was read from: it places a relative bundle folder (and data), and is not set by the file."""

    name: str | None = None
    bundle: str
    entrypoint: str = ""
    seed: int = Field(default=0, ge=0, le=TOML_INT_MAX)
    seed_bits: SeedBits = 32
    replicates: int = Field(default=1, ge=1)
    config: dict[str, Any] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    source: Path | None = Field(default=None, exclude=True, repr=False)

    @field_validator("bundle")
    @classmethod
    def _bundle(cls, value: str) -> str:
        if not value.strip():
            raise field_error("must name a project folder or a bundle reference")
        if "@" in value:
            try:
                BundleRef.parse(value)
            except ModelOpsError as exc:
                raise field_error(exc.info.message) from None
        return value

    @field_validator("seed_bits", mode="before")
    @classmethod
    def _seed_bits(cls, value: Any) -> Any:
        """Exactly the integer 32 or 64 (the Literal check alone would take 32.0)."""
        if type(value) is not int or value not in get_args(SeedBits):
            raise field_error(f"must be 32 (the default) or 64; got {show(value)}")
        return value

    @field_validator("config")
    @classmethod
    def _config(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_values(value)
        return value

    @field_validator("replicates")
    @classmethod
    def _replicates(cls, value: int) -> int:
        if value > MAX_REPLICATES:
            raise field_error(
                f"must be at most {MAX_REPLICATES:,} (one parameter set's seeds are held in "
                f"memory), got {value:,}"
            )
        return value

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.model_dump() == other.model_dump()  # type: ignore[union-attr]

    __hash__ = None  # type: ignore[assignment]  # holds dicts: equal by value, not hashable

    def limits(self) -> RunLimits:
        r = self.resources
        return RunLimits(
            timeout_s=r.timeout,
            memory_limit_mb=r.memory_limit_mb,
            isolation=r.isolation,
            max_tasks_per_process=r.max_tasks_per_process,
            retries=r.retries,
        )

    def bundle_path(self) -> Path | None:
        """The bundle folder, relative to the file's folder; None for a reference. A folder
        that exists wins; otherwise `@` or `:` mark a reference (as `mops sim`)."""
        base = self.source.parent if self.source is not None else Path()
        folder = base / self.bundle
        if folder.is_dir():
            return folder
        if "@" in self.bundle or ":" in self.bundle:
            return None
        return folder
