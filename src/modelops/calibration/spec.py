"""The calibration file: which parameters to search (within which bounds, on which scale),
which values every simulation gets, which observed data each target compares with which
model output and how, and how the search runs. The bundle, entrypoint, config, seeds,
replicates and resources are a study's (`RunSpec`); so is every error: one line naming the
file, the line and the key."""

from __future__ import annotations

from typing import Any, Literal

import polars as pl
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from modelops.calibration.scores import LIKELIHOODS, LOSSES, ReplicatesMode
from modelops.study.base import StudyModel, check_values, number
from modelops.study.errors import field_error, show
from modelops.study.run import RunSpec
from modelops.study.space import MAX_SIMULATIONS

Loss = Literal[LOSSES]  # type: ignore[valid-type]  # the names scores implements, one list
Algorithm = Literal["tpe", "cmaes", "random", "sobol"]
Kind = Literal["float", "int"]


class FreeParameter(StudyModel):
    """One searched parameter. What the file leaves out (kind, a bound, the scale) comes from
    the model's own declaration (`with_model_defaults`), which the file may only narrow."""

    type: Kind | None = None
    low: float | int | None = None
    high: float | int | None = None
    log: bool | None = None

    @field_validator("low", "high", mode="before")
    @classmethod
    def _is_number(cls, value: Any) -> Any:
        return value if value is None else number(value)

    @field_validator("low", "high")
    @classmethod
    def _of_its_type(cls, value: float | int | None, info: ValidationInfo) -> float | int | None:
        kind = info.data.get("type")
        if value is None or kind is None:
            return value
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise field_error(f"must be a whole number for an int parameter, got {value!r}")
            return int(value)
        return float(value)

    @model_validator(mode="after")
    def _range(self) -> FreeParameter:
        if self.log and self.low is not None and self.low <= 0:
            raise field_error(f"must be greater than 0 on a log scale, got {self.low!r}", "low")
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise field_error(f"must be less than high ({self.high!r})", "low")
        return self


