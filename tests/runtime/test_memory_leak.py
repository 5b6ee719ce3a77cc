"""A model that leaks memory steadily in a warm child: the child is replaced once a task
leaves it past RETIRE_AT of its memory limit, so no task is killed at the limit."""

from __future__ import annotations

import itertools
import json

import pytest

from modelops.contracts import BundleRef, ErrorClass, RunLimits, SimTask
from modelops.runtime import TaskRunner
from modelops.runtime.child import RETIRE_AT

LEAKY = """
import json, os

KEPT = []

def wire(entrypoint, params, seed):
    KEPT.append(bytearray(params["leak_mb"] << 20))  # touched: resident, and never freed
    rss_kb = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    return {"out": json.dumps({"pid": os.getpid(), "rss_mb": rss_kb / 1024}).encode()}
"""
LIMIT_MB = 200.0


@pytest.fixture
def leaky(make_bundle) -> BundleRef:
    return make_bundle({"wire.py": LEAKY}, name="leaky")


def tasks(ref: BundleRef, count: int, leak_mb: int) -> list[SimTask]:
    limits = RunLimits(retries=0, memory_limit_mb=LIMIT_MB)
    return [SimTask(ref, "", {"leak_mb": leak_mb}, seed=i, limits=limits) for i in range(count)]


def answers(results) -> list[dict]:
    for result in results:
        assert result.ok, result.error
    return [json.loads(result.outputs["out"].data) for result in results]


@pytest.mark.parametrize("batched", [True, False], ids=["run_many", "run"])
def test_a_leaking_model_is_recycled_before_it_reaches_its_limit(
    runner: TaskRunner, leaky: BundleRef, batched: bool
) -> None:
    """30 tasks of 20 MB each: 600 MB leaked against a 200 MB limit, all succeed."""
    todo = tasks(leaky, 30, leak_mb=20)
    results = runner.run_many(todo) if batched else [runner.run(task) for task in todo]
    seen = answers(results)

    assert all(answer["rss_mb"] < LIMIT_MB for answer in seen)
    pids = [answer["pid"] for answer in seen]
    assert len(set(pids)) >= 3  # recycled, again and again
    for before, after in itertools.pairwise(seen):
        if before["pid"] != after["pid"]:  # a child goes only once past RETIRE_AT
            assert before["rss_mb"] >= RETIRE_AT * LIMIT_MB
        else:
            assert before["rss_mb"] < RETIRE_AT * LIMIT_MB


def test_a_single_task_past_the_limit_is_still_stopped_at_it(
    runner: TaskRunner, leaky: BundleRef
) -> None:
    [result] = runner.run_many(tasks(leaky, 1, leak_mb=400))
    assert result.error is not None and result.error.error_class is ErrorClass.OOM
