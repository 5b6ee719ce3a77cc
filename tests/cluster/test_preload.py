"""Workers of a long-lived external cluster keep their warm children across clients: with
`dask worker --preload modelops.cluster.preload`, or with the plugin the first client
installed; and a preloaded worker runs simulations with no client-side set-up at all."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from distributed import Client
from tests.cluster.external import START_TIMEOUT_S, external_cluster

from modelops.cluster import open_cluster, run_tasks
from modelops.cluster.plugin import PLUGIN_NAME, run_sim_batch
from modelops.contracts import BundleRef, ModelOpsError, SimReturn, SimTask

WHO_RAN = """
import json, os, time

def wire(entrypoint, params, seed):
    time.sleep(0.2)
    return {"who": json.dumps({"i": params["i"], "pid": os.getpid(), "cwd": os.getcwd()}).encode()}
"""


def _who(result: SimReturn) -> dict:
    assert result.ok, result.error
    return json.loads(result.outputs["who"].data)


def _job(scheduler: str, ref: BundleRef, first: int) -> list[SimReturn]:
    """One job as `run_study` and `simulate` run it: its own client through `open_cluster`,
    eight simulations, one per Dask task, a window wide enough to keep both workers busy."""
    tasks = [SimTask(ref, "", {"i": i}, seed=i) for i in range(first, first + 8)]
    with open_cluster(scheduler) as client:
        return list(run_tasks(client, tasks, window=4, batch_size=1))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("preload", [True, False], ids=["preloaded", "plugin-from-client"])
def test_a_second_client_reuses_the_warm_children_of_the_first(
    tmp_path: Path, make_bundle, preload: bool
) -> None:
    ref = make_bundle({"wire.py": WHO_RAN}, name="who-ran")
    with external_cluster(tmp_path, preload=preload) as cluster:
        with Client(cluster.address, timeout=START_TIMEOUT_S) as probe:
            workers = set(probe.nthreads())
            worker_pids = set(probe.run(os.getpid).values())

        first = _job(cluster.address, ref, 0)
        second = _job(cluster.address, ref, 100)

        first_pids = {_who(r)["pid"] for r in first}
        second_pids = {_who(r)["pid"] for r in second}
        assert {r.worker for r in first} == workers  # each worker warmed a child
        assert len(first_pids) == 2 and not first_pids & worker_pids
        # the second client's plugin registration replaced the first's: same children
        assert second_pids <= first_pids, (first_pids, second_pids)
        assert sorted(_who(r)["i"] for r in second) == list(range(100, 108))

        # Stopping the workers closes each worker's runner, and with it its children.
        folders = {Path(_who(r)["cwd"]).parent for r in first}
        assert all(folder.is_dir() for folder in folders)
        cluster.close_workers_gracefully()
        assert not any(_alive(pid) for pid in first_pids)
        assert not any(folder.exists() for folder in folders), cluster.log.read_text()


def test_a_preloaded_worker_runs_simulations_without_any_client_side_setup(
    tmp_path: Path, make_bundle
) -> None:
    ref = make_bundle({"wire.py": WHO_RAN}, name="who-ran")
    with (
        external_cluster(tmp_path, n_workers=1, preload=True) as cluster,
        Client(cluster.address, timeout=START_TIMEOUT_S) as client,
    ):
        [worker] = client.nthreads()
        # nothing registered with the scheduler: the worker loaded ModelOps by itself
        assert PLUGIN_NAME not in client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.worker_plugins)
        )
        [result] = client.submit(
            run_sim_batch, [SimTask(ref, "", {"i": 7}, seed=7)], pure=False
        ).result()

        assert result.worker == worker
        assert _who(result)["i"] == 7
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
        assert PLUGIN_NAME in plugins[worker]


def test_a_worker_without_modelops_says_how_to_load_it(
    external_scheduler: str, make_bundle
) -> None:
    ref = make_bundle({"wire.py": WHO_RAN}, name="who-ran")
    with Client(external_scheduler, timeout=START_TIMEOUT_S) as client:
        future = client.submit(run_sim_batch, [SimTask(ref, "", {"i": 1}, seed=1)], pure=False)
        with pytest.raises(RuntimeError, match=re.escape("--preload modelops.cluster.preload")):
            future.result()


def test_a_preloaded_worker_with_a_bad_setting_starts_and_the_client_gets_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_BUNDLE_REGISTRY", "registry.example.com/team")
    with external_cluster(tmp_path, n_workers=1, preload=True) as cluster:
        with pytest.raises(ModelOpsError) as failed, open_cluster(cluster.address):
            pass
        assert "includes a repository path ('team')" in str(failed.value)
        assert "includes a repository path ('team')" in cluster.log.read_text()
