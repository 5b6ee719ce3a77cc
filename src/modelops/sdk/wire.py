"""The generic wire adapter: any SDK model runs on the cluster with no hand-written wire.py.

Point a project at it with `[tool.modelops] wire = "modelops.sdk:wire"` and list its models
(`models = ["sir:SIR"]`). The entrypoint `module:Class/scenario` picks the model and the
scenario; an empty entrypoint picks the bundle's only declared model (its baseline). Config
and the requested outputs arrive as keyword arguments and are applied, never dropped.
Outputs travel as Arrow IPC streams.

An entrypoint that names nothing runnable is a `bad_input` error whose one line lists the
entrypoints the bundle has, in the form they are typed (`model:SIR, model:SIR/lockdown`).
"""

from __future__ import annotations

import importlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modelops.sdk.model import BaseModel, SimulationError
from modelops.sdk.tables import to_ipc

DESCRIBE = "__modelops_describe__"
ENTRYPOINT_FORM = "'module:Class' or 'module:Class/scenario'"


class _NoSuchEntrypoint(SimulationError):
    """An entrypoint naming no runnable model or scenario; the message says why, briefly."""


def wire(
    entrypoint: str,
    params: dict[str, Any],
    seed: int,
    config: dict[str, Any] | None = None,
    outputs: list[str] | None = None,
) -> dict[str, bytes]:
    if entrypoint == DESCRIBE:
        return {"models": json.dumps(describe_project(Path.cwd())).encode()}
    model, scenario = resolve_entrypoint(entrypoint, Path.cwd())
    tables = model().simulate(params, seed, scenario, config, outputs)
    return {name: to_ipc(table) for name, table in tables.items()}


def resolve_entrypoint(entrypoint: str, root: Path) -> tuple[type[BaseModel], str]:
    """The model class and scenario `entrypoint` names in the project at `root`.

    Empty: the only model `[tool.modelops] models` declares, without a scenario. Any
    importable BaseModel subclass may be named, declared or not; a name that is not one,
    or a scenario the model lacks, is a SimulationError that lists what the bundle has."""
    if not entrypoint:
        declared = declared_models(root)
        if len(declared) != 1:
            raise SimulationError(no_entrypoint_message(_choices(root)))
        return _declared_model(declared[0]), ""
    if not _well_formed(entrypoint):
        raise SimulationError(
            f"entrypoint {entrypoint!r} must be {ENTRYPOINT_FORM}; {_choices(root)}"
        )
    try:
        model, scenario = load_model(entrypoint)
        for name in filter(None, scenario.split("+")):
            if name not in model.scenarios():
                raise _NoSuchEntrypoint(f"{model.__name__} has no scenario {name!r}")
    except _NoSuchEntrypoint as exc:
        raise SimulationError(
            unknown_entrypoint_message(entrypoint, str(exc), _choices(root))
        ) from None
    return model, scenario


def load_model(entrypoint: str) -> tuple[type[BaseModel], str]:
    """`module:Class` or `module:Class/scenario` → (the model class, the scenario)."""
    if not _well_formed(entrypoint):
        raise SimulationError(f"entrypoint {entrypoint!r} must be {ENTRYPOINT_FORM}")
    target, _, scenario = entrypoint.partition("/")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # the module itself is missing: a wrong name. A module it imports: a real missing
        # dependency, left to the runner to class as one.
        if exc.name and (module_name == exc.name or module_name.startswith(f"{exc.name}.")):
            raise _NoSuchEntrypoint(f"no module {module_name!r} in the bundle") from None
        raise
    model = getattr(module, class_name, None)
    if model is None:
        raise _NoSuchEntrypoint(f"module {module_name!r} has no class {class_name!r}")
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise _NoSuchEntrypoint(f"{class_name!r} is not a modelops.sdk.BaseModel subclass")
    return model, scenario


def declared_models(root: Path) -> list[str]:
    path = root / "pyproject.toml"
    table = tomllib.loads(path.read_text()) if path.is_file() else {}
    models = table.get("tool", {}).get("modelops", {}).get("models", [])
    if not models:
        raise SimulationError(
            'no models declared: add `models = ["module:Class"]` to [tool.modelops] in '
            "pyproject.toml"
        )
    return list(models)


def describe_project(root: Path) -> dict[str, Any]:
    """Every declared model with its parameters, config, scenarios and outputs."""
    return {target: _declared_model(target).describe() for target in declared_models(root)}


def entrypoints(models: Mapping[str, Iterable[str]]) -> list[str]:
    """Every entrypoint of {model target: its scenarios}, as typed: the model's baseline
    (`model:SIR`), then one per scenario (`model:SIR/lockdown`)."""
    return [
        entry
        for target, scenarios in models.items()
        for entry in (target, *(f"{target}/{name}" for name in scenarios))
    ]


def choices_message(models: Mapping[str, Iterable[str]]) -> str:
    """`this bundle has: model:SIR, model:SIR/lockdown, model:SEIR` (one line)."""
    return f"this bundle has: {', '.join(entrypoints(models)) or 'no models'}"


def unknown_entrypoint_message(entrypoint: str, reason: str, choices: str) -> str:
    return f"unknown entrypoint {entrypoint!r} ({reason}); {choices}"


def no_entrypoint_message(choices: str) -> str:
    return f"no entrypoint given, which works only for a bundle with one model; {choices}"


def _well_formed(entrypoint: str) -> bool:
    target = entrypoint.partition("/")[0]
    module_name, sep, class_name = target.partition(":")
    return bool(sep and module_name and class_name)


def _declared_model(target: str) -> type[BaseModel]:
    try:
        return load_model(target)[0]
    except SimulationError as exc:
        raise SimulationError(f"[tool.modelops] models lists {target!r}: {exc}") from None


def _choices(root: Path) -> str:
    """What the bundle declares, for an error message; a model that does not load is listed
    without its scenarios (its own error shows when it is run)."""
    try:
        declared = declared_models(root)
    except SimulationError:
        return 'this bundle declares no models (`models = ["module:Class"]` in [tool.modelops])'
    found: dict[str, list[str]] = {}
    for target in declared:
        try:
            found[target] = list(load_model(target)[0].scenarios())
        except Exception:
            found[target] = []
    return choices_message(found)
