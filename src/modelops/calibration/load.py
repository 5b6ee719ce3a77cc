"""Reading a calibration file and the observed data its targets name, so that a wrong path,
a missing column or an empty value is one line at load time, not a failure on a worker
after the first simulations ran."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from modelops.calibration.spec import CalibrationSpec, Target
from modelops.contracts import ErrorClass, ModelOpsError
from modelops.study.errors import Loc
from modelops.study.load import field_problem, parse_spec, read_spec_file

READERS = {".csv": "CSV", ".parquet": "Parquet", ".pq": "Parquet"}


def load_calibration(path: Path | str) -> CalibrationSpec:
    """The calibration in the file at `path`, each target's observed table read (relative to
    the file) and cut to the columns the target names, which must be there."""
    path = Path(path)
    spec = parse_spec(CalibrationSpec, read_spec_file(path, "calibration"), path, "calibration")
    observed = {name: _observed(spec, name, target) for name, target in spec.targets.items()}
    return spec.model_copy(update={"observed": observed})


def data_path(spec: CalibrationSpec, target: Target) -> Path:
    """Where a target's data is: relative to the calibration file's folder (or absolute)."""
    base = spec.source.parent if spec.source is not None else Path()
    return base / target.data


def _observed(spec: CalibrationSpec, name: str, target: Target) -> pl.DataFrame:
    """The target's table, cut to the columns it names; each must be there, hold no empty
    value (which could not be scored and would drop its row), and hold numbers unless it
    only aligns rows."""
    table = _read(spec, name, target)
    if table.height == 0:
        raise _problem(spec, ("targets", name, "data"), f"{target.data!r} has no rows")
    named = _named_columns(target)
    for key, column in named:
        loc = ("targets", name, key)
        if column not in table.columns:
            raise _problem(
                spec,
                loc,
                f"{target.data!r} has no column {column!r}; it has {', '.join(table.columns)}",
            )
        values = table[column]
        if key != "join" and not values.dtype.is_numeric():
            raise _problem(
                spec, loc, f"column {column!r} of {target.data!r} holds {values.dtype}, not numbers"
            )
        empty = values.is_null() | values.is_nan() if values.dtype.is_float() else values.is_null()
        if empty.any():
            raise _problem(
                spec,
                loc,
                f"column {column!r} of {target.data!r} has {empty.sum()} empty value(s), the "
                f"first in data row {empty.arg_true()[0] + 1}",
            )
    return table.select([column for _, column in named])


def _named_columns(target: Target) -> list[tuple[str, str]]:
    """Each column the target names, with the key that names it."""
    named = [("join", column) for column in target.join] + [("observed", target.observed)]
    if target.trials is not None:
        named.append(("trials", target.trials))
    return named


def _read(spec: CalibrationSpec, name: str, target: Target) -> pl.DataFrame:
    path = data_path(spec, target)
    where = ("targets", name, "data")
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise _problem(
            spec, where, f"{target.data!r} is neither CSV (.csv) nor Parquet (.parquet, .pq)"
        )
    try:
        if kind == "CSV":
            return pl.read_csv(path, infer_schema_length=None)
        return pl.read_parquet(path)
    except FileNotFoundError:
        raise _problem(
            spec, where, f"{target.data!r} not found (no {path.resolve()})", ErrorClass.NOT_FOUND
        ) from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _problem(spec, where, f"cannot read {target.data!r} as {kind}: {reason}") from None


def _problem(
    spec: CalibrationSpec, loc: Loc, message: str, error_class: ErrorClass = ErrorClass.BAD_INPUT
) -> ModelOpsError:
    return field_problem(spec, loc, ModelOpsError(error_class, message))
