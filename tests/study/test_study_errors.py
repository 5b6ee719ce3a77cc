"""Every mistake in a study file is one line: file, line of the offending key, field, problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.study import load_study

# Line numbers below refer to this text (line 1 is `name = ...`).
BASE = """\
name = "sweep"
bundle = "models/sir"
entrypoint = "sir"
seed = 1
replicates = 2
[parameters]
sampler = "lhs"
n = 8
[parameters.fixed]
days = 90
[parameters.dims.beta]
low = 0.1
high = 0.9
[parameters.dims.population]
type = "int"
low = 1000
high = 5000
[resources]
timeout = 60
"""


def edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


CASES = {
    "low not below high": (
        edit("low = 0.1", "low = 0.95"),
        "study.toml:12: parameters.dims.beta.low: must be less than high (0.9)",
    ),
    "low equal to high": (
        edit("low = 1000", "low = 5000"),
        "study.toml:16: parameters.dims.population.low: must be less than high (5000)",
    ),
    "log with low <= 0": (
        edit("low = 0.1", "low = 0.0\nlog = true"),
        "study.toml:12: parameters.dims.beta.low: must be greater than 0 on a log scale, got 0.0",
    ),
    "points on a non-grid sampler": (
        edit("high = 0.9", "high = 0.9\npoints = 5"),
        "study.toml:14: parameters.dims.beta.points: only sampler 'grid' takes points, not 'lhs'",
    ),
    "grid dim without points": (
        edit('sampler = "lhs"\nn = 8', 'sampler = "grid"').replace(
            "high = 0.9", "high = 0.9\npoints = 3"
        ),
        # population has no points: reported at its table
        "study.toml:14: parameters.dims.population.points: required for sampler 'grid'",
    ),
    "n missing": (
        edit("n = 8\n", ""),
        "study.toml:6: parameters.n: required for sampler 'lhs'",
    ),
    "n below 1": (
        edit("n = 8", "n = 0"),
        "study.toml:8: parameters.n: must be at least 1, got 0",
    ),
    "n for grid": (
        edit('sampler = "lhs"', 'sampler = "grid"'),
        "study.toml:8: parameters.n: not used by sampler 'grid' "
        "(its size is the product of the dims' points)",
    ),
    "n for list": (
        edit('sampler = "lhs"', 'sampler = "list"'),
        "study.toml:8: parameters.n: not used by sampler 'list' (its size is the sets given)",
    ),
    "dims for list": (
        edit('sampler = "lhs"\nn = 8', 'sampler = "list"'),
        "study.toml:10: parameters.dims: not used by sampler 'list' "
        "(give each set as [[parameters.sets]])",
    ),
    "sets for a non-list sampler": (
        BASE + "[[parameters.sets]]\nbeta = 0.3\n",
        "study.toml:20: parameters.sets: only sampler 'list' takes sets, not 'lhs'",
    ),
    "non-integer low for an int dim": (
        edit("low = 1000", "low = 2.5"),
        "study.toml:16: parameters.dims.population.low: "
        "must be a whole number for an int dimension, got 2.5",
    ),
    "non-integer high for an int dim": (
        edit("high = 5000", "high = 5000.5"),
        "study.toml:17: parameters.dims.population.high: "
        "must be a whole number for an int dimension, got 5000.5",
    ),
    "grid points not a whole number": (
        edit('sampler = "lhs"\nn = 8', 'sampler = "grid"').replace(
            "high = 0.9", "high = 0.9\npoints = 2.5"
        ),
        "study.toml:13: parameters.dims.beta.points: must be a whole number, got 2.5",
    ),
    "replicates below 1": (
        edit("replicates = 2", "replicates = 0"),
        "study.toml:5: replicates: must be >= 1, got 0",
    ),
    "negative seed": (
        edit("seed = 1", "seed = -1"),
        "study.toml:4: seed: must be >= 0, got -1",
    ),
    "seed_bits not 32 or 64": (
        edit("seed = 1", "seed = 1\nseed_bits = 128"),
        "study.toml:5: seed_bits: must be 32 (the default) or 64; got 128",
    ),
    "seed_bits as a string": (
        edit("seed = 1", 'seed = 1\nseed_bits = "64"'),
        "study.toml:5: seed_bits: must be 32 (the default) or 64; got '64'",
    ),
    "seed_bits as a float": (
        edit("seed = 1", "seed = 1\nseed_bits = 32.0"),
        "study.toml:5: seed_bits: must be 32 (the default) or 64; got 32.0",
    ),
    "unknown isolation": (
        BASE + 'isolation = "hot"\n',
        "study.toml:20: resources.isolation: must be one of warm, recycle, cold; got 'hot'",
    ),
    "bad memory_limit": (
        BASE + 'memory_limit = "2 gigs"\n',
        "study.toml:20: resources.memory_limit: '2 gigs' is not a size like 512MB, 2GB or 1.5g",
    ),
    "negative timeout": (
        edit("timeout = 60", "timeout = -1"),
        "study.toml:19: resources.timeout: must be > 0, got -1.0",
    ),
    "infinite timeout": (
        edit("timeout = 60", "timeout = inf"),
        "study.toml:19: resources.timeout: must be a finite number, got inf",
    ),
    "timeout not a number": (
        edit("timeout = 60", "timeout = nan"),
        "study.toml:19: resources.timeout: must be a finite number, got nan",
    ),
    "infinite memory_limit": (
        BASE + "memory_limit = inf\n",
        "study.toml:20: resources.memory_limit: must be a finite number, got inf",
    ),
    "memory_limit too large to be a number": (
        BASE + 'memory_limit = "1e999GB"\n',
        "study.toml:20: resources.memory_limit: '1e999GB' is not a finite size",
    ),
    "negative retries": (
        BASE + "retries = -1\n",
        "study.toml:20: resources.retries: must be >= 0, got -1",
    ),
    "parameter in dims and fixed": (
        edit("days = 90", "days = 90\nbeta = 0.5"),
        "study.toml:11: parameters.fixed.beta: "
        "'beta' is also a dimension in [parameters.dims]; give it in one place",
    ),
    "empty dims": (
        BASE.split("[parameters.dims.beta]")[0],
        "study.toml:6: parameters.dims: sampler 'lhs' needs at least one dimension "
        "([parameters.dims.NAME] with low and high)",
    ),
    "bundle missing": (
        edit('bundle = "models/sir"\n', ""),
        "study.toml:1: bundle: required: a project folder (relative to this file), "
        "repository@sha256:<64 hex> or repository:tag",
    ),
    "bundle empty": (
        edit('bundle = "models/sir"', 'bundle = ""'),
        "study.toml:2: bundle: must name a project folder or a bundle reference",
    ),
    "malformed digest reference": (
        edit('bundle = "models/sir"', 'bundle = "sir@sha256:abc"'),
        "study.toml:2: bundle: malformed bundle reference: digest 'sha256:abc' must be "
        "'sha256:' followed by 64 lowercase hex characters",
    ),
    "entrypoint not a string": (
        edit('entrypoint = "sir"', "entrypoint = 3"),
        "study.toml:3: entrypoint: must be a string, got 3",
    ),
    "seed not an integer": (
        edit("seed = 1", "seed = 1.5"),
        "study.toml:4: seed: must be a whole number, got 1.5",
    ),
    "replicates a string": (
        edit("replicates = 2", 'replicates = "2"'),
        "study.toml:5: replicates: must be a whole number, got '2'",
    ),
    "unknown top-level key": (
        edit("replicates = 2", "replicate = 2"),
        "study.toml:5: replicate: unknown field 'replicate' (did you mean 'replicates'?)",
    ),
    "unknown key in a dim": (
        edit("high = 0.9", "hihg = 0.9"),
        "study.toml:13: parameters.dims.beta.hihg: unknown field 'hihg' (did you mean 'high'?)",
    ),
    "unknown key without a close match": (
        BASE + "flavour = 1\n",
        "study.toml:20: resources.flavour: unknown field 'flavour'",
    ),
    "unknown table": (
        BASE + "[resource]\ntimeout = 1\n",
        "study.toml:20: resource: unknown field 'resource' (did you mean 'resources'?)",
    ),
    "source is not a file key": (
        'source = "elsewhere"\n' + BASE,
        "study.toml:1: source: unknown field 'source' (did you mean 'resources'?)",
    ),
    "sampler misspelt": (
        edit('sampler = "lhs"', 'sampler = "sobl"'),
        "study.toml:7: parameters.sampler: must be one of 'list', 'grid', 'uniform', 'lhs' or "
        "'sobol'; got 'sobl' (did you mean 'sobol'?)",
    ),
    "dim type unknown": (
        edit('type = "int"', 'type = "integer"'),
        "study.toml:15: parameters.dims.population.type: must be one of 'float' or 'int'; "
        "got 'integer' (did you mean 'int'?)",
    ),
    "low not a number": (
        edit("low = 0.1", 'low = "0.1"'),
        "study.toml:12: parameters.dims.beta.low: must be a number, got '0.1'",
    ),
    "high missing": (
        edit("high = 0.9\n", ""),
        "study.toml:11: parameters.dims.beta.high: required",
    ),
    "a fixed value TOML cannot write back": (
        edit("days = 90", "days = nan"),
        "study.toml:10: parameters.fixed.days: nan is not a finite number",
    ),
    "a config value that is a date": (
        BASE + "[config]\nstart = 2020-01-01\n",
        "study.toml:21: config.start: date values are not allowed; "
        "use numbers, strings, booleans, arrays or tables",
    ),
    "outputs empty": (
        edit('entrypoint = "sir"', 'entrypoint = "sir"\noutputs = []'),
        "study.toml:4: outputs: must name at least one output (leave it out to keep them all)",
    ),
    "outputs not strings": (
        edit('entrypoint = "sir"', 'entrypoint = "sir"\noutputs = ["a", 2]'),
        "study.toml:4: outputs[1]: must be a string, got 2",
    ),
    "parameters not a table": (
        'bundle = "m"\nparameters = 3\n',
        "study.toml:2: parameters: must be a table, got 3",
    ),
}


@pytest.mark.parametrize("text, expected", list(CASES.values()), ids=list(CASES))
def test_validation_errors_name_the_line_and_field(
    parse_error: Callable[[str], str], text: str, expected: str
) -> None:
    assert parse_error(text) == expected


LIST_STUDY = """\
bundle = "m"
[parameters]
sampler = "list"
[parameters.fixed]
gamma = 0.1
[[parameters.sets]]
beta = 0.3
[[parameters.sets]]
beta = 0.4
gamma = 0.2
"""


def test_a_key_in_both_a_set_and_fixed_points_at_that_set(
    parse_error: Callable[[str], str],
) -> None:
    assert parse_error(LIST_STUDY) == (
        "study.toml:10: parameters.sets[1].gamma: "
        "'gamma' is also in [parameters.fixed]; give it in one place"
    )


def test_an_empty_list_of_sets_is_refused(parse_error: Callable[[str], str]) -> None:
    text = 'bundle = "m"\n[parameters]\nsampler = "list"\nsets = []\n'
    assert parse_error(text) == (
        "study.toml:4: parameters.sets: must hold at least one set (or leave it out for one set)"
    )


def test_inline_tables_and_dotted_keys_are_located(parse_error: Callable[[str], str]) -> None:
    text = """\
