"""The calibration file: every mistake is one line naming the file, line and key; observed
data is read and its columns checked at load; an SDK model's description fills in and bounds
the free parameters."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import modelops
from modelops.calibration.candidates import Scoring
from modelops.calibration.defaults import with_model_defaults
from modelops.calibration.load import load_calibration
from modelops.calibration.scores import LOSSES
from modelops.calibration.spec import CalibrationSpec, FreeParameter
from modelops.contracts import ErrorClass, ModelOpsError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sir"

# Line numbers below refer to this text (line 1 is `name = ...`).
BASE = """\
name = "fit"
bundle = "."
entrypoint = "model:SIR"
seed = 1
replicates = 3
[parameters.beta]
low = 0.05
high = 1.0
log = true
[parameters.population]
low = 1000
high = 50000
type = "int"
[fixed]
gamma = 0.1
[targets.cases]
data = "data/observed.csv"
output = "incidence"
join = ["day"]
observed = "cases"
simulated = "new_infections"
loss = "poisson"
weight = 1.0
[search]
algorithm = "tpe"
trials = 200
batch = 16
"""

OBSERVED = "day,cases,tests\n0,3,10\n1,5,12\n2,9,20\n"

# What `modelops.check_bundle("examples/sir").models` returns (test_the_real_description_...).
SIR_MODELS: dict[str, Any] = {
    "model:SIR": {
        "params": {
            "beta": {
                "kind": "float",
                "low": 0.01,
                "high": 2.0,
                "default": 0.3,
                "log": True,
                "doc": "transmission rate per day",
            },
            "gamma": {
                "kind": "float",
                "low": 0.01,
                "high": 1.0,
                "default": 0.1,
                "log": False,
                "doc": "recovery rate per day",
            },
            "population": {
                "kind": "int",
                "low": 10,
                "high": 10000000,
                "default": 10000,
                "log": False,
                "doc": "people",
            },
        },
        "config": {"days": 120, "initial_infected": 10, "vaccinated": 0.0},
        "scenarios": ["lockdown", "vaccination"],
        "outputs": ["incidence", "prevalence"],
        "doc": "Stochastic SIR with daily binomial infections and recoveries.",
    }
}


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test writes calibration.toml and data/observed.csv in its own folder and reads
    them by relative path, so messages start with `calibration.toml:LINE:`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "observed.csv").write_text(OBSERVED)
    yield tmp_path


def load(text: str) -> CalibrationSpec:
    Path("calibration.toml").write_text(text)
    return load_calibration("calibration.toml")


def failure(call: Callable[[], object], error_class: ErrorClass = ErrorClass.BAD_INPUT) -> str:
    """The one-line message of the error `call` raises, which must be of `error_class`."""
    with pytest.raises(ModelOpsError) as excinfo:
        call()
    info = excinfo.value.info
    assert info.error_class is error_class
    assert "\n" not in info.message
    return info.message


def load_error(text: str) -> str:
    return failure(lambda: load(text))


def defaults_error(text: str, models: dict[str, Any] | None = SIR_MODELS) -> str:
    spec = load(text)
    return failure(lambda: with_model_defaults(spec, models))


FILE_ERRORS = {
    "low not below high": (
        edit("low = 0.05", "low = 1.5"),
        "calibration.toml:7: parameters.beta.low: must be less than high (1.0)",
    ),
    "log with low <= 0": (
        edit("low = 0.05", "low = 0.0"),
        "calibration.toml:7: parameters.beta.low: must be greater than 0 on a log scale, got 0.0",
    ),
    "int bound not whole": (
        edit("low = 1000", "low = 1000.5"),
        "calibration.toml:11: parameters.population.low: "
        "must be a whole number for an int parameter, got 1000.5",
    ),
    "unknown kind": (
        edit('type = "int"', 'type = "integer"'),
        "calibration.toml:13: parameters.population.type: "
        "must be one of 'float' or 'int'; got 'integer' (did you mean 'int'?)",
    ),
    "free and fixed": (
        edit("gamma = 0.1", "beta = 0.3"),
        "calibration.toml:15: fixed.beta: "
        "'beta' is also a free parameter in [parameters]; give it in one place",
    ),
    "no free parameter": (
        BASE.replace(BASE[BASE.index("[parameters.beta]") : BASE.index("[fixed]")], ""),
        "calibration.toml:1: parameters: needs at least one free parameter "
        "([parameters.NAME], with low and high unless the model declares them)",
    ),
    "no target": (
        BASE.replace(BASE[BASE.index("[targets.cases]") : BASE.index("[search]")], ""),
        "calibration.toml:1: targets: needs at least one target "
        "([targets.NAME] with data and output)",
    ),
    "negative weight": (
        edit("weight = 1.0", "weight = -1"),
        "calibration.toml:23: targets.cases.weight: must be >= 0, got -1.0",
    ),
    "every weight zero": (
        edit("weight = 1.0", "weight = 0"),
        "calibration.toml:16: targets: every target has weight 0; at least one must count",
    ),
    "weight not a number": (
        edit("weight = 1.0", "weight = true"),
        "calibration.toml:23: targets.cases.weight: must be a number, got true",
    ),
    "no trials": (
        edit("trials = 200", "trials = 0"),
        "calibration.toml:26: search.trials: must be >= 1, got 0",
    ),
    "no batch": (
        edit("batch = 16", "batch = 0"),
        "calibration.toml:27: search.batch: must be >= 1, got 0",
    ),
    "no search": (
        BASE[: BASE.index("[search]")],
        "calibration.toml:1: search: required",
    ),
    "unknown algorithm": (
        edit('algorithm = "tpe"', 'algorithm = "cma"'),
        "calibration.toml:25: search.algorithm: "
        "must be one of 'tpe', 'cmaes', 'random' or 'sobol'; got 'cma' (did you mean 'cmaes'?)",
    ),
    "batch_size, which a calibration does not use": (
        BASE + "\n[resources]\nbatch_size = 10\n",
        "calibration.toml:30: resources.batch_size: does not apply to a calibration, which runs "
        "each candidate's replicates as one task; [search] batch sets how many candidates are "
        "in flight",
    ),
    "unknown loss": (
        edit('loss = "poisson"', 'loss = "poison"'),
        "calibration.toml:22: targets.cases.loss: must be one of 'squared', 'absolute', "
        "'squared_log1p', 'absolute_log1p', 'poisson', 'negative_binomial', 'binomial', "
        "'beta_binomial' or 'gaussian'; got 'poison' (did you mean 'poisson'?)",
    ),
    "marginal replicates for an error loss": (
        edit('loss = "poisson"', 'loss = "squared"\nreplicates = "marginal"'),
        "calibration.toml:23: targets.cases.replicates: 'marginal' needs a likelihood; the "
        "squared loss scores the replicates' mean",
    ),
    "gaussian without sigma": (
        edit('loss = "poisson"', 'loss = "gaussian"'),
        "calibration.toml:16: targets.cases.sigma: "
        "required for loss 'gaussian': the observation noise",
    ),
    "sigma not positive": (
        edit('loss = "poisson"', 'loss = "gaussian"\nsigma = 0'),
        "calibration.toml:23: targets.cases.sigma: must be > 0, got 0.0",
    ),
    "sigma on another loss": (
        edit('loss = "poisson"', 'loss = "poisson"\nsigma = 2.0'),
        "calibration.toml:23: targets.cases.sigma: only gaussian takes sigma, not 'poisson'",
    ),
    "binomial without trials": (
        edit('loss = "poisson"', 'loss = "binomial"'),
        "calibration.toml:16: targets.cases.trials: "
        "required for loss 'binomial': the column of trial counts",
    ),
    "trials on another loss": (
        edit('loss = "poisson"', 'loss = "poisson"\ntrials = "tests"'),
        "calibration.toml:23: targets.cases.trials: "
        "only binomial and beta_binomial take trials, not 'poisson'",
    ),
    "beta_binomial without dispersion": (
        edit('loss = "poisson"', 'loss = "beta_binomial"\ntrials = "tests"'),
        "calibration.toml:16: targets.cases.dispersion: "
        "loss 'beta_binomial' needs a dispersion > 0 ('fit' is for negative_binomial)",
    ),
    "beta_binomial asked to fit": (
        edit('loss = "poisson"', 'loss = "beta_binomial"\ntrials = "tests"\ndispersion = "fit"'),
        "calibration.toml:24: targets.cases.dispersion: "
        "loss 'beta_binomial' needs a dispersion > 0 ('fit' is for negative_binomial)",
    ),
    "dispersion on another loss": (
        edit('loss = "poisson"', 'loss = "poisson"\ndispersion = 2.0'),
        "calibration.toml:23: targets.cases.dispersion: "
        "only negative_binomial and beta_binomial take dispersion, not 'poisson'",
    ),
    "dispersion not positive": (
        edit('loss = "poisson"', 'loss = "negative_binomial"\ndispersion = -1'),
        "calibration.toml:23: targets.cases.dispersion: must be > 0, got -1",
    ),
    "dispersion neither number nor fit": (
        edit('loss = "poisson"', 'loss = "negative_binomial"\ndispersion = "fitted"'),
        "calibration.toml:23: targets.cases.dispersion: "
        "must be a number > 0 or 'fit', got 'fitted'",
    ),
    "unknown way to combine replicates": (
        edit("weight = 1.0", 'replicates = "median"'),
        "calibration.toml:23: targets.cases.replicates: "
        "must be one of 'mean' or 'marginal'; got 'median' (did you mean 'mean'?)",
    ),
    "negative missing penalty": (
        edit("weight = 1.0", "missing_penalty = -5"),
        "calibration.toml:23: targets.cases.missing_penalty: must be >= 0, got -5.0",
    ),
    "no join column": (
        edit('join = ["day"]', "join = []"),
        "calibration.toml:19: targets.cases.join: "
        "must name at least one column that aligns the rows (e.g. day)",
    ),
    "observed column also joined on": (
        edit('join = ["day"]', 'join = ["day", "cases"]'),
        "calibration.toml:20: targets.cases.observed: "
        "'cases' is also a join column: one aligns rows, one is scored",
    ),
    "join column twice": (
        edit('join = ["day"]', 'join = ["day", "day"]'),
        "calibration.toml:19: targets.cases.join: names column 'day' twice",
    ),
    "empty output name": (
        edit('output = "incidence"', 'output = " "'),
        "calibration.toml:18: targets.cases.output: must not be empty",
    ),
    "more simulations than a job may have": (
        edit("trials = 200", "trials = 400000000"),
        "calibration.toml:26: search.trials: 400,000,000 trials x 3 replicates = "
        "1,200,000,000 simulations, more than the 1,000,000,000 a job may have",
    ),
    "misspelt target key": (
        edit('loss = "poisson"', 'lost = "poisson"'),
        "calibration.toml:22: targets.cases.lost: unknown field 'lost' (did you mean 'loss'?)",
    ),
    "target missing its output": (
        edit('output = "incidence"\n', ""),
        "calibration.toml:16: targets.cases.output: required",
    ),
    "seed bits as in studies": (
        edit("seed = 1", "seed = 1\nseed_bits = 48"),
        "calibration.toml:5: seed_bits: must be 32 (the default) or 64; got 48",
    ),
    "resources as in studies": (
        BASE + "[resources]\ntimeout = 0\n",
        "calibration.toml:29: resources.timeout: must be > 0, got 0.0",
    ),
    "observed data set in the file": (
        "observed = 1\n" + BASE,
        "calibration.toml:1: observed: unknown field 'observed' (did you mean 'seed'?)",
    ),
}


@pytest.mark.parametrize("case", list(FILE_ERRORS))
def test_each_mistake_is_one_line_naming_file_line_and_key(case: str) -> None:
    text, expected = FILE_ERRORS[case]
    assert load_error(text) == expected


def test_a_missing_calibration_file_is_not_found() -> None:
    message = failure(lambda: load_calibration("nowhere.toml"), ErrorClass.NOT_FOUND)
    assert message == "calibration file 'nowhere.toml' not found"


def test_the_example_header_loads_with_its_defaults() -> None:
    spec = load(BASE)
    assert spec.name == "fit"
    assert spec.replicates == 3
    assert spec.parameters["beta"] == FreeParameter(low=0.05, high=1.0, log=True)
    assert spec.parameters["population"] == FreeParameter(type="int", low=1000, high=50000)
    assert type(spec.parameters["population"].low) is int
    assert spec.fixed == {"gamma": 0.1}
    assert (spec.search.algorithm, spec.search.trials, spec.search.batch) == ("tpe", 200, 16)
    assert spec.outputs == ["incidence"]
    assert spec.source == Path("calibration.toml")


def test_loss_names_are_one_list() -> None:
    assert LOSSES == (
        "squared",
        "absolute",
        "squared_log1p",
        "absolute_log1p",
        "poisson",
        "negative_binomial",
        "binomial",
        "beta_binomial",
        "gaussian",
    )


@pytest.mark.parametrize(
    "loss, extra, combine",
    [
        ("squared", "", "mean"),
        ("absolute_log1p", "", "mean"),
        ("poisson", "", "marginal"),
        ("negative_binomial", "", "marginal"),
        ("gaussian", "sigma = 2.0", "marginal"),
        ("poisson", 'replicates = "mean"', "mean"),
    ],
)
def test_replicates_combine_by_loss_kind_unless_the_target_says(
    loss: str, extra: str, combine: str
) -> None:
    spec = load(edit('loss = "poisson"', f'loss = "{loss}"\n{extra}'))
    assert Scoring.of(spec).rules["cases"].replicates == combine


def test_the_simulated_column_defaults_to_the_observed_name() -> None:
    named = load(BASE).targets["cases"]
    same = load(edit('simulated = "new_infections"\n', "")).targets["cases"]
    assert named.simulated_column == "new_infections"
    assert same.simulated_column == "cases"


def test_negative_binomial_fits_its_dispersion_unless_given() -> None:
    fitted = load(edit('loss = "poisson"', 'loss = "negative_binomial"')).targets["cases"]
    given = load(edit('loss = "poisson"', 'loss = "negative_binomial"\ndispersion = 5'))
    assert fitted.dispersion is None
    assert given.targets["cases"].dispersion == 5.0


def test_binomial_keeps_its_trials_column() -> None:
    spec = load(edit('loss = "poisson"', 'loss = "binomial"\ntrials = "tests"'))
    assert spec.observed["cases"].columns == ["day", "cases", "tests"]
    assert spec.observed["cases"]["tests"].to_list() == [10, 12, 20]


# --- observed data ------------------------------------------------------------------------


def test_observed_data_is_read_relative_to_the_file_and_cut_to_the_named_columns(
    in_tmp: Path,
) -> None:
    (in_tmp / "sub").mkdir()
    (in_tmp / "sub" / "calibration.toml").write_text(edit('"data/', '"../data/'))
    spec = load_calibration(in_tmp / "sub" / "calibration.toml")
    assert spec.observed["cases"].to_dict(as_series=False) == {
        "day": [0, 1, 2],
        "cases": [3, 5, 9],
    }


def test_parquet_is_read_by_its_suffix(in_tmp: Path) -> None:
    pl.read_csv(in_tmp / "data" / "observed.csv").write_parquet(in_tmp / "data" / "obs.parquet")
    spec = load(edit("observed.csv", "obs.parquet"))
    assert spec.observed["cases"].equals(load(BASE).observed["cases"])


def test_the_observed_data_is_not_part_of_the_spec_value() -> None:
    spec = load(BASE)
    assert "observed" not in spec.model_dump()
    assert spec == spec.model_copy(update={"observed": {}})


DATA_ERRORS = {
    "missing observed column": (
        edit('observed = "cases"', 'observed = "case"'),
        OBSERVED,
        "calibration.toml:20: targets.cases.observed: "
        "'data/observed.csv' has no column 'case'; it has day, cases, tests",
    ),
    "missing join column": (
        edit('join = ["day"]', 'join = ["day", "week"]'),
        OBSERVED,
        "calibration.toml:19: targets.cases.join: "
        "'data/observed.csv' has no column 'week'; it has day, cases, tests",
    ),
    "missing trials column": (
        edit('loss = "poisson"', 'loss = "binomial"\ntrials = "tested"'),
        OBSERVED,
        "calibration.toml:23: targets.cases.trials: "
        "'data/observed.csv' has no column 'tested'; it has day, cases, tests",
    ),
    "observed column of text": (
        BASE,
        "day,cases\n0,a few\n",
        "calibration.toml:20: targets.cases.observed: "
        "column 'cases' of 'data/observed.csv' holds String, not numbers",
    ),
    "empty observed values": (
        BASE,
        "day,cases\n0,3\n1,\n2,NaN\n3,4\n",
        "calibration.toml:20: targets.cases.observed: "
        "column 'cases' of 'data/observed.csv' has 2 empty value(s), the first in data row 2",
    ),
    "empty join value": (
        BASE,
        "day,cases\n0,3\n,5\n",
        "calibration.toml:19: targets.cases.join: "
        "column 'day' of 'data/observed.csv' has 1 empty value(s), the first in data row 2",
    ),
    "no rows": (
        BASE,
        "day,cases\n",
        "calibration.toml:17: targets.cases.data: 'data/observed.csv' has no rows",
    ),
    "neither CSV nor Parquet": (
        edit("observed.csv", "observed.xlsx"),
        OBSERVED,
        "calibration.toml:17: targets.cases.data: "
        "'data/observed.xlsx' is neither CSV (.csv) nor Parquet (.parquet, .pq)",
    ),
}


@pytest.mark.parametrize("case", list(DATA_ERRORS))
def test_each_data_problem_is_one_line_at_the_target_key(case: str, in_tmp: Path) -> None:
    text, data, expected = DATA_ERRORS[case]
    (in_tmp / "data" / "observed.csv").write_text(data)
    assert load_error(text) == expected


def test_missing_data_is_not_found_where_the_file_says(in_tmp: Path) -> None:
    Path("calibration.toml").write_text(edit("observed.csv", "gone.csv"))
    message = failure(lambda: load_calibration("calibration.toml"), ErrorClass.NOT_FOUND)
    assert message == (
        f"calibration.toml:17: targets.cases.data: 'data/gone.csv' not found "
        f"(no {in_tmp.resolve() / 'data' / 'gone.csv'})"
    )


def test_unreadable_data_says_which_reader_failed(in_tmp: Path) -> None:
    (in_tmp / "data" / "observed.parquet").write_text("not parquet")
    message = load_error(edit("observed.csv", "observed.parquet"))
    assert message.startswith(
        "calibration.toml:17: targets.cases.data: cannot read 'data/observed.parquet' as Parquet: "
    )


# --- the model's description ----------------------------------------------------------------


def test_the_model_fills_in_what_the_file_leaves_out() -> None:
    text = edit("[fixed]\ngamma = 0.1\n", "[parameters.gamma]\n")
    spec = with_model_defaults(load(text), SIR_MODELS)
    assert spec.parameters == {
        "beta": FreeParameter(type="float", low=0.05, high=1.0, log=True),
        "population": FreeParameter(type="int", low=1000, high=50000, log=False),
        "gamma": FreeParameter(type="float", low=0.01, high=1.0, log=False),
    }
    assert spec.observed["cases"].height == 3  # the data travels with the completed spec


def test_one_bound_given_keeps_the_models_other() -> None:
    spec = with_model_defaults(load(edit("low = 0.05\n", "")), SIR_MODELS)
    assert spec.parameters["beta"] == FreeParameter(type="float", low=0.01, high=1.0, log=True)


def test_the_file_may_search_a_log_model_parameter_on_a_linear_scale() -> None:
    spec = with_model_defaults(load(edit("log = true", "log = false")), SIR_MODELS)
    assert spec.parameters["beta"].log is False


MODEL_ERRORS = {
    "bound below the model's": (
        edit("low = 0.05", "low = 0.001"),
        "calibration.toml:7: parameters.beta.low: 0.001 is outside model:SIR's bounds for "
        "'beta' [0.01, 2.0]; the file may narrow them, not widen",
    ),
    "bound above the model's": (
        edit("high = 50000", "high = 20000000"),
        "calibration.toml:12: parameters.population.high: 20000000 is outside model:SIR's "
        "bounds for 'population' [10, 10000000]; the file may narrow them, not widen",
    ),
    "float search of an int parameter": (
        edit('type = "int"', 'type = "float"'),
        "calibration.toml:13: parameters.population.type: "
        "model:SIR takes 'population' as an int; use type = \"int\"",
    ),
    "int search of a float parameter with the model's bounds": (
        edit("[fixed]\ngamma = 0.1\n", '[parameters.gamma]\ntype = "int"\n'),
        "calibration.toml:14: parameters.gamma.low: "
        "must be a whole number for an int parameter, got 0.01",
    ),
    "a low bound at the model's high": (
        edit("[fixed]\ngamma = 0.1\n", "[parameters.gamma]\nlow = 1.0\n"),
        "calibration.toml:15: parameters.gamma.low: must be less than high (1.0)",
    ),
    "parameter the model lacks": (
        edit("[fixed]", "[parameters.contacts]\nlow = 2\nhigh = 20\n[fixed]"),
        "calibration.toml:14: parameters.contacts: "
        "model:SIR has no parameter 'contacts'; it has beta, gamma, population",
    ),
    "fixed value outside the model's bounds": (
        edit("gamma = 0.1", "gamma = 5.0"),
        "calibration.toml:15: fixed.gamma: 5.0 is outside model:SIR's bounds for 'gamma' "
        "[0.01, 1.0]",
    ),
    "fixed value the model lacks": (
        edit("gamma = 0.1", "days = 90"),
        "calibration.toml:15: fixed.days: "
        "model:SIR has no parameter 'days'; it has beta, gamma, population",
    ),
    "config key the model lacks": (
        BASE + "[config]\nday = 90\n",
        "calibration.toml:29: config.day: "
        "model:SIR has no config key 'day'; it has days, initial_infected, vaccinated",
    ),
    "output the model lacks": (
        edit('output = "incidence"', 'output = "cases"'),
        "calibration.toml:18: targets.cases.output: "
        "model:SIR has no output 'cases'; it has incidence, prevalence",
    ),
}


@pytest.mark.parametrize("case", list(MODEL_ERRORS))
def test_the_models_description_bounds_the_file(case: str) -> None:
    text, expected = MODEL_ERRORS[case]
    assert defaults_error(text) == expected


def test_an_unknown_entrypoint_lists_the_models_there_are() -> None:
    message = defaults_error(edit('"model:SIR"', '"model:SEIR"'))
    assert message.startswith("calibration.toml:3: entrypoint: ")
    assert "model:SIR" in message


def test_a_model_without_a_description_needs_both_bounds_in_the_file() -> None:
    spec = with_model_defaults(load(BASE), None)
    assert spec.parameters["beta"] == FreeParameter(type="float", low=0.05, high=1.0, log=True)
    assert spec.parameters["population"].type == "int"
    assert defaults_error(edit("high = 1.0\n", ""), None) == (
        "calibration.toml:6: parameters.beta.high: required: the bundle does not describe "
        "its model's parameters, so the file gives both bounds"
    )


def test_the_description_is_not_changed() -> None:
    models = copy.deepcopy(SIR_MODELS)
    with_model_defaults(load(BASE), models)
    assert models == SIR_MODELS


# --- the example ------------------------------------------------------------------------------


def test_the_sir_example_loads_and_holds_the_truth() -> None:
    spec = with_model_defaults(load_calibration(EXAMPLE / "calibration.toml"), SIR_MODELS)
    assert spec.replicates == 3
    assert spec.outputs == ["incidence", "prevalence"]
    assert {name: table.height for name, table in spec.observed.items()} == {
        "cases": 120,
        "prevalence": 120,
    }
    beta, gamma = spec.parameters["beta"], spec.parameters["gamma"]
    assert (beta.low, beta.high, beta.log) == (0.1, 1.0, True)
    assert (gamma.low, gamma.high, gamma.log) == (0.01, 1.0, False)
    assert beta.low < 0.3 < beta.high and gamma.low < 0.1 < gamma.high  # the truth is inside
    assert spec.fixed == {"population": 100_000}


def test_the_real_description_of_the_sir_example_has_the_shape_used_here() -> None:
    """One real `check_bundle` (it builds the example's environment) proves SIR_MODELS is
    what the defaults will be given."""
    assert modelops.check_bundle(str(EXAMPLE)).models == SIR_MODELS
