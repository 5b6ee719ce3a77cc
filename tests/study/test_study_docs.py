"""The examples in docs/studies.md are valid studies that do what the text says."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from modelops.study import StudySpec, plan, study_toml

DOC = Path(__file__).parents[2] / "docs" / "studies.md"
EXAMPLES = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.DOTALL)


def test_the_documentation_has_an_example_for_every_sampler(
    study: Callable[[str], StudySpec],
) -> None:
    samplers = [study(text).parameters.sampler for text in EXAMPLES]
    assert set(samplers) == {"list", "grid", "uniform", "lhs", "sobol"}


@pytest.mark.parametrize("text", EXAMPLES, ids=lambda text: text.split("sampler = ")[1][:7])
def test_every_example_reads_and_round_trips(study: Callable[[str], StudySpec], text: str) -> None:
    spec = study(text)
    assert study(study_toml(spec)) == spec


def test_the_counts_the_text_states(study: Callable[[str], StudySpec]) -> None:
    full, listed, grid = (study(text) for text in EXAMPLES[:3])
    assert (full.n_param_sets, full.n_simulations) == (128, 1280)
    assert full.limits().memory_limit_mb == 2048
    assert listed.n_simulations == 10
    assert next(iter(plan(listed))).params == {"days": 90, "beta": 0.3, "gamma": 0.1}
    assert (grid.n_param_sets, grid.n_simulations) == (30, 90)
    dims = grid.parameters.dims
    assert dims["beta"].grid_values() == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert dims["gamma"].grid_values() == [0.01, 0.1, 1.0]
    assert [s.params["population"] for s in plan(grid)][:6:3] == [1000, 5000]
