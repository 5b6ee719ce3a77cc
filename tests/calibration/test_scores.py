"""Target scores: each loss and likelihood against scipy.stats on known values (edge cases
included), replicates, weights, coverage and the one-line errors."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import special, stats

from modelops.calibration.scores import (
    FLOOR,
    TargetScoring,
    candidate_score,
)
from modelops.contracts import ErrorClass, ModelOpsError

TOL = {"rtol": 1e-9, "atol": 1e-9}


def target(loss: str, **fields) -> TargetScoring:
    return TargetScoring(
        name="cases",
        output="incidence",
        join=["day"],
        observed="cases",
        simulated="infections",
        loss=loss,
        **fields,
    )


def observed_table(cases, **columns) -> pl.DataFrame:
    return pl.DataFrame({"day": range(len(cases)), "cases": cases, **columns})


def output(values, days=None) -> pl.DataFrame:
    days = range(len(values)) if days is None else days
    return pl.DataFrame({"day": list(days), "infections": [float(v) for v in values]})


def floored(observed, mean):
    """The documented floor: a mean below FLOOR counts as FLOOR where the count is > 0."""
    observed, mean = np.asarray(observed, float), np.asarray(mean, float)
    return np.where(observed > 0, np.maximum(mean, FLOOR), mean)


COUNT_CASES = [
    pytest.param([0, 0], [0.0, 0.0], id="zeros"),
    pytest.param([0, 3, 10, 7], [0.5, 2.5, 12.0, 7.0], id="small"),
    pytest.param([1e9, 1e9 + 7], [1e9, 1e9 - 3], id="very-large"),
    pytest.param([5, 0], [0.0, 2.0], id="mean-zero-observed-positive"),
    pytest.param([1e9], [0.0], id="mean-zero-very-large-count"),
]


@pytest.mark.parametrize(("cases", "means"), COUNT_CASES)
def test_poisson_is_scipy_with_the_floor(cases, means):
    got = target("poisson").score(observed_table(cases), [output(means)])
    expected = -stats.poisson.logpmf(cases, floored(cases, means)).sum()
    assert math.isfinite(got)
    np.testing.assert_allclose(got, expected, **TOL)


@pytest.mark.parametrize(("cases", "means"), COUNT_CASES)
@pytest.mark.parametrize("r", [0.5, 10.0, 1e4])
def test_negative_binomial_is_scipy_with_mean_and_size(cases, means, r):
    """dispersion is the size r: variance = mean + mean**2 / r; scipy's n = r,
    p = r / (r + mean)."""
    got = target("negative_binomial", dispersion=r).score(observed_table(cases), [output(means)])
    mean = floored(cases, means)
    expected = -stats.nbinom.logpmf(cases, r, r / (r + mean)).sum()
    assert math.isfinite(got)
    np.testing.assert_allclose(got, expected, **TOL)


PROBABILITY_CASES = [
    pytest.param([0, 0], [0, 10], [0.0, 0.3], id="zeros"),
    pytest.param([3, 7, 10], [10, 20, 10], [0.25, 0.4, 1.0], id="small"),
    pytest.param([3e8, 1e9], [1e9, 1e9], [0.3, 1.0], id="very-large"),
    pytest.param([4, 6], [10, 10], [0.0, 1.0], id="impossible-under-p"),
]


def floored_probability(successes, trials, p):
    successes, trials, p = (np.asarray(v, float) for v in (successes, trials, p))
    p = np.where(successes > 0, np.maximum(p, FLOOR), p)
    return np.where(successes < trials, np.minimum(p, 1 - FLOOR), p)


@pytest.mark.parametrize(("successes", "trials", "p"), PROBABILITY_CASES)
def test_binomial_is_scipy_with_trials_from_a_column(successes, trials, p):
    observed = observed_table(successes, tested=trials)
    got = target("binomial", trials="tested").score(observed, [output(p)])
    expected = -stats.binom.logpmf(
        successes, trials, floored_probability(successes, trials, p)
    ).sum()
    assert math.isfinite(got)
    np.testing.assert_allclose(got, expected, **TOL)


@pytest.mark.parametrize(("successes", "trials", "p"), PROBABILITY_CASES)
@pytest.mark.parametrize("phi", [0.5, 20.0, 1e6])
def test_beta_binomial_is_scipy_with_mean_and_precision(successes, trials, p, phi):
    """dispersion is the precision phi = a + b with a = p phi, b = (1 - p) phi; a p of
    exactly 0 or 1 that the floor leaves alone makes the observation certain (log-lik 0)."""
    observed = observed_table(successes, tested=trials)
    got = target("beta_binomial", trials="tested", dispersion=phi).score(observed, [output(p)])
    q = floored_probability(successes, trials, p)
    inner = np.clip(q, FLOOR, 1 - FLOOR)
    log_pmf = stats.betabinom.logpmf(successes, trials, inner * phi, (1 - inner) * phi)
    expected = -np.where((q == 0) | (q == 1), 0.0, log_pmf).sum()
    assert math.isfinite(got)
    np.testing.assert_allclose(got, expected, **TOL)


@pytest.mark.parametrize(
    ("values", "means"),
    [([0.0, 0.0], [0.0, 0.0]), ([1.5, -2.0, 4.0], [1.0, 0.0, 4.5]), ([1e9], [1e9 + 5e4])],
)
@pytest.mark.parametrize("sigma", [0.1, 2.0, 1e5])
def test_gaussian_is_scipy(values, means, sigma):
    got = target("gaussian", sigma=sigma).score(observed_table(values), [output(means)])
    np.testing.assert_allclose(got, -stats.norm.logpdf(values, means, sigma).sum(), **TOL)


@pytest.mark.parametrize(
    ("loss", "formula"),
    [
        ("squared", lambda y, m: (m - y) ** 2),
        ("absolute", lambda y, m: np.abs(m - y)),
        ("squared_log1p", lambda y, m: (np.log1p(m) - np.log1p(y)) ** 2),
        ("absolute_log1p", lambda y, m: np.abs(np.log1p(m) - np.log1p(y))),
    ],
)
def test_error_losses_sum_over_rows_on_the_replicate_mean(loss, formula):
    y = np.array([0.0, 4.0, 1e9])
    replicates = np.array([[0.0, 3.0, 1e9 + 10], [2.0, 6.0, 1e9 - 30], [1.0, 3.0, 1e9]])
    got = target(loss).score(observed_table(y), [output(row) for row in replicates])
    np.testing.assert_allclose(got, formula(y, replicates.mean(axis=0)).sum(), **TOL)


def test_very_large_counts_are_as_accurate_as_float64_lgamma_allows():
    """log Poisson(1e9 | 1e9) from mpmath at 50 digits; scipy (and so this score) cancels
    terms near 2e10, leaving about 1e-6 absolute error: noise far below any fit's."""
    got = target("poisson").score(observed_table([1e9]), [output([1e9])])
    np.testing.assert_allclose(got, 11.280571451761212, rtol=1e-6)


