"""The parent trusts no frame it did not ask for: each answer must carry the task id it was
asked, fit the protocol's size limits and arrive whole before the task's deadline.

The wires below break the protocol for real: the model finds the response pipe in the
runner's own command line (`--responses FD`) and writes to it.
"""

from __future__ import annotations

import time

import psutil
import pytest

from modelops.contracts import BundleRef, ErrorClass, RunLimits, SimTask
from modelops.runtime import TaskRunner
from modelops.runtime.child_runner import MAX_BLOB_BYTES, MAX_HEADER_BYTES, size_text

FORGING = """
import json, os, struct, sys, time

def response_fd():
    return int(sys.argv[sys.argv.index("--responses") + 1])

def frame(header, blobs=(), blob_lengths=None):
    head = json.dumps(dict(header, protocol=1)).encode()
    out = struct.pack(">II", len(head), len(blobs)) + head
    for blob, length in zip(blobs, blob_lengths or [len(b) for b in blobs]):
        out += struct.pack(">Q", length) + blob
    return out

def wire(entrypoint, params, seed):
    fd = response_fd()
    asked = sys._getframe(1).f_locals["task_id"]  # the runner's request, one frame up
    if entrypoint == "forge":
        other = "f" * 32
        os.write(fd, frame({"type": "result", "task_id": other, "names": ["x"]}, [b"forged"]))
        return {"x": b"genuine"}
    if entrypoint == "giant-header":
        os.write(fd, struct.pack(">II", 2**32 - 1, 0))
        time.sleep(600)
    if entrypoint == "giant-blob":
        header = {"type": "result", "task_id": asked, "names": ["x"]}
        os.write(fd, frame(header, [b"abc"], [2**62]))
        time.sleep(600)
    if entrypoint == "half-frame":
        whole = frame({"type": "result", "task_id": asked, "names": ["x"]}, [b"x" * 1000])
        os.write(fd, whole[: len(whole) // 2])
        print("half a frame written", file=sys.stderr, flush=True)
        time.sleep(600)
    if entrypoint == "orphan-then-exit":
        os.system(f"sleep 600 & echo $! > {params['pidfile']}")  # inherits what is inheritable
        os._exit(3)
    return {"pid": str(os.getpid()).encode()}
"""


@pytest.fixture
def forging(make_bundle) -> BundleRef:
    return make_bundle({"wire.py": FORGING}, name="forging")


def run(runner: TaskRunner, ref: BundleRef, entrypoint: str, **limits):
    task = SimTask(ref, entrypoint, {}, seed=1, limits=RunLimits(retries=0, **limits))
    return task, runner.run(task)


def pid_of(result) -> int:
    assert result.ok, result.error
    return int(result.outputs["pid"].data)


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_an_answer_for_another_task_kills_the_child_and_is_never_kept(
    runner: TaskRunner, forging: BundleRef
) -> None:
    before = pid_of(run(runner, forging, "")[1])
    task, forged = run(runner, forging, "forge")

    assert forged.task_id == task.task_id
    assert forged.outputs == {}
    assert forged.error is not None and forged.error.error_class is ErrorClass.CRASH
    assert forged.error.one_line() == (
        f"crash: protocol error during task {task.task_id}: the child answered for task "
        f"{'f' * 32}; the child process was killed"
    )
    assert gone(before)
    after = pid_of(run(runner, forging, "")[1])
    assert after != before


@pytest.mark.parametrize(
    ("entrypoint", "expected"),
    [
        (
            "giant-header",
            f"a frame header of 4294967295 bytes (the limit is {size_text(MAX_HEADER_BYTES)})",
        ),
        (
            "giant-blob",
            f"an output of 4611686018427387904 bytes (the limit is {size_text(MAX_BLOB_BYTES)})",
        ),
    ],
)
def test_a_giant_length_is_refused_at_once(
    runner: TaskRunner, forging: BundleRef, entrypoint: str, expected: str
) -> None:
    before = pid_of(run(runner, forging, "")[1])
    started = time.monotonic()
    task, refused = run(runner, forging, entrypoint, timeout_s=120)

    assert time.monotonic() - started < 30  # refused on reading the length, not at the timeout
    assert refused.error is not None and refused.error.error_class is ErrorClass.CRASH
    assert refused.error.message == (
        f"protocol error during task {task.task_id}: {expected}; the child process was killed"
    )
    assert gone(before)
    assert pid_of(run(runner, forging, "")[1]) != before


def test_half_a_frame_then_silence_times_out(runner: TaskRunner, forging: BundleRef) -> None:
    before = pid_of(run(runner, forging, "")[1])
    started = time.monotonic()
    _, stalled = run(runner, forging, "half-frame", timeout_s=1)

    assert time.monotonic() - started < 10
    assert stalled.error is not None and stalled.error.error_class is ErrorClass.TIMEOUT
    assert stalled.error.message.startswith("timeout after 1 s")
    assert "half a frame written" in stalled.error.traceback
    assert gone(before)
    assert pid_of(run(runner, forging, "")[1]) != before


@pytest.mark.parametrize("timeout_s", [1e10, 1e300])
def test_a_huge_timeout_is_waited_in_slices_and_the_answer_read(
    runner: TaskRunner, forging: BundleRef, timeout_s: float
) -> None:
    first = pid_of(run(runner, forging, "", timeout_s=timeout_s)[1])
    task = SimTask(forging, "", {"next": True}, seed=2, limits=RunLimits(timeout_s=timeout_s))
    second = runner.run(task)
    assert second.task_id == task.task_id
    assert pid_of(second) == first  # the same warm child, answering its own task


def test_too_many_outputs_are_a_bad_output_in_the_child(runner: TaskRunner, make_bundle) -> None:
    """The child checks its outputs against the same limits before sending anything."""
    ref = make_bundle(
        {"wire.py": "def wire(e, p, s):\n    return {str(i): b'' for i in range(70000)}\n"},
        name="too-many-outputs",
    )
    _, result = run(runner, ref, "")
    assert result.error is not None and result.error.error_class is ErrorClass.BAD_OUTPUT
    assert result.error.message == (
        "wire returned 70000 outputs; the limit is 65536 (put many small values in one table)"
    )


def test_a_task_too_large_to_send_is_bad_input(runner: TaskRunner, forging: BundleRef) -> None:
    big = {"blob": "x" * (MAX_HEADER_BYTES + 1)}
    task = SimTask(forging, "", big, seed=1, limits=RunLimits(retries=0))
    result = runner.run(task)
    assert result.error is not None and result.error.error_class is ErrorClass.BAD_INPUT
    assert result.error.message.startswith("the task's params and config take ")
    assert "\n" not in result.error.message
    assert pid_of(run(runner, forging, "")[1]) > 0


def test_a_process_the_model_leaves_behind_neither_hides_a_crash_nor_outlives_it(
    runner: TaskRunner, forging: BundleRef, tmp_path
) -> None:
    pidfile = tmp_path / "sleep.pid"
    task = SimTask(
        forging, "orphan-then-exit", {"pidfile": str(pidfile)}, 1, limits=RunLimits(retries=0)
    )
    started = time.monotonic()
    crashed = runner.run(task)  # no timeout: only the end of the pipe tells of the crash
    assert time.monotonic() - started < 30
    assert crashed.error is not None and crashed.error.one_line().startswith("crash: exit code 3")
    sleeper = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while not gone(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(sleeper)  # killed with the child's process group
