"""The smoke test: the smoke bundle, run many times through the real path, every result checked.

It exercises everything a study does (bundle build and store, embedded cluster, worker
plugin, uv environment, warm children, Arrow outputs) and says which stage failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from modelops import api
from modelops.cluster import open_cluster, run_tasks
from modelops.contracts import BundleRef, SimReturn, SimTask, derive_seeds
from modelops.settings import Settings

SMOKE_BUNDLE = Path(__file__).parent / "smoke_bundle"
SMOKE_SEED = 20261129
RESULT_COLUMNS = ["day", "susceptible", "infected", "recovered", "incidence"]
BETAS = (0.2, 0.3, 0.4, 0.5)


class SmokeTestFailed(Exception):
    def __init__(self, stage: str, message: str, task_id: str = "", remote_traceback: str = ""):
        super().__init__(
            f"smoke test failed at {stage}"
            + (f" (task {task_id})" if task_id else "")
            + f": {message}"
        )
        self.stage = stage
        self.task_id = task_id
        self.remote_traceback = remote_traceback


@dataclass
class SmokeReport:
    bundle: BundleRef
    simulations: int = 0
    time_to_first_result_s: float = 0.0
    total_s: float = 0.0
    workers: set[str] = field(default_factory=set)
    sample: SimReturn | None = None


def smoke_tasks(bundle: BundleRef, count: int) -> list[SimTask]:
    """`count` simulations over a few betas, plus a repeat of the first to check determinism."""
    seeds = derive_seeds(SMOKE_SEED, count - 1)
    tasks = [
        SimTask(bundle, "sir", {"beta": BETAS[i % len(BETAS)], "days": 60}, seed)
        for i, seed in enumerate(seeds)
    ]
    return [*tasks, tasks[0]]


def run_smoke_test(
    simulations: int = 24,
    n_workers: int = 2,
    scheduler: str | None = None,
    on_result: Callable[[SimReturn], None] | None = None,
) -> SmokeReport:
    started = time.perf_counter()
    try:
        bundle = api.build(SMOKE_BUNDLE)
    except Exception as exc:
        raise SmokeTestFailed("bundle build", str(exc)) from exc
    report = SmokeReport(bundle)
    tasks = smoke_tasks(bundle, simulations)
    by_id = {task.task_id: task for task in tasks}
    tables: dict[str, bytes] = {}
    with ExitStack() as stack:
        try:
            client = stack.enter_context(open_cluster(scheduler, n_workers=n_workers))
        except Exception as exc:
            raise SmokeTestFailed("cluster start", f"{type(exc).__name__}: {exc}") from exc
        for result in run_tasks(client, tasks):
            if not report.simulations:
                report.time_to_first_result_s = time.perf_counter() - started
            report.simulations += 1
            report.workers.add(result.worker)
            _validate(result, by_id[result.task_id], tables)
            report.sample = report.sample or result
            if on_result:
                on_result(result)
    report.total_s = time.perf_counter() - started
    return report


def _validate(result: SimReturn, task: SimTask, tables: dict[str, bytes]) -> None:
    def fail(message: str) -> SmokeTestFailed:
        return SmokeTestFailed("validation", message, task.task_id)

    if result.error is not None:
        raise SmokeTestFailed(
            "simulation", result.error.one_line(), task.task_id, result.error.traceback
        )
    if sorted(result.outputs) != ["metadata", "result"]:
        raise fail(f"outputs are {sorted(result.outputs)}, expected ['metadata', 'result']")
    table = result.outputs["result"].table()
    if table.column_names != RESULT_COLUMNS:
        raise fail(f"result columns are {table.column_names}, expected {RESULT_COLUMNS}")
    if table.num_rows != task.params["days"]:
        raise fail(f"result has {table.num_rows} rows, expected {task.params['days']}")
    totals = {
        sum(row) for row in zip(*(table[c].to_pylist() for c in RESULT_COLUMNS[1:4]), strict=True)
    }
    if totals != {1000}:
        raise fail(f"S+I+R is not the population of 1000 on every day: {sorted(totals)[:5]}")
    metadata = json.loads(result.outputs["metadata"].data)
    if metadata["seed"] != task.seed or metadata["params"] != task.params:
        raise fail("metadata does not echo the task's seed and params")
    envs = Settings.from_env().cache / "envs"
    if not Path(metadata["python"]).is_relative_to(envs):
        raise fail(f"model ran in {metadata['python']}, not in a bundle environment under {envs}")
    data = result.outputs["result"].data
    if tables.setdefault(task.task_id, data) != data:
        raise fail("the same task (same seed) gave a different result: seeding is broken")
