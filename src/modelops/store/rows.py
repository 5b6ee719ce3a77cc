"""Turning simulation results into Arrow rows: the meta columns, parameter columns and the
`simulations` table, built column-wise once per flush rather than row by row per result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from modelops.contracts import SimReturn
from modelops.contracts.ids import faithful_json

META_FIELDS: tuple[pa.Field, ...] = (
    pa.field("job_id", pa.string()),
    pa.field("sim_id", pa.string()),
    pa.field("param_set", pa.int64()),
    pa.field("replicate", pa.int64()),
    pa.field("seed", pa.uint64()),
)
META_NAMES = frozenset(field.name for field in META_FIELDS)
FLUSH = "_mops_flush"
"""Which flush wrote a row: one random 63-bit number per flush, in every output row and every
`simulations` row it wrote. The `simulations` part is written last, so a flush is committed
once its simulations part exists; readers keep only output rows of committed attempts (and
of each simulation's last one), and never show the column itself."""
RESERVED_NAMES = META_NAMES | {FLUSH}
TIMING_NAMES = ("fetch_s", "env_s", "start_s", "wire_s", "total_s")
_SIM_STRINGS = (
    "params_json",
    "status",
    "error_class",
    "error_type",
    "error_message",
    "error_traceback",
    "cached_from",
    "worker",
)
SIMULATIONS_SCHEMA = pa.schema(
    [
        *META_FIELDS,
        *(pa.field(name, pa.string()) for name in _SIM_STRINGS),
        *(pa.field(name, pa.float64()) for name in TIMING_NAMES),
        pa.field("attempts", pa.int64()),
        pa.field("logs", pa.string()),
        pa.field(FLUSH, pa.int64()),
    ]
)
_SIM_COLUMNS = tuple(name for name in SIMULATIONS_SCHEMA.names if name != FLUSH)
BYTES_COLUMN = "data"


@dataclass(frozen=True)
class SimMeta:
    """Who a result belongs to: the study's coordinates of one simulation."""

    task_id: str
    param_set: int
    replicate: int
    seed: int
    params: dict[str, Any]


_PARAMS_ENCODER = json.JSONEncoder(  # one instance: json.dumps with options builds one per call
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def params_json(params: dict[str, Any]) -> str:
    """Sorted-key JSON that keeps 1.0 a float: the parameters exactly as the model got them.
    Plain data (what a SimTask holds) takes the direct path; anything else is normalised."""
    try:
        if all(type(key) is str for key in params):
            return _PARAMS_ENCODER.encode(params)
    except (TypeError, ValueError):
        pass
    return faithful_json(params, "params").decode()


def status_of(result: SimReturn, cached_from: str | None) -> str:
    if result.error is not None:
        return "failed"
    if cached_from is not None or result.cached:
        return "cached"
    return "succeeded"


class SimulationRows:
    """Buffered rows of the `simulations` table, one per result, kept as plain columns."""

    def __init__(self, job_id: str) -> None:
        self._job_id = job_id
        self._columns: dict[str, list[Any]] = {name: [] for name in _SIM_COLUMNS}
        self._last_params: tuple[dict[str, Any], str] | None = None  # (dict, its JSON)

    def __len__(self) -> int:
        return len(self._columns["sim_id"])

    def _params_json(self, params: dict[str, Any]) -> str:
        """A set's replicates arrive one after another sharing one params dict: its JSON is
        made once for them all."""
        last = self._last_params
        if last is None or last[0] is not params:
            last = self._last_params = (params, params_json(params))
        return last[1]

    def append(self, meta: SimMeta, result: SimReturn, cached_from: str | None) -> None:
        error = result.error
        timings = result.timings or {}
        columns = self._columns
        columns["job_id"].append(self._job_id)
        columns["sim_id"].append(meta.task_id)
        columns["param_set"].append(meta.param_set)
        columns["replicate"].append(meta.replicate)
        columns["seed"].append(meta.seed)
        columns["params_json"].append(self._params_json(meta.params))
        columns["status"].append(status_of(result, cached_from))
        columns["error_class"].append(error.error_class.value if error else None)
        columns["error_type"].append(error.type if error else None)
        columns["error_message"].append(error.message if error else None)
        columns["error_traceback"].append(error.traceback if error else None)
        columns["cached_from"].append(cached_from)
        columns["worker"].append(result.worker or None)
        for name in TIMING_NAMES:
            value = timings.get(name)
            columns[name].append(float(value) if value is not None else None)
        attempts = timings.get("attempts")
        columns["attempts"].append(int(attempts) if attempts is not None else None)
        columns["logs"].append(result.logs or None)

    def take(self, flush: int) -> pa.Table:
        """The buffered rows as one table of flush `flush`; the buffer starts empty again."""
        columns = {**self._columns, FLUSH: [flush] * len(self)}
        table = pa.table(columns, schema=SIMULATIONS_SCHEMA)
        self._columns = {name: [] for name in _SIM_COLUMNS}
        return table


class OutputRows:
    """Buffered rows of one output: each entry is one simulation's table, or its bytes (made
    into one column per flush rather than one small table per simulation)."""

    def __init__(self) -> None:
        self._entries: list[tuple[SimMeta, pa.Table | bytes]] = []
        self.rows = 0
        self.size = 0

    def __len__(self) -> int:
        return self.rows

    def add_table(self, meta: SimMeta, table: pa.Table, size: int) -> None:
        self._entries.append((meta, table))
        self.rows += table.num_rows
        self.size += size

    def add_bytes(self, meta: SimMeta, data: bytes) -> None:
        self._entries.append((meta, data))
        self.rows += 1
        self.size += len(data)

    def take(self, job_id: str, flush: int) -> list[pa.Table]:
        """The buffered rows with meta and parameter columns in front and the flush column
        last; usually one table, one per distinct schema when the model's tables cannot be
        concatenated."""
        entries, self._entries, self.rows, self.size = self._entries, [], 0, 0
        if entries and all(isinstance(value, bytes) for _, value in entries):
            data = pa.array([value for _, value in entries], pa.large_binary())
            metas = [meta for meta, _ in entries]
            return [_with_meta(job_id, flush, metas, pa.table({BYTES_COLUMN: data}))]
        tables = [(meta, _as_table(value)) for meta, value in entries]
        tables = [(meta, table) for meta, table in tables if table.num_rows]
        if not tables:
            return []
        try:
            return [_with_tables(job_id, flush, tables)]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            groups: dict[pa.Schema, list[tuple[SimMeta, pa.Table]]] = {}
            for meta, table in tables:
                groups.setdefault(table.schema, []).append((meta, table))
            return [_with_tables(job_id, flush, group) for group in groups.values()]


def _as_table(value: pa.Table | bytes) -> pa.Table:
    if isinstance(value, bytes):
        return pa.table({BYTES_COLUMN: pa.array([value], pa.large_binary())})
    return value


def _with_tables(job_id: str, flush: int, entries: Sequence[tuple[SimMeta, pa.Table]]) -> pa.Table:
    model = pa.concat_tables(
        [table.replace_schema_metadata(None) for _, table in entries],
        promote_options="permissive",
    )
    owner = np.repeat(np.arange(len(entries)), [table.num_rows for _, table in entries])
    return _with_meta(job_id, flush, [meta for meta, _ in entries], model, owner)


def _with_meta(
    job_id: str,
    flush: int,
    metas: Sequence[SimMeta],
    model: pa.Table,
    owner: np.ndarray | None = None,
) -> pa.Table:
    """`model`'s rows behind the meta and parameter columns of their simulations: row i
    belongs to `metas[owner[i]]` (to `metas[i]` without `owner`)."""
    if owner is None:
        owner = np.arange(len(metas))
    rows = len(owner)

    names: list[str] = []
    arrays: list[pa.Array] = []
    per_sim = {
        "job_id": pa.array([job_id], pa.string()).take(np.zeros(rows, dtype=np.int64)),
        "sim_id": pa.array([m.task_id for m in metas], pa.string()).take(owner),
        "param_set": pa.array([m.param_set for m in metas], pa.int64()).take(owner),
        "replicate": pa.array([m.replicate for m in metas], pa.int64()).take(owner),
        "seed": pa.array([m.seed for m in metas], pa.uint64()).take(owner),
    }
    for field in META_FIELDS:
        names.append(field.name)
        arrays.append(per_sim[field.name])

    model_names = [model_column_name(name) for name in model.column_names]
    taken = set(RESERVED_NAMES) | set(model_names)
    for param in sorted({name for meta in metas for name in meta.params}):
        names.append(param_column_name(param, taken))
        arrays.append(param_array([meta.params.get(param) for meta in metas]).take(owner))

    names.extend(model_names)
    arrays.extend(model.columns)
    names.append(FLUSH)
    arrays.append(pa.array([flush], pa.int64()).take(np.zeros(rows, dtype=np.int64)))
    return pa.Table.from_arrays(arrays, names=names)


def model_column_name(name: str) -> str:
    """A model column named like a meta column (or the flush column) keeps its data under
    `model_<name>`."""
    return f"model_{name}" if name in RESERVED_NAMES else name


def param_column_name(param: str, taken: set[str]) -> str:
    """The parameter's own name, or `param_<name>` when a model or meta column has it."""
    name = param
    while name in taken:
        name = f"param_{name}"
    return name


def param_array(values: Iterable[Any]) -> pa.Array:
    """One value per simulation, typed for analysis: bools, int64 (float64 as soon as one
    value is a float), strings; anything else (lists, dicts, mixtures) as JSON text."""
    values = list(values)
    kinds = {_kind(value) for value in values if value is not None}
    if not kinds:
        return pa.nulls(len(values))
    if kinds == {"bool"}:
        return pa.array(values, pa.bool_())
    if kinds == {"int"}:
        try:
            return pa.array(values, pa.int64())
        except (pa.ArrowInvalid, OverflowError):
            pass  # beyond int64: kept exactly, as text
    elif kinds <= {"int", "float"}:
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    elif kinds == {"str"}:
        return pa.array(values, pa.string())
    return pa.array(
        [None if v is None else faithful_json(v, "params").decode() for v in values], pa.string()
    )


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "other"
