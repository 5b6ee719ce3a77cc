"""Writing a study spec as TOML.

A small emitter for this one fixed shape rather than a dependency: the spec holds only
strings, finite floats, 64-bit ints, booleans, arrays and tables (checked at validation),
and the output must read back to an equal spec, which is easy to guarantee here and to
test."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelops.study.spec import StudySpec

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def study_toml(spec: StudySpec) -> str:
    top: dict[str, Any] = {}
    if spec.name is not None:
        top["name"] = spec.name
    top["bundle"] = spec.bundle
    top["entrypoint"] = spec.entrypoint
    if spec.outputs is not None:
        top["outputs"] = spec.outputs
    top["seed"] = spec.seed
    if spec.seed_bits != 32:
        top["seed_bits"] = spec.seed_bits
    top["replicates"] = spec.replicates
    blocks = [_pairs(top)]
    if spec.config:
        blocks.append(_table(["config"], spec.config))
    space = spec.parameters
    head: dict[str, Any] = {"sampler": space.sampler}
    if space.n is not None:
        head["n"] = space.n
    blocks.append(_table(["parameters"], head))
    if space.fixed:
        blocks.append(_table(["parameters", "fixed"], space.fixed))
    for name, dim in space.dims.items():
        blocks.append(_table(["parameters", "dims", name], dim.model_dump(exclude_none=True)))
    for one in space.sets or []:
        blocks.append(_table(["parameters", "sets"], one, array=True))
    resources = spec.resources.model_dump(exclude_defaults=True, by_alias=True)
    if resources:
        if "isolation" in resources:
            resources["isolation"] = str(resources["isolation"])
        blocks.append(_table(["resources"], resources))
    return "\n".join(blocks)


def _table(path: Iterable[str], values: Mapping[str, Any], *, array: bool = False) -> str:
    name = ".".join(key(part) for part in path)
    header = f"[[{name}]]" if array else f"[{name}]"
    return f"{header}\n{_pairs(values)}"


def _pairs(values: Mapping[str, Any]) -> str:
    return "".join(f"{key(k)} = {value(v)}\n" for k, v in values.items())


def key(text: str) -> str:
    return text if _BARE_KEY.fullmatch(text) else string(text)


def string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def value(item: Any) -> str:
    """One TOML value; nested tables are written inline (they cannot span lines)."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        if not math.isfinite(item):
            raise ValueError(f"{item} has no place in a study file")
        return repr(item)  # shortest text that reads back to the same float; valid TOML
    if isinstance(item, str):
        return string(item)
    if isinstance(item, list):
        return "[" + ", ".join(value(v) for v in item) + "]"
    if isinstance(item, Mapping):
        return "{" + ", ".join(f"{key(k)} = {value(v)}" for k, v in item.items()) + "}"
    raise TypeError(f"{type(item).__name__} has no TOML form")
