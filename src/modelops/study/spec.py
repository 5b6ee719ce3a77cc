"""The study spec: what to run (bundle, entrypoint, outputs), over which parameter sets, how
many replicates, from which seed (and how wide simulation seeds are), within which limits.
Validated with pydantic; every error names the field it is about, so the loader can point
at the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from pydantic import Field, field_validator, model_validator

from modelops.contracts import BundleRef, ModelOpsError, RunLimits, SeedBits
from modelops.study.base import StudyModel, check_values
from modelops.study.errors import field_error, show
from modelops.study.resources import Resources
from modelops.study.space import MAX_SIMULATIONS, Dimension, ParameterSpace
from modelops.study.values import TOML_INT_MAX

__all__ = ["Dimension", "ParameterSpace", "Resources", "StudySpec"]

MAX_REPLICATES = 10**6
"""Replicates of one parameter set: planning holds one set's seeds (to keep them distinct)."""


class StudySpec(StudyModel):
    """A parameter sweep times replicates of one bundle's entrypoint. `source` is the file it
    was read from: it places a relative bundle folder, and is not part of the study."""

    name: str | None = None
    bundle: str
    entrypoint: str = ""
    outputs: list[str] | None = None
    seed: int = Field(default=0, ge=0, le=TOML_INT_MAX)
    seed_bits: SeedBits = 32
    replicates: int = Field(default=1, ge=1)
    config: dict[str, Any] = Field(default_factory=dict)
    parameters: ParameterSpace = Field(default_factory=lambda: ParameterSpace(sampler="list"))
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

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise field_error("must name at least one output (leave it out to keep them all)")
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

    @model_validator(mode="after")
    def _size(self) -> StudySpec:
        """Parameter sets x replicates within what a study may have; each factor alone is
        checked where it is given, so a product too large is the replicates' doing."""
        total = self.n_simulations
        if total > MAX_SIMULATIONS:
            raise field_error(
                f"{self.n_param_sets:,} parameter sets x {self.replicates:,} replicates = "
                f"{total:,} simulations, more than the {MAX_SIMULATIONS:,} a study may have",
                "replicates",
            )
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StudySpec):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # holds dicts: equal by value, not hashable

    @property
    def n_param_sets(self) -> int:
        return self.parameters.n_param_sets

    @property
    def n_simulations(self) -> int:
        return self.n_param_sets * self.replicates

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
        """The bundle folder, relative to the study file's folder; None for a reference.
        A folder that exists wins; otherwise `@` or `:` mark a reference (as `mops sim`)."""
        base = self.source.parent if self.source is not None else Path()
        folder = base / self.bundle
        if folder.is_dir():
            return folder
        if "@" in self.bundle or ":" in self.bundle:
            return None
        return folder
