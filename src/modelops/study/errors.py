"""Study errors as one line a person can act on: which field, what is wrong."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic_core import PydanticCustomError

from modelops.study.locate import Loc

STUDY_ERROR = "study"


class StudyWarning(UserWarning):
    """A study that runs but probably not as intended (e.g. Sobol' with n not a power of 2)."""


def field_error(message: str, *field: str | int) -> PydanticCustomError:
    """An error for `field` below the model being validated. A model validator has no way
    to point at one of its fields, so the sub-path travels in the context and is appended
    to pydantic's location when the error is reported."""
    return PydanticCustomError(STUDY_ERROR, "{message}", {"message": message, "field": field})


def unknown_field(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown field '{name}'{hint}"


def dotted(loc: Loc) -> str:
    """`parameters.sets[1].beta`: the spelling a person would use to find the key."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def show(value: Any) -> str:
    """A value as it would appear in the study file (strings quoted, booleans lowercase)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'" if "'" not in value else repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


_MISSING_HINTS: dict[Loc, str] = {
    ("bundle",): ": a project folder (relative to this file), repository@sha256:<64 hex> "
    "or repository:tag",
    ("parameters", "sampler"): ": one of list, grid, uniform, lhs, sobol",
}

_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
}


def describe(error: dict[str, Any]) -> tuple[Loc, str]:
    """The location and one-line message of one pydantic error, in study-file words."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc: Loc = tuple(error["loc"])
    if kind == STUDY_ERROR:
        return (*loc, *ctx.get("field", ())), ctx["message"]
    if kind == "missing":
        return loc, "required" + _MISSING_HINTS.get(loc, "")
    if kind == "extra_forbidden":
        return loc, f"unknown field '{loc[-1]}'"
    if kind in _TYPE_WORDS:
        return loc, f"must be {_TYPE_WORDS[kind]}, got {show(error['input'])}"
    if kind == "literal_error":
        message = f"must be one of {ctx['expected']}; got {show(error['input'])}"
        if isinstance(error["input"], str):
            choices = [part.strip(" '") for part in ctx["expected"].replace(" or ", ",").split(",")]
            close = difflib.get_close_matches(error["input"], choices, n=1)
            message += f" (did you mean '{close[0]}'?)" if close else ""
        return loc, message
    bounds = {
        "greater_than": ">",
        "greater_than_equal": ">=",
        "less_than": "<",
        "less_than_equal": "<=",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()))
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return loc, f"must be {bounds[kind]} {limit}, got {show(error['input'])}"
    return loc, error["msg"]
