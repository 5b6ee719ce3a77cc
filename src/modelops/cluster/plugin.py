"""The Dask worker plugin: gives each worker a TaskRunner configured from the worker's own
environment (`MODELOPS_*` read on the worker: where bundles come from, which credentials,
where the cache is), and stops its child processes on teardown."""

from __future__ import annotations

from distributed import Worker, WorkerPlugin, get_worker

from modelops.bundle.store_in_use import open_store
from modelops.contracts import SimReturn, SimTask
from modelops.runtime import TaskRunner
from modelops.settings import Settings

PLUGIN_NAME = "modelops"


class ModelOpsWorkerPlugin(WorkerPlugin):
    name = PLUGIN_NAME

    def __init__(self) -> None:
        self.runner: TaskRunner | None = None

    def setup(self, worker: Worker) -> None:
        settings = Settings.from_env()
        self.runner = TaskRunner(
            source=open_store(settings),
            cache=settings.cache,
            max_idle_children=worker.state.nthreads + 1,
            cache_max_bytes=int(settings.cache_max_gb * 2**30),
            child_threads=settings.child_threads,
        )

    def teardown(self, worker: Worker) -> None:
        if self.runner is not None:
            self.runner.close()


def run_sim_batch(tasks: list[SimTask]) -> list[SimReturn]:
    """The Dask task: runs a few simulations of one study on a worker thread, one after
    another; never raises for a simulation's own failure."""
    worker = get_worker()
    plugin = worker.plugins[PLUGIN_NAME]
    assert isinstance(plugin, ModelOpsWorkerPlugin) and plugin.runner is not None
    return [plugin.runner.run(task, worker=worker.address) for task in tasks]
