"""Which values a study may hold: what TOML can write back and a model can be handed."""

from __future__ import annotations

import math
from typing import Any

from modelops.study.locate import Loc

TOML_INT_MIN = -(2**63)
TOML_INT_MAX = 2**63 - 1


def first_bad_value(value: Any, where: Loc = ()) -> tuple[Loc, str] | None:
    """Where the first value that would not survive a TOML round trip sits, and why; None if
    all is well. Checked at load so the error names the key, not a worker's traceback."""
    if isinstance(value, bool | str):
        return None
    if isinstance(value, int):
        if not TOML_INT_MIN <= value <= TOML_INT_MAX:
            return where, f"{value} is outside the range of TOML integers (64-bit)"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, f"{value} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return where, f"keys must be strings, got {key!r}"
            found = first_bad_value(item, (*where, key))
            if found:
                return found
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = first_bad_value(item, (*where, i))
            if found:
                return found
        return None
    if value is None:
        return where, "null is not allowed (TOML has no null); leave the key out instead"
    return where, (
        f"{type(value).__name__} values are not allowed; use numbers, strings, booleans, "
        "arrays or tables"
    )
