"""The worker path on a real LocalCluster: plugin, bounded submission, errors that cross."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from distributed import Client, get_task_stream

from modelops.cluster import Dashboard, open_cluster, run_tasks
from modelops.cluster.connect import DASHBOARD_AFTER_S
from modelops.contracts import BundleRef, ErrorClass, SimTask, derive_seeds

SLOW_ECHO = """
import json, os, time

def wire(entrypoint, params, seed):
    if entrypoint == "raise":
        raise KeyError("incidence")
    time.sleep(0.05)
    return {"echo": json.dumps({"pid": os.getpid(), "i": params["i"], "seed": seed}).encode()}
"""


def test_every_task_runs_once_across_both_workers(client: Client, make_bundle) -> None:
    ref = make_bundle({"wire.py": SLOW_ECHO}, name="slow-echo")
    tasks = [SimTask(ref, "", {"i": i}, seed) for i, seed in enumerate(derive_seeds(1, 20))]

    results = list(run_tasks(client, tasks))

    assert sorted(r.task_id for r in results) == sorted(t.task_id for t in tasks)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    echoed = sorted(json.loads(r.outputs["echo"].data)["i"] for r in results)
    assert echoed == list(range(20))
    assert len({r.worker for r in results}) == 2
    assert set(client.nthreads()) == {r.worker for r in results}


@pytest.mark.parametrize("batch_size", [1, 3])
def test_submission_keeps_a_bounded_window_in_flight(
    client: Client, make_bundle, batch_size: int
) -> None:
    ref = make_bundle({"wire.py": SLOW_ECHO}, name="slow-echo")
    window = 3
    pulled = 0
    yielded = 0
    widest = 0

    def tasks() -> Iterator[SimTask]:
        nonlocal pulled, widest
        for i in range(12):
            pulled += 1
            widest = max(widest, pulled - yielded)
            yield SimTask(ref, "", {"i": i}, seed=i)

    for result in run_tasks(client, tasks(), window=window, batch_size=batch_size):
        assert result.ok
        yielded += 1

    assert yielded == 12
    assert widest == window * batch_size


def test_short_simulations_are_batched_from_measured_durations(client: Client, make_bundle) -> None:
    ref = make_bundle({"wire.py": "def wire(e, p, s):\n    return {'s': str(s).encode()}\n"})
    tasks = [SimTask(ref, "", {}, seed=i) for i in range(400)]
    with get_task_stream(client) as stream:
        results = list(run_tasks(client, tasks))
    assert sorted(r.task_id for r in results) == sorted(t.task_id for t in tasks)
    assert all(r.ok for r in results)
    dask_tasks = [t for t in stream.data if t["key"].startswith("modelops-sims-")]
    assert 2 <= len(dask_tasks) < 100  # fast sims travel many to a Dask task


def test_model_error_reaches_the_client_with_its_remote_traceback(
    client: Client, make_bundle
) -> None:
    ref: BundleRef = make_bundle({"wire.py": SLOW_ECHO}, name="slow-echo")
    (result,) = run_tasks(client, [SimTask(ref, "raise", {"i": 0}, seed=1)])

    assert result.error is not None
    assert result.error.error_class is ErrorClass.MODEL
    assert result.error.type == "KeyError"
    assert 'raise KeyError("incidence")' in result.error.traceback
    assert result.worker in client.nthreads()


def test_the_embedded_clusters_dashboard_link_serves_the_dashboard() -> None:
    """The link `mops run` prints is Dask's live dashboard, not a 404 (its bokeh pages load
    in the background, so the link comes once they serve); a cluster opened without asking
    for it (one simulation) gets none."""
    dashboard = Dashboard()
    with open_cluster(n_workers=1, dashboard=dashboard) as client:
        deadline = time.monotonic() + 60
        while dashboard.link is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dashboard.link == client.dashboard_link
        assert dashboard.link.startswith("http://127.0.0.1:")
        status = httpx.get(dashboard.link, timeout=30)
        assert status.status_code == 200 and "Dask" in status.text
        workers = httpx.get(dashboard.link.replace("/status", "/workers"), timeout=30)
        assert workers.status_code == 200
    with open_cluster(n_workers=1) as client:
        time.sleep(1)  # what a dashboard would have taken to load
        assert httpx.get(client.dashboard_link, timeout=30).status_code == 404


def test_a_run_over_before_the_dashboard_starts_loading_never_loads_it() -> None:
    dashboard = Dashboard()
    with open_cluster(n_workers=1, dashboard=dashboard):
        assert any(thread.name == "modelops-dashboard" for thread in threading.enumerate())
    time.sleep(DASHBOARD_AFTER_S + 0.5)  # past when it would have started loading

    assert dashboard.link is None
    assert not any(thread.name == "modelops-dashboard" for thread in threading.enumerate())
