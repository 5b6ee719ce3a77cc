"""study_toml writes a file load_study reads back to an equal spec; key lines are found."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from modelops.study import StudySpec, load_study, parse_study, plan, study_toml
from modelops.study.locate import key_lines
from modelops.study.toml_out import key, value

HEADER = """\
name = "sir \\"sweep\\" \\u00e9"
bundle = "models/sir"
entrypoint = "sir"
outputs = ["incidence", "prevalence"]
seed = 2026
seed_bits = 64
replicates = 3

[config]
region = "north"
weights = [0.5, 1e-20, -3]
nested = { a = 1, "b c" = [true, false] }

[resources]
timeout = 600
memory_limit = "1.5g"
isolation = "recycle"
max_tasks_per_process = 100
retries = 0
batch_size = 50
"""

SPACES = {
    "list": """
[parameters]
sampler = "list"
[parameters.fixed]
days = 90
[[parameters.sets]]
beta = 0.3
label = "low"
[[parameters.sets]]
beta = 0.5
"odd key" = 1
""",
    "grid": """
[parameters]
sampler = "grid"
[parameters.fixed]
days = 90
[parameters.dims.beta]
low = 0.1
high = 0.9
points = 5
[parameters.dims.population]
type = "int"
low = 10
high = 10000
log = true
points = 4
""",
    "uniform": """
[parameters]
sampler = "uniform"
n = 100
[parameters.dims.beta]
low = 1
high = 2
""",
    "lhs": """
[parameters]
sampler = "lhs"
n = 10
[parameters.dims."beta.x"]
low = 1e-5
high = 0.9
log = true
[parameters.dims.k]
type = "int"
low = -3
high = 3.0
""",
    "sobol": """
[parameters]
sampler = "sobol"
n = 64
[parameters.fixed]
scenario = "baseline"
[parameters.dims.beta]
low = 0.1
high = 0.9
""",
}


@pytest.mark.parametrize("sampler", sorted(SPACES))
def test_round_trip_for_every_sampler(study: Callable[[str], StudySpec], sampler: str) -> None:
    spec = study(HEADER + SPACES[sampler])
    text = study_toml(spec)
    again = study(text)
    assert again == spec
    assert study_toml(again) == text  # writing is a fixed point
    assert list(plan(again)) == list(plan(spec))


def test_round_trip_of_a_minimal_spec(study: Callable[[str], StudySpec]) -> None:
    spec = study('bundle = "m"\n')
    assert study(study_toml(spec)) == spec
    assert study_toml(spec) == (
        'bundle = "m"\nentrypoint = ""\nseed = 0\nreplicates = 1\n\n'
        '[parameters]\nsampler = "list"\n'
    )


def test_seed_bits_is_written_only_when_not_the_default(
    study: Callable[[str], StudySpec],
) -> None:
    wide = study('bundle = "m"\nseed_bits = 64\n')
    assert "seed_bits = 64\n" in study_toml(wide)
    assert study(study_toml(wide)) == wide
    assert study(study_toml(wide)).seed_bits == 64
    assert "seed_bits" not in study_toml(study('bundle = "m"\nseed_bits = 32\n'))
    assert study('bundle = "m"\nseed_bits = 32\n') == study('bundle = "m"\n')


def test_written_file_is_plain_readable_toml(
    study: Callable[[str], StudySpec], tmp_path: Path
) -> None:
    spec = study(HEADER + SPACES["grid"])
    path = tmp_path / "out.toml"
    path.write_text(study_toml(spec))
    data = tomllib.loads(path.read_text())
    assert data["resources"]["memory_limit"] == 1536
    assert data["parameters"]["dims"]["beta"] == {
        "type": "float",
        "low": 0.1,
        "high": 0.9,
        "log": False,
        "points": 5,
    }
    assert load_study(path) == spec


def test_values_are_written_as_toml() -> None:
    assert value(0.1) == "0.1"
    assert value(1e-20) == "1e-20"
    assert value(2.0) == "2.0"
    assert value(-0.0) == "-0.0"
    assert value(2**63 - 1) == "9223372036854775807"
    assert value(True) == "true"
    assert value('a "quoted"\\ line\n\ttab\x00') == '"a \\"quoted\\"\\\\ line\\n\\ttab\\u0000"'
    assert value([1, "a", [2.5]]) == '[1, "a", [2.5]]'
    assert value({"a": 1, "b c": {"d": False}}) == '{a = 1, "b c" = {d = false}}'
    assert key("beta_1-x") == "beta_1-x"
    assert key("beta.x") == '"beta.x"'
    assert key("") == '""'
    for item in [0.1, 1e300, -2.5e-310, "é ☃", [1, [2, {"x": "y"}]]]:
        assert tomllib.loads(f"v = {value(item)}")["v"] == item


def test_key_lines_follow_tables_arrays_of_tables_and_dotted_keys() -> None:
    text = """\
a = 1
"q.k" = 2
[t]
x.y = 3
[[t.arr]]
v = 1
[[t.arr]]
v = 2
[t.arr.sub]
w = 4
"""
    lines = key_lines(text)
    assert lines[("a",)] == 1
    assert lines[("q.k",)] == 2
    assert lines[("t",)] == 3
    assert lines[("t", "x")] == lines[("t", "x", "y")] == 4
    assert lines[("t", "arr")] == 5
    assert lines[("t", "arr", 0, "v")] == 6
    assert lines[("t", "arr", 1)] == 7
    assert lines[("t", "arr", 1, "v")] == 8
    assert lines[("t", "arr", 1, "sub", "w")] == 10


def test_spec_values_from_python_that_toml_cannot_hold_are_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="TOML has no null"):
        StudySpec(bundle="m", config={"x": None})
    with pytest.raises(ValidationError, match="outside the range of TOML integers"):
        StudySpec(bundle="m", config={"x": 2**64})


def test_the_written_spec_can_be_parsed_from_text_without_a_source() -> None:
    spec = parse_study(HEADER + SPACES["sobol"], None)
    assert spec.source is None
    assert parse_study(study_toml(spec)) == spec
