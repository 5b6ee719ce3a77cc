"""Exporting a job's results as plain files for people and other tools.

One file per output plus `simulations`, streamed from the Parquet parts (polars `sink_*`),
each written under a temporary name and renamed when complete. CSV cannot hold binary
or nested values: binary columns are written as base64 and lists/structs as JSON text.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import polars as pl

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.store.location import encode_name

if TYPE_CHECKING:  # results.py offers `JobResults.export`, which is this
    from modelops.store.results import JobResults

Format = Literal["parquet", "csv"]
SIMULATIONS = "simulations"


def export_job(results: JobResults, out_dir: Path, fmt: Format) -> list[Path]:
    """Write every output and the simulations table to `out_dir`; the paths written.

    Files are named after the output (`<output>.<fmt>`, percent-encoded like the store's
    folders); an output called `simulations` becomes `output-simulations.<fmt>`."""
    if fmt not in ("parquet", "csv"):
        raise ModelOpsError(
            ErrorClass.BAD_INPUT, f"export format must be parquet or csv, not {fmt!r}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for output in results.outputs():
        stem = encode_name(output)
        if stem == SIMULATIONS:
            stem = f"output-{SIMULATIONS}"
        written.append(_write(results.scan(output), out_dir / f"{stem}.{fmt}", fmt))
    written.append(_write(results.simulations(), out_dir / f"{SIMULATIONS}.{fmt}", fmt))
    return written


def _write(frame: pl.LazyFrame, path: Path, fmt: Format) -> Path:
    temporary = path.with_name(f".tmp-{uuid.uuid4().hex}{path.suffix}")
    try:
        if fmt == "parquet":
            frame.sink_parquet(temporary, compression="zstd")
        else:
            _csv_ready(frame).sink_csv(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _csv_ready(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Binary as base64, nested values as JSON text: what a CSV reader can take back."""
    converted = []
    for name, dtype in frame.collect_schema().items():
        column = pl.col(name)
        if dtype == pl.Binary:
            converted.append(column.bin.encode("base64"))
        elif dtype.is_nested():
            as_json = pl.struct(column.alias("v")).struct.json_encode()
            text = as_json.str.strip_prefix('{"v":').str.strip_suffix("}")
            converted.append(pl.when(column.is_null()).then(None).otherwise(text).alias(name))
        else:
            converted.append(column)
    return frame.select(converted)
