"""Parameters a model declares: a kind, bounds, an optional log scale, a default and a doc."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class ParameterError(ValueError):
    """A parameter set the model cannot take; the message names the parameter and why."""

    modelops_error_class = "bad_input"  # how the child runner classes it


@dataclass(frozen=True)
class Param:
    low: float
    high: float
    default: float | None = None
    kind: str = "float"  # "float" | "int"
    log: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int"):
            raise ValueError(f"Param kind must be 'float' or 'int', not {self.kind!r}")
        if not self.low < self.high:
            raise ValueError(f"Param low ({self.low}) must be less than high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale Param needs low > 0, not {self.low}")

    def check(self, name: str, value: Any) -> float | int:
        """`value` as this parameter's kind, or a ParameterError naming the bound it breaks."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"parameter {name!r} must be a number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ParameterError(f"parameter {name!r} must be finite, got {value}")
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ParameterError(f"parameter {name!r} is an int, got {value}")
            value = int(value)
        else:
            value = float(value)
        if value < self.low:
            raise ParameterError(f"parameter {name!r} = {value} is below its low bound {self.low}")
        if value > self.high:
            raise ParameterError(
                f"parameter {name!r} = {value} is above its high bound {self.high}"
            )
        return value

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "low": self.low,
            "high": self.high,
            "default": self.default,
            "log": self.log,
            "doc": self.doc,
        }
