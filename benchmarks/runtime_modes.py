"""Cold start and isolation modes of the worker runtime, each against a baseline measured in
the same run.

    python benchmarks/runtime_modes.py [--tasks 100]

- cold start: time to the first result of a new bundle whose new environment needs numpy
  (uv's cache warm), against plain `uv venv && uv pip install numpy`;
- throughput of a 10 ms model in warm mode against cold mode (a process per task).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from uv import find_uv_bin

from modelops.bundle import LayoutStore, build_bundle
from modelops.contracts import Isolation, RunLimits, SimTask
from modelops.runtime import TaskRunner

NUMPY_WIRE = """
import numpy as np

def wire(entrypoint, params, seed):
    return {"x": np.random.default_rng(seed).random(10).tobytes()}
"""

TEN_MS_WIRE = """
import time

def wire(entrypoint, params, seed):
    time.sleep(0.01)
    return {"seed": str(seed).encode()}
"""


def project(root: Path, wire: str, requirements: str = "") -> Path:
    root.mkdir(parents=True)
    (root / "wire.py").write_text(wire)
    if requirements:
        (root / "requirements.txt").write_text(requirements)
    return root


def uv_baseline(root: Path) -> float:
    uv = find_uv_bin()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    started = time.perf_counter()
    subprocess.run(
        [uv, "venv", "-q", "--python", sys.executable, str(root / "venv")], check=True, env=env
    )
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(root / "venv" / "bin" / "python"), "numpy"],
        check=True,
        env=env,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = LayoutStore(root / "store")
        runner = TaskRunner(store, root / "cache")
        try:
            uv_baseline(root / "warm-uv-cache")  # make sure numpy is in uv's cache for both
            baseline = uv_baseline(root / "baseline")
            # a comment makes the lock, and so the environment, new to this machine
            fresh = f"numpy\n# {uuid.uuid4()}\n"
            ref = store.put(build_bundle(project(root / "numpy-model", NUMPY_WIRE, fresh)))
            started = time.perf_counter()
            first = runner.run(SimTask(ref, "", {}, seed=1))
            cold_start = time.perf_counter() - started
            assert first.ok, first.error

            ref = store.put(build_bundle(project(root / "ten-ms", TEN_MS_WIRE)))
            rates = {}
            for isolation in (Isolation.WARM, Isolation.COLD):
                limits = RunLimits(isolation=isolation)
                runner.run(SimTask(ref, "", {}, seed=0, limits=limits))
                started = time.perf_counter()
                for seed in range(args.tasks):
                    assert runner.run(SimTask(ref, "", {}, seed=seed, limits=limits)).ok
                rates[isolation] = args.tasks / (time.perf_counter() - started)
        finally:
            runner.close()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"uv venv && uv pip install numpy     {baseline:6.2f} s")
    print(
        f"first result, new bundle + new env  {cold_start:6.2f} s  "
        f"(baseline + {cold_start - baseline:.2f} s; timings {first.timings})"
    )
    print(f"10 ms model, warm mode              {rates[Isolation.WARM]:6.1f} tasks/s")
    print(
        f"10 ms model, cold mode              {rates[Isolation.COLD]:6.1f} tasks/s  "
        f"(warm is {rates[Isolation.WARM] / rates[Isolation.COLD]:.1f}x cold)"
    )


if __name__ == "__main__":
    main()
