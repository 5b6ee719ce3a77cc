"""Ask an SDK bundle what it holds: its models, their parameters, scenarios and outputs.

The question travels as an ordinary task with the SDK's describe entrypoint, so it runs in
the bundle's real environment, in a real child: a missing dependency or a typo in a model
shows here, before any job is submitted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelops.bundle.cache import BundleSource
from modelops.contracts import BundleRef, ModelOpsError, RunLimits, SimTask
from modelops.runtime.runner import TaskRunner
from modelops.sdk.wire import DESCRIBE

SDK_WIRE = "modelops.sdk:wire"


def describe_models(ref: BundleRef, source: BundleSource, cache: Path) -> dict[str, Any]:
    runner = TaskRunner(source, cache)
    try:
        result = runner.run(SimTask(ref, DESCRIBE, {}, 0, limits=RunLimits(retries=0)))
    finally:
        runner.close()
    if result.error is not None:
        raise ModelOpsError.from_info(result.error)
    return json.loads(result.outputs["models"].data)
