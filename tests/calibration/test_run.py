"""Calibrations end to end on a real Dask cluster with real bundles: the fit lands on the
truth, integer and fixed parameters reach the model, weights move the optimum, failures are
told and shown, a coverage gap is one line, and the results are a study's."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from distributed import Client

import modelops
from modelops.calibration.load import load_calibration
from modelops.calibration.results import calibration_summary
from modelops.calibration.run import run_calibration
from modelops.contracts import ErrorClass, ModelOpsError
from modelops.settings import Settings
from modelops.store import JobRecords, JobState
from tests.conftest import write_project

REPO = Path(__file__).resolve().parents[2]

# Daily cases growing exponentially from `a` at rate `r`, with Poisson noise. It refuses
# r above `fail_above`, so a test can make some candidates fail.
MODEL = """
import time
import numpy as np
import pyarrow as pa

def wire(entrypoint, params, seed):
    time.sleep(params.get("sleep", 0))
    if params["r"] > params.get("hang_above", 1e9):
        time.sleep(60)
    if params["r"] > params.get("fail_above", 1e9):
        raise ValueError(f"r {params['r']:.3f} is above fail_above")
    if not isinstance(params["a"], int):
        raise TypeError(f"a must arrive as an int, got {params['a']!r}")
    rng = np.random.default_rng(seed)
    day = np.arange(params["days"])
    cases = rng.poisson(params["a"] * np.exp(params["r"] * day))
    table = pa.table({"day": day, "cases": cases, "days_seen": np.full(day.size, params["days"])})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {"incidence": sink.getvalue().to_pybytes()}
"""


def observed(r: float, a: int = 10, days: int = 30, seed: int = 99) -> pl.DataFrame:
    """Cases from the model's own process at known parameters (not from a simulation)."""
    rng = np.random.default_rng(seed)
    day = np.arange(days)
    return pl.DataFrame({"day": day, "cases": rng.poisson(a * np.exp(r * day))})


def calibration(
    root: Path,
    body: str,
    data: dict[str, pl.DataFrame],
) -> Path:
    """A project with the growth model, observed data files and a calibration file."""
    write_project(root / "model", {"wire.py": MODEL, "requirements.txt": "numpy\npyarrow\n"})
    for name, table in data.items():
        (root / "data").mkdir(exist_ok=True)
        table.write_csv(root / "data" / name)
    path = root / "calibration.toml"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder whose .modelops/ holds this test's job records and results."""
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(tmp_path))
    return tmp_path


GROWTH = """
    name = "growth"
    bundle = "model"
    seed = 3
    replicates = 2

    [parameters.r]
    low = 0.01
    high = 0.3
    log = true

    [parameters.a]
    type = "int"
    low = 1
    high = 40

    [fixed]
    days = 30

    [targets.cases]
    data = "data/observed.csv"
    output = "incidence"
    join = ["day"]
    observed = "cases"
    loss = "poisson"

    [search]
    algorithm = "tpe"
    trials = 60
    batch = 4
"""


