"""The submission window grows when workers join mid-run (Slurm jobs and pods start late):
workers that join are kept busy, not left idle until the next job."""

from __future__ import annotations

import json

from distributed import Client, LocalCluster

from modelops.cluster import run_tasks
from modelops.cluster.plugin import PLUGIN_NAME, ModelOpsWorkerPlugin
from modelops.contracts import SimReturn, SimTask

SLOW = """
import json, time

def wire(entrypoint, params, seed):
    started = time.time()
    time.sleep(0.3)
    return {"span": json.dumps([started, time.time()]).encode()}
"""


def most_at_once(results: list[SimReturn]) -> int:
    events = []
    for result in results:
        start, end = json.loads(result.outputs["span"].data)
        events += [(start, 1), (end, -1)]
    running = peak = 0
    for _, step in sorted(events):
        running += step
        peak = max(peak, running)
    return peak


def test_workers_that_join_mid_run_are_kept_busy(make_bundle) -> None:
    ref = make_bundle({"wire.py": SLOW}, name="slow-sims")
    tasks = [SimTask(ref, "", {"i": i}, seed=i) for i in range(80)]
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(ModelOpsWorkerPlugin(), name=PLUGIN_NAME)
        results = []
        for result in run_tasks(client, tasks, batch_size=1):
            results.append(result)
            if len(results) == 1:
                cluster.scale(4)  # three workers join after the window was sized for one
    assert all(r.ok for r in results) and len(results) == 80
    assert len({r.worker for r in results[40:]}) >= 3
    assert most_at_once(results[40:]) >= 3  # a window of two would allow two at once
