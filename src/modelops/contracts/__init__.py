"""The shapes every other part agrees on: references, tasks, returns, errors, ids, seeds."""

from modelops.contracts.artifacts import Artifact, ArtifactKind
from modelops.contracts.errors import ErrorClass, ErrorInfo, ModelOpsError
from modelops.contracts.ids import canonical_json, param_id
from modelops.contracts.refs import BundleRef
from modelops.contracts.seeds import SeedBits, derive_seeds, replicate_seeds
from modelops.contracts.tasks import (
    PROTOCOL_VERSION,
    Isolation,
    RunLimits,
    SimReturn,
    SimTask,
    check_seed,
)

__all__ = [
    "PROTOCOL_VERSION",
    "Artifact",
    "ArtifactKind",
    "BundleRef",
    "ErrorClass",
    "ErrorInfo",
    "Isolation",
    "ModelOpsError",
    "RunLimits",
    "SeedBits",
    "SimReturn",
    "SimTask",
    "canonical_json",
    "check_seed",
    "derive_seeds",
    "param_id",
    "replicate_seeds",
]
