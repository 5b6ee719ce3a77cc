"""Warm dispatch overhead: one trivial simulation through TaskRunner's warm child versus
calling the same wire function in this process. Prints microseconds per task and the ratio.

    python benchmarks/warm_dispatch.py [--tasks N]
"""

from __future__ import annotations

import argparse
import importlib.util
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


def per_task_us(run, tasks: int) -> float:
    run(0)  # warm up: env build, child start, imports
    started = time.perf_counter()
    for i in range(tasks):
        run(i)
    return (time.perf_counter() - started) / tasks * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()

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

        def in_process(i: int) -> None:
            module.wire("", {"x": i}, i)

        def through_child(i: int) -> None:
            result = runner.run(SimTask(ref, "", {"x": i}, seed=i))
            assert result.ok, result.error

        try:
            baseline = per_task_us(in_process, args.tasks)
            warm = per_task_us(through_child, args.tasks)
        finally:
            runner.close()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.tasks} tasks")
    print(f"in-process wire call      {baseline:10.1f} us/task")
    print(f"TaskRunner + warm child   {warm:10.1f} us/task")
    print(
        f"dispatch overhead         {warm - baseline:10.1f} us/task  "
        f"(ratio {warm / baseline:.0f}x of a trivial in-process call)"
    )


if __name__ == "__main__":
    main()
