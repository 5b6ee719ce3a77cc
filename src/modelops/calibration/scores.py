"""Scores: how well one candidate's simulations fit each target's observed data.

A target compares one observed column with one simulated column, row by row, after joining
the observed table with each replicate's output table on the target's `join` columns. Its
score is an error loss or a negative log-likelihood: lower is better, always finite. A
candidate's score is the weighted sum of its targets' scores.

Coverage: every observed row must have a simulated row in every replicate; a missing one is
an error, or (when the target sets `missing_penalty`) costs that penalty instead of its
row's score, so a missing row is never silently free: it lowers a score only if the file's
penalty is below what the row would have scored. Simulated rows without an observed row are
ignored: a model may simulate more days than were observed.

Scoring runs on the workers, next to the simulations: pure numpy/scipy/polars, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn

import numpy as np
import polars as pl
from scipy import special

from modelops.contracts import ErrorClass, ModelOpsError

FLOOR = 1e-10
"""The smallest mean or probability a likelihood uses for an observation the model calls
impossible: a count above 0 from a mean of 0, a success from a probability of 0, a failure
from a probability of 1. The exact likelihood is 0 there (an infinite negative
log-likelihood, which no optimiser can rank); at the floor it is finite and very bad (about
23 per count for Poisson), and it stays continuous and monotone in the simulated value, so a
model that comes closer to the data always scores better. Where the observation is possible
the likelihood is exact; a mean of 0 with an observed 0 scores exactly 0."""

_NORMAL_LOG_C = 0.5 * math.log(2 * math.pi)

FIT_DISPERSION_BOUNDS = (1e-4, 1e8)
"""The range searched for a fitted negative-binomial dispersion (the size r). At the top the
distribution is practically Poisson for counts below about 1e6."""

KEYS_SHOWN = 5
"""Missing or offending keys named in an error message; the rest are counted."""

PROBABILITY_SLACK = 1e-9
"""Round-off beyond [0, 1] tolerated (and clipped) in a simulated probability."""

ReplicatesMode = Literal["mean", "marginal"]
REPLICATES_MODES: tuple[ReplicatesMode, ...] = ("mean", "marginal")


def _squared(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (m - y) ** 2


def _absolute(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    return np.abs(m - y)


def _squared_log1p(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (np.log1p(m) - np.log1p(y)) ** 2


def _absolute_log1p(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    return np.abs(np.log1p(m) - np.log1p(y))


def _poisson(y: np.ndarray, mean: np.ndarray, _trials: np.ndarray, _: float | None) -> np.ndarray:
    """y ~ Poisson(mean)."""
    mean = np.where(y > 0, np.maximum(mean, FLOOR), mean)
    return special.xlogy(y, mean) - special.gammaln(y + 1) - mean


def _negative_binomial(
    y: np.ndarray, mean: np.ndarray, _trials: np.ndarray, r: float
) -> np.ndarray:
    """y ~ negative binomial with the simulated mean and size r (the dispersion): variance
    mean + mean**2 / r, Poisson as r grows (scipy's n = r, p = r / (r + mean))."""
    mean = np.where(y > 0, np.maximum(mean, FLOOR), mean)
    p = r / (r + mean)
    coefficient = special.gammaln(y + r) - special.gammaln(y + 1) - special.gammaln(r)
    return coefficient + r * np.log(p) + special.xlog1py(y, -p)


def _binomial(y: np.ndarray, p: np.ndarray, trials: np.ndarray, _: float | None) -> np.ndarray:
    """y successes ~ Binomial(trials, p), p the simulated probability of success per trial."""
    p = _floor_probability(y, p, trials)
    ways = special.gammaln(trials + 1) - (special.gammaln(y + 1) + special.gammaln(trials - y + 1))
    return ways + special.xlogy(y, p) + special.xlog1py(trials - y, -p)


def _beta_binomial(y: np.ndarray, p: np.ndarray, trials: np.ndarray, phi: float) -> np.ndarray:
    """y successes ~ BetaBinomial(trials, a = p phi, b = (1 - p) phi), phi the dispersion (the
    precision a + b): mean trials p, variance trials p (1 - p) (trials + phi) / (1 + phi),
    binomial as phi grows."""
    p = _floor_probability(y, p, trials)
    # p is 0 or 1 only where the observation is then certain (all failures or all
    # successes); scipy's beta needs a, b > 0, so those rows get their exact log-likelihood 0.
    certain = (p == 0) | (p == 1)
    inner = np.clip(p, FLOOR, 1 - FLOOR)
    a, b = inner * phi, (1 - inner) * phi
    ways = -np.log(trials + 1) - special.betaln(trials - y + 1, y + 1)
    log_pmf = ways + special.betaln(y + a, trials - y + b) - special.betaln(a, b)
    return np.where(certain, 0.0, log_pmf)


def _gaussian(y: np.ndarray, mean: np.ndarray, _trials: np.ndarray, sigma: float) -> np.ndarray:
    """y ~ Normal(mean, sigma)."""
    z = (y - mean) / sigma
    return (-(z**2) / 2.0 - _NORMAL_LOG_C) - math.log(sigma)


def _floor_probability(y: np.ndarray, p: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """p raised to FLOOR where a success was seen, lowered to 1 - FLOOR where a failure was."""
    p = np.where(y > 0, np.maximum(p, FLOOR), p)
    return np.where(y < trials, np.minimum(p, 1 - FLOOR), p)


@dataclass(frozen=True)
class Likelihood:
    """One observation model: its log-likelihood per row, what the target must give it, and
    what the simulated column means."""

    log_pmf: Callable[[np.ndarray, np.ndarray, np.ndarray, float | None], np.ndarray]
    """log p(y | simulated, trials, parameter) per row; the parameter is `sigma` or
    `dispersion`, whichever the likelihood needs."""
    needs: tuple[str, ...]
    simulated: Literal["mean", "probability"]
    """What the simulated column is. A probability must lie in [0, 1] (round-off clipped);
    a count's mean below 0 is an ODE solver's round-off and counts as 0."""
    counts: bool
    """Observed values must be whole numbers >= 0."""


ERROR_LOSSES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "squared": _squared,
    "absolute": _absolute,
    "squared_log1p": _squared_log1p,
    "absolute_log1p": _absolute_log1p,
}
"""Error losses: the sum over rows of an error between observed y and simulated m."""

LIKELIHOODS: dict[str, Likelihood] = {
    "poisson": Likelihood(_poisson, (), "mean", counts=True),
    "negative_binomial": Likelihood(_negative_binomial, ("dispersion",), "mean", counts=True),
    "binomial": Likelihood(_binomial, ("trials",), "probability", counts=True),
    "beta_binomial": Likelihood(
        _beta_binomial, ("trials", "dispersion"), "probability", counts=True
    ),
    "gaussian": Likelihood(_gaussian, ("sigma",), "mean", counts=False),
}
"""Likelihoods, scored as negative log-likelihoods summed over rows."""

LOSSES: tuple[str, ...] = (*ERROR_LOSSES, *LIKELIHOODS)
"""Every name a target's `loss` may take."""

_PARAMETER_HELP = {
    "sigma": "`sigma` (the observation noise's standard deviation, > 0)",
    "dispersion": "`dispersion` (a number > 0)",
    "trials": "`trials` (the observed column holding the number of trials)",
}


@dataclass(frozen=True, kw_only=True)
class TargetScore:
    """One target's score for one candidate, with what went into it (for reports)."""

    value: float
    rows: int
    """Observed rows scored."""
    missing: int
    """Observed rows without a simulated row, each charged the target's `missing_penalty`."""
    dispersion: float | None
    """The dispersion used: the fitted one when the target asks for `dispersion = "fit"`."""


@dataclass(frozen=True, kw_only=True)
class TargetScoring:
    """How one `[targets.NAME]` table scores a candidate's replicates against observed data.

    `simulated` defaults to the observed column's name. `replicates` defaults to "mean" for
    error losses and "marginal" for likelihoods (see `evaluate`). A negative_binomial
    without a dispersion fits it ("fit"). `missing_penalty` None makes an observed row
    without a simulated row an error.
    """

    name: str
    output: str
    join: tuple[str, ...]
    observed: str
    loss: str
    simulated: str | None = None
    weight: float = 1.0
    replicates: ReplicatesMode | None = None
    dispersion: float | Literal["fit"] | None = None
    sigma: float | None = None
    trials: str | None = None
    missing_penalty: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "join", tuple(self.join))
        if self.simulated is None:
            object.__setattr__(self, "simulated", self.observed)
        if self.loss == "negative_binomial" and self.dispersion is None:
            object.__setattr__(self, "dispersion", "fit")
        if self.loss not in LOSSES:
            self._fail(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        likelihood = LIKELIHOODS.get(self.loss)
        if self.replicates is None:
            object.__setattr__(self, "replicates", "marginal" if likelihood else "mean")
        if self.replicates not in REPLICATES_MODES:
            self._fail(f'replicates must be "mean" or "marginal", got {self.replicates!r}')
        if self.replicates == "marginal" and likelihood is None:
            self._fail(
                f'replicates = "marginal" needs a likelihood ({", ".join(LIKELIHOODS)}); '
                f"the {self.loss} loss is computed on the mean of the replicates"
            )
        if not self.join:
            self._fail("`join` needs at least one column that aligns observed and simulated rows")
        needs = likelihood.needs if likelihood else ()
        for parameter in ("sigma", "dispersion", "trials"):
            given = getattr(self, parameter) is not None
            if parameter in needs and not given:
                self._fail(f"loss {self.loss!r} needs {_PARAMETER_HELP[parameter]}")
            if given and parameter not in needs:
                users = [name for name, lk in LIKELIHOODS.items() if parameter in lk.needs]
                self._fail(f"`{parameter}` applies only to loss {' or '.join(users)}; remove it")
        self._check_number("weight", self.weight, allow_zero=True)
        if self.sigma is not None:
            self._check_number("sigma", self.sigma, allow_zero=False)
        if self.dispersion == "fit":
            if self.loss != "negative_binomial":
                self._fail('dispersion = "fit" is offered for negative_binomial only')
        elif self.dispersion is not None:
            self._check_number("dispersion", self.dispersion, allow_zero=False)
        if self.missing_penalty is not None:
            self._check_number("missing_penalty", self.missing_penalty, allow_zero=True)

    def score(self, observed: pl.DataFrame, replicates: Sequence[pl.DataFrame]) -> float:
        """The target's score for one candidate: `evaluate(...).value`."""
        return self.evaluate(observed, replicates).value

    def evaluate(self, observed: pl.DataFrame, replicates: Sequence[pl.DataFrame]) -> TargetScore:
        """Score one candidate from its replicates' output tables.

        Error losses score the mean of the replicates. Likelihoods, by default ("marginal"),
        take each replicate's total log-likelihood over all the target's rows and combine
        replicates by log-mean-exp: the Monte-Carlo estimate of the marginal likelihood
        p(data | parameters) = E[p(data | trajectory)]. The replicate is the unit because it
        is one draw of the whole trajectory; mixing replicates row by row would reward a fit
        that no single simulated epidemic makes. With replicates = "mean" a likelihood is
        evaluated at the mean of the replicates instead (smoother, but it scores the average
        trajectory, which the model may never produce).
        """
        if not replicates:
            self._fail("no replicates to score; each candidate needs at least one simulation")
        keys, y, trials = self._observed_rows(observed)
        simulated, present = self._simulated_matrix(keys, replicates)
        covered = present.all(axis=1)
        missing = int(np.count_nonzero(~covered))
        if missing and self.missing_penalty is None:
            self._fail(self._missing_message(keys, covered))
        self._check_simulated(keys, simulated, covered)
        y, trials, simulated = y[covered], trials[covered], simulated[covered]
        dispersion = None if self.dispersion == "fit" else self.dispersion
        if self.loss in ERROR_LOSSES:
            value = float(ERROR_LOSSES[self.loss](y, simulated.mean(axis=1)).sum())
        else:
            if self.dispersion == "fit":
                dispersion = _fit_dispersion(lambda r: self._nll(y, trials, simulated, r))
            value = self._nll(y, trials, simulated, self.sigma if self.sigma else dispersion)
        value += missing * (self.missing_penalty or 0.0)
        if not math.isfinite(value):
            self._fail(
                f"the {self.loss} score overflowed ({value}); check the scale of observed "
                f"and simulated values",
                ErrorClass.BAD_OUTPUT,
            )
        return TargetScore(value=value, rows=int(y.size), missing=missing, dispersion=dispersion)

    def _nll(
        self, y: np.ndarray, trials: np.ndarray, simulated: np.ndarray, parameter: float | None
    ) -> float:
        """The negative log-likelihood of all rows, replicates combined by `replicates`."""
        log_pmf = LIKELIHOODS[self.loss].log_pmf
        if self.replicates == "mean":
            return -float(log_pmf(y, simulated.mean(axis=1), trials, parameter).sum())
        totals = log_pmf(y[:, None], simulated, trials[:, None], parameter).sum(axis=0)
        return -float(special.logsumexp(totals) - math.log(totals.size))

    def _observed_rows(self, observed: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
        """The observed join keys, values and trials (1 where unused), checked."""
        columns = [*self.join, self.observed, *([self.trials] if self.trials else [])]
        absent = [column for column in columns if column not in observed.columns]
        if absent:
            self._fail(
                f"the observed data has no column {', '.join(map(repr, absent))} "
                f"(it has {', '.join(observed.columns)})"
            )
        if observed.height == 0:
            self._fail("the observed data has no rows")
        keys = observed.select(self.join)
        self._check_unique(keys, "the observed data")
        y = self._numbers(observed, self.observed, "observed column")
        trials = (
            self._numbers(observed, self.trials, "trials column")
            if self.trials
            else np.ones_like(y)
        )
        likelihood = LIKELIHOODS.get(self.loss)
        for values, what in ((y, self.observed), (trials, self.trials)):
            self._fail_at(keys, ~np.isfinite(values), f"observed {what!r} is empty or not a number")
            if likelihood and likelihood.counts:
                self._fail_at(
                    keys,
                    (values < 0) | (values != np.floor(values)),
                    f"loss {self.loss!r} needs whole-number counts >= 0 in observed {what!r}",
                )
        if self.trials:
            self._fail_at(keys, y > trials, f"observed {self.observed!r} exceeds {self.trials!r}")
        if self.loss.endswith("_log1p"):
            self._fail_at(keys, y <= -1, f"observed {self.observed!r} is <= -1 (log1p)")
        return keys, y, trials

    def _simulated_matrix(
        self, keys: pl.DataFrame, replicates: Sequence[pl.DataFrame]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Simulated values aligned to the observed rows (rows by replicates), and which
        of them exist."""
        values = np.full((keys.height, len(replicates)), np.nan)
        present = np.zeros((keys.height, len(replicates)), dtype=bool)
        for r, table in enumerate(replicates):
            absent = [c for c in (*self.join, self.simulated) if c not in table.columns]
            if absent:
                self._fail(
                    f"output {self.output!r} has no column {', '.join(map(repr, absent))} "
                    f"(it has {', '.join(table.columns)})"
                )
            simulated = table.select(
                *self.join,
                _value=pl.Series(self._numbers(table, self.simulated, "simulated column")),
                _present=pl.lit(True),
            )
            self._check_unique(simulated.select(self.join), f"output {self.output!r}")
            left, right = self._joinable(keys, simulated)
            joined = left.join(right, on=list(self.join), how="left", maintain_order="left")
            values[:, r] = joined.get_column("_value").to_numpy()
            present[:, r] = joined.get_column("_present").is_not_null().to_numpy()
        return values, present

    def _joinable(
        self, keys: pl.DataFrame, simulated: pl.DataFrame
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The two tables with comparable join columns: integers of any width join as they
        are; an integer and a float column join as floats (day 3 matches day 3.0)."""
        as_float = []
        for column in self.join:
            left, right = keys.schema[column], simulated.schema[column]
            if left == right or (left.is_integer() and right.is_integer()):
                continue
            if not (left.is_numeric() and right.is_numeric()):
                self._fail(
                    f"join column {column!r} is {left} in the observed data but {right} in "
                    f"output {self.output!r}"
                )
            as_float.append(pl.col(column).cast(pl.Float64))
        return keys.with_columns(as_float), simulated.with_columns(as_float)

    def _check_simulated(
        self, keys: pl.DataFrame, simulated: np.ndarray, covered: np.ndarray
    ) -> None:
        """Simulated values the loss can use: finite; probabilities within [0, 1]; means and
        log1p arguments in range. Round-off is clipped, anything else is an error."""
        for r in range(simulated.shape[1]):
            values = simulated[:, r]
            where = f"in replicate {r} of output {self.output!r}"
            self._fail_at(
                keys,
                covered & ~np.isfinite(values),
                f"simulated {self.simulated!r} is empty or not a number {where}",
                ErrorClass.BAD_OUTPUT,
            )
        likelihood = LIKELIHOODS.get(self.loss)
        if likelihood and likelihood.simulated == "probability":
            outside = (simulated < -PROBABILITY_SLACK) | (simulated > 1 + PROBABILITY_SLACK)
            self._fail_at(
                keys,
                covered & outside.any(axis=1),
                f"simulated {self.simulated!r} is outside [0, 1]",
                fix=f"; for loss {self.loss!r} it is the probability of success per trial",
            )
            np.clip(simulated, 0, 1, out=simulated)
        elif likelihood and likelihood.counts:
            # A count's mean below 0 is an ODE solver's round-off: it counts as 0.
            np.maximum(simulated, 0, out=simulated)
        if self.loss.endswith("_log1p"):
            self._fail_at(
                keys,
                covered & (simulated.mean(axis=1) <= -1),
                f"the mean of simulated {self.simulated!r} is <= -1 (log1p)",
                ErrorClass.BAD_OUTPUT,
            )

    def _numbers(self, table: pl.DataFrame, column: str, what: str) -> np.ndarray:
        try:
            series = table.get_column(column).cast(pl.Float64, strict=True)
        except pl.exceptions.InvalidOperationError:
            self._fail(f"{what} {column!r} holds {table.schema[column]}, not numbers")
        return series.to_numpy().copy()

    def _check_unique(self, keys: pl.DataFrame, where: str) -> None:
        self._fail_at(
            keys,
            keys.is_duplicated().to_numpy(),
            f"{where} has more than one row for one key",
            fix="; add the column that tells them apart to `join`",
        )

    def _missing_message(self, keys: pl.DataFrame, covered: np.ndarray) -> str:
        missing = int(np.count_nonzero(~covered))
        return (
            f"output {self.output!r} has no row for {missing} of {keys.height} observed rows: "
            f"{_describe(keys, ~covered)}; simulate those rows, or set `missing_penalty` "
            f"to charge each missing row"
        )

    def _fail_at(
        self,
        keys: pl.DataFrame,
        bad: np.ndarray,
        message: str,
        error_class: ErrorClass = ErrorClass.BAD_INPUT,
        *,
        fix: str = "",
    ) -> None:
        """Fail with `message at <the first bad keys><fix>` if any row is bad."""
        if bad.any():
            self._fail(f"{message} at {_describe(keys, bad)}{fix}", error_class)

    def _check_number(self, field: str, value: object, *, allow_zero: bool) -> None:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not (ok and math.isfinite(value) and (value > 0 or (allow_zero and value == 0))):
            bound = ">= 0" if allow_zero else "> 0"
            self._fail(f"`{field}` must be a finite number {bound}, got {value!r}")

    def _fail(self, message: str, error_class: ErrorClass = ErrorClass.BAD_INPUT) -> NoReturn:
        raise ModelOpsError(error_class, f"target {self.name}: {message}")


def candidate_score(per_target: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """A candidate's score: the weighted sum of its targets' scores (exactly rounded, so the
    order of the targets does not change it)."""
    if set(per_target) != set(weights):
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"scores for targets {sorted(per_target)} but weights for {sorted(weights)}",
        )
    return math.fsum(weights[name] * score for name, score in per_target.items())


def _fit_dispersion(nll: Callable[[float], float]) -> float:
    """The maximum-likelihood negative-binomial size r for the candidate's means: the best
    point of a log-spaced grid over FIT_DISPERSION_BOUNDS, refined by bounded Brent search
    on log r between its neighbours (the grid guards against a local optimum)."""
    grid = np.geomspace(*FIT_DISPERSION_BOUNDS, num=25)
    values = [nll(r) for r in grid]
    best = int(np.argmin(values))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)]
    from scipy import optimize  # only a fitted dispersion needs it: workers load it late

    refined = optimize.minimize_scalar(
        lambda log_r: nll(math.exp(log_r)),
        bounds=(math.log(low), math.log(high)),
        method="bounded",
        options={"xatol": 1e-8},
    )
    return math.exp(refined.x) if refined.fun < values[best] else float(grid[best])


def _describe(keys: pl.DataFrame, rows: np.ndarray) -> str:
    """The first KEYS_SHOWN keys of the marked rows, e.g. `day=3, day=4 and 7 more`."""
    indices = np.flatnonzero(rows)
    shown = []
    for index in indices[:KEYS_SHOWN]:
        pairs = [f"{k}={v}" for k, v in keys.row(int(index), named=True).items()]
        shown.append(pairs[0] if len(pairs) == 1 else f"({', '.join(pairs)})")
    more = indices.size - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")
