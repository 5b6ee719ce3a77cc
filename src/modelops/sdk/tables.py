"""Model outputs to Arrow: polars, pandas and pyarrow tables, or a dict of columns."""

from __future__ import annotations

from typing import Any

import pyarrow as pa


class OutputError(TypeError):
    """An output that is not a table; the message names the output."""

    modelops_error_class = "bad_output"  # how the child runner classes it


def to_arrow(name: str, value: Any) -> pa.Table:
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    kind = type(value).__module__.split(".")[0]
    if kind == "polars" and hasattr(value, "to_arrow"):
        return value.to_arrow()
    if kind == "pandas" and hasattr(value, "columns"):
        return pa.Table.from_pandas(value, preserve_index=False)
    if isinstance(value, dict):
        try:
            return pa.table(value)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise OutputError(
                f"output {name!r}: its dict of columns is not a table: {exc}"
            ) from exc
    raise OutputError(
        f"output {name!r} returned {type(value).__name__}; return a polars, pandas or pyarrow "
        "table (or a dict of equal-length columns)"
    )


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
