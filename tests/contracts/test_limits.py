"""RunLimits refuses what no clock or memory watch can honour, with one line."""

from __future__ import annotations

import math

import pytest

from modelops.contracts import ErrorClass, ModelOpsError, RunLimits


def refusal(**limits) -> str:
    with pytest.raises(ModelOpsError) as excinfo:
        RunLimits(**limits)
    info = excinfo.value.info
    assert info.error_class is ErrorClass.BAD_INPUT
    assert "\n" not in info.message
    return info.message


@pytest.mark.parametrize("name", ["timeout_s", "memory_limit_mb"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_limits_are_refused(name: str, value: float) -> None:
    assert refusal(**{name: value}) == f"{name} must be a finite number above 0, got {value}"


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"timeout_s": 0}, "timeout_s must be a finite number above 0, got 0"),
        ({"memory_limit_mb": -5.0}, "memory_limit_mb must be a finite number above 0, got -5.0"),
        ({"timeout_s": "10"}, "timeout_s must be a number, got '10'"),
        ({"timeout_s": True}, "timeout_s must be a number, got True"),
        ({"max_tasks_per_process": 0}, "max_tasks_per_process must be a whole number >= 1, got 0"),
        (
            {"max_tasks_per_process": 2.5},
            "max_tasks_per_process must be a whole number >= 1, got 2.5",
        ),
    ],
)
def test_other_bad_limits_are_named(limits: dict, expected: str) -> None:
    assert refusal(**limits) == expected


def test_huge_finite_limits_are_accepted() -> None:
    limits = RunLimits(timeout_s=1e10, memory_limit_mb=1e300, max_tasks_per_process=10**9)
    assert limits.timeout_s == 1e10 and limits.memory_limit_mb == 1e300
