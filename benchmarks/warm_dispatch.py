"""Warm dispatch overhead: a trivial simulation through TaskRunner's warm child versus
calling the same wire function in this process, one task at a time (`run`) and in batches as
a Dask task hands them over (`run_many`, requests written ahead). Tasks are built before the
clock starts: this is the runtime's cost, not the client's. Prints microseconds per task.

    python benchmarks/warm_dispatch.py [--tasks N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from modelops.bundle import LayoutStore, build_bundle
from modelops.contracts import SimTask
from modelops.runtime import TaskRunner

TRIVIAL_WIRE = """
import json

def wire(entrypoint, params, seed):
    return {"echo": json.dumps({"seed": seed, "x": params["x"]}).encode()}
"""


BATCH = 100


def per_task_us(run, tasks: list) -> float:
    """Microseconds per task of `run(tasks[i:i + BATCH])` over all tasks, after a warm-up."""
    run(tasks[:1])  # warm up: env build, child start, imports
    started = time.perf_counter()
    for i in range(0, len(tasks), BATCH):
        run(tasks[i : i + BATCH])
    return (time.perf_counter() - started) / len(tasks) * 1e6


def measure(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project = root / "trivial"
        project.mkdir()
        (project / "wire.py").write_text(TRIVIAL_WIRE)
        store = LayoutStore(root / "store")
        ref = store.put(build_bundle(project))
        runner = TaskRunner(store, root / "cache")

        spec = importlib.util.spec_from_file_location("trivial_wire", project / "wire.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

        tasks = [SimTask(ref, "", {"x": i}, seed=i) for i in range(count)]
        for task in tasks:
            assert task.task_id  # computed now, as a study's planning does

        def in_process(batch: list[SimTask]) -> None:
            for task in batch:
                module.wire(task.entrypoint, task.params, task.seed)

        def one_at_a_time(batch: list[SimTask]) -> None:
            for task in batch:
                result = runner.run(task)
                assert result.ok, result.error

        def batched(batch: list[SimTask]) -> None:
            results = runner.run_many(batch)
            assert all(result.ok for result in results), results[0].error

        try:
            baseline = per_task_us(in_process, tasks)
            single = per_task_us(one_at_a_time, tasks)
            warm = per_task_us(batched, tasks)
        finally:
            runner.close()

    return {
        "in_process_us": baseline,
        "single_us": single,
        "batched_us": warm,
        "dispatch_us": warm - baseline,
        "single_dispatch_us": single - baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="one JSON object of the figures")
    args = parser.parse_args()
    figures = measure(args.tasks)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.tasks} tasks")
    print(f"in-process wire call                 {figures['in_process_us']:8.1f} us/task")
    print(f"warm child, one task at a time (run) {figures['single_us']:8.1f} us/task")
    print(f"warm child, batches of {BATCH} (run_many) {figures['batched_us']:8.1f} us/task")
    print(f"dispatch overhead, batched           {figures['dispatch_us']:8.1f} us/task")


if __name__ == "__main__":
    main()
