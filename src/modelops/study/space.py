"""Parameter spaces: which parameter sets a study runs (explicit sets, a grid, or n samples).

Sizes are checked where the file says them: a study is planned lazily, but a few things are
held in memory whole (a grid's points along each dimension, an LHS design, one parameter
set's replicate seeds), and the store and job accounting keep one entry per simulation; a
study beyond these limits is refused at its line rather than failing with MemoryError later.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from modelops.study.base import StudyModel, check_values, number
from modelops.study.errors import StudyWarning, field_error

Sampler = Literal["list", "grid", "uniform", "lhs", "sobol"]
SAMPLED: tuple[str, ...] = ("uniform", "lhs", "sobol")

MAX_SIMULATIONS = 10**9
"""Parameter sets x replicates of one study: far below what int64 indices and 32-bit seed
streams allow, and about what one job's records can account for (a job's end counts and its
reads keep one ~100-byte key per simulation); a larger study is several studies."""
MAX_GRID_POINTS = 10**6
"""Points along one grid dimension: each dimension's values are held as a list."""
MAX_LHS_VALUES = 2**24
"""n x dimensions of one Latin hypercube: drawn at once (about 24 bytes per value at peak,
so some 400 MB), since its strata span all n points."""
MAX_SOBOL_DIMS = 21201
"""Dimensions scipy's Sobol' direction numbers cover."""


class Dimension(StudyModel):
    """One swept parameter: a range, optionally log-scaled; `points` for grids."""

    type: Literal["float", "int"] = "float"
    low: float | int
    high: float | int
    log: bool = False
    points: int | None = None

    @field_validator("low", "high", mode="before")
    @classmethod
    def _is_number(cls, value: Any) -> Any:
        return number(value)

    @field_validator("low", "high")
    @classmethod
    def _of_its_type(cls, value: float | int, info: ValidationInfo) -> float | int:
        if info.data.get("type") == "int":
            if isinstance(value, float) and not value.is_integer():
                raise field_error(f"must be a whole number for an int dimension, got {value!r}")
            return int(value)
        return float(value)

    @field_validator("points")
    @classmethod
    def _enough_points(cls, value: int | None) -> int | None:
        if value is not None and value < 2:
            raise field_error(
                f"must be at least 2, got {value} (a single value belongs in [parameters.fixed])"
            )
        if value is not None and value > MAX_GRID_POINTS:
            raise field_error(
                f"must be at most {MAX_GRID_POINTS:,} (a grid dimension's points are held in "
                f"memory), got {value:,}"
            )
        return value

    @model_validator(mode="after")
    def _range(self) -> Dimension:
        if self.log and self.low <= 0:
            raise field_error(f"must be greater than 0 on a log scale, got {self.low!r}", "low")
        if self.low >= self.high:
            raise field_error(f"must be less than high ({self.high!r})", "low")
        return self

    def grid_values(self) -> list[float] | list[int]:
        """The grid's points along this dimension: evenly spaced (in log space if `log`),
        to 15 significant digits, ends exact; int dimensions are rounded (half up) and
        deduplicated, keeping order."""
        count = self.points or 2
        low, high = float(self.low), float(self.high)
        if self.log:  # powers of ten, so decades come out exact (1, 10, 100, not 9.99…)
            a, b = math.log10(low), math.log10(high)
            values = [10.0 ** (a + (b - a) * i / (count - 1)) for i in range(count)]
        else:
            values = [low + (high - low) * i / (count - 1) for i in range(count)]
        # 15 significant digits: 0.3, not the 0.30000000000000004 that 0.1 + 0.2 makes
        values = [float(f"{v:.15g}") for v in values]
        values[0], values[-1] = low, high
        if self.type == "float":
            return values
        rounded = (min(max(math.floor(v + 0.5), self.low), self.high) for v in values)
        return list(dict.fromkeys(int(v) for v in rounded))

    def grid_size(self) -> int:
        """How many values `grid_values` has: `points` for floats, fewer for an int
        dimension whose points round to the same integers."""
        if self.type == "float":
            return self.points or 2
        return len(self.grid_values())


