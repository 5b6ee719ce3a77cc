"""Bundle environments from each kind of dependency description, built by real uv."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

from tests.conftest import write_project
from uv import find_uv_bin

from modelops.bundle import LayoutStore, build_bundle
from modelops.contracts import SimTask
from modelops.runtime import TaskRunner
from modelops.settings import Settings

SIX_WIRE = """
import json, sys
import six

def wire(entrypoint, params, seed):
    return {"env": json.dumps({"six": six.__version__, "file": six.__file__,
                               "bytecode": six.__cached__, "python": sys.executable}).encode()}
"""

PYPROJECT = """
[project]
name = "six-user"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["six"]
"""


def loads_without_compiling(bytecode: Path, source: Path) -> bool:
    """Whether Python loads `bytecode` for `source` rather than compiling `source`: it is for
    this Python, and its header names the source's mtime and size (or its hash)."""
    if not bytecode.is_file():
        return False
    header = bytecode.read_bytes()[:16]
    if header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    if int.from_bytes(header[4:8], "little") & 1:  # checked against a hash of the source
        return header[8:16] == importlib.util.source_hash(source.read_bytes())
    stat = source.stat()
    return (
        int.from_bytes(header[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
        and int.from_bytes(header[12:16], "little") == stat.st_size & 0xFFFFFFFF
    )


def run_env(runner: TaskRunner, store: LayoutStore, project: Path) -> dict:
    built = build_bundle(project)
    ref = store.put(built)
    result = runner.run(SimTask(ref, "", {}, seed=1))
    assert result.ok, result.error
    env = json.loads(result.outputs["env"].data)
    envs = Settings.from_env().cache / "envs"
    assert Path(env["file"]).is_relative_to(envs)
    assert Path(env["python"]).is_relative_to(envs)
    # compiled when the environment was built (a child never writes bytecode), so every
    # child loads it instead of compiling the package again
    assert loads_without_compiling(Path(env["bytecode"]), Path(env["file"]))
    assert Path(env["file"]).stat().st_nlink == 1  # its own copy, not a link into uv's cache
    return {"kind": built.config.environment.kind, **env}


def test_uv_lock_is_installed_as_locked(
    tmp_path: Path, runner: TaskRunner, store: LayoutStore
) -> None:
    project = write_project(tmp_path / "locked", {"wire.py": SIX_WIRE, "pyproject.toml": PYPROJECT})
    subprocess.run(
        [find_uv_bin(), "lock", "--project", str(project)], check=True, capture_output=True
    )
    lock = (project / "uv.lock").read_text()
    locked_version = lock.split('name = "six"\nversion = "')[1].split('"')[0]

    env = run_env(runner, store, project)

    assert env["kind"] == "uv.lock"
    assert env["six"] == locked_version
    assert (project / "uv.lock").read_text() == lock  # never re-resolved or rewritten


def test_pyproject_dependencies_without_a_lock(
    tmp_path: Path, runner: TaskRunner, store: LayoutStore
) -> None:
    project = write_project(
        tmp_path / "unlocked", {"wire.py": SIX_WIRE, "pyproject.toml": PYPROJECT}
    )
    env = run_env(runner, store, project)
    assert env["kind"] == "pyproject.toml"
    assert env["six"]


def test_requirements_file(tmp_path: Path, runner: TaskRunner, store: LayoutStore) -> None:
    project = write_project(
        tmp_path / "required", {"wire.py": SIX_WIRE, "requirements.txt": "six\n"}
    )
    env = run_env(runner, store, project)
    assert env["kind"] == "requirements.txt"


def test_a_pinned_python_the_machine_has_is_used(
    tmp_path: Path, runner: TaskRunner, store: LayoutStore
) -> None:
    import platform

    minor = ".".join(platform.python_version_tuple()[:2])
    project = write_project(
        tmp_path / "pinned",
        {"wire.py": SIX_WIRE, "requirements.txt": "six\n", ".python-version": f"{minor}\n"},
    )
    env = run_env(runner, store, project)
    assert build_bundle(project).config.environment.files == ("requirements.txt", ".python-version")
    assert env["kind"] == "requirements.txt"


def test_a_pinned_python_the_machine_lacks_is_a_clear_env_build_error(
    tmp_path: Path, runner: TaskRunner, store: LayoutStore
) -> None:
    project = write_project(
        tmp_path / "pinned-missing",
        {"wire.py": SIX_WIRE, "requirements.txt": "six\n", ".python-version": "3.4\n"},
    )
    ref = store.put(build_bundle(project))
    result = runner.run(SimTask(ref, "", {}, seed=1))
    assert result.error is not None
    assert result.error.error_class.value == "env_build"
    assert "3.4" in result.error.message and "\n" not in result.error.message
