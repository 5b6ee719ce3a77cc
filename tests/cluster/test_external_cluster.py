"""The same path on a cluster of separate OS processes: `dask scheduler` and `dask worker`."""

from __future__ import annotations

import json
import os
import signal

import pytest
from tests.cluster.external import START_TIMEOUT_S

from modelops.devtools.smoke import run_smoke_test


def test_smoke_test_runs_on_separate_scheduler_and_worker_processes(
    external_scheduler: str,
) -> None:
    from distributed import Client

    with Client(external_scheduler, timeout=START_TIMEOUT_S) as client:
        client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        workers = set(client.nthreads())

    report = run_smoke_test(simulations=12, scheduler=external_scheduler)

    assert report.simulations == 12  # the study's simulations, all stored and checked
    assert report.workers <= workers and report.workers
    assert 0 < report.time_to_first_result_s <= report.total_s
    # the determinism re-run (api.simulate) ran on the same external cluster
    assert report.sample is not None and report.sample.worker in workers
    assert report.sample.outputs["result"].rows == 60


SLOW = """
import json, os, time

def wire(entrypoint, params, seed):
    time.sleep(0.3)
    return {"echo": json.dumps({"i": params["i"], "pid": os.getpid()}).encode()}
"""


def test_killing_a_worker_mid_run_loses_no_simulation_and_duplicates_none(
    external_scheduler: str, make_bundle
) -> None:
    from distributed import Client

    from modelops.cluster import run_tasks
    from modelops.cluster.connect import open_cluster
    from modelops.contracts import SimTask

    ref = make_bundle({"wire.py": SLOW}, name="survivor")
    tasks = [SimTask(ref, "", {"i": i}, seed=i) for i in range(30)]
    with Client(external_scheduler, timeout=START_TIMEOUT_S) as probe:
        probe.wait_for_workers(2, timeout=START_TIMEOUT_S)
    results = []
    killed = None
    with open_cluster(external_scheduler) as client:
        for result in run_tasks(client, tasks, window=6):
            results.append(result)
            if len(results) == 5:
                pids = client.run(os.getpid)
                killed = pids[result.worker]
                os.kill(killed, signal.SIGKILL)

    assert killed is not None
    assert sorted(r.task_id for r in results) == sorted(t.task_id for t in tasks)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    echoed = sorted(json.loads(r.outputs["echo"].data)["i"] for r in results)
    assert echoed == list(range(30))


def test_a_plugin_that_cannot_start_is_reported_to_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelops.cluster.connect import open_cluster
    from modelops.contracts import ModelOpsError

    monkeypatch.setenv("MODELOPS_BUNDLE_REGISTRY", "registry.example.com/team")
    with pytest.raises(ModelOpsError) as failed, open_cluster(n_workers=1):
        pass
    assert "includes a repository path ('team')" in str(failed.value)
