"""The child runner's promise to run on Python 3.8 and later, kept on a real 3.8.

test_environments.py shows a `.python-version` pin is honoured, with the worker's own
Python; here a bundle pins the oldest Python the child runner supports, so the runner
itself (framing, argument checks, error reports) runs on 3.8 in a real uv environment and a
real child process. ruff (per-file target) and vermin check the same file statically in
CI; this catches what they cannot see, such as a newer form of a library call.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelops.bundle.uv import run_uv
from modelops.contracts import BundleRef, ErrorClass, SimTask
from modelops.runtime import TaskRunner

OLDEST = "3.8"  # the child_runner.py docstring and docs/runtime.md promise this

WIRE = """
import json, sys

def wire(entrypoint, params, seed):
    if entrypoint == "raise":
        raise ValueError("boom")
    if entrypoint == "not-a-dict":
        return [b"a"]
    return {"python": json.dumps(list(sys.version_info[:2])).encode()}
"""
RAISE_LINE = WIRE.lstrip().splitlines().index('        raise ValueError("boom")') + 1


def uv_finds(version: str) -> str | None:
    """The interpreter uv picks for `version`, looked up as env.py's builds do."""
    done = run_uv(["python", "find", version])
    return done.stdout.strip() if done.returncode == 0 else None


@pytest.fixture
def python_oldest(monkeypatch: pytest.MonkeyPatch) -> str:
    """A Python 3.8 that uv finds: as this machine is set up, or else a pyenv-installed one
    put first on PATH (pyenv's shims only answer for the active version)."""
    found = uv_finds(OLDEST)
    if found:
        return found
    path = os.environ.get("PATH", "")
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for python in sorted(pyenv_root.glob(f"versions/{OLDEST}.*/bin/python{OLDEST}")):
        monkeypatch.setenv("PATH", f"{python.parent}{os.pathsep}{path}")
        found = uv_finds(OLDEST)
        if found:
            return found
    pytest.skip(
        f"no Python {OLDEST} on this machine: `uv python find {OLDEST}` (downloads off) "
        f"finds none, and {pyenv_root}/versions has no {OLDEST}.x"
    )


@pytest.fixture
def pinned_bundle(make_bundle, python_oldest: str) -> BundleRef:
    return make_bundle({"wire.py": WIRE, ".python-version": f"{OLDEST}\n"}, name="py38")


def test_the_wire_runs_on_the_pinned_oldest_python(
    runner: TaskRunner, pinned_bundle: BundleRef
) -> None:
    result = runner.run(SimTask(pinned_bundle, "", {}, seed=1))
    assert result.ok, result.error
    assert tuple(json.loads(result.outputs["python"].data)) == (3, 8)


def test_a_model_error_on_the_oldest_python_is_a_model_error(
    runner: TaskRunner, pinned_bundle: BundleRef
) -> None:
    failed = runner.run(SimTask(pinned_bundle, "raise", {}, seed=1))
    assert failed.error is not None
    assert failed.error.error_class is ErrorClass.MODEL, failed.error  # not a crash
    assert failed.error.message == "ValueError: boom"
    assert f'wire.py", line {RAISE_LINE}, in wire' in failed.error.traceback
    assert 'raise ValueError("boom")' in failed.error.traceback


def test_a_non_dict_output_on_the_oldest_python_is_bad_output(
    runner: TaskRunner, pinned_bundle: BundleRef
) -> None:
    failed = runner.run(SimTask(pinned_bundle, "not-a-dict", {}, seed=1))
    assert failed.error is not None
    assert failed.error.error_class is ErrorClass.BAD_OUTPUT, failed.error
    assert "wire returned list" in failed.error.message
