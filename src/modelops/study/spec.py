"""The study spec: what to run (bundle, entrypoint, outputs), over which parameter sets, how
many replicates, from which seed (and how wide simulation seeds are), within which limits.
Validated with pydantic; every error names the field it is about, so the loader can point
at the line."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from modelops.study.errors import field_error
from modelops.study.resources import Resources
from modelops.study.run import RunSpec
from modelops.study.space import MAX_SIMULATIONS, Dimension, ParameterSpace

__all__ = ["Dimension", "ParameterSpace", "Resources", "StudySpec"]


class StudySpec(RunSpec):
    """A parameter sweep times replicates of one bundle's entrypoint."""

    outputs: list[str] | None = None
    parameters: ParameterSpace = Field(default_factory=lambda: ParameterSpace(sampler="list"))

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise field_error("must name at least one output (leave it out to keep them all)")
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

    @property
    def n_param_sets(self) -> int:
        return self.parameters.n_param_sets

    @property
    def n_simulations(self) -> int:
        return self.n_param_sets * self.replicates
