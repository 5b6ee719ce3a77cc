"""One rule for `name=value` on the command line: what `mops sim -p` and `mops study sample
--fixed` both read, and the one-line errors naming the word that was wrong."""

from __future__ import annotations

import pytest

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.contracts.assignments import read_assignments, read_value


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("90", 90),
        ("0.3", 0.3),
        ("1e-3", 0.001),
        ("1_000", 1000),
        ("true", True),
        ("[1, 2]", [1, 2]),
        ('"a b"', "a b"),
        ("'x'", "x"),
        ("{a = 1}", {"a": 1}),
        ("north", "north"),  # not TOML: the text as written
        ("", ""),
        ("null", "null"),  # JSON's null is not TOML: text
    ],
)
def test_a_value_is_toml_when_it_is_toml_else_text(raw: str, value: object) -> None:
    assert read_value(raw) == value
    assert type(read_value(raw)) is type(value)


def test_assignments_keep_the_word_as_given_and_strip_names() -> None:
    read = read_assignments([" beta = 0.3", "name=north"], "-p")
    assert read == {"beta": (" beta = 0.3", 0.3), "name": ("name=north", "north")}


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["beta"], "-p 'beta': expected NAME=VALUE, e.g. days=90"),
        (["=3"], "-p '=3': expected NAME=VALUE, e.g. days=90"),
        (["a=1", "a=2"], "-p 'a=2': 'a' is given twice"),
    ],
)
def test_a_bad_word_is_one_line_naming_it(words: list[str], message: str) -> None:
    with pytest.raises(ModelOpsError) as raised:
        read_assignments(words, "-p")
    assert raised.value.info.error_class is ErrorClass.BAD_INPUT
    assert raised.value.info.message == message


def test_a_reader_refusal_names_the_word() -> None:
    def positive(raw: str) -> float:
        if float(raw) <= 0:
            raise ValueError("must be above 0")
        return float(raw)

    with pytest.raises(ModelOpsError) as raised:
        read_assignments(["x=-1"], "--dim", positive)
    assert raised.value.info.message == "--dim 'x=-1': must be above 0"
