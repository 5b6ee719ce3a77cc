"""StudySpec: run limits, sizes, counts, bundle folders and equality."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from modelops.contracts import Isolation, RunLimits
from modelops.contracts.sizes import parse_size_mb
from modelops.study import PlannedSim, Resources, StudySpec, load_study, plan

DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_limits_come_from_resources(study: Callable[[str], StudySpec]) -> None:
    spec = study(
        'bundle = "m"\n[resources]\ntimeout = 600\nmemory_limit = "2GB"\nisolation = "recycle"\n'
        "max_tasks_per_process = 100\nretries = 3\nbatch_size = 50\n"
    )
    assert spec.limits() == RunLimits(
        timeout_s=600.0,
        memory_limit_mb=2048.0,
        isolation=Isolation.RECYCLE,
        max_tasks_per_process=100,
        retries=3,
    )
    assert spec.resources.batch_size == 50
    assert type(spec.resources.timeout) is float


def test_default_limits_are_the_runtime_defaults(study: Callable[[str], StudySpec]) -> None:
    spec = study('bundle = "m"\n')
    assert spec.limits() == RunLimits()
    assert spec.resources.batch_size is None


@pytest.mark.parametrize(
    "text, megabytes",
    [
        ("2GB", 2048.0),
        ("512MB", 512.0),
        ("1.5g", 1536.0),
        ("512m", 512.0),
        ("2 GiB", 2048.0),
        ("1024kb", 1.0),
        ("1T", 1048576.0),
        ("300", 300.0),
    ],
)
def test_memory_sizes(text: str, megabytes: float) -> None:
    assert parse_size_mb(text) == megabytes
    assert Resources.model_validate({"memory_limit": text}).memory_limit_mb == megabytes


@pytest.mark.parametrize("text", ["", "GB", "2 gigs", "-1GB", "512b", "1.2.3MB"])
def test_sizes_that_are_not_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size_mb(text)


def test_memory_limit_as_a_number_is_megabytes(study: Callable[[str], StudySpec]) -> None:
    assert study('bundle = "m"\n[resources]\nmemory_limit = 768\n').limits().memory_limit_mb == 768
    assert Resources(memory_limit_mb=512).memory_limit_mb == 512.0


def test_counts(study: Callable[[str], StudySpec]) -> None:
    spec = study(
        'bundle = "m"\nreplicates = 7\n[parameters]\nsampler = "grid"\n'
        "[parameters.dims.a]\nlow = 0\nhigh = 1\npoints = 3\n"
        '[parameters.dims.b]\ntype = "int"\nlow = 1\nhigh = 2\npoints = 5\n'
    )
    assert spec.n_param_sets == 3 * 2  # int points 1, 1, 2, 2, 2 collapse to 1, 2
    assert spec.n_simulations == 42 == len(list(plan(spec)))


def test_relative_bundle_folder_is_taken_from_the_study_file(tmp_path: Path) -> None:
    (tmp_path / "models" / "sir").mkdir(parents=True)
    (tmp_path / "studies").mkdir()
    path = tmp_path / "studies" / "sweep.toml"
    path.write_text('bundle = "../models/sir"\n')
    spec = load_study(path)
    assert spec.source == path
    assert spec.bundle_path() == tmp_path / "studies" / ".." / "models" / "sir"
    assert spec.bundle_path().resolve() == (tmp_path / "models" / "sir").resolve()


def test_absolute_bundle_folder(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f'bundle = "{tmp_path / "models"}"\n')
    assert load_study(path).bundle_path() == tmp_path / "models"


def test_a_folder_that_does_not_exist_yet_is_still_a_folder(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('bundle = "models/sir"\n')
    assert load_study(path).bundle_path() == tmp_path / "models" / "sir"


@pytest.mark.parametrize("bundle", [f"org/sir@{DIGEST}", "org/sir:v1", "localhost/sir:latest"])
def test_references_have_no_bundle_path(tmp_path: Path, bundle: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f'bundle = "{bundle}"\n')
    spec = load_study(path)
    assert spec.bundle == bundle
    assert spec.bundle_path() is None


def test_without_a_source_a_folder_is_relative_to_the_working_directory(
    study: Callable[[str], StudySpec],
) -> None:
    assert study('bundle = "models/sir"\n', None).bundle_path() == Path("models/sir")


def test_source_is_not_part_of_equality_or_serialisation(tmp_path: Path) -> None:
    one, other = tmp_path / "a.toml", tmp_path / "b.toml"
    one.write_text('bundle = "m"\nseed = 4\n')
    other.write_text('bundle = "m"\nseed = 4\n')
    a, b = load_study(one), load_study(other)
    assert a.source != b.source
    assert a == b
    assert "source" not in a.model_dump()
    assert a != load_study(one).model_copy(update={"seed": 5})


def test_specs_are_immutable(study: Callable[[str], StudySpec]) -> None:
    spec = study('bundle = "m"\n')
    with pytest.raises(ValueError, match="frozen"):
        spec.seed = 3  # type: ignore[misc]
    sim = next(iter(plan(spec)))
    assert isinstance(sim, PlannedSim)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sim.seed = 3  # type: ignore[misc]


def test_specs_can_be_built_in_python() -> None:
    spec = StudySpec(
        bundle="m",
        parameters={"sampler": "lhs", "n": 4, "dims": {"beta": {"low": 0.1, "high": 0.9}}},
        resources=Resources(isolation="cold"),
        source=Path("x/study.toml"),
    )
    assert spec.n_simulations == 4
    assert spec.limits().isolation is Isolation.COLD
    assert spec.bundle_path() == Path("x/m")


def test_a_json_dump_validates_back_to_an_equal_spec(study: Callable[[str], StudySpec]) -> None:
    """Job records keep the spec as JSON and rebuild it to resume."""
    spec = study(
        'bundle = "m"\nseed = 9\n[config]\nregion = "north"\n'
        '[parameters]\nsampler = "grid"\n[parameters.dims.a]\ntype = "int"\nlow = 1\nhigh = 9\n'
        'points = 3\n[resources]\nmemory_limit = "1g"\nisolation = "cold"\n'
    )
    dumped = spec.model_dump(mode="json")
    assert dumped["resources"]["isolation"] == "cold"
    again = StudySpec.model_validate(dumped)
    assert again == spec
    assert list(plan(again)) == list(plan(spec))
