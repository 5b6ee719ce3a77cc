"""Studies of SDK models are checked against the model before anything is submitted."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.jobs import run_study
from modelops.study import load_study

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sir"

VALID = """
    bundle = "model"
    entrypoint = "model:SIR/lockdown"
    outputs = ["incidence"]
    [config]
    days = 10
    [parameters]
    sampler = "grid"
    [parameters.dims.gamma]
    low = 0.1
    high = 0.2
    points = 2
    [parameters.fixed]
    population = 1000
"""
SIR_ENTRYPOINTS = "this bundle has: model:SIR, model:SIR/lockdown, model:SIR/vaccination"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(tmp_path))
    shutil.copytree(EXAMPLE, tmp_path / "model")
    return tmp_path


def attempt(project: Path, body: str) -> ModelOpsError:
    path = project / "study.toml"
    path.write_text(textwrap.dedent(body).lstrip())
    with pytest.raises(ModelOpsError) as failed:
        run_study(load_study(path), n_workers=1)
    assert failed.value.info.error_class is ErrorClass.BAD_INPUT
    assert not (project / ".modelops" / "jobs.db").exists()  # nothing was submitted
    return failed.value


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            "dims.gamma]",
            "dims.delta]",
            ":8: parameters.dims.delta:",
            "model:SIR has no parameter 'delta'",
        ),
        (
            "high = 0.2",
            "high = 1.5",
            ":8: parameters.dims.gamma:",
            "range [0.1, 1.5] leaves model:SIR's bounds for 'gamma' [0.01, 1.0]",
        ),
        (
            "population = 1000",
            "population = 1000.5",
            ":13: parameters.fixed.population:",
            "takes 'population' as an int",
        ),
        (
            "population = 1000",
            "population = 5",
            ":13: parameters.fixed.population:",
            "5 is outside model:SIR's bounds for 'population'",
        ),
        ('["incidence"]', '["deaths"]', ":3: outputs:", "model:SIR has no output 'deaths'"),
        (
            "SIR/lockdown",
            "SIR/curfew",
            ":2: entrypoint:",
            "unknown entrypoint 'model:SIR/curfew' (model:SIR has no scenario 'curfew'); "
            + SIR_ENTRYPOINTS,
        ),
        (
            "model:SIR",
            "model:SEIR",
            ":2: entrypoint:",
            "unknown entrypoint 'model:SEIR/lockdown' (the bundle declares no model "
            "'model:SEIR'); " + SIR_ENTRYPOINTS,
        ),
        (
            "model:SIR/lockdown",
            "SIR",
            ":2: entrypoint:",
            "entrypoint 'SIR' must be 'module:Class' or 'module:Class/scenario'; "
            + SIR_ENTRYPOINTS,
        ),
        ("days = 10", "weeks = 10", ":5: config.weeks:", "model:SIR has no config key 'weeks'"),
    ],
)
def test_study_mistakes_are_named_at_their_line(
    project: Path, old: str, new: str, where: str, message: str
) -> None:
    assert old in VALID
    error = attempt(project, VALID.replace(old, new))
    assert where in str(error)
    assert message in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize("entrypoint", ["model:SIR/lockdown", None])
def test_a_valid_study_of_the_example_runs(project: Path, entrypoint: str | None) -> None:
    """Without an entrypoint, a one-model bundle runs its model's baseline."""
    body = textwrap.dedent(VALID).lstrip()
    if entrypoint is None:
        body = body.replace('entrypoint = "model:SIR/lockdown"\n', "")
    path = project / "study.toml"
    path.write_text(body)
    job = run_study(load_study(path), n_workers=1)
    assert job.counts.succeeded == 2


def test_an_empty_entrypoint_with_two_models_lists_both(project: Path) -> None:
    model = project / "model"
    (model / "model.py").write_text(
        (model / "model.py").read_text() + "\n\nclass SIRS(SIR):\n    pass\n"
    )
    pyproject = model / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('["model:SIR"]', '["model:SIR", "model:SIRS"]')
    )
    error = attempt(project, VALID.replace('entrypoint = "model:SIR/lockdown"', ""))
    assert str(error).endswith(
        "study.toml:1: entrypoint: no entrypoint given, which works only for a bundle with one "
        "model; this bundle has: model:SIR, model:SIR/lockdown, model:SIR/vaccination, "
        "model:SIRS, model:SIRS/lockdown, model:SIRS/vaccination"
    )
