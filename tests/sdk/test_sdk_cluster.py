"""SDK models on the real worker path: the SDK reaches the child, scenarios, config and
requested outputs reach the model, results match a local run for the same seed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modelops import api
from modelops.bundle import LayoutStore, build_bundle
from modelops.contracts import BundleRef, ErrorClass, SimTask
from modelops.runtime import TaskRunner

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sir"


@pytest.fixture(scope="module")
def sir(modelops_home: Path) -> BundleRef:
    from modelops.settings import Settings

    return LayoutStore(Settings.from_env().bundle_store).put(build_bundle(EXAMPLE))


@pytest.fixture
def local_sir(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    sys.modules.pop("model", None)
    from model import SIR

    yield SIR
    sys.modules.pop("model", None)


def test_cluster_and_laptop_give_identical_outputs_for_a_seed(
    runner: TaskRunner, sir: BundleRef, local_sir
) -> None:
    task = SimTask(sir, "model:SIR/lockdown", {"beta": 0.6}, seed=11, config={"days": 40})
    remote = runner.run(task)
    assert remote.ok, remote.error
    local = local_sir().simulate({"beta": 0.6}, seed=11, scenario="lockdown", config={"days": 40})
    for name in ("incidence", "prevalence"):
        assert remote.outputs[name].table().equals(local[name])
    assert remote.outputs["incidence"].rows == 40  # config reached the model


def test_scenario_config_and_requested_outputs_change_what_runs(
    runner: TaskRunner, sir: BundleRef
) -> None:
    def infections(entrypoint: str, **kwargs) -> int:
        result = runner.run(SimTask(sir, entrypoint, {"beta": 0.8}, seed=5, **kwargs))
        assert result.ok, result.error
        return sum(result.outputs["incidence"].table().column("new_infections").to_pylist())

    base = infections("model:SIR")
    assert infections("model:SIR/lockdown") < base
    assert infections("model:SIR", config={"vaccinated": 0.9}) < base
    only = runner.run(SimTask(sir, "model:SIR", {}, seed=5, outputs=("prevalence",)))
    assert list(only.outputs) == ["prevalence"]


@pytest.mark.parametrize(
    ("entrypoint", "params", "error_class", "message"),
    [
        ("model:SIR", {"beta": 5.0}, ErrorClass.BAD_INPUT, "'beta' = 5.0 is above its high bound"),
        ("model:SIR", {"delta": 1.0}, ErrorClass.BAD_INPUT, "has no parameter 'delta'"),
        ("model:SIR/curfew", {}, ErrorClass.BAD_INPUT, "has no scenario 'curfew'"),
        ("model:SEIR", {}, ErrorClass.BAD_INPUT, "'model:SEIR' is not a modelops.sdk.BaseModel"),
        ("SIR", {}, ErrorClass.BAD_INPUT, "must be 'module:Class' or 'module:Class/scenario'"),
    ],
)
def test_bad_requests_come_back_as_bad_input_naming_the_cause(
    runner: TaskRunner, sir: BundleRef, entrypoint: str, params: dict, error_class, message: str
) -> None:
    result = runner.run(SimTask(sir, entrypoint, params, seed=1))
    assert result.error is not None
    assert result.error.error_class is error_class
    assert message in result.error.message


def test_bundle_check_lists_models_scenarios_params_and_outputs() -> None:
    ref, models = api.check_bundle(str(EXAMPLE))
    assert ref.repository == "sir-example"
    sir = models["model:SIR"]
    assert list(sir["params"]) == ["beta", "gamma", "population"]
    assert sir["params"]["beta"]["log"] is True
    assert sir["scenarios"] == ["lockdown", "vaccination"]
    assert sir["outputs"] == ["incidence", "prevalence"]


def test_bundle_check_reports_a_missing_dependency(tmp_path: Path) -> None:
    from tests.conftest import write_project

    from modelops.contracts import ModelOpsError

    project = write_project(
        tmp_path / "broken",
        {
            "model.py": "import scipy_not_installed\nfrom modelops.sdk import BaseModel\n",
            "pyproject.toml": '[project]\nname = "broken"\nversion = "1"\n'
            'dependencies = ["pyarrow"]\n[tool.modelops]\nwire = "modelops.sdk:wire"\n'
            'models = ["model:Broken"]\n',
        },
    )
    with pytest.raises(ModelOpsError) as failed:
        api.check_bundle(str(project))
    assert failed.value.info.error_class is ErrorClass.MISSING_DEPENDENCY
    assert "no module named 'scipy_not_installed'" in str(failed.value)
