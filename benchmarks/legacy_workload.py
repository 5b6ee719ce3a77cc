"""A workload shaped like the earlier system's test bundle: a numpy beta sample of 100 values,
made a pandas DataFrame, written as Parquet bytes beside JSON metadata (1.5-4 ms a call).
A study of 2,000 of them on the embedded cluster, against the ideal: the model's own time
per call, measured in the same run one call after another in a warm child with nothing else
running, times the simulations, over the workers. A study of 20 measured just before gives
what any study pays however small (cluster, children importing numpy and pandas): the
2,000 study's time beyond it is its steady state, also set against the ideal.

    python benchmarks/legacy_workload.py [--sims 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

MODEL = """
import io, json

import numpy as np
import pandas as pd


def wire(entrypoint, params, seed):
    rng = np.random.default_rng(seed)
    sample = rng.beta(params["a"], params["b"], size=100)
    frame = pd.DataFrame({"draw": np.arange(100), "value": sample})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    meta = {"seed": seed, "params": params, "mean": float(sample.mean())}
    return {"sample": buffer.getvalue(), "meta": json.dumps(meta).encode()}
"""
REQUIREMENTS = "numpy\npandas\npyarrow\n"
STUDY = """
name = "legacy"
bundle = "model"
replicates = {replicates}
[parameters]
sampler = "list"
[[parameters.sets]]
a = 2.0
b = 5.0
[[parameters.sets]]
a = 0.5
b = 0.5
"""


def model_seconds(root: Path, calls: int) -> float:
    """Median wire time of one call, one after another in one warm child, uncontended."""
    from modelops.bundle import LayoutStore, build_bundle
    from modelops.contracts import SimTask
    from modelops.runtime import TaskRunner

    store = LayoutStore(root / "alone-store")
    ref = store.put(build_bundle(root / "model"))
    runner = TaskRunner(store, root / "alone-cache")
    try:
        tasks = [SimTask(ref, "", {"a": 2.0, "b": 5.0}, seed=i) for i in range(calls)]
        results = [runner.run(task) for task in tasks]
    finally:
        runner.close()
    assert all(result.ok for result in results), results[0].error
    return statistics.median(result.timings["wire_s"] for result in results[calls // 10 :])


def measure(sims: int, workers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["MODELOPS_PROJECT_DIR"] = str(root)
        os.environ.setdefault("MODELOPS_HOME", str(root / "home"))
        (root / "model").mkdir()
        (root / "model" / "wire.py").write_text(textwrap.dedent(MODEL))
        (root / "model" / "requirements.txt").write_text(REQUIREMENTS)

        from modelops.jobs import run_study
        from modelops.study import load_study

        per_call = model_seconds(root, 300)
        (root / "warm.toml").write_text(STUDY.format(replicates=10).replace("2.0", "2.5"))
        run_study(load_study(root / "warm.toml"), n_workers=workers)  # env and cache warm
        (root / "small.toml").write_text(STUDY.format(replicates=10).replace("2.0", "2.6"))
        started = time.perf_counter()
        run_study(load_study(root / "small.toml"), n_workers=workers)
        fixed = time.perf_counter() - started
        (root / "study.toml").write_text(STUDY.format(replicates=sims // 2))
        started = time.perf_counter()
        job = run_study(load_study(root / "study.toml"), n_workers=workers)
        elapsed = time.perf_counter() - started
        assert job.counts.succeeded == sims, job
    ideal = sims * per_call / workers
    return {
        "model_ms": per_call * 1e3,
        "study_s": elapsed,
        "sims_per_s": sims / elapsed,
        "of_ideal": ideal / elapsed,
        "small_study_s": fixed,
        "steady_of_ideal": (sims - 20) * per_call / workers / max(elapsed - fixed, 1e-9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="one JSON object of the figures")
    args = parser.parse_args()
    figures = measure(args.sims, args.workers)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{args.sims} simulations, {args.workers} workers, python {sys.version.split()[0]}")
    print(f"model alone, one call                {figures['model_ms']:8.2f} ms")
    print(f"study on the embedded cluster        {figures['study_s']:8.2f} s")
    print(f"throughput                           {figures['sims_per_s']:8.0f} simulations/s")
    print(f"of ideal (model time / workers)      {figures['of_ideal']:8.1%}")
    print(f"a study of 20, the same way          {figures['small_study_s']:8.2f} s")
    print(f"beyond it, of ideal                  {figures['steady_of_ideal']:8.1%}")


if __name__ == "__main__":
    main()
