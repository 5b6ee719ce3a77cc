"""The shipped examples, as a user runs them: `mops bundle check` lists what each declares,
and `mops run study.toml` in a copy of the example runs its study end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import modelops
from modelops import api
from modelops.bundle import LayoutStore, build_bundle
from modelops.contracts import SimTask
from modelops.runtime import TaskRunner
from modelops.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# example folder -> (model, scenarios, outputs, incidence rows of its study, incidence columns)
CASES = {
    "sir": (
        "model:SIR",
        ["lockdown", "vaccination"],
        ["incidence", "prevalence"],
        8 * 5 * 90,
        {"day", "new_infections", "gamma", "population"},
    ),
    "seir-age": (
        "model:SEIRAge",
        ["school_closure", "shield_elderly"],
        ["incidence", "prevalence"],
        4 * 2 * 60 * 4,
        {"day", "age_group", "new_infections", "beta"},
    ),
    "starsim-sir": (
        "model:StarsimSIR",
        ["distancing"],
        ["incidence", "prevalence"],
        2 * 2 * 31,
        {"day", "new_infections", "beta"},
    ),
}


def run_study_in_copy(example: str, tmp_path: Path) -> tuple[Path, str]:
    """Copy the example (so .modelops/ lands in tmp) and run its study with the real CLI."""
    project = tmp_path / example
    shutil.copytree(EXAMPLES / example, project, ignore=shutil.ignore_patterns(".modelops"))
    ran = subprocess.run(
        [sys.executable, "-m", "modelops.cli", "run", "study.toml", "--workers", "2"],
        cwd=project,
        env={**os.environ, "MODELOPS_PROJECT_DIR": str(project)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    last = ran.stdout.strip().splitlines()[-1]
    assert last.startswith("job: "), ran.stdout
    return project, last.removeprefix("job: ")


@pytest.mark.parametrize("example", list(CASES))
def test_example_checks_and_its_study_runs(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, scenarios, outputs, rows, columns = CASES[example]
    models = api.check_bundle(str(EXAMPLES / example)).models
    assert models is not None
    assert list(models) == [model]
    assert models[model]["scenarios"] == scenarios
    assert models[model]["outputs"] == outputs

    project, job_id = run_study_in_copy(example, tmp_path)
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(project))
    incidence = modelops.results(job_id)["incidence"].collect()
    assert incidence.height == rows
    assert columns <= set(incidence.columns)
    assert incidence["new_infections"].sum() > 0
    assert (incidence["new_infections"] >= 0).all()


def test_seir_age_reads_its_contact_data_on_the_worker(
    runner: TaskRunner, modelops_home: Path
) -> None:
    """The scenario scales rows and columns of the shipped contact matrix: if the data file
    reached the worker, closing schools changes school-age incidence for the same seed."""
    store = LayoutStore(Settings.from_env().bundle_store)
    bundle = store.put(build_bundle(EXAMPLES / "seir-age"))

    def by_age(entrypoint: str) -> dict[str, int]:
        task = SimTask(bundle, entrypoint, {"beta": 0.06}, seed=9, config={"days": 60})
        result = runner.run(task)
        assert result.ok, result.error
        table = pl.from_arrow(result.outputs["incidence"].table())
        totals = table.group_by("age_group").agg(pl.col("new_infections").sum())
        return dict(totals.iter_rows())

    base, closed = by_age("model:SEIRAge"), by_age("model:SEIRAge/school_closure")
    assert set(base) == {"0-4", "5-19", "20-64", "65+"}
    assert closed["5-19"] < base["5-19"] / 2


def test_the_sir_example_bundles_its_model_not_the_files_that_run_it() -> None:
    """Editing the study, the calibration or the observed data keeps the bundle's digest, and
    with it every simulation in the provenance cache."""
    paths = {entry.path for entry in build_bundle(EXAMPLES / "sir").config.files}
    assert {"model.py", "pyproject.toml"} <= paths
    assert not paths & {"study.toml", "calibration.toml", "data/observed.csv"}
