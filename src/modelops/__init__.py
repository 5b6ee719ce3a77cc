"""ModelOps: run simulation models from content-addressed bundles on Dask.

`import modelops` is the front door: everything `mops` does, as Python (`modelops.api`).

    import modelops

    job = modelops.run("study.toml")         # a Job: state, counts, results, failures
    job.results["incidence"].collect()        # polars
    modelops.simulate(".", params={"beta": 0.3}, seed=1)

The API is loaded on first use, not on `import modelops`: a model imports the SDK
(`modelops.sdk`) inside its bundle's environment, where nothing else may load. No name of
the API is also the name of a subpackage (`modelops.jobs` is the job runner; the API lists
jobs with `list_jobs`), so importing a part never hides a function.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

API_NAMES = (  # the public API, `modelops.api.__all__`
    "Calibration",
    "CalibrationSpec",
    "Job",
    "JobProgress",
    "LockMode",
    "ModelOpsError",
    "Registry",
    "StudySpec",
    "build",
    "calibrate",
    "calibration_job",
    "cancel",
    "check_bundle",
    "init_project",
    "inspect",
    "job",
    "list_bundles",
    "list_jobs",
    "load_calibration",
    "load_study",
    "login",
    "pull",
    "push",
    "results",
    "resume",
    "run",
    "sample_study",
    "simulate",
)


def __getattr__(name: str) -> Any:
    if name in API_NAMES:  # loaded by name: the parts that import `modelops` never load the API
        return getattr(importlib.import_module("modelops.api"), name)
    raise AttributeError(f"module 'modelops' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API_NAMES])
