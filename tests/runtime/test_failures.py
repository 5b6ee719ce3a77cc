"""The failure table of the worker runtime, each row a real bundle that does exactly that."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import psutil
import pytest

from modelops.contracts import BundleRef, ErrorClass, Isolation, RunLimits, SimTask
from modelops.runtime import TaskRunner

MISBEHAVING = """
import ctypes, json, os, sys, time
from pathlib import Path

def wire(entrypoint, params, seed):
    pid = json.dumps({"pid": os.getpid(), "omp": os.environ.get("OMP_NUM_THREADS")}).encode()
    if entrypoint == "raise":
        raise ValueError("bad beta")
    if entrypoint == "exit":
        print("about to exit", file=sys.stderr, flush=True)
        os._exit(3)
    if entrypoint == "segfault":
        print("about to touch address 0", file=sys.stderr, flush=True)
        ctypes.string_at(0)
    if entrypoint == "hang":
        print("sleeping forever", file=sys.stderr, flush=True)
        time.sleep(600)
    if entrypoint == "grow":
        hog = []
        for _ in range(60):
            hog.append(b"x" * (20 << 20))
            time.sleep(0.02)
        time.sleep(600)
    if entrypoint == "memoryerror":
        raise MemoryError("cannot allocate")
    if entrypoint == "chatty":
        sys.stdout.write("o" * (10 << 20) + "\\nlast stdout line\\n")
        sys.stderr.write("e" * (10 << 20) + "\\nlast stderr line\\n")
    if entrypoint == "big":
        return {"big": bytes(range(256)) * (50 << 20 >> 8), "pid": pid}
    if entrypoint == "flaky":
        marker = Path(params["marker"])
        if not marker.exists():
            marker.write_text("crashed once")
            os._exit(9)
    return {"pid": pid}