@pytest.mark.parametrize(
    ("loss", "fields", "extra"),
    [
        ("poisson", {}, {}),
        ("negative_binomial", {"dispersion": 5.0}, {}),
        ("binomial", {"trials": "tested"}, {"tested": [100]}),
        ("beta_binomial", {"trials": "tested", "dispersion": 5.0}, {"tested": [100]}),
    ],
)
def test_mean_zero_for_a_positive_count_is_finite_and_worse_than_any_closer_fit(
    loss, fields, extra
):
    scoring = target(loss, **fields)
    scale = 100.0 if extra else 1.0  # binomial: probabilities of 0, 0.01, ...

    def score(count, mean):
        return scoring.score(observed_table([count], **extra), [output([mean / scale])])

    at_zero = [score(count, 0.0) for count in (1, 5, 50)]
    assert all(map(math.isfinite, at_zero))
    assert at_zero[0] < at_zero[1] < at_zero[2]  # more counts from nothing cost more
    assert score(5, 0.0) > score(5, 1e-3) > score(5, 1.0) > score(5, 5.0)


def test_a_tiny_negative_mean_is_round_off_and_counts_as_zero():
    assert target("poisson").score(observed_table([0]), [output([-1e-15])]) == 0.0


def test_likelihoods_combine_whole_replicates_by_log_mean_exp():
    """Each replicate fits half of the rows; row-by-row mixing would call that a good fit."""
    y = np.array([10, 10, 10, 10])
    replicates = np.array([[10.0, 10.0, 1.0, 1.0], [1.0, 1.0, 10.0, 10.0]])
    got = target("poisson").score(observed_table(y), [output(row) for row in replicates])
    totals = stats.poisson.logpmf(y, replicates).sum(axis=1)
    np.testing.assert_allclose(got, -(special.logsumexp(totals) - math.log(2)), **TOL)
    per_row = special.logsumexp(stats.poisson.logpmf(y, replicates), axis=0) - math.log(2)
    assert got > -per_row.sum() + 10


