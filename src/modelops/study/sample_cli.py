"""`mops study sample`: a study spec from command-line words, e.g. `--dim beta=0.1:0.9`.

Dimensions are `NAME=[int:][log:]LOW:HIGH[:POINTS]` (float unless `int`; `POINTS` for grids);
fixed values are `NAME=VALUE`, read as every command reads them
(`modelops.contracts.assignments`). A mistake is one line naming the argument it came from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.contracts.assignments import read_assignments
from modelops.study.errors import Loc, dotted
from modelops.study.load import first_problem
from modelops.study.spec import StudySpec

_DIM_FORM = "NAME=[int:][log:]LOW:HIGH[:POINTS], e.g. beta=0.1:0.9 or population=int:1000:5000"
_FLAGS = ("int", "float", "log")


def sample_study(
    bundle: str | Path,
    *,
    sampler: str,
    n: int | None = None,
    dims: Sequence[str] = (),
    fixed: Sequence[str] = (),
    replicates: int = 1,
    seed: int = 0,
    seed_bits: int = 32,
    entrypoint: str = "",
    outputs: Sequence[str] | None = None,
    name: str | None = None,
    out: Path | None = None,
) -> StudySpec:
    """The spec `mops study sample` writes. With `out` (where the file will be written), a
    bundle folder given relative to the working directory is rewritten relative to the
    file's folder, as the file format expects, and `source` is set to `out`."""
    dim_args = read_assignments(dims, "--dim", _parse_dim, _DIM_FORM)
    fixed_args = read_assignments(fixed, "--fixed")
    parameters: dict[str, Any] = {"sampler": sampler}
    if n is not None:
        parameters["n"] = n
    if dim_args:
        parameters["dims"] = {key: value for key, (_, value) in dim_args.items()}
    if fixed_args:
        parameters["fixed"] = {key: value for key, (_, value) in fixed_args.items()}
    data: dict[str, Any] = {
        "bundle": _bundle_for(str(bundle), out),
        "entrypoint": entrypoint,
        "seed": seed,
        "seed_bits": seed_bits,
        "replicates": replicates,
        "parameters": parameters,
    }
    if name is not None:
        data["name"] = name
    if outputs is not None:
        data["outputs"] = list(outputs)

    def argument(loc: Loc) -> str:
        if loc[:2] == ("parameters", "dims") and len(loc) > 2 and loc[2] in dim_args:
            return f"--dim {dim_args[str(loc[2])][0]!r}"
        if loc[:2] == ("parameters", "fixed") and len(loc) > 2 and loc[2] in fixed_args:
            return f"--fixed {fixed_args[str(loc[2])][0]!r}"
        if loc[:2] == ("parameters", "dims"):
            return "--dim"
        if loc[:2] == ("parameters", "n"):
            return "--n"
        if loc[:1] == ("parameters",):
            return "--sampler"
        if loc[:1] == ("outputs",):
            return "--output"
        return f"--{str(loc[0]).replace('_', '-')}" if loc else "arguments"

    try:
        spec = StudySpec.model_validate(data, context={"locate": lambda loc: f"{argument(loc)}: "})
    except ValidationError as exc:
        message = first_problem(exc, lambda loc: 0, lambda loc: f"{argument(loc)}: {dotted(loc)}: ")
        raise ModelOpsError(ErrorClass.BAD_INPUT, message) from None
    return spec.model_copy(update={"source": Path(out) if out is not None else None})


def _parse_dim(spec: str) -> dict[str, Any]:
    parts = [part.strip() for part in spec.split(":")]
    dim: dict[str, Any] = {}
    while parts and parts[0].lower() in _FLAGS:
        flag = parts.pop(0).lower()
        if flag == "log":
            dim["log"] = True
        else:
            dim["type"] = flag
    if len(parts) not in (2, 3):
        raise ValueError(f"expected {_DIM_FORM}")
    try:
        numbers = [_number(part) for part in parts]
    except ValueError:
        raise ValueError(f"LOW, HIGH and POINTS must be numbers; expected {_DIM_FORM}") from None
    dim["low"], dim["high"] = numbers[0], numbers[1]
    if len(numbers) == 3:
        dim["points"] = numbers[2]
    return dim


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _bundle_for(bundle: str, out: Path | None) -> str:
    folder = Path(bundle)
    if out is None or folder.is_absolute():
        return bundle
    if not folder.is_dir() and ("@" in bundle or ":" in bundle):
        return bundle  # a reference, not a folder
    base = os.path.abspath(Path(out).parent)
    return Path(os.path.relpath(os.path.abspath(folder), base)).as_posix()
