"""A calibration completed by the model's own description of itself.

An SDK model declares each parameter's kind, bounds and scale (`check_bundle(...).models`),
so a calibration file need only name what it searches: a kind, bound or scale it leaves out
is the model's; one it gives may narrow the model's, never widen it. The description also
catches, at the file's line, a parameter, config key, output or entrypoint the model lacks.
A bundle that cannot describe itself (its own wire) leaves the file to give every bound.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from modelops.calibration.spec import CalibrationSpec, FreeParameter
from modelops.contracts import ErrorClass, ModelOpsError
from modelops.study.errors import Loc, describe
from modelops.study.load import field_problem
from modelops.study.validate import check_name, check_value, entrypoint_model


def with_model_defaults(spec: CalibrationSpec, models: dict[str, Any] | None) -> CalibrationSpec:
    """`spec` with every free parameter's kind, bounds and scale filled in, from `models` (as
    `check_bundle` describes an SDK bundle's models) or, for None, as float on a linear
    scale with the file's bounds; a problem is one line at the file's key."""
    if models is None:
        declared: dict[str, Any] = {}
        target = ""
    else:
        target, model = entrypoint_model(spec, models)
        declared = model["params"]
        _check_against_model(spec, target, model)
    parameters = {
        name: _complete(spec, name, free, target, declared.get(name))
        for name, free in spec.parameters.items()
    }
    return spec.model_copy(update={"parameters": parameters})


def _check_against_model(spec: CalibrationSpec, target: str, model: dict[str, Any]) -> None:
    params = model["params"]
    for name in spec.parameters:
        check_name(spec, ("parameters", name), target, name, params)
    for name, value in spec.fixed.items():
        check_value(spec, ("fixed", name), target, name, value, params)
    for key in spec.config:
        if key not in model["config"]:
            raise _problem(
                spec,
                ("config", key),
                f"{target} has no config key {key!r}; it has "
                f"{', '.join(model['config']) or 'none'}",
            )
    for name, goal in spec.targets.items():
        if goal.output not in model["outputs"]:
            raise _problem(
                spec,
                ("targets", name, "output"),
                f"{target} has no output {goal.output!r}; it has {', '.join(model['outputs'])}",
            )


def _complete(
    spec: CalibrationSpec,
    name: str,
    free: FreeParameter,
    target: str,
    declared: dict[str, Any] | None,
) -> FreeParameter:
    loc: Loc = ("parameters", name)
    if declared is None:
        for bound in ("low", "high"):
            if getattr(free, bound) is None:
                raise _problem(
                    spec,
                    (*loc, bound),
                    "required: the bundle does not describe its model's parameters, so the "
                    "file gives both bounds",
                )
        # nothing to narrow: the file's bounds, a float unless it says int, a linear scale
        declared = {"kind": "float", "low": free.low, "high": free.high, "log": False}
    elif declared["kind"] == "int" and free.type == "float":
        raise _problem(spec, (*loc, "type"), f'{target} takes {name!r} as an int; use type = "int"')
    for bound in ("low", "high"):
        value = getattr(free, bound)
        if value is not None and not declared["low"] <= value <= declared["high"]:
            raise _problem(
                spec,
                (*loc, bound),
                f"{value} is outside {target}'s bounds for {name!r} "
                f"[{declared['low']}, {declared['high']}]; the file may narrow them, not widen",
            )
    merged = {
        "type": free.type or declared["kind"],
        "low": declared["low"] if free.low is None else free.low,
        "high": declared["high"] if free.high is None else free.high,
        "log": declared["log"] if free.log is None else free.log,
    }
    try:
        return FreeParameter.model_validate(merged)
    except ValidationError as exc:
        where, message = describe(exc.errors()[0])
        raise _problem(spec, (*loc, *where), message) from None


def _problem(spec: CalibrationSpec, loc: Loc, message: str) -> ModelOpsError:
    return field_problem(spec, loc, ModelOpsError(ErrorClass.BAD_INPUT, message))