def test_replicates_mean_scores_the_likelihood_at_the_replicate_mean():
    y = np.array([3, 8])
    replicates = np.array([[2.0, 9.0], [5.0, 6.0], [2.0, 12.0]])
    scoring = target("poisson", replicates="mean")
    got = scoring.score(observed_table(y), [output(row) for row in replicates])
    np.testing.assert_allclose(got, -stats.poisson.logpmf(y, replicates.mean(axis=0)).sum(), **TOL)


def test_log_mean_exp_stays_finite_when_replicates_differ_hugely():
    observed = observed_table([1e9])
    best = target("poisson").score(observed, [output([1e9])])
    got = target("poisson").score(observed, [output([1e9]), output([0.0])])
    np.testing.assert_allclose(got, best + math.log(2), **TOL)


def nb_sample(r: float, mean: float, rows: int) -> np.ndarray:
    """Counts from a negative binomial with size r (fixed seed: known values)."""
    return np.random.default_rng(20240901).negative_binomial(r, r / (r + mean), rows)


def test_fitted_dispersion_maximises_the_likelihood_and_recovers_the_truth():
    counts = nb_sample(5.0, 30.0, 2000)
    observed, replicates = observed_table(counts), [output(np.full(counts.size, 30.0))]
    fitted = target("negative_binomial", dispersion="fit").evaluate(observed, replicates)
    assert fitted.dispersion == pytest.approx(5.0, rel=0.15)
    at_fit = target("negative_binomial", dispersion=fitted.dispersion)
    np.testing.assert_allclose(at_fit.score(observed, replicates), fitted.value, **TOL)
    for r in [0.1, 1.0, 4.0, 4.9, 5.0, 5.1, 6.0, 50.0, 1e6]:
        given = target("negative_binomial", dispersion=r).score(observed, replicates)
        assert fitted.value <= given + 1e-9


def test_a_negative_binomial_without_a_dispersion_fits_it():
    assert target("negative_binomial").dispersion == "fit"


def test_fitted_dispersion_without_overdispersion_is_practically_poisson():
    observed, replicates = observed_table([3, 7, 12, 0]), [output([3.0, 7.0, 12.0, 0.0])]
    fitted = target("negative_binomial", dispersion="fit").evaluate(observed, replicates)
    assert fitted.dispersion > 1e6
    poisson = target("poisson").score(observed, replicates)
    assert fitted.value == pytest.approx(poisson, abs=1e-4)


def test_changing_a_weight_moves_the_optimum():
    """Target a prefers 2, target b prefers 8; each weighting picks its favourite."""
    a = target("poisson")
    b = TargetScoring(
        name="deaths", output="incidence", join=["day"], observed="deaths", loss="poisson"
    )
    observed_a = observed_table([2, 2, 2])
    observed_b = pl.DataFrame({"day": [0, 1, 2], "deaths": [8, 8, 8]})
    grid = np.linspace(0.0, 10.0, 101)
    per_candidate = []
    for theta in grid:
        table = output([theta] * 3).with_columns(deaths=pl.col("infections"))
        per_candidate.append(
            {"cases": a.score(observed_a, [table]), "deaths": b.score(observed_b, [table])}
        )

    def best(weights):
        scores = [candidate_score(s, weights) for s in per_candidate]
        return grid[int(np.argmin(scores))]

    assert best({"cases": 1.0, "deaths": 0.01}) == pytest.approx(2.1)  # (2 + 0.08) / 1.01
    assert best({"cases": 0.01, "deaths": 1.0}) == pytest.approx(7.9)  # (0.02 + 8) / 1.01


