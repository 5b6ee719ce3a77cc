"""The smoke test names the stage, the simulation and the remote traceback when something
fails, and leaves nothing in the user's project."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from modelops import api
from modelops.contracts import BundleRef, SimTask
from modelops.devtools import smoke
from modelops.devtools.smoke import SmokeTestFailed, run_smoke_test
from modelops.study import plan


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    copy = tmp_path / "smoke_bundle"
    shutil.copytree(smoke.SMOKE_BUNDLE, copy)
    wire = copy / "wire.py"
    source = wire.read_text()
    assert old in source
    wire.write_text(source.replace(old, new))
    return copy


@pytest.mark.parametrize(("simulations", "sets", "replicates"), [(24, 4, 6), (8, 4, 2), (5, 5, 1)])
def test_the_study_has_exactly_the_simulations_asked_for_over_every_beta(
    simulations: int, sets: int, replicates: int
) -> None:
    spec = smoke.smoke_study(BundleRef.parse(f"smoke-bundle@sha256:{'0' * 64}"), simulations)

    assert spec.n_simulations == simulations
    assert (spec.n_param_sets, spec.replicates) == (sets, replicates)
    assert {one["beta"] for one in spec.parameters.sets or []} == set(smoke.BETAS)
    assert spec.parameters.fixed == {"days": smoke.DAYS}
    assert spec.seed == smoke.SMOKE_SEED


def test_a_bundle_that_does_not_build_fails_at_bundle_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smoke, "SMOKE_BUNDLE", tmp_path / "missing")

    with pytest.raises(SmokeTestFailed) as failed:
        run_smoke_test(simulations=2)

    assert failed.value.stage == "bundle build"
    assert str(failed.value).startswith("smoke test failed at bundle build: ")


def test_a_failing_simulation_names_stage_simulation_and_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = broken_copy(
        tmp_path,
        "    table = pa.table(",
        "    if params['beta'] == 0.4:\n        raise ArithmeticError('beta 0.4 breaks')\n"
        "    table = pa.table(",
    )
    monkeypatch.setattr(smoke, "SMOKE_BUNDLE", bundle)

    with pytest.raises(SmokeTestFailed) as failed:
        run_smoke_test(simulations=8)

    assert failed.value.stage == "simulation"
    assert failed.value.params == {"beta": 0.4, "days": 60}
    ref = api.build(bundle)
    spec = smoke.smoke_study(ref, 8)
    beta_04 = {
        SimTask(ref, spec.entrypoint, sim.params, sim.seed, limits=spec.limits()).task_id
        for sim in plan(spec)
        if sim.params["beta"] == 0.4
    }
    assert failed.value.task_id in beta_04
    assert f"(task {failed.value.task_id}, " in str(failed.value)
    assert "model: ArithmeticError: beta 0.4 breaks" in str(failed.value)
    assert "raise ArithmeticError('beta 0.4 breaks')" in failed.value.remote_traceback


def test_a_wrong_result_fails_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = broken_copy(
        tmp_path,
        "table = pa.table(simulate(seed=seed, **params))",
        "table = pa.table(simulate(seed=seed, **params)).drop_columns(['recovered'])",
    )
    monkeypatch.setattr(smoke, "SMOKE_BUNDLE", bundle)

    with pytest.raises(SmokeTestFailed) as failed:
        run_smoke_test(simulations=4)

    assert failed.value.stage == "validation"
    assert failed.value.task_id
    assert "result columns are ['day', 'susceptible', 'infected', 'incidence']" in str(failed.value)


def test_a_result_that_differs_when_run_again_fails_determinism(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = broken_copy(
        tmp_path,
        "simulate(seed=seed, **params)",
        "simulate(seed=int.from_bytes(__import__('os').urandom(4), 'little'), **params)",
    )
    monkeypatch.setattr(smoke, "SMOKE_BUNDLE", bundle)

    with pytest.raises(SmokeTestFailed) as failed:
        run_smoke_test(simulations=2)

    assert failed.value.stage == "determinism"
    assert failed.value.params == {"beta": smoke.BETAS[0], "days": 60}
    assert "seeding is broken" in str(failed.value)


def test_the_smoke_test_leaves_no_job_or_result_in_the_users_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    results = tmp_path / "results"
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(project))
    monkeypatch.setenv("MODELOPS_RESULTS", str(results))

    report = run_smoke_test(simulations=4)

    assert report.simulations == 4
    assert report.sample is not None and report.sample.ok
    assert os.environ["MODELOPS_PROJECT_DIR"] == str(project)
    assert os.environ["MODELOPS_RESULTS"] == str(results)
    assert list(project.iterdir()) == []
    assert not results.exists()
    assert api.list_jobs() == []