def test_sir_example_lands_within_ten_percent_of_the_truth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/sir as a user runs it: observed data made at beta 0.3, gamma 0.1; two free
    parameters (beta on a log scale), 3 replicates, the embedded cluster."""
    project = tmp_path / "sir"
    shutil.copytree(REPO / "examples" / "sir", project, ignore=shutil.ignore_patterns(".*"))
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(project))
    spec = load_calibration(project / "calibration.toml")
    assert spec.parameters["beta"].log and spec.replicates == 3

    record = run_calibration(spec, n_workers=2)

    assert record.state is JobState.SUCCEEDED
    summary = calibration_summary(record, Settings.from_env())
    assert summary.trials == summary.complete == spec.search.trials
    assert summary.best is not None
    best = summary.best.params
    assert best["beta"] == pytest.approx(0.3, rel=0.10)
    assert best["gamma"] == pytest.approx(0.1, rel=0.10)
    assert best["population"] == 100_000  # fixed
    assert set(summary.best.targets) == {"cases", "prevalence"}


def test_int_and_fixed_parameters_reach_the_model_and_fit(project: Path, client: Client) -> None:
    # one candidate at a time: the search is then the same on every run (a batch in flight
    # makes it depend on which candidate finishes first, and so can the best of 60 trials)
    body = textwrap.dedent(GROWTH).replace("batch = 4", "batch = 1")
    path = calibration(project, body, {"observed.csv": observed(r=0.1, a=10)})
    record = run_calibration(load_calibration(path), scheduler=client.scheduler.address)

    assert record.state is JobState.SUCCEEDED
    trials = modelops.calibration_job(record.job_id).trials()
    assert len(trials) == 60
    assert all(isinstance(trial.params["a"], int) for trial in trials)  # the model refuses others
    assert all(trial.params["days"] == 30 for trial in trials)
    best = modelops.calibration_job(record.job_id).best
    assert best is not None
    assert best.params["r"] == pytest.approx(0.1, rel=0.1)
    assert abs(best.params["a"] - 10) <= 3
    # every simulation is in the result store, as a study's: 2 replicates per distinct candidate
    results = modelops.results(record.job_id)
    simulations = results.simulations().collect()
    distinct = {json.dumps(t.params, sort_keys=True) for t in trials if t.state == "complete"}
    assert simulations.height == 2 * len(distinct)
    assert set(simulations["status"]) == {"succeeded"}
    incidence = results["incidence"].collect()
    assert set(incidence["days_seen"]) == {30}
    assert incidence.height == 30 * simulations.height


def test_weights_move_the_optimum(project: Path, client: Client) -> None:
    """Two targets that disagree (data made at r = 0.06 and at r = 0.14): the heavier one
    wins."""
    body = textwrap.dedent(GROWTH).replace('[parameters.a]\ntype = "int"\nlow = 1\nhigh = 40\n', "")
    body = body.replace("days = 30", "days = 30\na = 10").replace("trials = 60", "trials = 40")
    body = body.replace("batch = 4", "batch = 1")  # the same search on every run
    targets_at = body.index("[targets.cases]")
    search_at = body.index("[search]")
    targets = """
        [targets.slow]
        data = "data/slow.csv"
        output = "incidence"
        join = ["day"]
        observed = "cases"
        loss = "poisson"
        weight = {slow}

        [targets.fast]
        data = "data/fast.csv"
        output = "incidence"
        join = ["day"]
        observed = "cases"
        loss = "poisson"
        weight = {fast}

    """
    data = {"slow.csv": observed(r=0.06), "fast.csv": observed(r=0.14)}
    best = {}
    for heavy, weights in (("slow", (1.0, 0.001)), ("fast", (0.001, 1.0))):
        text = (
            body[:targets_at]
            + textwrap.dedent(targets).format(slow=weights[0], fast=weights[1])
            + body[search_at:]
        )
        path = calibration(project / heavy, text, data)
        record = run_calibration(load_calibration(path), scheduler=client.scheduler.address)
        found = modelops.calibration_job(record.job_id).best
        assert found is not None
        best[heavy] = found.params["r"]
    assert best["slow"] == pytest.approx(0.06, rel=0.15)
    assert best["fast"] == pytest.approx(0.14, rel=0.15)


def test_failed_simulations_are_told_and_the_search_goes_on(project: Path, client: Client) -> None:
    body = textwrap.dedent(GROWTH).replace("days = 30", "days = 30\nfail_above = 0.15")
    body = body.replace("trials = 60", "trials = 30").replace("batch = 4", "batch = 1")
    path = calibration(project, body, {"observed.csv": observed(r=0.1)})
    record = run_calibration(load_calibration(path), scheduler=client.scheduler.address)

    assert record.state is JobState.SUCCEEDED
    handle = modelops.calibration_job(record.job_id)
    trials = handle.trials()
    failed = [trial for trial in trials if trial.state == "failed"]
    assert failed, "the search never tried r > 0.15 (log-uniform on [0.01, 0.3])"
    assert all(trial.params["r"] > 0.15 for trial in failed)
    assert all("above fail_above" in (trial.reason or "") for trial in failed)
    assert all(t.params["r"] <= 0.15 for t in trials if t.state == "complete")
    summary = handle.summary()
    assert summary.failed == len(failed)
    assert summary.trials == 30
    # a failed candidate stops at its first failed replicate; that simulation is stored
    failures = modelops.results(record.job_id).failed_simulations().collect()
    assert failures.height == len(failed)
    assert set(failures["error_class"]) == {"model"}


def test_a_timed_out_simulation_fails_its_trial_and_the_search_goes_on(
    project: Path, client: Client
) -> None:
    body = textwrap.dedent(GROWTH).replace("days = 30", "days = 30\nhang_above = 0.2")
    body = body.replace("trials = 60", "trials = 16").replace("batch = 4", "batch = 1")
    body += "\n[resources]\ntimeout = 1\nretries = 0\n"
    path = calibration(project, body, {"observed.csv": observed(r=0.1)})
    record = run_calibration(load_calibration(path), scheduler=client.scheduler.address)

    assert record.state is JobState.SUCCEEDED
    trials = modelops.calibration_job(record.job_id).trials()
    timed_out = [trial for trial in trials if trial.state == "failed"]
    assert timed_out, "the search never tried r > 0.2"
    assert all(trial.params["r"] > 0.2 for trial in timed_out)
    assert all((trial.reason or "").startswith("timeout: ") for trial in timed_out)
    assert len(trials) == 16


def test_one_candidate_at_a_time_the_seed_makes_it_reproducible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: Client
) -> None:
    body = (
        textwrap.dedent(GROWTH)
        .replace("trials = 60", "trials = 12")
        .replace("batch = 4", "batch = 1")
    )
    found = []
    for run in ("first", "second"):  # separate projects: nothing comes from a cache
        monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(tmp_path / run))
        path = calibration(tmp_path / run, body, {"observed.csv": observed(r=0.1)})
        record = run_calibration(load_calibration(path), scheduler=client.scheduler.address)
        trials = modelops.calibration_job(record.job_id).trials()
        found.append([(trial.params, trial.score) for trial in trials])
    assert found[0] == found[1]
    assert len({json.dumps(params, sort_keys=True) for params, _ in found[0]}) > 6


def test_an_observed_row_the_model_does_not_simulate_is_one_line(
    project: Path, client: Client
) -> None:
    path = calibration(project, GROWTH, {"observed.csv": observed(r=0.1, days=33)})
    with pytest.raises(ModelOpsError) as error:
        run_calibration(load_calibration(path), scheduler=client.scheduler.address)
    message = str(error.value)
    assert error.value.info.error_class is ErrorClass.BAD_INPUT
    assert "\n" not in message
    assert "target cases" in message
    assert "no row for 3 of 33 observed rows: day=30, day=31, day=32" in message
    assert "missing_penalty" in message
    [record] = JobRecords(Settings.from_env().jobs_db).list()
    assert record.state is JobState.FAILED

    # asked for, a penalty per missing row: the calibration runs, and never gains from it
    with_penalty = path.read_text().replace(
        'loss = "poisson"', 'loss = "poisson"\nmissing_penalty = 50'
    )
    path.write_text(with_penalty)
    record = run_calibration(load_calibration(path), scheduler=client.scheduler.address)
    assert record.state is JobState.SUCCEEDED
    best = modelops.calibration_job(record.job_id).best
    assert best is not None and best.loss > 3 * 50


def test_a_study_job_is_not_a_calibration(project: Path) -> None:
    records = JobRecords(Settings.from_env().jobs_db)
    job = records.create("study", "x/y@sha256:" + "0" * 64, {"bundle": "."}, "r", 1)
    with pytest.raises(ModelOpsError, match=f"job {job.job_id} is a study, not a calibration"):
        modelops.calibration_job(job.job_id)
