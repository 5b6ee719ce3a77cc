"""Canonical parameter values and `param_id`: one id per meaning, refusals with a path."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import math
from typing import Any

import numpy as np
import pytest

from modelops.contracts import ErrorClass, ModelOpsError, canonical_json, param_id
from modelops.contracts.ids import faithful_json, plain_value


def refusal(params: Any) -> ModelOpsError:
    """The ModelOpsError that `param_id(params)` raises; fails the test if none is raised."""
    with pytest.raises(ModelOpsError) as excinfo:
        param_id(params)
    return excinfo.value


# --- the canonical bytes themselves are a fixed point: ids are cache keys -------------------


def test_canonical_json_bytes_are_pinned() -> None:
    params = {"n": 1000, "beta": 0.3, "name": "Zürich", "flags": [True, None]}
    expected = '{"beta":0.3,"flags":[true,null],"n":1000,"name":"Zürich"}'.encode()
    assert canonical_json(params) == expected
    assert param_id(params) == hashlib.sha256(expected).hexdigest()[:16]


def test_param_id_is_16_lowercase_hex_characters() -> None:
    pid = param_id({"a": 1})
    assert len(pid) == 16
    assert all(c in "0123456789abcdef" for c in pid)


def test_keys_are_sorted_by_code_point_and_non_ascii_is_not_escaped() -> None:
    assert canonical_json({"é": 1, "z": 2, "A": 3, "a": 4}) == '{"A":3,"a":4,"z":2,"é":1}'.encode()


# --- key order ------------------------------------------------------------------------------


def test_key_order_is_irrelevant() -> None:
    one = {"alpha": 1, "beta": {"x": 1, "y": [1, 2]}, "gamma": "g"}
    other = {"gamma": "g", "beta": {"y": [1, 2], "x": 1}, "alpha": 1}
    assert list(one) != list(other)
    assert param_id(one) == param_id(other)
    assert canonical_json(one) == canonical_json(other)


def test_list_order_matters() -> None:
    assert param_id({"a": [1, 2]}) != param_id({"a": [2, 1]})


def test_tuples_and_lists_are_the_same_value() -> None:
    assert param_id({"a": (1, 2, (3, 4))}) == param_id({"a": [1, 2, [3, 4]]})


# --- numbers by value -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("as_int", "as_float"),
    [(1, 1.0), (0, 0.0), (-3, -3.0), (10**15, 1e15), (2**53 - 1, float(2**53 - 1))],
)
def test_integral_float_and_int_give_the_same_id(as_int: int, as_float: float) -> None:
    assert param_id({"a": as_int}) == param_id({"a": as_float})
    assert param_id({"nested": {"list": [as_int]}}) == param_id({"nested": {"list": [as_float]}})


def test_negative_zero_is_zero() -> None:
    assert canonical_json({"a": -0.0}) == b'{"a":0}'
    assert param_id({"a": -0.0}) == param_id({"a": 0}) == param_id({"a": 0.0})


def test_different_numbers_give_different_ids() -> None:
    ids = {
        param_id({"a": v})
        for v in (1, 1.5, 0.1, math.nextafter(0.1, 1.0), 2, -1, 1e-300, 1e300, "1", None)
    }
    assert len(ids) == 10


def test_large_integral_float_and_equal_int_give_the_same_id() -> None:
    assert float(2**60) == 2**60
    assert param_id({"a": 2**60}) == param_id({"a": float(2**60)})


# --- booleans are not numbers ---------------------------------------------------------------


@pytest.mark.parametrize(("flag", "number"), [(True, 1), (False, 0), (True, 1.0), (False, 0.0)])
def test_bools_are_distinct_from_numbers(flag: bool, number: float) -> None:
    assert param_id({"a": flag}) != param_id({"a": number})
    assert param_id({"a": [flag]}) != param_id({"a": [number]})


def test_bools_are_json_booleans() -> None:
    assert canonical_json({"t": True, "f": False}) == b'{"f":false,"t":true}'


# --- non-finite numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("make", "path"),
    [
        (lambda v: {"a": v}, "params.a"),
        (lambda v: {"outer": {"inner": [1, v]}}, "params.outer.inner[1]"),
        (lambda v: {"xs": (0.5, (2.0, v))}, "params.xs[1][1]"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_path(bad: float, make: Any, path: str) -> None:
    error = refusal(make(bad))
    assert error.info.error_class is ErrorClass.BAD_INPUT
    assert path + ":" in str(error)
    assert "finite" in str(error)
    assert "\n" not in str(error)


def test_non_finite_refused_by_plain_value_too() -> None:
    with pytest.raises(ModelOpsError) as excinfo:
        plain_value({"a": {"b": math.nan}}, "config")
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT
    assert "config.a.b" in str(excinfo.value)


# --- numpy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numpy_value", "plain"),
    [
        (np.int64(3), 3),
        (np.int32(-7), -7),
        (np.uint64(2**63), 2**63),
        (np.float64(0.25), 0.25),
        (np.float32(0.5), 0.5),
        (np.float64(2.0), 2),
        (np.bool_(True), True),
        (np.array([1, 2, 3]), [1, 2, 3]),
        (np.array([1.0, 2.5]), [1, 2.5]),
        (np.array([[1, 2], [3, 4]], dtype=np.int16), [[1, 2], [3, 4]]),
        (np.array([True, False]), [True, False]),
        (np.str_("sir"), "sir"),
        (np.array(7), 7),
    ],
)
def test_numpy_values_equal_plain_values(numpy_value: Any, plain: Any) -> None:
    assert param_id({"a": numpy_value}) == param_id({"a": plain})
    assert canonical_json({"a": numpy_value}) == canonical_json({"a": plain})


def test_numpy_bool_is_not_a_number() -> None:
    assert param_id({"a": np.bool_(True)}) != param_id({"a": 1})


def test_numpy_values_become_plain_python_values() -> None:
    out = plain_value({"i": np.int64(3), "f": np.float32(0.5), "arr": np.array([1.5, 2.0])})
    assert out == {"i": 3, "f": 0.5, "arr": [1.5, 2.0]}
    assert type(out["i"]) is int
    assert type(out["f"]) is float
    assert [type(x) for x in out["arr"]] == [float, float]


def test_numpy_nan_is_refused_naming_the_element() -> None:
    error = refusal({"a": np.array([1.0, np.nan])})
    assert error.info.error_class is ErrorClass.BAD_INPUT
    assert "params.a[1]" in str(error)
    error = refusal({"b": np.float64("inf")})
    assert "params.b" in str(error)


# --- keys and types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "path", "key"),
    [
        ({1: "x"}, "params", "1"),
        ({"a": {2.5: 1}}, "params.a", "2.5"),
        ({"a": [{None: 1}]}, "params.a[0]", "None"),
        ({("t",): 1}, "params", "('t',)"),
    ],
)
def test_non_string_keys_are_refused(params: Any, path: str, key: str) -> None:
    error = refusal(params)
    assert error.info.error_class is ErrorClass.BAD_INPUT
    assert f"{path}: keys must be strings" in str(error)
    assert key in str(error)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({1, 2}, "set"),
        (b"raw", "bytes"),
        (object(), "object"),
        (1 + 2j, "complex"),
        (decimal.Decimal("1.5"), "Decimal"),
        (datetime.date(2024, 1, 1), "date"),
    ],
)
def test_unsupported_types_are_refused(value: Any, type_name: str) -> None:
    error = refusal({"outer": [0, value]})
    assert error.info.error_class is ErrorClass.BAD_INPUT
    assert "params.outer[1]" in str(error)
    assert type_name in str(error)
    assert "\n" not in str(error)


# --- transport keeps floats -----------------------------------------------------------------


def test_faithful_json_keeps_floats_while_canonical_json_does_not() -> None:
    assert faithful_json({"a": 1.0, "b": 1}) == b'{"a":1.0,"b":1}'
    assert canonical_json({"a": 1.0, "b": 1}) == b'{"a":1,"b":1}'
    assert type(plain_value({"a": 1.0})["a"]) is float


def test_input_is_not_mutated() -> None:
    params = {"b": [1.0, np.int64(2)], "a": -0.0}
    param_id(params)
    assert list(params) == ["b", "a"]
    assert type(params["b"][1]) is np.int64
    assert math.copysign(1.0, params["a"]) == -1.0
