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


SIR_ENTRYPOINTS = "this bundle has: model:SIR, model:SIR/lockdown, model:SIR/vaccination"


@pytest.mark.parametrize(
    ("entrypoint", "params", "error_class", "message"),
    [
        ("model:SIR", {"beta": 5.0}, ErrorClass.BAD_INPUT, "'beta' = 5.0 is above its high bound"),
        ("model:SIR", {"delta": 1.0}, ErrorClass.BAD_INPUT, "has no parameter 'delta'"),
        (
            "model:SIR/curfew",
            {},
            ErrorClass.BAD_INPUT,
            f"unknown entrypoint 'model:SIR/curfew' (SIR has no scenario 'curfew'); "
            f"{SIR_ENTRYPOINTS}",
        ),
        (
            "model:SIR/lockdown+curfew",
            {},
            ErrorClass.BAD_INPUT,
            "(SIR has no scenario 'curfew'); this bundle has: model:SIR",
        ),
        (
            "model:SEIR",
            {},
            ErrorClass.BAD_INPUT,
            f"unknown entrypoint 'model:SEIR' (module 'model' has no class 'SEIR'); "
            f"{SIR_ENTRYPOINTS}",
        ),
        (
            "model:np",
            {},
            ErrorClass.BAD_INPUT,
            "('np' is not a modelops.sdk.BaseModel subclass); this bundle has: model:SIR",
        ),
        (  # a wrong module name is a bad entrypoint, not a missing dependency
            "modell:SIR",
            {},
            ErrorClass.BAD_INPUT,
            f"unknown entrypoint 'modell:SIR' (no module 'modell' in the bundle); "
            f"{SIR_ENTRYPOINTS}",
        ),
        (
            "SIR",
            {},
            ErrorClass.BAD_INPUT,
            "entrypoint 'SIR' must be 'module:Class' or 'module:Class/scenario'; "
            f"{SIR_ENTRYPOINTS}",
        ),
    ],
)
def test_bad_requests_come_back_as_bad_input_naming_the_cause(
    runner: TaskRunner, sir: BundleRef, entrypoint: str, params: dict, error_class, message: str
) -> None:
    result = runner.run(SimTask(sir, entrypoint, params, seed=1))
    assert result.error is not None
    assert result.error.error_class is error_class
    assert message in result.error.message
    assert "\n" not in result.error.message


def test_an_empty_entrypoint_runs_the_only_models_baseline(
    runner: TaskRunner, sir: BundleRef
) -> None:
    default = runner.run(SimTask(sir, "", {"beta": 0.5}, seed=3, config={"days": 30}))
    named = runner.run(SimTask(sir, "model:SIR", {"beta": 0.5}, seed=3, config={"days": 30}))
    assert default.ok, default.error
    assert default.outputs.keys() == named.outputs.keys() == {"incidence", "prevalence"}
    for name in default.outputs:
        assert default.outputs[name].table().equals(named.outputs[name].table())


TWO_MODELS = {
    "model.py": """
        from modelops.sdk import BaseModel, Param, model_output, model_scenario


        class Growth(BaseModel):
            params = {"rate": Param(0.0, 1.0, default=0.1)}

            def build_sim(self, params, config):
                return params["rate"]

            def run_sim(self, rate, seed):
                return [(1 + rate) ** day for day in range(5)]

            @model_output("series")
            def series(self, values):
                return {"value": values}

            @model_scenario("fast")
            def fast(self):
                return {"params": {"rate": 0.9}}


        class Decay(Growth):
            def run_sim(self, rate, seed):
                return [(1 - rate) ** day for day in range(5)]
    """,
    "pyproject.toml": """
        [project]
        name = "two-models"
        version = "1"
        dependencies = ["pyarrow"]

        [tool.modelops]
        wire = "modelops.sdk:wire"
        models = ["model:Growth", "model:Decay"]
    """,
}
TWO_ENTRYPOINTS = "this bundle has: model:Growth, model:Growth/fast, model:Decay, model:Decay/fast"


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [
        (
            "",
            "no entrypoint given, which works only for a bundle with one model; " + TWO_ENTRYPOINTS,
        ),
        (
            "model:Growht",
            "unknown entrypoint 'model:Growht' (module 'model' has no class 'Growht'); "
            + TWO_ENTRYPOINTS,
        ),
        (
            "model:Decay/slow",
            "unknown entrypoint 'model:Decay/slow' (Decay has no scenario 'slow'); "
            + TWO_ENTRYPOINTS,
        ),
    ],
)
def test_entrypoint_mistakes_in_a_two_model_bundle_list_every_entrypoint(
    runner: TaskRunner, make_bundle, entrypoint: str, message: str
) -> None:
    ref = make_bundle(TWO_MODELS, name="two-models")
    result = runner.run(SimTask(ref, entrypoint, {}, seed=1))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.BAD_INPUT
    assert result.error.message == f"SimulationError: {message}"
    ran = runner.run(SimTask(ref, "model:Decay/fast", {}, seed=1))  # the child carries on
    assert ran.ok, ran.error
    assert ran.outputs["series"].table().column("value").to_pylist()[1] == pytest.approx(0.1)


def test_bundle_check_lists_models_scenarios_params_and_outputs() -> None:
    check = api.check_bundle(str(EXAMPLE))
    assert check.ref.repository == "sir-example"
    assert check.uses_sdk and check.wire == "modelops.sdk:wire"
    sir = check.models["model:SIR"]
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


def test_bundle_check_of_a_plain_wire_imports_it_and_never_calls_it(tmp_path: Path) -> None:
    """A wire that is not the SDK's gets no internal entrypoint: it is imported in its own
    environment (a marker proves it) and never called (another marker proves that)."""
    from tests.conftest import write_project

    imported, called = tmp_path / "imported", tmp_path / "called"
    project = write_project(
        tmp_path / "plain",
        {
            "wire.py": f"""
                import pathlib

                pathlib.Path({str(imported)!r}).write_text("yes")


                def wire(entrypoint, params, seed):
                    pathlib.Path({str(called)!r}).write_text(entrypoint)
                    raise RuntimeError("check must not call the wire")
            """,
        },
    )
    check = api.check_bundle(str(project))
    assert not check.uses_sdk and check.models is None
    assert check.wire == "wire:wire" and check.wire_source == "wire.py:wire"
    assert imported.read_text() == "yes"
    assert not called.exists()
