"""Canonical values: one byte string per meaning, so equal inputs give equal ids and cache keys.

Decisions (see docs/decisions.md): keys sorted by code point; numbers compare by value, so
`1` and `1.0` are the same parameter value and `-0.0` is `0`; booleans are not numbers;
NaN and infinities are refused; numpy scalars and arrays become plain Python values.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from modelops.contracts.errors import ErrorClass, ModelOpsError


def plain_value(value: Any, where: str = "value") -> Any:
    """`value` as plain JSON data, floats kept as floats: what a model is handed."""
    return _walk(value, where, _finite_float)


def canonical_value(value: Any, where: str = "value") -> Any:
    """`value` as plain JSON data with numbers compared by value: what ids are made of."""
    return _walk(value, where, _canonical_float)


def _walk(value: Any, where: str, on_float: Callable[[float, str], Any]) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return on_float(value, where)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ModelOpsError(
                    ErrorClass.BAD_INPUT, f"{where}: keys must be strings, got {key!r}"
                )
            out[key] = _walk(item, f"{where}.{key}", on_float)
        return out
    if isinstance(value, list | tuple):
        return [_walk(item, f"{where}[{i}]", on_float) for i, item in enumerate(value)]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist) and type(value).__module__.startswith("numpy"):
        return _walk(tolist(), where, on_float)
    raise ModelOpsError(
        ErrorClass.BAD_INPUT,
        f"{where}: {type(value).__name__} is not allowed; use numbers, strings, booleans, "
        "None, lists or dicts",
    )


def _finite_float(value: float, where: str) -> float:
    if not math.isfinite(value):
        raise ModelOpsError(ErrorClass.BAD_INPUT, f"{where}: {value} is not a finite number")
    return float(value)


def _canonical_float(value: float, where: str) -> int | float:
    value = _finite_float(value, where)
    return int(value) if value.is_integer() else value  # exact: every integral float is an int


def canonical_json(value: Any, where: str = "value") -> bytes:
    """Deterministic UTF-8 JSON with numbers by value: the bytes ids are hashed from."""
    return _dumps(canonical_value(value, where))


def faithful_json(value: Any, where: str = "value") -> bytes:
    """Deterministic UTF-8 JSON that keeps 1.0 a float: the bytes tasks travel as."""
    return _dumps(plain_value(value, where))


def _dumps(value: Any) -> bytes:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def param_id(params: Mapping[str, Any]) -> str:
    """Short stable id of one parameter set (16 hex characters, 64 bits)."""
    return sha256_hex(canonical_json(params, "params"))[:16]