class Target(StudyModel):
    """Observed data (a CSV or Parquet file, relative to the calibration file) that one model
    output is scored against: rows aligned on `join`, `observed` compared with `simulated`.
    A negative_binomial target without a dispersion fits it."""

    data: str
    output: str
    join: list[str]
    observed: str
    simulated: str | None = None
    loss: Loss
    weight: float = Field(default=1.0, ge=0)
    replicates: ReplicatesMode | None = None
    dispersion: float | Literal["fit"] | None = None
    sigma: float | None = Field(default=None, gt=0)
    trials: str | None = None
    missing_penalty: float | None = Field(default=None, ge=0)

    @field_validator("data", "output", "observed", "simulated", "trials")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise field_error("must not be empty")
        return value

    @field_validator("join")
    @classmethod
    def _join(cls, value: list[str]) -> list[str]:
        if not value:
            raise field_error("must name at least one column that aligns the rows (e.g. day)")
        for column in value:
            if value.count(column) > 1:
                raise field_error(f"names column '{column}' twice")
        return value

    @field_validator("observed")
    @classmethod
    def _not_joined(cls, value: str, info: ValidationInfo) -> str:
        if value in info.data.get("join", []):
            raise field_error(f"'{value}' is also a join column: one aligns rows, one is scored")
        return value

    @field_validator("weight", "sigma", "missing_penalty", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return value if value is None else float(number(value))

    @field_validator("dispersion", mode="before")
    @classmethod
    def _dispersion(cls, value: Any) -> Any:
        if value is None or value == "fit":
            return value
        if isinstance(value, str):
            raise field_error(f"must be a number > 0 or 'fit', got {show(value)}")
        if float(number(value)) <= 0:
            raise field_error(f"must be > 0, got {value!r}")
        return float(value)

    @model_validator(mode="after")
    def _fits_loss(self) -> Target:
        """Each loss takes the keys it uses and no others, so a key meant for another loss
        is not silently ignored."""
        loss = self.loss
        if self.trials is not None and loss not in ("binomial", "beta_binomial"):
            raise field_error(
                f"only binomial and beta_binomial take trials, not '{loss}'", "trials"
            )
        if self.trials is None and loss in ("binomial", "beta_binomial"):
            raise field_error(f"required for loss '{loss}': the column of trial counts", "trials")
        if self.replicates == "marginal" and loss not in LIKELIHOODS:
            raise field_error(
                f"'marginal' needs a likelihood; the {loss} loss scores the replicates' mean",
                "replicates",
            )
        if self.sigma is not None and loss != "gaussian":
            raise field_error(f"only gaussian takes sigma, not '{loss}'", "sigma")
        if self.sigma is None and loss == "gaussian":
            raise field_error("required for loss 'gaussian': the observation noise", "sigma")
        if self.dispersion is not None and loss not in ("negative_binomial", "beta_binomial"):
            raise field_error(
                f"only negative_binomial and beta_binomial take dispersion, not '{loss}'",
                "dispersion",
            )
        if loss == "beta_binomial" and not isinstance(self.dispersion, float):
            raise field_error(
                "loss 'beta_binomial' needs a dispersion > 0 ('fit' is for negative_binomial)",
                "dispersion",
            )
        return self

    @property
    def simulated_column(self) -> str:
        """The column of the model output compared with `observed`: the same name unless
        `simulated` says otherwise."""
        return self.simulated or self.observed


class Search(StudyModel):
    """How candidates are chosen: the optimiser, how many candidates, how many at once."""

    algorithm: Algorithm = "tpe"
    trials: int = Field(ge=1)
    batch: int = Field(default=16, ge=1)


class CalibrationSpec(RunSpec):
    """Free parameters fitted to observed targets by an ask/tell search. `observed` holds
    each target's data once `load_calibration` has read it; the file cannot set it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    parameters: dict[str, FreeParameter] = Field(default_factory=dict, validate_default=True)
    fixed: dict[str, Any] = Field(default_factory=dict)
    targets: dict[str, Target] = Field(default_factory=dict, validate_default=True)
    search: Search
    observed: dict[str, pl.DataFrame] = Field(default_factory=dict, exclude=True, repr=False)

    @field_validator("parameters")
    @classmethod
    def _some_parameters(cls, value: dict[str, FreeParameter]) -> dict[str, FreeParameter]:
        if not value:
            raise field_error(
                "needs at least one free parameter ([parameters.NAME], with low and high "
                "unless the model declares them)"
            )
        return value

    @field_validator("fixed")
    @classmethod
    def _fixed(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_values(value)
        return value

    @field_validator("targets")
    @classmethod
    def _some_targets(cls, value: dict[str, Target]) -> dict[str, Target]:
        if not value:
            raise field_error("needs at least one target ([targets.NAME] with data and output)")
        if all(target.weight == 0 for target in value.values()):
            raise field_error("every target has weight 0; at least one must count")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CalibrationSpec:
        if self.resources.batch_size is not None:
            raise field_error(
                "does not apply to a calibration, which runs each candidate's replicates as "
                "one task; [search] batch sets how many candidates are in flight",
                "resources",
                "batch_size",
            )
        for name in self.fixed:
            if name in self.parameters:
                raise field_error(
                    f"'{name}' is also a free parameter in [parameters]; give it in one place",
                    "fixed",
                    name,
                )
        total = self.search.trials * self.replicates
        if total > MAX_SIMULATIONS:
            raise field_error(
                f"{self.search.trials:,} trials x {self.replicates:,} replicates = {total:,} "
                f"simulations, more than the {MAX_SIMULATIONS:,} a job may have",
                "search",
                "trials",
            )
        return self

    @property
    def outputs(self) -> list[str]:
        """The model outputs the targets compare with: all a simulation needs to return."""
        return list(dict.fromkeys(target.output for target in self.targets.values()))