class ParameterSpace(StudyModel):
    """Which parameter sets a study runs: explicit sets, a grid, or `n` samples."""

    sampler: Sampler
    n: int | None = None
    dims: dict[str, Dimension] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    sets: list[dict[str, Any]] | None = None

    @field_validator("n")
    @classmethod
    def _n(cls, value: int | None, info: ValidationInfo) -> int | None:
        sampler = info.data.get("sampler")
        if value is not None and sampler in ("grid", "list"):
            size = "the product of the dims' points" if sampler == "grid" else "the sets given"
            raise field_error(f"not used by sampler '{sampler}' (its size is {size})")
        if value is not None and value < 1:
            raise field_error(f"must be at least 1, got {value}")
        return value

    @field_validator("fixed")
    @classmethod
    def _fixed(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_values(value)
        return value

    @field_validator("sets")
    @classmethod
    def _sets(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value is not None:
            if not value:
                raise field_error("must hold at least one set (or leave it out for one set)")
            check_values(value)
        return value

    @model_validator(mode="after")
    def _fits_sampler(self, info: ValidationInfo) -> ParameterSpace:
        sampler = self.sampler
        if sampler == "list":
            if self.dims:
                raise field_error(
                    "not used by sampler 'list' (give each set as [[parameters.sets]])", "dims"
                )
        else:
            if self.sets is not None:
                raise field_error(f"only sampler 'list' takes sets, not '{sampler}'", "sets")
            if not self.dims:
                raise field_error(
                    f"sampler '{sampler}' needs at least one dimension "
                    "([parameters.dims.NAME] with low and high)",
                    "dims",
                )
            if sampler in SAMPLED and self.n is None:
                raise field_error(f"required for sampler '{sampler}'", "n")
        for name, dim in self.dims.items():
            if sampler == "grid" and dim.points is None:
                raise field_error("required for sampler 'grid'", "dims", name, "points")
            if sampler != "grid" and dim.points is not None:
                raise field_error(
                    f"only sampler 'grid' takes points, not '{sampler}'", "dims", name, "points"
                )
        for name in self.fixed:
            if name in self.dims:
                raise field_error(
                    f"'{name}' is also a dimension in [parameters.dims]; give it in one place",
                    "fixed",
                    name,
                )
        for i, one in enumerate(self.sets or []):
            for name in one:
                if name in self.fixed:
                    raise field_error(
                        f"'{name}' is also in [parameters.fixed]; give it in one place",
                        "sets",
                        i,
                        name,
                    )
        self._check_size()
        if sampler == "sobol" and self.n is not None and self.n & (self.n - 1):
            _warn_sobol(self.n, info)
        return self

    def _check_size(self) -> None:
        """Refuse, at `dims` or `n`, a space that cannot be planned or held."""
        if self.sampler == "grid":
            sizes = [dim.grid_size() for dim in self.dims.values()]
            total = math.prod(sizes)
            if total > MAX_SIMULATIONS:
                shape = " x ".join(f"{size:,}" for size in sizes)
                raise field_error(
                    f"the grid has {shape} = {total:,} points, more than the "
                    f"{MAX_SIMULATIONS:,} simulations a study may have",
                    "dims",
                )
        if self.sampler not in SAMPLED or self.n is None:
            return
        if self.n > MAX_SIMULATIONS:
            raise field_error(
                f"must be at most {MAX_SIMULATIONS:,} (the simulations a study may have), "
                f"got {self.n:,}",
                "n",
            )
        d = len(self.dims)
        if self.sampler == "lhs" and self.n * d > MAX_LHS_VALUES:
            raise field_error(
                f"sampler 'lhs' draws all n x dimensions values at once: {self.n:,} x {d} = "
                f"{self.n * d:,}, more than {MAX_LHS_VALUES:,}; use a smaller n, or sampler "
                "'sobol' or 'uniform', which draw in blocks",
                "n",
            )
        if self.sampler == "sobol" and d > MAX_SOBOL_DIMS:
            raise field_error(
                f"sampler 'sobol' takes at most {MAX_SOBOL_DIMS:,} dimensions, got {d:,}", "dims"
            )

    @property
    def n_param_sets(self) -> int:
        if self.sampler == "list":
            return len(self.sets) if self.sets is not None else 1
        if self.sampler == "grid":
            return math.prod(dim.grid_size() for dim in self.dims.values())
        return self.n or 0


def _warn_sobol(n: int, info: ValidationInfo) -> None:
    lower = 1 << (n.bit_length() - 1)
    where = ""
    if info.context and "locate" in info.context:
        where = info.context["locate"](("parameters", "n"))
    warnings.warn(
        StudyWarning(
            f"{where}sampler 'sobol' with n = {n}: Sobol' points keep their balance properties "
            f"only for a power of two; use n = {lower} or n = {lower * 2}"
        ),
        stacklevel=2,
    )