def test_candidate_score_is_the_weighted_sum_and_needs_a_weight_per_target():
    assert candidate_score({"a": 2.0, "b": 3.0}, {"a": 0.5, "b": 2.0}) == 7.0
    with pytest.raises(ModelOpsError) as caught:
        candidate_score({"a": 2.0, "b": 3.0}, {"a": 1.0})
    assert caught.value.info.error_class is ErrorClass.BAD_INPUT


def test_a_missing_simulated_row_is_an_error_naming_target_keys_and_count():
    observed = observed_table(list(range(40)))
    with pytest.raises(ModelOpsError) as caught:
        target("poisson").score(observed, [output([1.0] * 33)])
    message = str(caught.value)
    assert caught.value.info.error_class is ErrorClass.BAD_INPUT
    assert "\n" not in message
    assert "target cases" in message and "'incidence'" in message
    assert "7 of 40 observed rows: day=33, day=34, day=35, day=36, day=37 and 2 more" in message
    assert "missing_penalty" in message


def test_a_row_missing_from_one_replicate_is_missing():
    observed = observed_table([1, 2, 3])
    with pytest.raises(ModelOpsError, match="1 of 3 observed rows: day=1"):
        target("poisson").score(observed, [output([1, 2, 3]), output([1, 3], days=[0, 2])])


@pytest.mark.parametrize("loss", ["poisson", "squared"])
def test_a_missing_penalty_is_charged_per_row_and_never_lowers_the_score(loss):
    observed = observed_table([4, 0, 9, 2])
    full = target(loss, missing_penalty=100.0).score(observed, [output([3, 1, 9, 2])])
    dropped = target(loss, missing_penalty=100.0).score(
        observed, [output([3, 1, 2], days=[0, 1, 3])]
    )
    rest = target(loss).score(observed.filter(pl.col("day") != 2), [output([3, 1, 9, 2])])
    np.testing.assert_allclose(dropped, rest + 100.0, **TOL)
    assert dropped > full


def test_simulated_rows_without_an_observation_are_ignored():
    observed = observed_table([4, 1])
    longer = output([3, 2, 50, 60])
    assert target("poisson").score(observed, [longer]) == target("poisson").score(
        observed, [output([3, 2])]
    )


@pytest.mark.parametrize("day", [pl.Int32, pl.UInt16, pl.Float64])
def test_join_columns_of_other_numeric_types_still_match(day):
    table = output([3.0, 2.0]).with_columns(pl.col("day").cast(day))
    observed = observed_table([4, 1])
    expected = -stats.poisson.logpmf([4, 1], [3.0, 2.0]).sum()
    np.testing.assert_allclose(target("poisson").score(observed, [table]), expected, **TOL)


def test_multi_column_keys_are_named_in_full():
    observed = pl.DataFrame({"region": ["n", "s"], "day": [0, 0], "cases": [1, 2]})
    simulated = pl.DataFrame({"region": ["n"], "day": [0], "infections": [1.0]})
    scoring = TargetScoring(
        name="cases",
        output="incidence",
        join=["region", "day"],
        observed="cases",
        simulated="infections",
        loss="poisson",
    )
    with pytest.raises(ModelOpsError, match=r"1 of 2 observed rows: \(region=s, day=0\)"):
        scoring.score(observed, [simulated])


