"""The smoke bundle's wire function: one SIR run as an Arrow table plus JSON metadata."""

import json
import sys

import numpy as np
import pyarrow as pa
from simulate import simulate


def wire(entrypoint: str, params: dict, seed: int) -> dict[str, bytes]:
    if entrypoint not in ("sir", ""):
        raise ValueError(f"unknown entrypoint {entrypoint!r}; this bundle has 'sir'")
    table = pa.table(simulate(seed=seed, **params))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    metadata = {
        "entrypoint": entrypoint,
        "params": params,
        "seed": seed,
        "numpy": np.__version__,
        "python": sys.executable,
    }
    return {"result": sink.getvalue().to_pybytes(), "metadata": json.dumps(metadata).encode()}
