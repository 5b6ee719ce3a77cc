"""BaseModel: what a model declares, and the one path from (params, config, seed) to outputs.

    class SIR(BaseModel):
        params = {"beta": Param(0.05, 1.0, default=0.3), ...}
        config = {"days": 100}

        def build_sim(self, params, config): ...      # state for one simulation
        def run_sim(self, state, seed): ...           # raw results

        @model_output("incidence")
        def incidence(self, raw): ...                 # a polars, pandas or pyarrow table

        @model_scenario("lockdown")
        def lockdown(self):
            return {"params": {"beta": 0.1}, "config": {"days": 200}}

`model.simulate(params, seed)` on a laptop and the same entrypoint on the cluster run the
same code, so the same seed gives the same outputs in both places.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from modelops.sdk.params import Param, ParameterError
from modelops.sdk.tables import to_arrow

_OUTPUT = "__modelops_output__"
_SCENARIO = "__modelops_scenario__"


class SimulationError(ValueError):
    """A request the model cannot serve (unknown scenario, output, config key); one line."""

    modelops_error_class = "bad_input"  # how the child runner classes it


def model_output(name: str) -> Callable[[Callable], Callable]:
    """Mark a method as the producer of output `name`: it gets the raw results of run_sim."""

    def mark(method: Callable) -> Callable:
        setattr(method, _OUTPUT, name)
        return method

    return mark


def model_scenario(name: str) -> Callable[[Callable], Callable]:
    """Mark a method as scenario `name`: it returns {"params": {...}, "config": {...}}."""

    def mark(method: Callable) -> Callable:
        setattr(method, _SCENARIO, name)
        return method

    return mark


class BaseModel:
    params: ClassVar[Mapping[str, Param]] = {}
    config: ClassVar[Mapping[str, Any]] = {}

    def build_sim(self, params: dict[str, Any], config: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define build_sim(params, config)")

    def run_sim(self, state: Any, seed: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define run_sim(state, seed)")

    @classmethod
    def outputs(cls) -> dict[str, str]:
        """Output name → method name, in declaration order."""
        return _marked(cls, _OUTPUT)

    @classmethod
    def scenarios(cls) -> dict[str, str]:
        return _marked(cls, _SCENARIO)

    def scenario_patch(self, scenario: str) -> dict[str, dict[str, Any]]:
        """The params and config patches of `scenario`; `a+b` applies a, then b."""
        patch: dict[str, dict[str, Any]] = {"params": {}, "config": {}}
        for name in filter(None, scenario.split("+")):
            method = self.scenarios().get(name)
            if method is None:
                raise SimulationError(
                    f"{type(self).__name__} has no scenario {name!r}; it has "
                    f"{', '.join(self.scenarios()) or 'none'}"
                )
            part = getattr(self, method)() or {}
            unknown = set(part) - {"params", "config"}
            if unknown:
                raise SimulationError(
                    f"scenario {name!r} returned keys {sorted(unknown)}; use 'params' and 'config'"
                )
            patch["params"].update(part.get("params", {}))
            patch["config"].update(part.get("config", {}))
        return patch

    @classmethod
    def scenario_hash(cls, scenario: str, patch: Mapping[str, Any]) -> str:
        """A short stable id of what a scenario changes, for records and caches."""
        text = json.dumps({"scenario": scenario, "patch": patch}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def resolve(
        self,
        params: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        scenario: str = "",
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The complete, validated parameter set and config one simulation runs with: the
        declared defaults, then what the caller fixed, then the scenario's patch."""
        patch = self.scenario_patch(scenario)
        given = {**(params or {}), **patch["params"]}
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise ParameterError(
                f"{type(self).__name__} has no parameter {unknown[0]!r}; it has "
                f"{', '.join(self.params) or 'none'}"
            )
        resolved = {}
        for name, param in self.params.items():
            if name in given:
                resolved[name] = param.check(name, given[name])
            elif param.default is not None:
                resolved[name] = param.check(name, param.default)
            else:
                raise ParameterError(f"parameter {name!r} has no default and was not given")
        settings = {**self.config, **(config or {}), **patch["config"]}
        unknown = sorted(set(settings) - set(self.config))
        if unknown:
            raise SimulationError(
                f"{type(self).__name__} has no config key {unknown[0]!r}; it has "
                f"{', '.join(self.config) or 'none'}"
            )
        return resolved, settings

    def simulate(
        self,
        params: Mapping[str, Any] | None = None,
        seed: int = 0,
        scenario: str = "",
        config: Mapping[str, Any] | None = None,
        outputs: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Run one simulation; returns {output name: pyarrow.Table} for the outputs asked for
        (all of them by default), computing only those."""
        resolved, settings = self.resolve(params, config, scenario)
        declared = self.outputs()
        wanted = list(declared) if outputs is None else list(outputs)
        missing = [name for name in wanted if name not in declared]
        if missing:
            raise SimulationError(
                f"{type(self).__name__} has no output {missing[0]!r}; it has "
                f"{', '.join(declared) or 'none'}"
            )
        raw = self.run_sim(self.build_sim(resolved, settings), seed)
        return {name: to_arrow(name, getattr(self, declared[name])(raw)) for name in wanted}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "params": {name: param.describe() for name, param in cls.params.items()},
            "config": dict(cls.config),
            "scenarios": list(cls.scenarios()),
            "outputs": list(cls.outputs()),
            "doc": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
        }


def _marked(cls: type, attribute: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, member in vars(klass).items():
            label = getattr(member, attribute, None)
            if label is not None:
                found[label] = name
    return found
