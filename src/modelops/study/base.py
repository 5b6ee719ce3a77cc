"""What every study model shares: strict types, immutability, unknown keys refused."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from modelops.study.errors import field_error, show, unknown_field
from modelops.study.values import first_bad_value


class StudyModel(BaseModel):
    """Strict (TOML gives real types, so nothing is coerced), immutable once validated, and
    unknown keys are refused with the nearest known one."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields)
            known |= {info.alias for info in cls.model_fields.values() if info.alias}
            for key in data:
                if key not in known:
                    raise field_error(unknown_field(str(key), sorted(known)), str(key))
        return data


def number(value: Any) -> Any:
    """`value` if it is a finite int or float; booleans are not numbers, here as in ids."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise field_error(f"must be a number, got {show(value)}")
    if not math.isfinite(value):
        raise field_error(f"must be a finite number, got {value}")
    return value


def check_values(value: Any, *field: str | int) -> None:
    """Refuse, at the offending key, a value that would not survive writing as TOML."""
    found = first_bad_value(value)
    if found:
        where, message = found
        raise field_error(message, *field, *where)
