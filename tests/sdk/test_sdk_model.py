"""The SDK on a laptop: parameters, config, scenarios and outputs, and every error named."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pytest

from modelops.sdk import BaseModel, Param, SimulationError, model_output, model_scenario
from modelops.sdk.params import ParameterError
from modelops.sdk.tables import OutputError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sir"


class Counting(BaseModel):
    params = {
        "rate": Param(0.0, 10.0, default=1.0),
        "count": Param(1, 100, default=3, kind="int"),
        "scale": Param(0.1, 10.0),  # no default: must be given
    }
    config = {"offset": 0}
    computed: list[str] = []

    def build_sim(self, params, config):
        return {**params, **config}

    def run_sim(self, state, seed):
        return [
            state["rate"] * state["scale"] * i + state["offset"] + seed
            for i in range(state["count"])
        ]

    @model_output("values")
    def values(self, raw):
        Counting.computed.append("values")
        return {"value": raw}

    @model_output("summary")
    def summary(self, raw):
        Counting.computed.append("summary")
        return pa.table({"total": [sum(raw)]})

    @model_output("broken")
    def broken(self, raw):
        return [1, 2, 3]

    @model_scenario("fast")
    def fast(self):
        return {"params": {"rate": 5.0}}

    @model_scenario("shifted")
    def shifted(self):
        return {"config": {"offset": 100}}


def test_defaults_given_values_and_seed_make_the_outputs() -> None:
    tables = Counting().simulate({"scale": 2.0}, seed=1, outputs=["values", "summary"])
    assert tables["values"].column("value").to_pylist() == [1.0, 3.0, 5.0]
    assert tables["summary"].column("total").to_pylist() == [9.0]


def test_scenarios_patch_params_and_config_and_compose() -> None:
    model = Counting()
    fast = model.simulate({"scale": 1.0}, seed=0, scenario="fast", outputs=["values"])
    both = model.simulate({"scale": 1.0}, seed=0, scenario="fast+shifted", outputs=["values"])
    assert fast["values"].column("value").to_pylist() == [0.0, 5.0, 10.0]
    assert both["values"].column("value").to_pylist() == [100.0, 105.0, 110.0]
    assert Counting.scenario_hash("fast", model.scenario_patch("fast")) != Counting.scenario_hash(
        "shifted", model.scenario_patch("shifted")
    )
    assert Counting.scenario_hash("fast", model.scenario_patch("fast")) == Counting.scenario_hash(
        "fast", model.scenario_patch("fast")
    )


def test_only_the_requested_outputs_are_computed() -> None:
    Counting.computed.clear()
    tables = Counting().simulate({"scale": 1.0}, seed=0, outputs=["summary"])
    assert list(tables) == ["summary"]
    assert Counting.computed == ["summary"]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (dict(params={"scale": 1, "speed": 2}), ParameterError, "has no parameter 'speed'"),
        (
            dict(params={"scale": 11.0}),
            ParameterError,
            "'scale' = 11.0 is above its high bound 10.0",
        ),
        (dict(params={"scale": 0.01}), ParameterError, "'scale' = 0.01 is below its low bound 0.1"),
        (dict(params={"scale": 1, "count": 2.5}), ParameterError, "'count' is an int, got 2.5"),
        (dict(params={}), ParameterError, "'scale' has no default and was not given"),
        (dict(params={"scale": 1}, scenario="slow"), SimulationError, "has no scenario 'slow'"),
        (dict(params={"scale": 1}, config={"speed": 1}), SimulationError, "no config key 'speed'"),
        (dict(params={"scale": 1}, outputs=["nope"]), SimulationError, "has no output 'nope'"),
        (
            dict(params={"scale": 1}, outputs=["broken"]),
            OutputError,
            "output 'broken' returned list",
        ),
    ],
)
def test_bad_requests_name_the_parameter_bound_or_output(call, error, message) -> None:
    with pytest.raises(error) as failed:
        Counting().simulate(seed=0, **call)
    assert message in str(failed.value)
    assert "\n" not in str(failed.value)


def test_describe_lists_what_a_model_declares() -> None:
    described = Counting.describe()
    assert list(described["params"]) == ["rate", "count", "scale"]
    assert described["params"]["count"]["kind"] == "int"
    assert described["scenarios"] == ["fast", "shifted"]
    assert described["outputs"] == ["values", "summary", "broken"]
    assert described["config"] == {"offset": 0}


def test_the_sir_example_is_seeded_and_its_scenarios_change_it(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    sys.modules.pop("model", None)
    from model import SIR

    base = SIR().simulate({"beta": 0.5}, seed=3)
    again = SIR().simulate({"beta": 0.5}, seed=3)
    lockdown = SIR().simulate({"beta": 0.5}, seed=3, scenario="lockdown")
    vaccinated = SIR().simulate({"beta": 0.5}, seed=3, scenario="vaccination")

    assert base["incidence"].equals(again["incidence"])
    total = sum(base["incidence"].column("new_infections").to_pylist())
    assert sum(lockdown["incidence"].column("new_infections").to_pylist()) < total
    assert vaccinated["prevalence"].column("recovered").to_pylist()[0] >= 5000
    sys.modules.pop("model", None)
