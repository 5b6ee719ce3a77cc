"""TaskRunner with real uv venvs and real child processes, no Dask in between."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from modelops.bundle import LayoutStore
from modelops.contracts import ArtifactKind, BundleRef, ErrorClass, SimTask
from modelops.runtime import TaskRunner
from modelops.settings import Settings

ECHO_WIRE = """
import json, os

def wire(entrypoint, params, seed):
    if entrypoint == "raise":
        raise ZeroDivisionError("model divided by zero")
    if entrypoint == "exit":
        os._exit(3)
    if entrypoint == "print":
        print("x" * 1_000_000)
        print("last stdout line")
        import sys
        print("stderr says hello", file=sys.stderr)
    if entrypoint == "not-a-dict":
        return [b"a"]
    if entrypoint == "not-bytes":
        return {"answer": "forty-two"}
    return {"echo": json.dumps({"pid": os.getpid(), "params": params, "seed": seed}).encode()}
"""


@pytest.fixture
def echo(make_bundle) -> BundleRef:
    return make_bundle({"wire.py": ECHO_WIRE}, name="echo")


def echo_of(result) -> dict:
    assert result.ok, result.error
    return json.loads(result.outputs["echo"].data)


def test_smoke_bundle_runs_in_its_own_venv(runner: TaskRunner, store: LayoutStore) -> None:
    from modelops.bundle import build_bundle
    from modelops.devtools.smoke import SMOKE_BUNDLE

    ref = store.put(build_bundle(SMOKE_BUNDLE))
    result = runner.run(SimTask(ref, "sir", {"beta": 0.4, "days": 30}, seed=7))
    assert result.ok, result.error
    table = result.outputs["result"]
    assert table.kind is ArtifactKind.TABLE and table.rows == 30
    assert table.table().column_names[0] == "day"
    metadata = json.loads(result.outputs["metadata"].data)
    assert result.outputs["metadata"].kind is ArtifactKind.BYTES
    assert Path(metadata["python"]).is_relative_to(Settings.from_env().cache / "envs")
    assert metadata["seed"] == 7
    assert set(result.timings) >= {"fetch_s", "env_s", "wire_s", "total_s"}


def test_warm_child_serves_many_tasks_and_survives_model_errors(
    runner: TaskRunner, echo: BundleRef
) -> None:
    first = echo_of(runner.run(SimTask(echo, "", {"beta": 1.0}, seed=1)))
    failed = runner.run(SimTask(echo, "raise", {}, seed=2))
    second = echo_of(runner.run(SimTask(echo, "", {"beta": 2.5}, seed=3)))

    assert failed.error is not None
    assert failed.error.error_class is ErrorClass.MODEL
    assert failed.error.message == "ZeroDivisionError: model divided by zero"
    assert 'raise ZeroDivisionError("model divided by zero")' in failed.error.traceback
    assert first["pid"] == second["pid"]
    assert first["params"] == {"beta": 1.0} and second["seed"] == 3
    assert isinstance(first["params"]["beta"], float)


def test_crashed_child_is_reported_and_replaced(runner: TaskRunner, echo: BundleRef) -> None:
    before = echo_of(runner.run(SimTask(echo, "", {}, seed=1)))
    crashed = runner.run(SimTask(echo, "exit", {}, seed=2))
    after = echo_of(runner.run(SimTask(echo, "", {}, seed=3)))

    assert crashed.error is not None
    assert crashed.error.error_class is ErrorClass.CRASH
    assert "exit code 3" in crashed.error.message
    assert before["pid"] != after["pid"]


def test_model_output_goes_to_logs_not_the_protocol(runner: TaskRunner, echo: BundleRef) -> None:
    result = runner.run(SimTask(echo, "print", {}, seed=1))
    assert result.ok, result.error
    assert json.loads(result.outputs["echo"].data)["seed"] == 1
    assert "last stdout line" in result.logs
    assert "stderr says hello" in result.logs
    assert len(result.logs) < 64 * 1024  # a bounded tail, not the whole megabyte


@pytest.mark.parametrize(
    ("entrypoint", "expected"),
    [
        ("not-a-dict", "wire returned list; it must return dict[str, bytes]"),
        ("not-bytes", "wire output 'answer' is str; outputs must be bytes"),
    ],
)
def test_bad_outputs_are_named(
    runner: TaskRunner, echo: BundleRef, entrypoint: str, expected: str
) -> None:
    result = runner.run(SimTask(echo, entrypoint, {}, seed=1))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.BAD_OUTPUT
    assert result.error.message.startswith(expected)
    assert "\n" not in result.error.message


def test_requested_outputs_are_kept_and_missing_ones_named(runner: TaskRunner, make_bundle) -> None:
    ref = make_bundle(
        {"wire.py": "def wire(e, p, s):\n    return {'a': b'1', 'b': b'2'}\n"}, name="two"
    )
    only_b = runner.run(SimTask(ref, "", {}, seed=1, outputs=("b",)))
    missing = runner.run(SimTask(ref, "", {}, seed=1, outputs=("a", "incidence")))

    assert only_b.ok and list(only_b.outputs) == ["b"]
    assert only_b.outputs["b"].data == b"2"
    assert missing.error is not None
    assert missing.error.error_class is ErrorClass.BAD_OUTPUT
    assert "'incidence'" in missing.error.message


def test_config_reaches_a_wire_that_accepts_it_and_is_never_dropped(
    runner: TaskRunner, make_bundle, echo: BundleRef
) -> None:
    ref = make_bundle(
        {
            "wire.py": (
                "import json\n"
                "def wire(entrypoint, params, seed, config=None):\n"
                "    return {'config': json.dumps(config).encode()}\n"
            )
        },
        name="configured",
    )
    result = runner.run(SimTask(ref, "", {}, seed=1, config={"region": "north"}))
    refused = runner.run(SimTask(echo, "", {}, seed=1, config={"region": "north"}))

    assert result.ok and json.loads(result.outputs["config"].data) == {"region": "north"}
    assert refused.error is not None
    assert refused.error.error_class is ErrorClass.BAD_INPUT
    assert "takes no 'config' argument" in refused.error.message


def test_missing_module_is_reported_as_missing_dependency(runner: TaskRunner, make_bundle) -> None:
    ref = make_bundle(
        {"wire.py": "import modelops_absent_module\n\ndef wire(e, p, s):\n    return {}\n"},
        name="lacking",
    )
    result = runner.run(SimTask(ref, "", {}, seed=1))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.MISSING_DEPENDENCY
    assert "'modelops_absent_module'" in result.error.message
    assert "\n" not in result.error.message


def test_wire_that_is_not_a_function_is_a_bad_bundle(runner: TaskRunner, make_bundle) -> None:
    ref = make_bundle({"wire.py": "wire = 3\n"}, name="notcallable")
    result = runner.run(SimTask(ref, "", {}, seed=1))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.BAD_BUNDLE
    assert result.error.message == "wire module 'wire' has no function 'wire'"


def test_uninstallable_dependency_names_the_package(runner: TaskRunner, make_bundle) -> None:
    ref = make_bundle(
        {
            "wire.py": "def wire(e, p, s):\n    return {}\n",
            "requirements.txt": "modelops-no-such-package-for-tests\n",
        },
        name="uninstallable",
    )
    result = runner.run(SimTask(ref, "", {}, seed=1))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.ENV_BUILD
    assert "modelops-no-such-package-for-tests" in result.error.message
    assert "\n" not in result.error.message
    assert "uv pip install" in result.error.traceback
    envs = Settings.from_env().cache / "envs"
    assert not [p for p in envs.iterdir() if p.name.startswith(".partial-")]


def test_code_only_change_reuses_the_environment(runner: TaskRunner, make_bundle) -> None:
    wire = "import json, sys\ndef wire(e, p, s):\n    return {'py': sys.executable.encode()}\n"
    requirements = "# no dependencies, but an environment file all the same\n"
    first = make_bundle({"wire.py": wire, "requirements.txt": requirements}, name="v1")
    second = make_bundle(
        {"wire.py": wire + "# a comment changes the code\n", "requirements.txt": requirements},
        name="v2",
    )
    a = runner.run(SimTask(first, "", {}, seed=1))
    b = runner.run(SimTask(second, "", {}, seed=1))
    assert first.digest != second.digest
    assert a.ok and b.ok
    assert a.outputs["py"].data == b.outputs["py"].data


def test_the_warm_pool_keeps_at_most_its_bound_and_closes_the_least_recently_used(
    store, make_bundle
) -> None:
    bundles = [
        make_bundle({"wire.py": ECHO_WIRE + f"\n# bundle {i}\n"}, name=f"pooled{i}")
        for i in range(3)
    ]
    bounded = TaskRunner(store, Settings.from_env().cache, max_idle_children=2)
    try:
        pids = [echo_of(bounded.run(SimTask(ref, "", {}, seed=1)))["pid"] for ref in bundles]
        again = echo_of(bounded.run(SimTask(bundles[2], "", {}, seed=2)))["pid"]
        first_again = echo_of(bounded.run(SimTask(bundles[0], "", {}, seed=2)))["pid"]
    finally:
        bounded.close()
    assert len(set(pids)) == 3
    assert again == pids[2]  # still warm
    assert first_again != pids[0]  # the oldest was closed when the third arrived
    assert not psutil.pid_exists(pids[0]) or psutil.Process(pids[0]).status() == "zombie"
