"""Calibration throughput: trials per minute and worker utilisation of a calibration of a
50 ms model on the embedded cluster, against the ideal for the cores measured in the same
run (cores / (replicates x 50 ms)). The aim (issue) is at least 85% utilisation.

    python benchmarks/calibration_throughput.py [--trials 60] [--batch 4] [--runs 3]

Besides the ideal, a baseline measured in the same run: bare Dask `client.map` of the same
CPU work per trial (replicates x 50 ms in the worker, no ModelOps), which is what these cores
deliver right now; and the CPU other processes on the machine took during each run, since a
shared machine makes every figure here lower.

The model burns 50 ms of its own CPU time per simulation (a busy loop on thread_time, not a
sleep): the cores are what the ideal is made of, so the client's work (the scheduler, TPE's
ask, the store) competes with the simulations as it would with a real model, and a slow
client shows up as fewer trials per minute rather than hiding behind sleeping workers.

Each run is a fresh project folder (its own jobs db, so its own provenance cache: nothing
is a cache hit) sharing one MODELOPS_HOME, whose bundle environment a small warm-up
calibration built first. Trials per minute and utilisation are measured from the cluster's
opening, after the bundle is published and its environment built: trials per minute from the
calibration loop's start (`CalibrationProgress.started`) to its last told trial, utilisation
as the job's manifest records it (busy worker-thread time over elapsed x threads). Three
replicates per trial, as examples/sir. Each algorithm's figures are the median, min and max
of `--runs` runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

# Nothing of ModelOps is imported up here: the cluster's workers are spawned processes that
# run this file's top level again, and an import here would load modules into them (the
# calibration task's own, ~0.8 s) that a user's workers load when their first task arrives.

MODEL_S = 0.050
TRUTH = {"r": 0.1, "a": 10.0}

MODEL = """
import time

import numpy as np
import pyarrow as pa

