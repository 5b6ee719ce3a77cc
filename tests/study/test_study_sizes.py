"""Studies too large to plan or hold are refused at their line, at once; large studies that
can be planned lazily load at once too, without materialising anything."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from modelops.contracts import ErrorClass, ModelOpsError
from modelops.study import load_study, plan


def grid(*points: int, replicates: int = 1) -> str:
    dims = "".join(
        f"[parameters.dims.x{i}]\nlow = 0.0\nhigh = 1.0\npoints = {n}\n"
        for i, n in enumerate(points)
    )
    return f'bundle = "model"\nreplicates = {replicates}\n[parameters]\nsampler = "grid"\n{dims}'


def sampled(sampler: str, n: int, dims: int = 2, replicates: int = 1) -> str:
    table = "".join(f"[parameters.dims.x{i}]\nlow = 0.0\nhigh = 1.0\n" for i in range(dims))
    return (
        f'bundle = "model"\nreplicates = {replicates}\n[parameters]\n'
        f'sampler = "{sampler}"\nn = {n}\n{table}'
    )


def refused(tmp_path: Path, text: str) -> str:
    """The one-line message loading the study file fails with, and fast."""
    path = tmp_path / "study.toml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(ModelOpsError) as excinfo:
        load_study(path)
    assert time.monotonic() - started < 5
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT
    message = excinfo.value.info.message
    assert "\n" not in message
    return message.removeprefix(f"{path}:")


def test_a_grid_of_three_billion_points_is_refused_at_its_dims(tmp_path: Path) -> None:
    assert refused(tmp_path, grid(1442, 1442, 1443)) == (
        "5: parameters.dims: the grid has 1,442 x 1,442 x 1,443 = 3,000,522,252 points, "
        "more than the 1,000,000,000 simulations a study may have"
    )


def test_a_grid_dimension_too_long_to_hold_is_refused_at_its_points(tmp_path: Path) -> None:
    assert refused(tmp_path, grid(3_000_000_000)) == (
        "8: parameters.dims.x0.points: must be at most 1,000,000 (a grid dimension's points "
        "are held in memory), got 3,000,000,000"
    )


@pytest.mark.parametrize("sampler", ["uniform", "lhs", "sobol"])
def test_more_samples_than_a_study_may_have_are_refused_at_n(tmp_path: Path, sampler: str) -> None:
    assert refused(tmp_path, sampled(sampler, 3_000_000_000)) == (
        "5: parameters.n: must be at most 1,000,000,000 (the simulations a study may have), "
        "got 3,000,000,000"
    )


def test_a_latin_hypercube_too_large_to_draw_at_once_is_refused_at_n(tmp_path: Path) -> None:
    assert refused(tmp_path, sampled("lhs", 10_000_000, dims=4)) == (
        "5: parameters.n: sampler 'lhs' draws all n x dimensions values at once: "
        "10,000,000 x 4 = 40,000,000, more than 16,777,216; use a smaller n, or sampler "
        "'sobol' or 'uniform', which draw in blocks"
    )


def test_sobol_beyond_its_direction_numbers_is_refused_at_dims(tmp_path: Path) -> None:
    assert refused(tmp_path, sampled("sobol", 8, dims=21202)).startswith(
        "6: parameters.dims: sampler 'sobol' takes at most 21,201 dimensions, got 21,202"
    )


def test_too_many_replicates_are_refused_at_replicates(tmp_path: Path) -> None:
    assert refused(tmp_path, sampled("uniform", 4, replicates=10_000_000)) == (
        "2: replicates: must be at most 1,000,000 (one parameter set's seeds are held in "
        "memory), got 10,000,000"
    )
    assert refused(tmp_path, grid(1000, 1000, replicates=5000)) == (
        "2: replicates: 1,000,000 parameter sets x 5,000 replicates = 5,000,000,000 "
        "simulations, more than the 1,000,000,000 a study may have"
    )


@pytest.mark.parametrize(
    "text",
    [grid(1000, 1000, 1000), sampled("uniform", 10**9), sampled("sobol", 2**29, replicates=1)],
    ids=["grid", "uniform", "sobol"],
)
def test_the_largest_studies_load_and_plan_lazily(tmp_path: Path, text: str) -> None:
    path = tmp_path / "study.toml"
    path.write_text(text)
    started = time.monotonic()
    spec = load_study(path)
    first = list(itertools.islice(plan(spec), 3))
    assert time.monotonic() - started < 10
    assert spec.n_simulations in (10**9, 2**29)
    assert [sim.index for sim in first] == [0, 1, 2]
