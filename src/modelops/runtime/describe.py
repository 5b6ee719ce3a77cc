"""Ask a bundle what it holds, in its real environment and a real child, before any job.

An SDK bundle (`[tool.modelops] wire = "modelops.sdk:wire"`) describes its models: the
question travels as an ordinary task with the SDK's describe entrypoint, so a missing
dependency or a typo in a model shows here. Any other bundle's wire is the author's own
function, which must never be called with an internal name: for it the check builds the
environment and imports the wire in a child (a missing dependency still shows), and says
that its entrypoints are whatever that function accepts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops.bundle.cache import BundleSource
from modelops.bundle.config import BundleConfig
from modelops.contracts import BundleRef, ModelOpsError, RunLimits, SimTask
from modelops.runtime.runner import TaskRunner
from modelops.sdk.wire import DESCRIBE, entrypoints

SDK_WIRE = "modelops.sdk:wire"


@dataclass(frozen=True)
class BundleCheck:
    """What `mops bundle check` found: the bundle's wire and, for an SDK bundle, its models
    ({`module:Class`: parameters, config, scenarios, outputs, doc}); None for any other."""

    ref: BundleRef
    wire: str  # "module:function" the child loaded (the bundle's, or its environment's)
    wire_source: str  # where a person finds it: "wire.py:wire", or the spec when not a file
    models: dict[str, Any] | None

    @property
    def uses_sdk(self) -> bool:
        return self.models is not None

    def entrypoints(self) -> list[str]:
        """Every entrypoint of an SDK bundle as typed (`model:SIR`, `model:SIR/lockdown`)."""
        models = self.models or {}
        return entrypoints({target: model["scenarios"] for target, model in models.items()})

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": str(self.ref),
            "wire": self.wire,
            "wire_source": self.wire_source,
            "sdk": self.uses_sdk,
            "models": self.models,
        }


def check_bundle(ref: BundleRef, source: BundleSource, cache: Path) -> BundleCheck:
    runner = TaskRunner(source, cache)
    try:
        bundle, wire = runner.load(ref)  # env built, wire imported, or a classified error
        models = describe_with(runner, ref) if wire == SDK_WIRE else None
    finally:
        runner.close()
    return BundleCheck(ref, wire, wire_source(bundle.config, wire), models)


def describe_models(ref: BundleRef, source: BundleSource, cache: Path) -> dict[str, Any]:
    runner = TaskRunner(source, cache)
    try:
        return describe_with(runner, ref)
    finally:
        runner.close()


def wire_source(config: BundleConfig, wire: str) -> str:
    """Where a person finds the wire the child loaded: `wire.py:wire` or `src/pkg/wire.py:wire`
    for a file of the bundle, the spec of a module the environment provides (the SDK's),
    or the entry point of a dependency when the bundle declares none."""
    if not config.wire:
        return f"{wire} (the 'modelops.wire' entry point of a package in its environment)"
    module, _, function = wire.partition(":")
    stem = module.replace(".", "/")
    paths = {entry.path for entry in config.files}
    for root in ("", *(f"{path}/" for path in config.import_paths)):
        for candidate in (f"{root}{stem}.py", f"{root}{stem}/__init__.py"):
            if candidate in paths:
                return f"{candidate}:{function}"
    return wire


def describe_with(runner: TaskRunner, ref: BundleRef) -> dict[str, Any]:
    """The SDK models of a bundle, asked through a runner that may already be warm (a
    worker's): its child answers the describe call like a simulation."""
    result = runner.run(SimTask(ref, DESCRIBE, {}, 0, limits=RunLimits(retries=0)))
    if result.error is not None:
        raise ModelOpsError.from_info(result.error)
    return json.loads(result.outputs["models"].data)
