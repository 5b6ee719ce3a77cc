"""The ask/tell search on real Optuna and real SQLite files."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelops.calibration.search import (
    ABANDONED,
    SAMPLERS,
    Candidate,
    Search,
    read_trials,
)
from modelops.calibration.spec import FreeParameter
from modelops.contracts.errors import ErrorClass, ModelOpsError

HAS_CMAES = importlib.util.find_spec("cmaes") is not None
ALGORITHMS = [
    pytest.param(name, marks=pytest.mark.skipif(not HAS_CMAES, reason="needs package cmaes"))
    if name == "cmaes"
    else name
    for name in SAMPLERS
]

FREE = {"x": FreeParameter(low=1e-4, high=1.0, log=True), "y": FreeParameter(low=-5.0, high=5.0)}
"""Two parameters, one on a log scale; `bowl` is lowest at x = 0.01, y = 3."""


def bowl(params: dict) -> float:
    return (math.log10(params["x"]) + 2) ** 2 + (params["y"] - 3) ** 2


def run(search: Search, trials: int) -> list[Candidate]:
    """Ask and tell one candidate at a time, as a reproducible calibration does."""
    asked = []
    for _ in range(trials):
        [candidate] = search.ask()
        search.tell(candidate, bowl(candidate.params))
        asked.append(candidate)
    return asked


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_finds_the_minimum(tmp_path: Path, algorithm: str) -> None:
    search = Search(tmp_path / "s.db", FREE, algorithm=algorithm, seed=3)
    run(search, 80)
    best = search.best()
    assert best is not None
    candidate, score = best
    assert abs(math.log10(candidate.params["x"]) + 2) < 0.5
    assert abs(candidate.params["y"] - 3) < 0.5
    assert score == pytest.approx(bowl(candidate.params))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_same_seed_same_candidates(tmp_path: Path, algorithm: str) -> None:
    def sequence(name: str, seed: int) -> list[dict]:
        search = Search(tmp_path / f"{name}.db", FREE, algorithm=algorithm, seed=seed)
        return [c.params for c in run(search, 14)]

    first = sequence("a", seed=11)
    assert sequence("b", seed=11) == first
    assert sequence("c", seed=12) != first


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_int_parameters_are_ints_within_bounds(tmp_path: Path, algorithm: str) -> None:
    free = {
        "contacts": FreeParameter(low=2, high=20, type="int"),
        "population": FreeParameter(low=10, high=10_000, log=True, type="int"),
        "beta": FreeParameter(low=0.05, high=1.0),
    }
    search = Search(tmp_path / "s.db", free, algorithm=algorithm, seed=1)
    for _ in range(20):
        [candidate] = search.ask()
        for name, low, high in (("contacts", 2, 20), ("population", 10, 10_000)):
            value = candidate.params[name]
            assert type(value) is int
            assert low <= value <= high
        search.tell(candidate, candidate.params["contacts"] * candidate.params["beta"])


def test_fixed_parameters_pass_through_and_are_not_searched(tmp_path: Path) -> None:
    fixed = {"days": 120, "scenario": "baseline", "ages": [0, 18, 65]}
    search = Search(tmp_path / "s.db", FREE, fixed, seed=1)
    candidates = run(search, 12)
    for candidate in candidates:
        assert set(candidate.params) == {"x", "y", "days", "scenario", "ages"}
        assert {k: candidate.params[k] for k in fixed} == fixed
    best = search.best()
    assert best is not None
    assert {k: best[0].params[k] for k in fixed} == fixed
    assert all(record.params["days"] == 120 for record in search.trials())
    assert len({c.params["y"] for c in candidates}) == 12


def test_log_scale_samples_cover_every_decade(tmp_path: Path) -> None:
    free = {"rate": FreeParameter(low=1e-3, high=1e3, log=True)}
    search = Search(tmp_path / "s.db", free, algorithm="random", seed=5)
    decades = [0] * 6
    for candidate in search.ask(120):
        decades[math.floor(math.log10(candidate.params["rate"])) + 3] += 1
    # uniform on the log scale: about 20 a decade; a linear scale would put ~all in the last
    assert min(decades) >= 10, decades


def test_failed_trials_do_not_stop_the_search_and_are_never_best(tmp_path: Path) -> None:
    search = Search(tmp_path / "s.db", FREE, seed=2)
    crashed, no_score, scored = search.ask(3)
    search.tell_failed(crashed, "crash: worker exited with signal 9")
    search.tell(no_score, math.nan)
    search.tell(scored, 5.0)
    assert search.best() == (scored, 5.0)

    [later] = search.ask()
    search.tell(later, 7.0)
    records = {r.number: r for r in search.trials()}
    assert records[crashed.number].state == "failed"
    assert records[crashed.number].reason == "crash: worker exited with signal 9"
    assert records[crashed.number].score is None
    assert records[no_score.number].state == "failed"
    assert "not finite" in (records[no_score.number].reason or "")
    assert records[scored.number].state == "complete"
    assert records[scored.number].score == 5.0
    assert search.best() == (scored, 5.0)


def test_best_is_none_until_a_score_is_told(tmp_path: Path) -> None:
    search = Search(tmp_path / "s.db", FREE, seed=2)
    [candidate] = search.ask()
    assert search.best() is None
    search.tell_failed(candidate, "timeout")
    assert search.best() is None


def test_candidates_in_flight_are_told_in_any_order(tmp_path: Path) -> None:
    search = Search(tmp_path / "s.db", FREE, seed=4)
    run(search, 10)
    batch = search.ask(4)
    assert len({(c.params["x"], c.params["y"]) for c in batch}) == 4
    search.tell(batch[2], bowl(batch[2].params))
    refill = search.ask(2)  # while three are still in flight
    for candidate in [*reversed(batch[:2]), batch[3], *refill]:
        search.tell(candidate, bowl(candidate.params))

    records = search.trials()
    assert [r.number for r in records] == list(range(16))
    assert all(r.state == "complete" for r in records)
    with pytest.raises(ModelOpsError, match="not in flight"):
        search.tell(batch[0], 1.0)


KILLED_SEARCH = textwrap.dedent(
    """
    import json, math, sys, time
    from pathlib import Path
    from modelops.calibration.search import Search
    from modelops.calibration.spec import FreeParameter as P

    free = {"x": P(low=1e-4, high=1.0, log=True), "y": P(low=-5.0, high=5.0)}
    search = Search(Path(sys.argv[1]), free, {"days": 120}, seed=9)
    for _ in range(5):
        [candidate] = search.ask()
        x, y = candidate.params["x"], candidate.params["y"]
        search.tell(candidate, (math.log10(x) + 2) ** 2 + (y - 3) ** 2)
    in_flight = search.ask(2)
    print(json.dumps([[c.number, c.params] for c in in_flight]), flush=True)
    time.sleep(600)
    """
)


def test_resume_after_sigkill_keeps_told_trials_and_asks_untold_ones_again(
    tmp_path: Path,
) -> None:
    storage = tmp_path / ".modelops" / "calibration" / "c1.db"
    command = [sys.executable, "-c", KILLED_SEARCH, str(storage)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            in_flight = json.loads(child.stdout.readline())
        finally:
            os.kill(child.pid, signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL

    search = Search(storage, FREE, {"days": 120}, seed=9)
    records = search.trials()
    assert [r.number for r in records] == list(range(7))
    told = records[:5]
    assert all(r.state == "complete" and r.score == bowl(r.params) for r in told)
    assert [[r.number, r.params] for r in records[5:]] == in_flight
    assert all(r.state == "failed" and r.reason == ABANDONED for r in records[5:])
    best = search.best()
    assert best is not None
    assert best[1] == min(r.score for r in told if r.score is not None)

    # reopening again before asking queues nothing twice
    search = Search(storage, FREE, {"days": 120}, seed=9)
    retries = search.ask(3)
    assert [c.number for c in retries] == [7, 8, 9]
    assert [c.params for c in retries[:2]] == [params for _, params in in_flight]
    for candidate in retries:
        search.tell(candidate, bowl(candidate.params))
    records = search.trials()
    assert [r.retry_of for r in records[7:]] == [5, 6, None]
    complete = [r for r in records if r.state == "complete"]
    assert len(complete) == 8
    assert len({(r.params["x"], r.params["y"]) for r in complete}) == 8


def test_a_line_cut_short_by_a_kill_is_dropped_and_the_search_goes_on(tmp_path: Path) -> None:
    storage = tmp_path / "search.journal"
    run(Search(storage, FREE, seed=1), 4)
    whole = storage.read_bytes()
    with storage.open("ab") as journal:  # a kill in the middle of writing the next line
        journal.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 4, "para')
    assert read_trials(storage)[-1].number == 3  # a reader stops before the cut line

    search = Search(storage, FREE, seed=1)
    assert storage.read_bytes().startswith(whole)
    assert b'"para' not in storage.read_bytes()[len(whole) :]
    told = run(search, 2)
    assert [c.number for c in told] == [4, 5]
    assert [r.state for r in read_trials(storage)] == ["complete"] * 6


def test_a_reopened_sampler_does_not_replay_its_draws(tmp_path: Path) -> None:
    storage = tmp_path / "s.db"
    before = run(Search(storage, FREE, algorithm="random", seed=1), 5)
    after = run(Search(storage, FREE, algorithm="random", seed=1), 5)
    assert [c.number for c in after] == [5, 6, 7, 8, 9]
    assert not {c.params["y"] for c in before} & {c.params["y"] for c in after}


def test_reopening_with_other_settings_is_refused(tmp_path: Path) -> None:
    storage = tmp_path / "s.db"
    Search(storage, FREE, {"days": 120}, seed=1)
    narrower = {**FREE, "y": FreeParameter(low=0.0, high=5.0)}
    with pytest.raises(ModelOpsError, match="other free") as error:
        Search(storage, narrower, {"days": 120}, seed=1)
    assert error.value.info.error_class is ErrorClass.BAD_INPUT
    with pytest.raises(ModelOpsError, match="other fixed, seed"):
        Search(storage, FREE, {"days": 60}, seed=2)


@pytest.mark.parametrize(
    ("free", "fixed", "algorithm", "message"),
    [
        (FREE, {}, "nelder-mead", "unknown search algorithm 'nelder-mead'"),
        ({}, {"days": 1}, "tpe", "at least one free parameter"),
        (FREE, {"x": 0.1}, "tpe", "both free and fixed: x"),
        ({"x": FreeParameter(low=0.1)}, {}, "tpe", "needs both bounds"),
    ],
)
def test_bad_settings_are_one_line_errors(
    tmp_path: Path, free: dict, fixed: dict, algorithm: str, message: str
) -> None:
    with pytest.raises(ModelOpsError, match=message) as error:
        Search(tmp_path / "s.db", free, fixed, algorithm=algorithm)
    assert error.value.info.error_class is ErrorClass.BAD_INPUT
    assert "\n" not in str(error.value)


@pytest.mark.skipif(HAS_CMAES, reason="the cmaes package is installed")
def test_cmaes_without_its_package_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(ModelOpsError, match="needs the Python package 'cmaes'") as error:
        Search(tmp_path / "s.db", FREE, algorithm="cmaes")
    assert error.value.info.error_class is ErrorClass.BAD_INPUT
    Search(tmp_path / "s.db", FREE, algorithm="tpe")  # the refused search left nothing behind


def test_optuna_logs_nothing_below_warning(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    run(Search(tmp_path / "s.db", FREE, seed=1), 3)
    assert "[I " not in capfd.readouterr().err
    assert (root.level, root.handlers) == (level, handlers)
