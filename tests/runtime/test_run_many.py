"""Many tasks through one warm child with their requests written ahead (`run_many`): the
same results, errors, limits and logs per task as running them one at a time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelops.contracts import BundleRef, ErrorClass, Isolation, RunLimits, SimTask
from modelops.runtime import TaskRunner

MODEL = """
import json, os, sys, time

def wire(entrypoint, params, seed):
    if entrypoint == "print":
        print(f"task {seed} says hello")
    if entrypoint == "raise":
        print(f"task {seed} fails", file=sys.stderr)
        raise ValueError(f"bad seed {seed}")
    if entrypoint == "exit":
        os._exit(3)
    if entrypoint == "sleep":
        time.sleep(params["s"])
    if entrypoint == "flaky" and not os.path.exists(params["marker"]):
        open(params["marker"], "w").close()
        os._exit(9)
    return {"out": json.dumps({"pid": os.getpid(), "seed": seed}).encode()}
"""


@pytest.fixture
def model(make_bundle) -> BundleRef:
    return make_bundle({"wire.py": MODEL}, name="many")


def task(ref: BundleRef, entrypoint: str = "", seed: int = 1, params=None, **limits) -> SimTask:
    limits.setdefault("retries", 0)
    return SimTask(ref, entrypoint, params or {}, seed=seed, limits=RunLimits(**limits))


def answer(result) -> dict:
    assert result.ok, result.error
    return json.loads(result.outputs["out"].data)


def test_a_batch_runs_in_one_child_in_order_with_each_tasks_own_result(
    runner: TaskRunner, model: BundleRef
) -> None:
    tasks = [task(model, seed=seed) for seed in range(300)]  # more than the pipe holds ahead
    results = runner.run_many(tasks)
    assert [result.task_id for result in results] == [t.task_id for t in tasks]
    answers = [answer(result) for result in results]
    assert [a["seed"] for a in answers] == list(range(300))
    assert len({a["pid"] for a in answers}) == 1
    assert all(result.timings["attempts"] == 1 for result in results)
    assert all(0 < result.timings["wire_s"] <= result.timings["total_s"] for result in results)


def test_logs_and_errors_belong_to_their_own_task(runner: TaskRunner, model: BundleRef) -> None:
    entrypoints = ["print", "", "raise", "", "print"]
    results = runner.run_many([task(model, e, seed=i) for i, e in enumerate(entrypoints)])
    assert results[0].logs == "--- stdout ---\ntask 0 says hello\n"
    assert results[1].ok and results[1].logs == ""
    assert results[2].error is not None and results[2].error.error_class is ErrorClass.MODEL
    assert results[2].error.one_line() == "model: ValueError: bad seed 2"
    assert results[2].logs == "--- stderr ---\ntask 2 fails\n"
    assert results[3].ok and results[3].logs == ""
    assert results[4].logs == "--- stdout ---\ntask 4 says hello\n"
    assert answer(results[1])["pid"] == answer(results[4])["pid"]  # a model error keeps it


def test_a_crash_mid_batch_fails_that_task_only_and_the_rest_run_in_a_new_child(
    runner: TaskRunner, model: BundleRef
) -> None:
    tasks = [task(model, seed=0), task(model, "exit", seed=1), task(model, seed=2)]
    before, crashed, after = runner.run_many(tasks)
    assert crashed.error is not None and crashed.error.one_line().startswith("crash: exit code 3")
    assert answer(before)["pid"] != answer(after)["pid"]
    assert after.timings["attempts"] == 1  # not an attempt of its own that failed


def test_a_crash_mid_batch_is_retried_as_one_task_would_be(
    runner: TaskRunner, model: BundleRef, tmp_path: Path
) -> None:
    marker = tmp_path / "crashed-once"
    tasks = [
        task(model, seed=0),
        task(model, "flaky", seed=1, params={"marker": str(marker)}, retries=1),
        task(model, seed=2),
    ]
    results = runner.run_many(tasks)
    assert [answer(result)["seed"] for result in results] == [0, 1, 2]
    assert [result.timings["attempts"] for result in results] == [1, 2, 1]


def test_each_tasks_clock_starts_when_the_child_can_start_it(
    runner: TaskRunner, model: BundleRef
) -> None:
    """Five tasks of 0.3 s with a 1 s limit each: written ahead at once, none times out;
    a task past its own limit does, and the ones after it still run."""
    sleepy = [task(model, "sleep", seed=i, params={"s": 0.3}, timeout_s=1.0) for i in range(5)]
    assert all(result.ok for result in runner.run_many(sleepy))

    hang = task(model, "sleep", seed=9, params={"s": 60}, timeout_s=1.0)
    first, timed_out, last = runner.run_many([sleepy[0], hang, sleepy[1]])
    assert timed_out.error is not None and timed_out.error.error_class is ErrorClass.TIMEOUT
    assert answer(first)["pid"] != answer(last)["pid"]


def test_recycled_children_serve_their_count_then_go(runner: TaskRunner, model: BundleRef) -> None:
    tasks = [
        task(model, seed=i, isolation=Isolation.RECYCLE, max_tasks_per_process=2) for i in range(5)
    ]
    pids = [answer(result)["pid"] for result in runner.run_many(tasks)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


def test_cold_tasks_each_get_a_child(runner: TaskRunner, model: BundleRef) -> None:
    tasks = [task(model, seed=i, isolation=Isolation.COLD) for i in range(3)]
    pids = [answer(result)["pid"] for result in runner.run_many(tasks)]
    assert len(set(pids)) == 3 and os.getpid() not in pids


def test_a_task_too_large_to_send_fails_alone(runner: TaskRunner, model: BundleRef) -> None:
    huge = task(model, seed=1, params={"blob": "x" * (65 << 20)})
    results = runner.run_many([task(model, seed=0), huge, task(model, seed=2)])
    assert results[1].error is not None and results[1].error.error_class is ErrorClass.BAD_INPUT
    assert results[1].error.type == "TaskTooLarge"
    assert answer(results[0])["pid"] == answer(results[2])["pid"]


def test_tasks_of_two_bundles_in_one_batch(
    runner: TaskRunner, model: BundleRef, make_bundle
) -> None:
    other = make_bundle({"wire.py": MODEL.replace("seed}", "seed, 'other': 1}")}, name="other")
    tasks = [task(model, seed=0), task(other, seed=1), task(model, seed=2)]
    results = runner.run_many(tasks)
    assert [answer(result)["seed"] for result in results] == [0, 1, 2]
    assert "other" in answer(results[1]) and "other" not in answer(results[2])
