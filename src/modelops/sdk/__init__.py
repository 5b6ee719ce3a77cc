"""The modeller's SDK: declare parameters, config, scenarios and outputs; ModelOps does the rest.

It runs inside bundle environments, where only the standard library, pyarrow and the
model's own dependencies can be assumed, so it imports nothing else of modelops. Workers
put the worker's own copy of this package on the child's path (docs/decisions.md), so the
SDK a model runs with always matches the runtime.
"""

from modelops.sdk.model import BaseModel, SimulationError, model_output, model_scenario
from modelops.sdk.params import Param
from modelops.sdk.wire import wire

__all__ = ["BaseModel", "Param", "SimulationError", "model_output", "model_scenario", "wire"]