@pytest.mark.parametrize(
    ("loss", "fields", "hint"),
    [
        ("poisson_log", {}, "unknown loss 'poisson_log'; choose one of squared, absolute"),
        ("gaussian", {}, "needs `sigma`"),
        ("binomial", {}, "needs `trials`"),
        ("beta_binomial", {"trials": "tested"}, "needs `dispersion`"),
        ("poisson", {"sigma": 1.0}, "`sigma` applies only to loss gaussian; remove it"),
        ("gaussian", {"sigma": 0.0}, "`sigma` must be a finite number > 0"),
        ("negative_binomial", {"dispersion": -1.0}, "`dispersion` must be a finite number > 0"),
        ("beta_binomial", {"trials": "t", "dispersion": "fit"}, "negative_binomial only"),
        ("squared", {"replicates": "marginal"}, "computed on the mean of the replicates"),
        ("poisson", {"replicates": "median"}, 'replicates must be "mean" or "marginal"'),
        ("poisson", {"weight": -1.0}, "`weight` must be a finite number >= 0"),
        ("poisson", {"weight": math.nan}, "`weight` must be a finite number >= 0"),
        ("poisson", {"missing_penalty": -5.0}, "`missing_penalty` must be a finite number"),
        ("poisson", {"join": []}, "`join` needs at least one column"),
    ],
)
def test_a_bad_target_is_a_one_line_error_naming_target_and_fix(loss, fields, hint):
    arguments = {"join": ["day"], **fields}
    with pytest.raises(ModelOpsError) as caught:
        TargetScoring(name="cases", output="incidence", observed="cases", loss=loss, **arguments)
    message = str(caught.value)
    assert caught.value.info.error_class is ErrorClass.BAD_INPUT
    assert message.startswith("bad_input: target cases: ") and "\n" not in message
    assert hint in message


@pytest.mark.parametrize(
    ("scoring", "observed", "replicates", "error_class", "hint"),
    [
        (
            target("poisson"),
            observed_table([1.5, 2]),
            [output([1, 2])],
            ErrorClass.BAD_INPUT,
            "needs whole-number counts >= 0 in observed 'cases' at day=0",
        ),
        (
            target("binomial", trials="tested"),
            observed_table([3, 12], tested=[10, 10]),
            [output([0.3, 0.9])],
            ErrorClass.BAD_INPUT,
            "observed 'cases' exceeds 'tested' at day=1",
        ),
        (
            target("binomial", trials="tested"),
            observed_table([3, 2], tested=[10, 10]),
            [output([0.3, 37.0])],
            ErrorClass.BAD_INPUT,
            "simulated 'infections' is outside [0, 1] at day=1; for loss 'binomial' it is the "
            "probability of success per trial",
        ),
        (
            target("poisson"),
            observed_table([None, 2]),
            [output([1, 2])],
            ErrorClass.BAD_INPUT,
            "observed 'cases' is empty or not a number at day=0",
        ),
        (
            target("poisson"),
            observed_table([1, 2]),
            [output([1, 2]), output([1, math.nan])],
            ErrorClass.BAD_OUTPUT,
            "'infections' is empty or not a number in replicate 1 of output 'incidence' at day=1",
        ),
        (
            target("poisson"),
            observed_table([1, 2]).rename({"cases": "count"}),
            [output([1, 2])],
            ErrorClass.BAD_INPUT,
            "the observed data has no column 'cases' (it has day, count)",
        ),
        (
            target("poisson"),
            observed_table([1, 2]),
            [output([1, 2]).rename({"infections": "I"})],
            ErrorClass.BAD_INPUT,
            "output 'incidence' has no column 'infections' (it has day, I)",
        ),
        (
            target("poisson"),
            observed_table([1, 2]),
            [output([1, 2, 3], days=[0, 1, 1])],
            ErrorClass.BAD_INPUT,
            "output 'incidence' has more than one row for one key at day=1, day=1; add the "
            "column that tells them apart to `join`",
        ),
        (
            target("poisson"),
            observed_table([1, 2]),
            [output([1, 2]).with_columns(pl.col("day").cast(pl.String))],
            ErrorClass.BAD_INPUT,
            "join column 'day' is Int64 in the observed data but String in output",
        ),
        (
            target("poisson"),
            observed_table([]),
            [output([1, 2])],
            ErrorClass.BAD_INPUT,
            "the observed data has no rows",
        ),
        (
            target("poisson"),
            observed_table([1, 2]),
            [],
            ErrorClass.BAD_INPUT,
            "no replicates to score",
        ),
    ],
)
def test_bad_data_is_a_one_line_error_naming_target_and_row(
    scoring, observed, replicates, error_class, hint
):
    with pytest.raises(ModelOpsError) as caught:
        scoring.score(observed, replicates)
    message = str(caught.value)
    assert caught.value.info.error_class is error_class
    assert "target cases: " in message and "\n" not in message
    assert hint in message
