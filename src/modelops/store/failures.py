"""What went wrong in a job, read from its `simulations` table: failures grouped by cause,
the failed simulations one per row, and one simulation in full.

Everything is computed lazily in polars from the simulations parts, so a job of 200,000
failed simulations is summarised without holding its tracebacks or logs: the grouping reads
only the short columns, and tracebacks are read for the few example simulations shown.

Failures are grouped by error class, error type and message with its numbers and ids masked
(`message_pattern`): `beta 0.8 too high` and `beta 0.9 too high` are one cause, and so are
`exit code 3: ... during task 07af354b...` of different tasks. Each group keeps a real
example: the simulation of the lowest parameter set and replicate that failed that way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl

from modelops.contracts import ErrorClass, ModelOpsError

__all__ = [
    "SHORT_ID",
    "FailedSimulation",
    "FailureGroup",
    "FailureSummary",
    "HasSimulations",
    "failed_simulations",
    "failure_summary",
    "find_simulation",
    "message_pattern",
    "simulation_params",
]

SHORT_ID = 12
"""Characters of a simulation id worth showing: 48 bits, unique in any study in practice,
and `find_simulation` takes any unique prefix."""
TRACEBACK_TAIL = 5
_ID = r"\b[0-9A-Fa-f]{8,}\b"  # task ids, hashes, addresses: one per simulation or process
_NUMBER = r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_ORDER = ("param_set", "replicate")
_KEY = ("error_class", "error_type", "pattern")
_LIST_COLUMNS = (
    "sim_id",
    "param_set",
    "replicate",
    "seed",
    "params_json",
    "error_class",
    "error_type",
    "error_message",
    "attempts",
)
_EXAMPLE_COLUMNS = tuple(name for name in _LIST_COLUMNS if name not in _KEY)


class HasSimulations(Protocol):
    """A job's results (`store.JobResults`), or anything that reads like them."""

    def simulations(self) -> pl.LazyFrame: ...


def message_pattern(message: pl.Expr) -> pl.Expr:
    """The message with what differs between simulations of one cause masked: ids (eight or
    more hex digits) as `<id>`, numbers as `<n>`."""
    return message.fill_null("").str.replace_all(_ID, "<id>").str.replace_all(_NUMBER, "<n>")


@dataclass(frozen=True)
class FailedSimulation:
    """One simulation's last attempt: where it sits in the study, and how it ended."""

    sim_id: str
    param_set: int
    replicate: int
    seed: int
    params: dict[str, Any]
    status: str
    error_class: str | None
    error_type: str | None
    message: str | None
    attempts: int | None
    traceback: str | None = None
    logs: str | None = None
    worker: str | None = None

    @classmethod
    def from_rows(cls, frame: pl.DataFrame) -> Iterator[FailedSimulation]:
        """Rows of `failed_simulations` as objects, one at a time."""
        for row in frame.iter_rows(named=True):
            yield _simulation(row | {"status": "failed"})

    @property
    def short_id(self) -> str:
        return self.sim_id[:SHORT_ID]

    def one_line(self) -> str:
        """`class: message`, as `ErrorInfo.one_line` writes it."""
        return f"{self.error_class}: {self.message}"

    def traceback_tail(self, lines: int = TRACEBACK_TAIL) -> list[str]:
        """The last `lines` lines of the traceback: where it was raised, and what."""
        return (self.traceback or "").rstrip().splitlines()[-lines:] if lines > 0 else []

    def to_dict(self, *, full: bool = True) -> dict[str, Any]:
        """The `mops jobs errors --json` shape; `full` adds the traceback and logs."""
        error: dict[str, Any] | None = None
        if self.error_class is not None:
            error = {"class": self.error_class, "type": self.error_type, "message": self.message}
            if full:
                error["traceback"] = self.traceback or ""
        doc: dict[str, Any] = {
            "sim_id": self.sim_id,
            "param_set": self.param_set,
            "replicate": self.replicate,
            "seed": self.seed,
            "params": self.params,
            "status": self.status,
            "attempts": self.attempts,
            "error": error,
        }
        if full:
            doc["logs"] = self.logs
            doc["worker"] = self.worker
        return doc


@dataclass(frozen=True)
class FailureGroup:
    """Failures with one cause: same class, type and message but for numbers and ids."""

    error_class: str
    error_type: str
    pattern: str
    count: int
    messages: int  # distinct messages in the group (1 unless numbers or ids differ)
    example: FailedSimulation

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.error_class,
            "type": self.error_type,
            "pattern": self.pattern,
            "count": self.count,
            "messages": self.messages,
            "example": self.example.to_dict(full=False)
            | {"traceback_tail": self.example.traceback_tail()},
        }