def busy(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass

def wire(entrypoint, params, seed):
    busy({model_s})
    rng = np.random.default_rng(seed)
    day = np.arange(params["days"])
    cases = rng.poisson(params["a"] * np.exp(params["r"] * day))
    table = pa.table({{"day": day, "cases": cases}})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {{"incidence": sink.getvalue().to_pybytes()}}
"""

CALIBRATION = """
name = "throughput"
bundle = "model"
seed = {seed}
replicates = {replicates}

[parameters.r]
low = 0.01
high = 0.3
log = true

[parameters.a]
low = 1.0
high = 40.0

[fixed]
days = 30

[targets.cases]
data = "data/observed.csv"
output = "incidence"
join = ["day"]
observed = "cases"
loss = "poisson"

[search]
algorithm = "{algorithm}"
trials = {trials}
batch = {batch}
"""


def make_project(root: Path) -> None:
    """The model, and observed data from one simulation of it at known parameters."""
    import pyarrow as pa
    import pyarrow.csv

    (root / "model").mkdir(parents=True)
    (root / "model" / "wire.py").write_text(textwrap.dedent(MODEL.format(model_s=MODEL_S)))
    (root / "model" / "requirements.txt").write_text("numpy\npyarrow\n")
    spec = importlib.util.spec_from_file_location("throughput_wire", root / "model" / "wire.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = module.wire("", {**TRUTH, "days": 30}, 7)["incidence"]
    (root / "data").mkdir()
    pyarrow.csv.write_csv(pa.ipc.open_stream(data).read_all(), root / "data" / "observed.csv")


def calibration_file(root: Path, name: str, **values: object) -> Path:
    path = root / f"{name}.toml"
    path.write_text(textwrap.dedent(CALIBRATION.format(**values)).lstrip())
    return path


def cpu_s(who: int) -> float:
    """CPU seconds of this process (RUSAGE_SELF) or of its ended, waited-for descendants
    (RUSAGE_CHILDREN: the cluster's workers and their warm children, once it closed)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def machine_busy_s() -> float:
    """CPU seconds every process on the machine used so far."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def busy_trial(replicates: int) -> int:
    """A trial's model CPU time without ModelOps: the replicates' busy loops in a row."""
    end = time.thread_time() + replicates * MODEL_S
    while time.thread_time() < end:
        pass
    return replicates


def bare_dask(trials: int, replicates: int, workers: int) -> dict[str, float]:
    """Trials per minute of bare Dask `client.map` of the same CPU work, all submitted at
    once, timed after a warm-up task: what these cores deliver to Dask right now."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.submit(busy_trial, 0, pure=False).result()
        started = time.perf_counter()
        client.gather(client.map(busy_trial, [replicates] * trials, pure=False))
        return {"per_min": trials / (time.perf_counter() - started) * 60}


def one_run(path: Path, project: Path, workers: int) -> dict[str, float]:
    """One calibration in a fresh project folder: its figures, from the cluster's opening."""
    from modelops.calibration.load import load_calibration
    from modelops.calibration.run import run_calibration
    from modelops.settings import Settings
    from modelops.store import JobState, ResultStore

    os.environ["MODELOPS_PROJECT_DIR"] = str(project)
    project.mkdir(parents=True)
    spec = load_calibration(path)
    last: dict[str, float] = {}

    def on_progress(progress) -> None:
        last["started"], last["ended"] = progress.started, time.monotonic()
        last["done"] = progress.done
        if progress.done and "first" not in last:
            last["first"] = last["ended"]

    client_cpu, children_cpu = cpu_s(resource.RUSAGE_SELF), cpu_s(resource.RUSAGE_CHILDREN)
    started, machine = time.perf_counter(), machine_busy_s()
    job = run_calibration(spec, n_workers=workers, on_progress=on_progress)
    wall, machine = time.perf_counter() - started, machine_busy_s() - machine
    client_cpu = cpu_s(resource.RUSAGE_SELF) - client_cpu
    children_cpu = cpu_s(resource.RUSAGE_CHILDREN) - children_cpu
    if job.state is not JobState.SUCCEEDED or last.get("done") != spec.search.trials:
        sys.exit(f"calibration {job.job_id} ended {job.state.value} with {job.counts}")
    manifest = ResultStore(Settings.from_env().results_root).read_manifest(job.job_id)
    loop_s = last["ended"] - last["started"]
    return {
        "per_min": spec.search.trials / loop_s * 60,
        "utilisation": manifest["calibration"]["utilisation"],
        "loop_s": loop_s,
        "first_s": last["first"] - last["started"],
        "wall_s": wall,
        "client_cpu_ms": client_cpu / spec.search.trials * 1e3,
        "workers_cpu_ms": children_cpu / spec.search.trials * 1e3,
        "others_cores": max(0.0, machine - client_cpu - children_cpu) / wall,
    }


def spread(values: list[float], fmt: str) -> str:
    return (
        f"{format(statistics.median(values), fmt)} "
        f"[{format(min(values), fmt)}-{format(max(values), fmt)}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--algorithms", default="tpe,random")
    args = parser.parse_args()
    algorithms = args.algorithms.split(",")

    figures: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["MODELOPS_HOME"] = str(root / "home")
        make_project(root / "bench")
        common = {"replicates": args.replicates, "batch": args.batch}
        # warm-up, not timed: publishes the bundle and builds its environment in the home
        warm = calibration_file(
            root / "bench", "warm", seed=999, algorithm="random", trials=4, **common
        )
        one_run(warm, root / "projects" / "warm", args.workers)
        paths = {
            algorithm: calibration_file(
                root / "bench", algorithm, seed=1, algorithm=algorithm, trials=args.trials, **common
            )
            for algorithm in algorithms
        }
        for run in range(args.runs):  # interleaved, so a busy spell on the machine hits all
            figures.setdefault("bare dask", []).append(
                bare_dask(args.trials, args.replicates, args.workers)
            )
            for algorithm, path in paths.items():
                project = root / "projects" / f"{algorithm}-{run}"
                figures.setdefault(algorithm, []).append(one_run(path, project, args.workers))

    cores = args.workers
    ideal = cores / (args.replicates * MODEL_S) * 60
    bare = statistics.median(run["per_min"] for run in figures.pop("bare dask"))
    print(
        f"calibration of a {MODEL_S * 1e3:.0f} ms (CPU) model: {args.trials} trials x "
        f"{args.replicates} replicates, batch {args.batch}, embedded cluster of {args.workers} "
        f"workers; {os.cpu_count()} cores, python {sys.version.split()[0]}; "
        f"median [min-max] of {args.runs} runs"
    )
    print(
        f"ideal       {ideal:5.0f} trials/min  ({cores} cores / ({args.replicates} x "
        f"{MODEL_S * 1e3:.0f} ms)); aim: utilisation >= 85%"
    )
    print(f"bare dask   {bare:5.0f} trials/min  ({bare / ideal:.1%} of ideal; median)")
    print(
        f"{'algorithm':<9} {'trials/min':>14} {'of ideal':>20} {'of bare dask':>20} "
        f"{'utilisation':>20}"
    )
    for algorithm, runs in figures.items():
        rates = [run["per_min"] for run in runs]
        print(
            f"{algorithm:<9} {spread(rates, '.0f'):>14} "
            f"{spread([rate / ideal for rate in rates], '.1%'):>20} "
            f"{spread([rate / bare for rate in rates], '.1%'):>20} "
            f"{spread([run['utilisation'] for run in runs], '.1%'):>20}"
        )
    print(
        f"{'algorithm':<9} {'client CPU/trial':>18} {'workers CPU/trial':>19} "
        f"{'other load':>22} {'first told':>18} {'wall incl. start':>18}"
    )
    for algorithm, runs in figures.items():
        print(
            f"{algorithm:<9} {spread([run['client_cpu_ms'] for run in runs], '.0f') + ' ms':>18} "
            f"{spread([run['workers_cpu_ms'] for run in runs], '.0f') + ' ms':>19} "
            f"{spread([run['others_cores'] for run in runs], '.2f') + ' cores':>22} "
            f"{spread([run['first_s'] for run in runs], '.2f') + ' s':>18} "
            f"{spread([run['wall_s'] for run in runs], '.1f') + ' s':>18}"
        )
    print(
        "CPU/trial: the whole run's, cluster start included; workers: the worker processes "
        f"and their warm children (the model alone is {args.replicates * MODEL_S * 1e3:.0f} ms); "
        "other load: CPU the machine's other processes took during the run; first told: "
        "from the loop's start to the first trial told"
    )


if __name__ == "__main__":
    main()
