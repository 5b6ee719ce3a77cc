"""Building real SimReturns for store tests: Arrow IPC tables and opaque bytes outputs."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa

from modelops.contracts import Artifact, ErrorClass, ErrorInfo, SimReturn
from modelops.store import SimMeta


def table_artifact(table: pa.Table | dict[str, list[Any]]) -> Artifact:
    if not isinstance(table, pa.Table):
        table = pa.table(table)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    artifact = Artifact.from_bytes(sink.getvalue())
    assert artifact.kind == "table"
    return artifact


def meta(i: int, params: dict[str, Any] | None = None, replicate: int = 0) -> SimMeta:
    return SimMeta(
        task_id=f"task{i:06d}",
        param_set=i,
        replicate=replicate,
        seed=2**64 - 1 - i,
        params={"beta": 0.5, "n": i} if params is None else params,
    )


def succeeded(m: SimMeta, **outputs: Artifact) -> SimReturn:
    return SimReturn(
        m.task_id,
        outputs=outputs,
        timings={"fetch_s": 0.01, "env_s": 0.02, "wire_s": 0.5, "total_s": 0.6, "attempts": 1},
        logs="hello from the model\n",
        worker="tcp://127.0.0.1:1234",
    )


def failed(m: SimMeta) -> SimReturn:
    error = ErrorInfo(
        ErrorClass.MODEL,
        "ValueError",
        "beta must be positive",
        'Traceback (most recent call last):\n  File "model.py", line 3\nValueError: beta',
    )
    return SimReturn.failure(m.task_id, error, timings={"total_s": 0.1, "attempts": 2})
