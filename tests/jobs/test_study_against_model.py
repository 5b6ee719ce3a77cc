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
        ("SIR/lockdown", "SIR/curfew", ":2: entrypoint:", "model:SIR has no scenario 'curfew'"),
        ("model:SIR", "model:SEIR", ":2: entrypoint:", "the bundle declares no model 'model:SEIR'"),
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


def test_a_valid_study_of_the_example_runs(project: Path) -> None:
    path = project / "study.toml"
    path.write_text(textwrap.dedent(VALID).lstrip())
    job = run_study(load_study(path), n_workers=1)
    assert job.counts.succeeded == 2
