"""A bundle that declares no wire of its own runs the one a package of its environment
provides as a `modelops.wire` entry point, as the earlier system's Calabaria bundles did;
`bundle check` says which one was chosen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import write_project

from modelops.bundle import LayoutStore, build_bundle
from modelops.bundle.uv import run_uv
from modelops.contracts import BundleRef, ErrorClass, SimTask
from modelops.runtime import TaskRunner
from modelops.runtime.describe import check_bundle
from modelops.settings import Settings


def provider(name: str) -> dict[str, str]:
    """A package, vendored in the project, that provides a wire through an entry point."""
    return {
        f"vendor/{name}/pyproject.toml": f"""
            [project]
            name = "{name}"
            version = "1.0"
            requires-python = ">=3.11"

            [project.entry-points."modelops.wire"]
            wire = "{name}.wire:wire"

            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"
            """,
        f"vendor/{name}/src/{name}/__init__.py": "",
        f"vendor/{name}/src/{name}/wire.py": f"""
            import json

            def wire(entrypoint, params, seed):
                return {{"out": json.dumps({{"by": "{name}", "entrypoint": entrypoint,
                                            "x": params["x"] * 2}}).encode()}}
            """,
    }


def project(root: Path, *providers: str, extra: tuple[str, ...] = ()) -> Path:
    """A project with no wire of its own, depending on `providers` (vendored)."""
    deps = ", ".join(f'"{p}"' for p in (*providers, *extra))
    sources = "\n            ".join(f'{p} = {{ path = "vendor/{p}" }}' for p in providers)
    files = {
        "model.py": "X = 1\n",
        "pyproject.toml": f"""
            [project]
            name = "{root.name}"
            version = "0.1.0"
            requires-python = ">=3.11"
            dependencies = [{deps}]

            [tool.uv.sources]
            {sources}
            """,
    }
    for name in providers:
        files.update(provider(name))
    write_project(root, files)
    done = run_uv(["lock", "--project", str(root)])
    assert done.returncode == 0, done.stderr
    return root


def stored(store: LayoutStore, root: Path) -> BundleRef:
    built = build_bundle(root)
    assert built.config.wire == ""  # nothing of its own: found once the env exists
    return store.put(built)


def test_the_wire_of_a_dependency_runs_and_check_names_it(
    tmp_path: Path, runner: TaskRunner, store: LayoutStore
) -> None:
    ref = stored(store, project(tmp_path / "calabaria-style", "fakecal"))

    result = runner.run(SimTask(ref, "sir", {"x": 21}, seed=1))

    assert result.ok, result.error
    assert json.loads(result.outputs["out"].data) == {"by": "fakecal", "entrypoint": "sir", "x": 42}
    check = check_bundle(ref, store, Settings.from_env().cache)
    assert check.wire == "fakecal.wire:wire"
    assert check.models is None
    assert "fakecal.wire:wire (the 'modelops.wire' entry point of a package" in check.wire_source


def test_two_providers_are_refused_with_the_way_to_choose(
    tmp_path: Path, runner: TaskRunner, store: LayoutStore
) -> None:
    ref = stored(store, project(tmp_path / "two", "fakecal", "othercal"))
    result = runner.run(SimTask(ref, "", {"x": 1}, seed=1))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.BAD_BUNDLE
    assert "2 'modelops.wire' entry points (fakecal.wire:wire, othercal.wire:wire)" in (
        result.error.message
    )
    assert "[tool.modelops] wire" in result.error.message


def test_dependencies_without_a_wire_say_what_is_missing(
    tmp_path: Path, runner: TaskRunner, store: LayoutStore
) -> None:
    ref = stored(store, project(tmp_path / "none", extra=("six",)))
    result = runner.run(SimTask(ref, "", {}, seed=1))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.BAD_BUNDLE
    assert result.error.message.startswith("no wire function: the bundle declares none")


@pytest.mark.parametrize("declared", ["wire.py", "[tool.modelops] wire"])
def test_a_wire_of_its_own_wins_over_the_environment(
    tmp_path: Path, runner: TaskRunner, store: LayoutStore, declared: str
) -> None:
    root = project(tmp_path / f"own-{len(declared)}", "fakecal")
    own = 'import json\ndef wire(entrypoint, params, seed):\n    return {"out": b\'"own"\'}\n'
    if declared == "wire.py":
        (root / "wire.py").write_text(own)
    else:
        (root / "mine.py").write_text(own)
        text = (root / "pyproject.toml").read_text()
        (root / "pyproject.toml").write_text(text + '\n[tool.modelops]\nwire = "mine:wire"\n')
    ref = store.put(build_bundle(root))
    result = runner.run(SimTask(ref, "", {"x": 1}, seed=1))
    assert result.ok, result.error
    assert json.loads(result.outputs["out"].data) == "own"