"""


@pytest.fixture
def misbehaving(make_bundle) -> BundleRef:
    return make_bundle({"wire.py": MISBEHAVING}, name="misbehaving")


def task(ref: BundleRef, entrypoint: str, **limits) -> SimTask:
    return SimTask(ref, entrypoint, {}, seed=1, limits=RunLimits(retries=0, **limits))


def pid_of(result) -> int:
    assert result.ok, result.error
    return json.loads(result.outputs["pid"].data)["pid"]


def test_model_error_keeps_the_child(runner: TaskRunner, misbehaving: BundleRef) -> None:
    before = pid_of(runner.run(task(misbehaving, "")))
    failed = runner.run(task(misbehaving, "raise"))
    assert failed.error is not None and failed.error.error_class is ErrorClass.MODEL
    assert failed.error.one_line() == "model: ValueError: bad beta"
    assert 'raise ValueError("bad beta")' in failed.error.traceback
    assert pid_of(runner.run(task(misbehaving, ""))) == before


@pytest.mark.parametrize(
    ("entrypoint", "expected", "stderr_line"),
    [
        ("exit", "crash: exit code 3", "about to exit"),
        ("segfault", "crash: SIGSEGV", "about to touch address 0"),
    ],
)
def test_a_crash_is_named_with_its_stderr_and_the_child_replaced(
    runner: TaskRunner, misbehaving: BundleRef, entrypoint: str, expected: str, stderr_line: str
) -> None:
    before = pid_of(runner.run(task(misbehaving, "")))
    crashed = runner.run(task(misbehaving, entrypoint))
    assert crashed.error is not None
    assert crashed.error.one_line().startswith(expected)
    assert stderr_line in crashed.error.traceback
    assert not psutil.pid_exists(before) or psutil.Process(before).status() == "zombie"
    assert pid_of(runner.run(task(misbehaving, ""))) != before


def test_a_task_past_its_timeout_is_killed_with_its_process_group(
    runner: TaskRunner, misbehaving: BundleRef
) -> None:
    before = pid_of(runner.run(task(misbehaving, "")))
    hung = runner.run(task(misbehaving, "hang", timeout_s=1))
    assert hung.error is not None
    assert hung.error.error_class is ErrorClass.TIMEOUT
    assert hung.error.message.startswith("timeout after 1 s")
    assert "sleeping forever" in hung.error.traceback
    assert not psutil.pid_exists(before) or psutil.Process(before).status() == "zombie"
    assert pid_of(runner.run(task(misbehaving, ""))) != before


def test_a_child_growing_past_its_memory_limit_is_killed(
    runner: TaskRunner, misbehaving: BundleRef
) -> None:
    grown = runner.run(task(misbehaving, "grow", memory_limit_mb=300, timeout_s=60))
    assert grown.error is not None
    assert grown.error.error_class is ErrorClass.OOM, grown.error
    message = grown.error.message
    assert message.startswith("out of memory: used ") and ", limit 300 MB" in message
    used = float(message.removeprefix("out of memory: used ").split(" MB")[0])
    assert 300 < used < 1300
    assert pid_of(runner.run(task(misbehaving, ""))) > 0


def test_memory_error_in_the_model_is_classed_as_out_of_memory(
    runner: TaskRunner, misbehaving: BundleRef
) -> None:
    failed = runner.run(task(misbehaving, "memoryerror"))
    assert failed.error is not None and failed.error.error_class is ErrorClass.OOM


def test_megabytes_of_output_on_both_streams_never_block(
    runner: TaskRunner, misbehaving: BundleRef
) -> None:
    result = runner.run(task(misbehaving, "chatty"))
    assert result.ok, result.error
    assert "last stdout line" in result.logs and "last stderr line" in result.logs
    assert len(result.logs) < 64 << 10


def test_fifty_megabyte_outputs_arrive_intact(runner: TaskRunner, misbehaving: BundleRef) -> None:
    result = runner.run(task(misbehaving, "big"))
    assert result.ok, result.error
    expected = bytes(range(256)) * (50 << 20 >> 8)
    assert result.outputs["big"].size == 50 << 20
    assert hashlib.sha256(result.outputs["big"].data).digest() == hashlib.sha256(expected).digest()


def test_crashes_are_retried_once_by_default_and_model_errors_never(
    runner: TaskRunner, misbehaving: BundleRef, tmp_path: Path
) -> None:
    flaky = SimTask(misbehaving, "flaky", {"marker": str(tmp_path / "marker")}, seed=1)
    recovered = runner.run(flaky)
    assert recovered.ok, recovered.error
    assert recovered.timings["attempts"] == 2

    (tmp_path / "marker").unlink()
    no_retry = runner.run(replace_limits(flaky, retries=0))
    assert no_retry.error is not None and no_retry.error.error_class is ErrorClass.CRASH
    assert no_retry.timings["attempts"] == 1

    model_error = runner.run(SimTask(misbehaving, "raise", {}, seed=1))
    assert model_error.timings["attempts"] == 1


def replace_limits(task_: SimTask, **limits) -> SimTask:
    return SimTask(
        task_.bundle, task_.entrypoint, task_.params, task_.seed, limits=RunLimits(**limits)
    )


def test_isolation_modes_decide_how_children_are_reused(
    runner: TaskRunner, misbehaving: BundleRef, make_bundle
) -> None:
    def pids(ref: BundleRef, n: int, **limits) -> list[int]:
        return [pid_of(runner.run(task(ref, "", **limits))) for _ in range(n)]

    warm = pids(misbehaving, 4)
    cold = pids(misbehaving, 3, isolation=Isolation.COLD)
    fresh = make_bundle({"wire.py": MISBEHAVING + "\n# another bundle\n"}, name="recycled")
    recycled = pids(fresh, 5, isolation=Isolation.RECYCLE, max_tasks_per_process=2)
    declared = make_bundle(
        {
            "wire.py": MISBEHAVING,
            "pyproject.toml": '[project]\nname = "cold-model"\nversion = "1"\n'
            '[tool.modelops]\nisolation = "cold"\n',
        },
        name="declared-cold",
    )
    declared_cold = pids(declared, 3)
    overridden = pids(declared, 3, isolation=Isolation.WARM)

    assert len(set(warm)) == 1
    assert len(set(cold)) == 3
    assert recycled[0] == recycled[1] != recycled[2] == recycled[3] != recycled[4]
    assert len(set(declared_cold)) == 3
    assert len(set(overridden)) == 1


def test_children_get_one_thread_each_by_default(
    runner: TaskRunner, misbehaving: BundleRef
) -> None:
    result = runner.run(task(misbehaving, ""))
    assert result.ok
    assert json.loads(result.outputs["pid"].data)["omp"] == "1"