bundle = "m"
[parameters]
sampler = "uniform"
n = 4
dims.beta = { low = 0.1, high = 0.9 }
dims.gamma = { low = 2.0, high = 1.0 }
"""
    assert parse_error(text) == (
        "study.toml:6: parameters.dims.gamma.low: must be less than high (1.0)"
    )


def test_multi_line_strings_and_arrays_do_not_confuse_the_line_count(
    parse_error: Callable[[str], str],
) -> None:
    text = '''\
bundle = "m"
name = """
replicates = 1
"""
outputs = [
  "a",
  "b = 2",
]
[parameters]
sampler = "sobol"
n = 0
[parameters.dims.x]
low = 0
high = 1
'''
    assert parse_error(text) == "study.toml:11: parameters.n: must be at least 1, got 0"


def test_the_first_problem_in_the_file_is_reported(parse_error: Callable[[str], str]) -> None:
    text = edit("seed = 1", "seed = -1").replace("timeout = 60", "timeout = 0")
    assert parse_error(text) == "study.toml:4: seed: must be >= 0, got -1"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("bundle = \nseed = 1\n", "study.toml:1: not valid TOML: Invalid value (column 10)"),
        (
            'bundle = "m"\nseed = 1\nseed = 2\n',
            "study.toml:3: not valid TOML: Cannot overwrite a value (column 9)",
        ),
        (
            'bundle = "m"\n[parameters\n',
            (
                "study.toml:2: not valid TOML: Expected ']' at the end of a table declaration "
                "(column 12)"
            ),
        ),
        ('bundle = "m', "study.toml:1: not valid TOML: Unterminated string (at end of file)"),
    ],
)
def test_toml_syntax_errors_give_the_line(
    parse_error: Callable[[str], str], text: str, expected: str
) -> None:
    assert parse_error(text) == expected


def test_load_study_names_the_file_it_read(tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(edit("replicates = 2", "replicates = 0"))
    with pytest.raises(ModelOpsError) as excinfo:
        load_study(path)
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT
    assert str(excinfo.value) == f"bad_input: {path}:5: replicates: must be >= 1, got 0"


def test_load_study_of_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelOpsError) as excinfo:
        load_study(tmp_path / "nope.toml")
    assert excinfo.value.info.error_class is ErrorClass.NOT_FOUND
    assert "nope.toml" in excinfo.value.info.message


def test_a_file_that_is_not_utf8_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ModelOpsError) as excinfo:
        load_study(path)
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT
    assert excinfo.value.info.message.startswith(f"{path}: not valid TOML: not UTF-8")


def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b'\xef\xbb\xbfbundle = "m"\n')
    assert load_study(path).bundle == "m"
