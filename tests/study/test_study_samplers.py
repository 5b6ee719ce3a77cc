"""What each sampler produces: counts, bounds, types and distribution."""

from __future__ import annotations

import math
import statistics
import warnings

import pytest

from modelops.study import StudySpec, StudyWarning, parse_study, plan


def spec_for(sampler: str, dims: str, *, n: int | None = 256, extra: str = "") -> StudySpec:
    n_line = f"n = {n}\n" if n is not None else ""
    return parse_study(
        f'bundle = "m"\nseed = 11\n[parameters]\nsampler = "{sampler}"\n{n_line}{extra}{dims}'
    )


FLOAT_INT_LOG = """
[parameters.dims.beta]
low = 0.1
high = 0.9
[parameters.dims.population]
type = "int"
low = 1000
high = 5000
[parameters.dims.gamma]
low = 0.001
high = 10.0
log = true
"""


def param_sets(spec: StudySpec) -> list[dict]:
    return [sim.params for sim in plan(spec)]


@pytest.mark.parametrize("sampler", ["uniform", "lhs", "sobol"])
def test_random_samplers_give_n_sets_in_bounds_with_python_types(sampler: str) -> None:
    sets = param_sets(spec_for(sampler, FLOAT_INT_LOG, n=512))
    assert len(sets) == 512
    for params in sets:
        assert list(params) == ["beta", "population", "gamma"]
        assert type(params["beta"]) is float and 0.1 <= params["beta"] <= 0.9
        assert type(params["population"]) is int and 1000 <= params["population"] <= 5000
        assert type(params["gamma"]) is float and 0.001 <= params["gamma"] <= 10.0
    assert len({p["beta"] for p in sets}) == 512  # distinct draws, not one repeated


@pytest.mark.parametrize("sampler", ["uniform", "lhs", "sobol"])
def test_log_scale_is_uniform_in_log_space(sampler: str) -> None:
    gammas = [p["gamma"] for p in param_sets(spec_for(sampler, FLOAT_INT_LOG, n=1024))]
    geometric_mean = math.sqrt(0.001 * 10.0)  # 0.1: the middle of [1e-3, 10] in log space
    # in log10 units the median's standard error is 4 / (2 sqrt(1024)) = 0.0625: allow 4 of them
    assert abs(math.log10(statistics.median(gammas)) - math.log10(geometric_mean)) < 0.25
    # about a quarter of the points in each of the four decades
    decades = [sum(10**k <= g < 10 ** (k + 1) for g in gammas) for k in range(-3, 1)]
    assert all(abs(count - 256) < 60 for count in decades), decades
    # a linear-scale sampler would put ~99 % of points above 0.1
    assert sum(g < geometric_mean for g in gammas) == pytest.approx(512, abs=60)


@pytest.mark.parametrize("sampler", ["uniform", "lhs", "sobol"])
def test_int_dimensions_reach_both_ends_with_equal_shares(sampler: str) -> None:
    dims = '[parameters.dims.k]\ntype = "int"\nlow = 1\nhigh = 4\n'
    values = [p["k"] for p in param_sets(spec_for(sampler, dims, n=1024))]
    counts = {k: values.count(k) for k in range(1, 5)}
    assert set(values) == {1, 2, 3, 4}
    assert all(abs(count - 256) < 50 for count in counts.values()), counts


def test_lhs_has_one_sample_in_each_stratum_of_every_dimension() -> None:
    dims = """
[parameters.dims.a]
low = 0.0
high = 1.0
[parameters.dims.b]
low = -5.0
high = 5.0
[parameters.dims.c]
low = 0.01
high = 100.0
log = true
"""
    n = 200
    sets = param_sets(spec_for("lhs", dims, n=n))

    def strata(values: list[float]) -> list[int]:
        return sorted(math.floor(v * n) for v in values)

    assert strata([p["a"] for p in sets]) == list(range(n))
    assert strata([(p["b"] + 5.0) / 10.0 for p in sets]) == list(range(n))
    assert strata([(math.log10(p["c"]) + 2.0) / 4.0 for p in sets]) == list(range(n))


