"""A study of many 1 ms simulations on the embedded cluster (2 worker processes), against
the ideal (model CPU time / cores) and against bare Dask `client.map` of the same function;
then the same study again (all cached), the client's peak memory, and the store's cost per
simulation.

    python benchmarks/study_scale.py [--sims 20000]
    python benchmarks/study_scale.py --sims 200000 --skip-bare   # the memory case
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import textwrap
import time
from pathlib import Path

MODEL = """
import time

def busy(seed):
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        pass
    return seed

def wire(entrypoint, params, seed):
    busy(seed)
    return {"seed": str(seed).encode()}
"""

STUDY = """
name = "scale"
bundle = "model"
replicates = {sims}
[parameters]
sampler = "list"
[[parameters.sets]]
beta = 0.3
"""


def busy_1ms(seed: int) -> int:
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        pass
    return seed


def bare_dask(sims: int, workers: int) -> float:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.submit(busy_1ms, -1).result()
        started = time.perf_counter()
        futures = client.map(busy_1ms, range(sims))
        client.gather(futures)
        return time.perf_counter() - started


def store_cost(root: Path, sims: int) -> float:
    """Seconds per simulation for JobWriter alone: buffer, flush to Parquet. The results are
    made before the clock starts, as they arrive from workers."""
    from modelops.contracts import Artifact, SimReturn
    from modelops.store import ResultStore, SimMeta

    writer = ResultStore(str(root / "store-cost")).writer("cost")
    arrived = [
        (
            SimMeta(f"{i:032x}", 0, i, i, {"beta": 0.3}),
            SimReturn(
                f"{i:032x}",
                {"seed": Artifact.from_bytes(str(i).encode())},
                timings={"total_s": 1e-3},
            ),
        )
        for i in range(sims)
    ]
    started = time.perf_counter()
    for meta, result in arrived:
        writer.add(meta, result)
    writer.close()
    return (time.perf_counter() - started) / sims


def measure(sims: int, workers: int, bare: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["MODELOPS_PROJECT_DIR"] = str(root)
        os.environ.setdefault("MODELOPS_HOME", str(root / "home"))
        (root / "model").mkdir()
        (root / "model" / "wire.py").write_text(textwrap.dedent(MODEL))
        (root / "study.toml").write_text(STUDY.format(sims=sims))

        from modelops.jobs import run_study
        from modelops.study import load_study

        spec = load_study(root / "study.toml")
        run_study(
            spec.model_copy(update={"replicates": 50, "seed": 1}), n_workers=workers
        )  # warm the bundle's environment and the cache
        started = time.perf_counter()
        job = run_study(spec, n_workers=workers)
        ours = time.perf_counter() - started
        assert job.counts.succeeded == sims, job
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        again = run_study(spec, n_workers=workers)
        rerun = time.perf_counter() - started
        assert again.counts.cached == sims, again
        figures = {
            "ideal_s": sims * 0.001 / workers,
            "ours_s": ours,
            "per_sim_us": ours / sims * 1e6,
            "rerun_s": rerun,
            "rss_mb": rss_mb,
            "store_us": store_cost(root, min(sims, 50_000)) * 1e6,
        }
        if bare:
            figures["bare_s"] = bare_dask(sims, workers)
    figures["of_ideal"] = figures["ideal_s"] / ours
    figures["rerun_of_first"] = rerun / ours
    if bare:
        figures["bare_over_ours"] = figures["bare_s"] / ours
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sims", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-bare", action="store_true", help="skip the client.map baseline")
    parser.add_argument("--json", action="store_true", help="one JSON object of the figures")
    args = parser.parse_args()
    figures = measure(args.sims, args.workers, bare=not args.skip_bare)
    if args.json:
        print(json.dumps(figures))
        return
    print(
        f"{args.sims} simulations of a 1 ms model, {args.workers} workers, "
        f"python {sys.version.split()[0]}"
    )
    print(f"ideal (CPU time / workers)          {figures['ideal_s']:8.2f} s")
    print(
        f"modelops run (incl. cluster start)  {figures['ours_s']:8.2f} s   "
        f"{figures['of_ideal']:6.1%} of ideal"
    )
    if "bare_s" in figures:
        print(
            f"bare dask client.map                {figures['bare_s']:8.2f} s   "
            f"{figures['ideal_s'] / figures['bare_s']:6.1%} of ideal   "
            f"(modelops is {figures['bare_over_ours']:.2f}x faster)"
        )
    print(
        f"re-run, everything cached           {figures['rerun_s']:8.2f} s   "
        f"{figures['rerun_of_first']:6.1%} of the first"
    )
    print(f"client peak RSS                     {figures['rss_mb']:8.0f} MB")
    print(f"store cost per simulation           {figures['store_us']:8.1f} us")


if __name__ == "__main__":
    main()
