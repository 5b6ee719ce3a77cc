"""Failures grouped by cause, listed and shown one at a time, read from real result parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from modelops.contracts import ErrorClass, ErrorInfo, ModelOpsError, SimReturn
from modelops.store import ResultStore, SimMeta
from modelops.store.failures import FailedSimulation
from tests.store.helpers import succeeded, table_artifact


def sim_meta(i: int, param_set: int, replicate: int, **params: object) -> SimMeta:
    return SimMeta(f"{i:04x}{'ab' * 14}", param_set, replicate, 1000 + i, dict(params))


def traceback_of(message: str, depth: int = 8) -> str:
    frames = "".join(
        f'  File "model.py", line {n}, in level{n}\n    call_level{n + 1}()\n' for n in range(depth)
    )
    return f"Traceback (most recent call last):\n{frames}{message}\n"


def failure(meta: SimMeta, cls: ErrorClass, kind: str, message: str) -> SimReturn:
    error = ErrorInfo(cls, kind, message, traceback_of(message) if cls is ErrorClass.MODEL else "")
    return SimReturn.failure(
        meta.task_id, error, timings={"attempts": 1}, logs=f"log of {meta.task_id}\n"
    )


def write_job(store: ResultStore, job_id: str, results: list[tuple[SimMeta, SimReturn]]) -> None:
    with store.writer(job_id) as writer:
        for meta, result in results:
            writer.add(meta, result)


@pytest.fixture
def store(tmp_path: Path) -> ResultStore:
    return ResultStore(tmp_path / "results")


def mixed_job(store: ResultStore) -> None:
    """20 simulations, in the order a cluster might return them: 4 succeed, 16 fail by
    6 causes (10, 2, 1, 1, 1, 1)."""
    rows: list[tuple[SimMeta, SimReturn]] = []
    i = 0

    def add(param_set: int, replicate: int, make: Callable[[SimMeta], SimReturn]) -> None:
        nonlocal i
        meta = sim_meta(i, param_set, replicate, beta=param_set / 10, days=90)
        rows.append((meta, make(meta)))
        i += 1

    for param_set in (9, 8, 7, 6, 5):  # arrive in reverse: the example is still set 5
        for replicate in (1, 0):
            add(
                param_set,
                replicate,
                lambda m: failure(
                    m,
                    ErrorClass.MODEL,
                    "ValueError",
                    f"ValueError: beta {m.params['beta']} too high",
                ),
            )
    for replicate in (0, 1):  # a crash message names its task: one cause all the same
        add(4, replicate, lambda m: failure(m, ErrorClass.CRASH, "ChildCrashed", m.task_id))
    for n, kind in enumerate(("KeyError", "TypeError", "OSError", "ZeroDivisionError")):
        add(3, n, lambda m, kind=kind: failure(m, ErrorClass.MODEL, kind, f"{kind}: no"))
    for replicate in range(4):
        add(0, replicate, lambda m: succeeded(m, incidence=table_artifact({"t": [0]})))
    write_job(store, "job-a", rows)


def test_failures_are_grouped_by_cause_with_a_real_example(store: ResultStore) -> None:
    mixed_job(store)

    summary = store.open("job-a").failures(limit=3)

    assert summary.failed == 16
    assert summary.total_groups == 6 and summary.more_groups == 3
    first, second, third = summary.groups
    assert (first.error_class, first.error_type, first.count) == ("model", "ValueError", 10)
    assert first.pattern == "ValueError: beta <n> too high"
    assert first.messages == 5  # five betas, one cause
    example = first.example
    assert (example.param_set, example.replicate) == (5, 0)  # the earliest, not the first back
    assert example.message == "ValueError: beta 0.5 too high"  # the real message, not masked
    assert example.params == {"beta": 0.5, "days": 90}
    assert example.seed == 1000 + 9  # the ninth written: set 5 replicate 0
    assert example.status == "failed" and example.attempts == 1
    assert example.traceback_tail() == [
        '  File "model.py", line 6, in level6',
        "    call_level7()",
        '  File "model.py", line 7, in level7',
        "    call_level8()",
        "ValueError: beta 0.5 too high",
    ]
    assert example.traceback.startswith("Traceback (most recent call last):")
    assert example.logs is None  # the summary does not read logs

    assert (second.error_class, second.count, second.messages) == ("crash", 2, 2)
    assert second.pattern == "<id>"
    assert second.example.traceback_tail() == []
    assert (third.error_type, third.count, third.example.replicate) == ("KeyError", 1, 0)

    everything = store.open("job-a").failures(limit=10)
    assert everything.more_groups == 0
    assert [g.error_type for g in everything.groups] == [
        "ValueError", "ChildCrashed", "KeyError", "TypeError", "OSError", "ZeroDivisionError",
    ]  # fmt: skip
    assert sum(g.count for g in everything.groups) == 16
    doc = json.loads(json.dumps(everything.to_dict()))
    assert doc["groups"][0]["example"]["traceback_tail"][-1] == "ValueError: beta 0.5 too high"


def test_a_job_without_failures_has_an_empty_summary(store: ResultStore) -> None:
    m = sim_meta(0, 0, 0, beta=0.1)
    write_job(store, "job-ok", [(m, succeeded(m, incidence=table_artifact({"t": [0]})))])
    assert store.open("job-ok").failures().to_dict() == {
        "failed": 0,
        "groups": [],
        "more_groups": 0,
    }
    assert store.open("job-nothing-yet").failures().failed == 0


def test_only_the_last_attempt_counts(store: ResultStore) -> None:
    """A failure a resume fixed is no failure; a success is never a failure."""
    fixed, still = sim_meta(0, 0, 0, beta=0.1), sim_meta(1, 1, 0, beta=0.2)
    write_job(
        store,
        "job-r",
        [
            (fixed, failure(fixed, ErrorClass.MODEL, "ValueError", "ValueError: 1")),
            (still, failure(still, ErrorClass.MODEL, "ValueError", "ValueError: 2")),
        ],
    )
    write_job(
        store,
        "job-r",
        [
            (fixed, succeeded(fixed, incidence=table_artifact({"t": [0]}))),
            (still, failure(still, ErrorClass.TIMEOUT, "Timeout", "timeout after 5 s")),
        ],
    )
    summary = store.open("job-r").failures()
    assert summary.failed == 1
    assert [(g.error_class, g.example.message) for g in summary.groups] == [
        ("timeout", "timeout after 5 s")
    ]
    listed = store.open("job-r").failed_simulations().collect()
    assert listed["sim_id"].to_list() == [still.task_id]


def test_failed_simulations_are_listed_in_study_order_without_tracebacks(
    store: ResultStore,
) -> None:
    mixed_job(store)
    frame = store.open("job-a").failed_simulations().collect()
    assert frame.height == 16
    assert "error_traceback" not in frame.columns and "logs" not in frame.columns
    order = list(zip(frame["param_set"], frame["replicate"], strict=True))
    assert order == sorted(order)
    sims = list(FailedSimulation.from_rows(frame))
    assert sims[0].params == {"beta": 0.3, "days": 90}
    assert sims[0].to_dict(full=False)["error"] == {
        "class": "model",
        "type": "KeyError",
        "message": "KeyError: no",
    }


def test_one_simulation_in_full_by_a_unique_prefix(store: ResultStore) -> None:
    mixed_job(store)
    results = store.open("job-a")
    target = results.failed_simulations().collect().row(0, named=True)["sim_id"]

    found = results.simulation(target[:6])

    assert found.sim_id == target
    assert found.traceback == traceback_of("KeyError: no")
    assert found.logs == f"log of {target}\n"
    assert found.to_dict()["error"]["traceback"] == found.traceback
    assert results.simulation(target).sim_id == target

    with pytest.raises(ModelOpsError) as many:
        results.simulation("00")  # every id here starts with 00
    assert many.value.info.error_class is ErrorClass.BAD_INPUT
    assert "matches several" in str(many.value)
    with pytest.raises(ModelOpsError) as none:
        results.simulation("ffff")
    assert none.value.info.error_class is ErrorClass.NOT_FOUND


def test_parameters_of_chosen_simulations(store: ResultStore) -> None:
    mixed_job(store)
    results = store.open("job-a")
    ids = results.simulations().select("sim_id").head(2).collect()["sim_id"].to_list()
    params = results.params_of(ids)
    assert set(params) == set(ids)
    assert all(set(p) == {"beta", "days"} for p in params.values())


BIG = 100_000
TRACEBACK_BYTES = 8_000

SUMMARISE = textwrap.dedent(
    """
    import resource, sys, time
    from modelops.store import ResultStore
    import polars as pl

    results = ResultStore(sys.argv[1]).open("big")
    results.simulations().select(pl.len()).collect()  # polars warmed up: its pools exist
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    summary = results.failures(limit=5)
    listed = results.failed_simulations().select(pl.len()).collect().item()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(summary.failed, summary.total_groups, listed, (after - before) // 1024,
          round(time.monotonic() - started, 2))
    """
)


def test_a_large_job_is_summarised_without_reading_its_tracebacks(tmp_path: Path) -> None:
    """100,000 failures with 8 kB tracebacks each (800 MB as text): the summary reads the
    short columns and five tracebacks, so its peak memory stays far below the tracebacks'."""
    store = ResultStore(tmp_path / "results")
    padding = "x" * TRACEBACK_BYTES
    with store.writer("big", flush_rows=10_000, flush_seconds=3600) as writer:
        for i in range(BIG):
            meta = SimMeta(f"{i:032x}", i // 10, i % 10, i, {"beta": i / BIG})
            message = f"ValueError: beta {i / BIG} too high" if i % 4 else f"KeyError: 'c{i % 7}'"
            error = ErrorInfo(ErrorClass.MODEL, "E", message, f"{i} {padding}")
            writer.add(meta, SimReturn.failure(meta.task_id, error))
    done = subprocess.run(
        [sys.executable, "-c", SUMMARISE, str(tmp_path / "results")],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr
    failed, groups, listed, grew_mib, seconds = done.stdout.split()
    assert (int(failed), int(groups), int(listed)) == (BIG, 2, BIG)
    assert int(grew_mib) < 200, f"peak memory grew by {grew_mib} MiB in {seconds} s"
