"""A project's own package is importable in its child, as `uv run` would have it, while its
environment stays keyed by the lock: a code change reuses the same environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import write_project

from modelops.bundle import LayoutStore, build_bundle
from modelops.bundle.cache import fetch_bundle
from modelops.bundle.discover import import_paths
from modelops.bundle.uv import run_uv
from modelops.contracts import SimTask
from modelops.runtime import TaskRunner
from modelops.runtime.env import env_digest
from modelops.settings import Settings

SRC_PYPROJECT = """
[project]
name = "srcpkg"
version = "0.3.0"
requires-python = ">=3.11"
dependencies = ["six"]

[project.entry-points."modelops.wire"]
wire = "srcpkg.wire:wire"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""

SRC_WIRE = """
import json
import six

from srcpkg.model import incidence

def wire(entrypoint, params, seed):
    return {"out": json.dumps({"value": incidence(params["beta"]), "module": __file__,
                               "six": six.__name__}).encode()}
"""

MODEL = """
def incidence(beta):
    return beta * {factor}
"""


def locked(root: Path) -> Path:
    done = run_uv(["lock", "--project", str(root)])
    assert done.returncode == 0, done.stderr
    return root


def run(runner: TaskRunner, store: LayoutStore, root: Path) -> dict:
    ref = store.put(build_bundle(root))
    result = runner.run(SimTask(ref, "", {"beta": 2}, seed=1))
    assert result.ok, result.error
    return json.loads(result.outputs["out"].data)


def test_a_src_layout_project_with_an_entry_point_wire_runs(
    tmp_path: Path, runner: TaskRunner, store: LayoutStore
) -> None:
    root = locked(
        write_project(
            tmp_path / "srcpkg",
            {
                "pyproject.toml": SRC_PYPROJECT,
                "src/srcpkg/__init__.py": "",
                "src/srcpkg/wire.py": SRC_WIRE,
                "src/srcpkg/model.py": MODEL.format(factor=10),
            },
        )
    )
    built = build_bundle(root)
    assert built.config.wire == "srcpkg.wire:wire"
    assert built.config.import_paths == ("src",)

    out = run(runner, store, root)

    assert out["value"] == 20
    assert out["six"] == "six"
    children = Settings.from_env().cache / "children"  # the child's own copy of the bundle
    assert Path(out["module"]).is_relative_to(children)
    assert Path(out["module"]).parts[-3:] == ("src", "srcpkg", "wire.py")


def test_a_code_change_reuses_the_environment(
    tmp_path: Path, runner: TaskRunner, store: LayoutStore
) -> None:
    files = {
        "pyproject.toml": SRC_PYPROJECT,
        "src/srcpkg/__init__.py": "",
        "src/srcpkg/wire.py": SRC_WIRE,
        "src/srcpkg/model.py": MODEL.format(factor=10),
    }
    root = locked(write_project(tmp_path / "v1", files))
    first = store.put(build_bundle(root))
    (root / "src/srcpkg/model.py").write_text(MODEL.format(factor=100))
    second = store.put(build_bundle(root))
    assert first.digest != second.digest

    cache = Settings.from_env().cache
    digests = {env_digest(fetch_bundle(ref, store, cache)) for ref in (first, second)}
    assert len(digests) == 1
    assert run(runner, store, root)["value"] == 200


def test_a_wire_module_that_imports_its_own_src_package(
    tmp_path: Path, runner: TaskRunner, store: LayoutStore
) -> None:
    root = write_project(
        tmp_path / "flatwire",
        {
            "wire.py": """
                import json
                from mymodel.core import simulate

                def wire(entrypoint, params, seed):
                    return {"out": json.dumps({"value": simulate(params["beta"], seed)}).encode()}
                """,
            "pyproject.toml": """
                [project]
                name = "mymodel"
                version = "1.0"
                requires-python = ">=3.11"
                """,
            "src/mymodel/__init__.py": "",
            "src/mymodel/core.py": "def simulate(beta, seed):\n    return beta + seed\n",
        },
    )
    assert run(runner, store, root) == {"value": 3}


@pytest.mark.parametrize(
    ("tool", "files", "expected"),
    [
        ({}, ["model.py", "pkg/__init__.py"], ()),
        ({}, ["src/pkg/__init__.py"], ("src",)),
        ({}, ["src/README.md"], ()),
        (
            {"hatch": {"build": {"targets": {"wheel": {"packages": ["lib/pkg"]}}}}},
            ["lib/pkg/__init__.py"],
            ("lib",),
        ),
        (
            {"hatch": {"build": {"targets": {"wheel": {"sources": {"code": ""}}}}}},
            ["code/pkg/__init__.py"],
            ("code",),
        ),
        (
            {"setuptools": {"packages": {"find": {"where": ["python"]}}}},
            ["python/pkg/mod.py"],
            ("python",),
        ),
        ({"setuptools": {"package-dir": {"": "lib"}}}, ["lib/pkg/mod.py"], ("lib",)),
        (
            {"poetry": {"packages": [{"include": "pkg", "from": "source"}]}},
            ["source/pkg/__init__.py"],
            ("source",),
        ),
        ({"uv": {"build-backend": {"module-root": ""}}}, ["pkg/__init__.py"], ()),
        ({"setuptools": {"package-dir": {"": "../elsewhere"}}}, ["x.py"], ()),
    ],
)
def test_import_paths_follow_the_build_backend(
    tool: dict, files: list[str], expected: tuple[str, ...]
) -> None:
    assert import_paths({"tool": tool}, set(files)) == expected


def test_flat_bundles_keep_their_digest_format() -> None:
    """A bundle without extra import paths writes no `import_paths` key, so bundles built
    before this feature keep their digests."""
    root = Path(__file__).parents[1] / "fixtures" / "smoke_bundle"
    built = build_bundle(root)
    assert built.config.import_paths == ()
    assert b"import_paths" not in built.config.to_bytes()
