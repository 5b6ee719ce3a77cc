"""sample_study: the API behind `mops study sample`, from command-line words to a spec."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from modelops.study import (
    Dimension,
    StudySpec,
    StudyWarning,
    load_study,
    plan,
    sample_study,
    study_toml,
)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_documented_command_line(in_tmp: Path) -> None:
    (in_tmp / "models" / "sir").mkdir(parents=True)
    out = Path("studies/study.toml")
    spec = sample_study(
        "models/sir",
        sampler="sobol",
        n=128,
        dims=["beta=0.1:0.9", "population=int:1000:5000", "gamma=log:0.01:1"],
        fixed=["days=90", "region=north", 'quoted="x y"', "flags=[1, 2]", "on=true"],
        replicates=10,
        seed=1,
        entrypoint="sir",
        outputs=["incidence"],
        name="sweep",
        out=out,
    )
    dims = spec.parameters.dims
    assert dims["beta"] == Dimension(type="float", low=0.1, high=0.9)
    assert dims["population"] == Dimension(type="int", low=1000, high=5000)
    assert dims["gamma"] == Dimension(type="float", low=0.01, high=1.0, log=True)
    assert spec.parameters.fixed == {
        "days": 90,
        "region": "north",
        "quoted": "x y",
        "flags": [1, 2],
        "on": True,
    }
    assert (spec.n_simulations, spec.seed, spec.entrypoint, spec.outputs, spec.name) == (
        1280,
        1,
        "sir",
        ["incidence"],
        "sweep",
    )
    # the bundle folder is written relative to the file, where the file format reads it
    assert spec.bundle == "../models/sir"
    assert spec.source == out
    assert spec.bundle_path() == Path("studies/../models/sir")
    assert spec.bundle_path().resolve() == (in_tmp / "models" / "sir").resolve()
    out.parent.mkdir()
    out.write_text(study_toml(spec))
    loaded = load_study(out)
    assert loaded == spec
    assert loaded.bundle_path().resolve() == (in_tmp / "models" / "sir").resolve()


def test_grid_points_and_flags_in_any_order() -> None:
    spec = sample_study(
        "m", sampler="grid", dims=["beta=0.1:0.9:5", "k=log:int:1:1000:4", "x=float:-1:1:3"]
    )
    dims = spec.parameters.dims
    assert dims["beta"].points == 5
    assert (dims["k"].type, dims["k"].log, dims["k"].points) == ("int", True, 4)
    assert dims["x"] == Dimension(low=-1.0, high=1.0, points=3)
    assert spec.n_param_sets == 5 * 4 * 3
    assert len(list(plan(spec))) == 60


def test_references_and_absolute_folders_are_kept_as_given(tmp_path: Path) -> None:
    ref = "sir@sha256:" + "ab" * 32
    out = tmp_path / "s.toml"
    assert sample_study(ref, sampler="list", out=out).bundle == ref
    assert sample_study("sir:v1", sampler="list", out=out).bundle == "sir:v1"
    folder = str(tmp_path / "models")
    assert sample_study(folder, sampler="list", out=out).bundle == folder
    assert sample_study("models/sir", sampler="list").bundle == "models/sir"  # no out: as given


def test_a_list_study_of_fixed_values_only() -> None:
    spec = sample_study("m", sampler="list", fixed=["beta=0.3"], replicates=4)
    assert [s.params for s in plan(spec)] == [{"beta": 0.3}] * 4


def test_sobol_warning_names_the_option() -> None:
    with pytest.warns(StudyWarning, match=r"^--n: sampler 'sobol' with n = 100: .* n = 64 or"):
        sample_study("m", sampler="sobol", n=100, dims=["x=0:1"])


ERRORS = {
    "no equals": (dict(dims=["beta"]), "--dim 'beta': expected NAME=[int:][log:]LOW:HIGH"),
    "one number": (dict(dims=["beta=0.1"]), "--dim 'beta=0.1': expected NAME="),
    "too many numbers": (dict(dims=["beta=0:1:2:3"]), "--dim 'beta=0:1:2:3': expected NAME="),
    "not numbers": (
        dict(dims=["beta=a:b"]),
        "--dim 'beta=a:b': LOW, HIGH and POINTS must be numbers",
    ),
    "empty name": (dict(dims=["=0:1"]), "--dim '=0:1': expected NAME="),
    "twice": (dict(dims=["b=0:1", "b=1:2"]), "--dim 'b=1:2': 'b' is given twice"),
    "low above high": (
        dict(dims=["beta=0.9:0.1"]),
        "--dim 'beta=0.9:0.1': parameters.dims.beta.low: must be less than high (0.1)",
    ),
    "log from zero": (
        dict(dims=["g=log:0:1"]),
        "--dim 'g=log:0:1': parameters.dims.g.low: must be greater than 0 on a log scale, got 0.0",
    ),
    "points for lhs": (
        dict(dims=["beta=0.1:0.9:5"]),
        "--dim 'beta=0.1:0.9:5': parameters.dims.beta.points: only sampler 'grid' takes points",
    ),
    "fractional int": (
        dict(dims=["k=int:1.5:3"]),
        "--dim 'k=int:1.5:3': parameters.dims.k.low: must be a whole number for an int dimension",
    ),
    "fixed without equals": (dict(fixed=["days"]), "--fixed 'days': expected NAME=VALUE"),
    "fixed twice": (dict(fixed=["a=1", "a=2"]), "--fixed 'a=2': 'a' is given twice"),
    "fixed also a dim": (
        dict(fixed=["beta=0.5"]),
        "--fixed 'beta=0.5': parameters.fixed.beta: 'beta' is also a dimension",
    ),
    "fixed not finite": (
        dict(fixed=["x=nan"]),
        "--fixed 'x=nan': parameters.fixed.x: nan is not a finite number",
    ),
    "n missing": (dict(n=None), "--n: parameters.n: required for sampler 'lhs'"),
    "n zero": (dict(n=0), "--n: parameters.n: must be at least 1, got 0"),
    "n for grid": (dict(sampler="grid"), "--n: parameters.n: not used by sampler 'grid'"),
    "unknown sampler": (
        dict(sampler="random"),
        "--sampler: parameters.sampler: must be one of 'list', 'grid'",
    ),
    "no dims": (dict(dims=[]), "--dim: parameters.dims: sampler 'lhs' needs at least one"),
    "replicates": (dict(replicates=0), "--replicates: replicates: must be >= 1, got 0"),
    "seed": (dict(seed=-5), "--seed: seed: must be >= 0, got -5"),
    "seed too big for TOML": (dict(seed=2**64), "--seed: seed: must be <= 9223372036854775807"),
    "seed bits": (dict(seed_bits=16), "--seed-bits: seed_bits: must be 32 (the default) or 64"),
    "bad reference": (dict(bundle="sir@sha256:xyz"), "--bundle: bundle: malformed bundle"),
    "empty output": (dict(outputs=[]), "--output: outputs: must name at least one output"),
}


@pytest.mark.parametrize("changes, expected", list(ERRORS.values()), ids=list(ERRORS))
def test_argument_errors_name_the_argument(
    bad_input: Callable[[Callable[[], object]], str], changes: dict, expected: str
) -> None:
    arguments: dict = {"bundle": "m", "sampler": "lhs", "n": 8, "dims": ["beta=0.1:0.9"]}
    arguments.update(changes)
    bundle = arguments.pop("bundle")
    message = bad_input(lambda: sample_study(bundle, **arguments))
    assert message.startswith(expected), message


def test_specs_from_the_command_line_equal_specs_from_files(
    study: Callable[[str], StudySpec],
) -> None:
    from_words = sample_study("m", sampler="uniform", n=10, dims=["a=0:1", "b=int:1:5"], seed=3)
    from_file = study(
        'bundle = "m"\nseed = 3\n[parameters]\nsampler = "uniform"\nn = 10\n'
        "[parameters.dims.a]\nlow = 0.0\nhigh = 1.0\n"
        '[parameters.dims.b]\ntype = "int"\nlow = 1\nhigh = 5\n'
    )
    assert from_words == from_file
    assert list(plan(from_words)) == list(plan(from_file))


def test_seed_bits_from_the_command_line_equal_seed_bits_from_a_file(
    study: Callable[[str], StudySpec],
) -> None:
    from_words = sample_study("m", sampler="list", seed=3, seed_bits=64)
    assert from_words == study('bundle = "m"\nseed = 3\nseed_bits = 64\n')
    assert sample_study("m", sampler="list").seed_bits == 32
    assert all(sim.seed >= 2**32 for sim in plan(from_words))
