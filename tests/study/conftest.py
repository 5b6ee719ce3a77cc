"""Helpers for the study tests: reading a study from text and catching its one-line error."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.study import StudySpec, parse_study


def study(text: str, source: Path | None = Path("study.toml")) -> StudySpec:
    """The spec in `text`, with any StudyWarning silenced (tests that expect one check it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return parse_study(text, source)


def bad_input(call: Callable[[], object]) -> str:
    """The message of the one-line BAD_INPUT error that `call` raises."""
    with pytest.raises(ModelOpsError) as excinfo:
        call()
    error = excinfo.value
    assert error.info.error_class is ErrorClass.BAD_INPUT
    assert "\n" not in error.info.message
    return error.info.message


@pytest.fixture(name="study")
def study_fixture() -> Callable[..., StudySpec]:
    """`study(text)` is the spec in `text`, read as study.toml."""
    return study


@pytest.fixture(name="bad_input")
def bad_input_fixture() -> Callable[[Callable[[], object]], str]:
    """`bad_input(call)` is the one-line BAD_INPUT message `call()` fails with."""
    return bad_input


@pytest.fixture
def parse_error() -> Callable[[str], str]:
    """`parse_error(text)` is the message parsing `text` (as study.toml) fails with."""
    return lambda text: bad_input(lambda: study(text))