@dataclass(frozen=True)
class FailureSummary:
    """The largest groups of a job's failures, and how many there are in all."""

    failed: int
    groups: list[FailureGroup] = field(default_factory=list)
    total_groups: int = 0

    @property
    def more_groups(self) -> int:
        return self.total_groups - len(self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "failed": self.failed,
            "groups": [group.to_dict() for group in self.groups],
            "more_groups": self.more_groups,
        }


def _failed(results: HasSimulations) -> pl.LazyFrame:
    return results.simulations().filter(pl.col("status") == "failed")


def failure_summary(results: HasSimulations, limit: int = 5) -> FailureSummary:
    """Failures grouped by cause, largest first (ties: the earliest parameter set); the
    first `limit` groups with an example each, its traceback included."""
    grouped = (
        _failed(results)
        .select(_LIST_COLUMNS)
        .with_columns(pattern=message_pattern(pl.col("error_message")))
        .group_by(
            pl.col("error_class").fill_null(""), pl.col("error_type").fill_null(""), "pattern"
        )
        .agg(
            pl.len().alias("count"),
            pl.col("error_message").n_unique().alias("messages"),
            *(pl.col(name).sort_by(*_ORDER).first() for name in _EXAMPLE_COLUMNS),
        )
    )
    top, totals = pl.collect_all(
        [
            grouped.sort(["count", *_ORDER], descending=[True, False, False]).head(max(limit, 0)),
            grouped.select(pl.len().alias("groups"), pl.col("count").sum().alias("failed")),
        ]
    )
    tracebacks = _tracebacks(results, top["sim_id"].to_list())
    groups = [
        FailureGroup(
            error_class=row["error_class"],
            error_type=row["error_type"],
            pattern=row["pattern"],
            count=row["count"],
            messages=row["messages"],
            example=_simulation(row | {"status": "failed"}, traceback=tracebacks[row["sim_id"]]),
        )
        for row in top.iter_rows(named=True)
    ]
    total_groups, failed = totals.row(0)
    return FailureSummary(failed=failed or 0, groups=groups, total_groups=total_groups)


def failed_simulations(results: HasSimulations) -> pl.LazyFrame:
    """The failed simulations in study order, one row each, without tracebacks or logs:
    sim_id, param_set, replicate, seed, params_json, error_class, error_type,
    error_message, attempts."""
    return _failed(results).select(_LIST_COLUMNS).sort(*_ORDER)


def find_simulation(results: HasSimulations, sim_id: str) -> FailedSimulation:
    """One simulation's last attempt in full, traceback and logs included; `sim_id` may be
    a unique prefix of its id."""
    if not sim_id:
        raise ModelOpsError(ErrorClass.BAD_INPUT, "no simulation id given")
    rows = (
        results.simulations()
        .filter(pl.col("sim_id").str.starts_with(sim_id))
        .select(*_LIST_COLUMNS, "status", "error_traceback", "logs", "worker")
        .head(11)
        .collect()
    )
    if rows.height == 0:
        raise ModelOpsError(
            ErrorClass.NOT_FOUND,
            f"no simulation '{sim_id}' in this job; `mops jobs errors JOB` lists the failed ones",
        )
    if rows.height > 1:
        shown = ", ".join(rows["sim_id"].to_list()[:10]) + (", ..." if rows.height > 10 else "")
        raise ModelOpsError(
            ErrorClass.BAD_INPUT, f"simulation id prefix '{sim_id}' matches several: {shown}"
        )
    row = rows.row(0, named=True)
    return _simulation(
        row, traceback=row["error_traceback"], logs=row["logs"], worker=row["worker"]
    )


def simulation_params(results: HasSimulations, sim_ids: Iterable[str]) -> dict[str, dict]:
    """sim_id -> the parameters it ran with, for the given simulations only."""
    wanted = pl.Series(list(sim_ids), dtype=pl.String)
    rows = (
        results.simulations()
        .filter(pl.col("sim_id").is_in(wanted.implode()))
        .select("sim_id", "params_json")
        .collect()
    )
    return {sim: _params(text) for sim, text in rows.iter_rows()}


def _tracebacks(results: HasSimulations, sim_ids: list[str]) -> dict[str, str]:
    if not sim_ids:
        return {}
    rows = (
        results.simulations()
        .filter(pl.col("sim_id").is_in(pl.Series(sim_ids, dtype=pl.String).implode()))
        .select("sim_id", "error_traceback")
        .collect()
    )
    found = dict(rows.iter_rows())
    return {sim: found.get(sim) or "" for sim in sim_ids}


def _params(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


def _simulation(row: dict[str, Any], **extra: Any) -> FailedSimulation:
    return FailedSimulation(
        sim_id=row["sim_id"],
        param_set=row["param_set"],
        replicate=row["replicate"],
        seed=row["seed"],
        params=_params(row["params_json"]),
        status=row["status"],
        error_class=row["error_class"] or None,
        error_type=row["error_type"] or None,
        message=row["error_message"],
        attempts=row["attempts"],
        **extra,
    )
