"""The generic wire adapter: any SDK model runs on the cluster with no hand-written wire.py.

Point a project at it with `[tool.modelops] wire = "modelops.sdk:wire"` and list its models
(`models = ["sir:SIR"]`). The entrypoint `module:Class/scenario` picks the model and the
scenario; config and the requested outputs arrive as keyword arguments and are applied,
never dropped. Outputs travel as Arrow IPC streams.
"""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path
from typing import Any

from modelops.sdk.model import BaseModel, SimulationError
from modelops.sdk.tables import to_ipc

DESCRIBE = "__modelops_describe__"


def wire(
    entrypoint: str,
    params: dict[str, Any],
    seed: int,
    config: dict[str, Any] | None = None,
    outputs: list[str] | None = None,
) -> dict[str, bytes]:
    if entrypoint == DESCRIBE:
        return {"models": json.dumps(describe_project(Path.cwd())).encode()}
    model, scenario = load_model(entrypoint)
    tables = model().simulate(params, seed, scenario, config, outputs)
    return {name: to_ipc(table) for name, table in tables.items()}


def load_model(entrypoint: str) -> tuple[type[BaseModel], str]:
    """`module:Class` or `module:Class/scenario` → (the model class, the scenario)."""
    target, _, scenario = entrypoint.partition("/")
    module_name, sep, class_name = target.partition(":")
    if not sep or not module_name or not class_name:
        raise SimulationError(
            f"entrypoint {entrypoint!r} must be 'module:Class' or 'module:Class/scenario'"
        )
    module = importlib.import_module(module_name)
    model = getattr(module, class_name, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise SimulationError(f"{target!r} is not a modelops.sdk.BaseModel subclass")
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
    return {target: load_model(target)[0].describe() for target in declared_models(root)}
