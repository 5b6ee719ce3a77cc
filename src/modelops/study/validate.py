"""A study checked against the model it will run, before anything is submitted.

SDK models describe themselves (parameters with kinds and bounds, config, scenarios,
outputs), so a parameter the model lacks, a range past its bounds, a float range for an int
parameter, an unknown scenario, config key or output is reported at its line in the study
file; an empty entrypoint means the bundle's only model, as on the worker. Plain wire
bundles cannot describe themselves; their studies are checked when run.
"""

from __future__ import annotations

from typing import Any

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.sdk.wire import (
    ENTRYPOINT_FORM,
    choices_message,
    no_entrypoint_message,
    unknown_entrypoint_message,
)
from modelops.study.load import field_problem
from modelops.study.run import RunSpec
from modelops.study.spec import StudySpec


def _problem(spec: RunSpec, loc: tuple[str | int, ...], message: str) -> ModelOpsError:
    return field_problem(spec, loc, ModelOpsError(ErrorClass.BAD_INPUT, message))


def check_study(spec: StudySpec, models: dict[str, Any]) -> None:
    target, model = entrypoint_model(spec, models)
    params = model["params"]
    space = spec.parameters
    for name, dim in space.dims.items():
        check_name(spec, ("parameters", "dims", name), target, name, params)
        declared = params[name]
        if declared["kind"] == "int" and dim.type == "float":
            raise _problem(
                spec,
                ("parameters", "dims", name, "type"),
                f'{target} takes {name!r} as an int; use type = "int"',
            )
        if dim.low < declared["low"] or dim.high > declared["high"]:
            raise _problem(
                spec,
                ("parameters", "dims", name),
                f"range [{dim.low}, {dim.high}] leaves {target}'s bounds for {name!r} "
                f"[{declared['low']}, {declared['high']}]",
            )
    for name, value in space.fixed.items():
        check_value(spec, ("parameters", "fixed", name), target, name, value, params)
    for index, values in enumerate(space.sets or []):
        for name, value in values.items():
            check_value(spec, ("parameters", "sets", index, name), target, name, value, params)
    for name in spec.config:
        if name not in model["config"]:
            raise _problem(
                spec,
                ("config", name),
                f"{target} has no config key {name!r}; it has "
                f"{', '.join(model['config']) or 'none'}",
            )
    for name in spec.outputs or []:
        if name not in model["outputs"]:
            raise _problem(
                spec,
                ("outputs",),
                f"{target} has no output {name!r}; it has {', '.join(model['outputs'])}",
            )


def entrypoint_model(spec: RunSpec, models: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The model the file's entrypoint runs, resolved as the SDK's wire resolves it (an
    empty entrypoint: the bundle's only model); a mistake lists the entrypoints there are."""
    entrypoint = spec.entrypoint
    choices = choices_message({t: m["scenarios"] for t, m in models.items()})
    if not entrypoint:
        if len(models) != 1:
            raise _problem(spec, ("entrypoint",), no_entrypoint_message(choices))
        target = next(iter(models))
        return target, models[target]
    target, _, scenario = entrypoint.partition("/")
    module_name, sep, class_name = target.partition(":")
    if not (sep and module_name and class_name):
        raise _problem(
            spec,
            ("entrypoint",),
            f"entrypoint {entrypoint!r} must be {ENTRYPOINT_FORM}; {choices}",
        )
    model = models.get(target)
    reason = f"the bundle declares no model {target!r}"
    if model is not None:
        missing = [n for n in filter(None, scenario.split("+")) if n not in model["scenarios"]]
        if not missing:
            return target, model
        reason = f"{target} has no scenario {missing[0]!r}"
    raise _problem(spec, ("entrypoint",), unknown_entrypoint_message(entrypoint, reason, choices))


def check_name(
    spec: RunSpec, loc: tuple[str | int, ...], target: str, name: str, params: dict
) -> None:
    """Refuse, at `loc`, a parameter the model does not declare, listing those it does."""
    if name not in params:
        raise _problem(
            spec, loc, f"{target} has no parameter {name!r}; it has {', '.join(params) or 'none'}"
        )


def check_value(
    spec: RunSpec,
    loc: tuple[str | int, ...],
    target: str,
    name: str,
    value: Any,
    params: dict,
) -> None:
    """Refuse, at `loc`, a value the model would refuse: not a number, not whole for an int
    parameter, outside the declared bounds."""
    check_name(spec, loc, target, name, params)
    declared = params[name]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _problem(spec, loc, f"{target} takes {name!r} as a number, not {value!r}")
    if declared["kind"] == "int" and not float(value).is_integer():
        raise _problem(spec, loc, f"{target} takes {name!r} as an int, not {value}")
    if not declared["low"] <= value <= declared["high"]:
        raise _problem(
            spec,
            loc,
            f"{value} is outside {target}'s bounds for {name!r} "
            f"[{declared['low']}, {declared['high']}]",
        )