def test_sobol_with_n_not_a_power_of_two_warns_and_suggests_the_nearest() -> None:
    text = 'bundle = "m"\n[parameters]\nsampler = "sobol"\nn = 100\n' + FLOAT_INT_LOG
    with pytest.warns(StudyWarning) as record:
        spec = parse_study(text, None)
    (message,) = [str(w.message) for w in record]
    assert message.startswith("<study>:4: parameters.n: ")
    assert "power of two" in message and "n = 64 or n = 128" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's own warning about n is not passed on
        assert len(list(plan(spec))) == 100


def test_sobol_with_a_power_of_two_does_not_warn() -> None:
    text = 'bundle = "m"\n[parameters]\nsampler = "sobol"\nn = 128\n' + FLOAT_INT_LOG
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(plan(parse_study(text)))) == 128


def test_sobol_points_are_balanced() -> None:
    dims = "[parameters.dims.a]\nlow = 0.0\nhigh = 1.0\n"
    values = [p["a"] for p in param_sets(spec_for("sobol", dims, n=64))]
    # a scrambled Sobol' sequence of 2^k points has one point in each 1/2^k interval
    assert sorted(math.floor(v * 64) for v in values) == list(range(64))


def test_grid_is_the_cartesian_product_in_file_order() -> None:
    dims = """
[parameters.dims.beta]
low = 0.1
high = 0.9
points = 5
[parameters.dims.gamma]
low = 0.01
high = 1.0
log = true
points = 3
"""
    sets = param_sets(spec_for("grid", dims, n=None))
    betas = [0.1, 0.3, 0.5, 0.7, 0.9]
    gammas = [0.01, 0.1, 1.0]
    assert sets == [{"beta": b, "gamma": g} for b in betas for g in gammas]


def test_grid_int_points_are_rounded_and_deduplicated() -> None:
    dims = """
[parameters.dims.k]
type = "int"
low = 1
high = 3
points = 7
[parameters.dims.m]
type = "int"
low = 1
high = 1000
log = true
points = 4
"""
    spec = spec_for("grid", dims, n=None)
    sets = param_sets(spec)
    assert spec.n_param_sets == 3 * 4 == len(sets)
    assert sorted({p["k"] for p in sets}) == [1, 2, 3]
    assert [p["m"] for p in sets[:4]] == [1, 10, 100, 1000]
    assert all(type(p["k"]) is int and type(p["m"]) is int for p in sets)


def test_list_gives_the_sets_as_written_merged_over_fixed() -> None:
    spec = parse_study(
        """
bundle = "m"
replicates = 2
[parameters]
sampler = "list"
[parameters.fixed]
days = 90
region = "north"
[[parameters.sets]]
beta = 0.3
gamma = 0.1
[[parameters.sets]]
beta = 0.5
"""
    )
    sims = list(plan(spec))
    assert spec.n_param_sets == 2 and spec.n_simulations == 4
    assert [s.params for s in sims] == [
        {"days": 90, "region": "north", "beta": 0.3, "gamma": 0.1},
        {"days": 90, "region": "north", "beta": 0.3, "gamma": 0.1},
        {"days": 90, "region": "north", "beta": 0.5},
        {"days": 90, "region": "north", "beta": 0.5},
    ]
    assert [(s.param_set, s.replicate) for s in sims] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_a_study_without_parameters_runs_replicates_of_the_model_defaults() -> None:
    spec = parse_study('bundle = "m"\nreplicates = 3\n')
    assert spec.parameters.sampler == "list"
    assert [s.params for s in plan(spec)] == [{}, {}, {}]


def test_fixed_values_join_every_sampled_set() -> None:
    spec = spec_for(
        "uniform",
        "[parameters.dims.beta]\nlow = 0.1\nhigh = 0.9\n",
        n=8,
        extra="[parameters.fixed]\ndays = 90\nweights = [1, 2]\n",
    )
    for params in param_sets(spec):
        assert params["days"] == 90 and params["weights"] == [1, 2]


def test_each_simulation_gets_its_own_params_dict() -> None:
    spec = parse_study(
        'bundle = "m"\nreplicates = 2\n[parameters]\nsampler = "list"\n[parameters.fixed]\na = 1\n'
    )
    first, second = plan(spec)
    first.params["a"] = 99
    assert second.params == {"a": 1}
    assert next(iter(plan(spec))).params == {"a": 1}
