"""Lazily scanning Parquet parts whose schemas drifted apart, as one polars LazyFrame.

Parts written at different times can differ: a parameter that was all ints in one flush
and had a float in the next, a model that added a column. Consecutive parts with the same
schema (read from each footer) are scanned as one source, and every such run is projected
onto one unified schema before the runs are concatenated in part order, so rows come back
in the order they were written (a resumed job's later attempt of a simulation comes last).

Local parts are scanned natively by polars. Parts on other fsspec filesystems (memory://,
s3:// through s3fs, ...) are scanned through a pyarrow dataset over the fsspec filesystem
(`polars.scan_pyarrow_dataset`): still lazy, with projection and simple predicate pushdown,
but slower than the native reader, and credentials come from fsspec, not polars.

A source may name the attempts it trusts (`committed`: `sim_id` and flush id of each
simulation's last committed attempt): its rows of any other attempt are left out, so a
simulation whose outputs were written twice (by a client killed before its flush was
committed, say) still reads as one set of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from modelops.store.location import Location
from modelops.store.rows import FLUSH

KEY = ("sim_id", FLUSH)  # one attempt of one simulation


@dataclass(frozen=True, eq=False)
class Source:
    """Parts to read; with `only_sims`, just those simulations' rows, relabelled `as_job`
    (how a job reads results it took from the provenance cache); with `committed` (a frame
    of `KEY` columns), just the rows of those attempts."""

    files: tuple[str, ...]
    only_sims: frozenset[str] | None = None
    as_job: str | None = None
    committed: pl.LazyFrame | None = None


def read_schema(location: Location, path: str) -> pl.Schema:
    if location.is_local:
        arrow_schema = pq.read_schema(path)
    else:
        with location.fs.open(path, "rb") as file:
            arrow_schema = pq.read_schema(file)
    return pl.DataFrame(arrow_schema.empty_table()).schema


def unify(schemas: Sequence[pl.Schema]) -> pl.Schema:
    """One schema all parts can be cast to: columns in order of first appearance; mixed
    numbers become Float64 (all-integer mixtures Int64); other conflicts become String."""
    seen: dict[str, list[pl.DataType]] = {}
    for schema in schemas:
        for name, dtype in schema.items():
            dtypes = seen.setdefault(name, [])
            if dtype not in dtypes:
                dtypes.append(dtype)
    return pl.Schema({name: _common(dtypes) for name, dtypes in seen.items()})


def _common(dtypes: list[pl.DataType]) -> pl.DataType:
    known = [dtype for dtype in dtypes if dtype != pl.Null]
    if not known:
        return pl.Null()
    if len(known) == 1:
        return known[0]
    if all(dtype.is_numeric() for dtype in known):
        if any(dtype.is_float() for dtype in known):
            return pl.Float64()
        if all(dtype.is_unsigned_integer() for dtype in known):
            return pl.UInt64()
        return pl.Int64()
    return pl.String()


def scan_sources(
    location: Location, sources: Sequence[Source], empty: pl.Schema | None = None
) -> pl.LazyFrame:
    """All rows of `sources` as one LazyFrame with one schema; `empty` is the schema of the
    result when there are no parts at all. When any source names its committed attempts,
    the result has the flush column (null in parts written before it existed)."""
    runs: list[tuple[Source, pl.Schema, list[str]]] = []  # consecutive parts alike
    for source in sources:
        for path in source.files:
            schema = read_schema(location, path)
            if runs and runs[-1][0] is source and runs[-1][1] == schema:
                runs[-1][2].append(path)
            else:
                runs.append((source, schema, [path]))
    if not runs:
        return pl.LazyFrame(schema=empty or {})
    target = unify([schema for _, schema, _ in runs])
    if any(source.committed is not None for source in sources) and FLUSH not in target:
        target = pl.Schema({**target, FLUSH: pl.Int64()})
    frames = []
    for source in sources:
        parts = [
            _frame(location, files, source, schema, target)
            for run_source, schema, files in runs
            if run_source is source
        ]
        if not parts:
            continue
        frame = parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")
        if source.committed is not None:
            frame = frame.join(
                with_flush(source.committed).select(KEY),
                on=list(KEY),
                how="semi",
                nulls_equal=True,  # rows written before flush ids: kept with their attempt
                maintain_order="left",
            )
        frames.append(frame)
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")


def with_flush(frame: pl.LazyFrame) -> pl.LazyFrame:
    """`frame` with the flush column, null if its parts were written before it existed."""
    if FLUSH in frame.collect_schema():
        return frame
    return frame.with_columns(pl.lit(None, pl.Int64).alias(FLUSH))


def _frame(
    location: Location,
    files: list[str],
    source: Source,
    schema: pl.Schema,
    target: pl.Schema,
) -> pl.LazyFrame:
    if location.is_local:
        frame = pl.scan_parquet(files)
    else:
        frame = pl.scan_pyarrow_dataset(ds.dataset(files, filesystem=location.fs, format="parquet"))
    if source.only_sims is not None:
        frame = frame.filter(
            pl.col("sim_id").is_in(pl.Series(sorted(source.only_sims), dtype=pl.String).implode())
        )
    if source.as_job is not None:
        frame = frame.with_columns(pl.lit(source.as_job, pl.String).alias("job_id"))
    columns = []
    for name, dtype in target.items():
        if name not in schema:
            columns.append(pl.lit(None, dtype).alias(name))
        elif schema[name] != dtype:
            columns.append(pl.col(name).cast(dtype))
        else:
            columns.append(pl.col(name))
    return frame.select(columns)
