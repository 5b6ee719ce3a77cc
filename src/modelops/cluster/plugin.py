"""ModelOps on a Dask worker: one TaskRunner per worker, configured from the worker's own
environment (`MODELOPS_*` read on the worker: where bundles come from, which credentials,
where the cache is), which keeps the worker's warm children.

The runner belongs to the worker, not to a plugin instance. It is kept as a worker
extension (`worker.extensions["modelops"]`), which Dask closes when the worker closes, and it
is installed by whichever comes first: the preload (`dask worker --preload
modelops.cluster.preload`) or the plugin a client registers (`open_cluster`). Dask replaces a
worker plugin whenever a client registers one of the same name, tearing the old one down
first; so the plugin's setup adopts the runner the worker already has and its teardown
leaves the runner alone: a client that connects never costs a long-lived worker its warm
children."""

from __future__ import annotations

from distributed import Worker, WorkerPlugin, get_worker

from modelops.bundle.store_in_use import open_store
from modelops.contracts import SimReturn, SimTask
from modelops.runtime import TaskRunner
from modelops.settings import Settings

PLUGIN_NAME = "modelops"  # the plugin's name, and the runner's key in worker.extensions


def worker_runner(worker: Worker) -> TaskRunner | None:
    """The worker's runner, if ModelOps is loaded on it."""
    runner = worker.extensions.get(PLUGIN_NAME)
    return runner if isinstance(runner, TaskRunner) else None


def install_runner(worker: Worker) -> TaskRunner:
    """The worker's runner: the one it has, else a new one from the worker's own settings
    (which raises on a bad setting, such as a registry host with a path). Called on the
    worker's event loop (plugin setup, preload), so two installs never race."""
    runner = worker_runner(worker)
    if runner is None:
        settings = Settings.from_env()
        runner = TaskRunner(
            source=open_store(settings),
            cache=settings.cache,
            max_idle_children=worker.state.nthreads + 1,
            cache_max_bytes=int(settings.cache_max_gb * 2**30),
            child_threads=settings.child_threads,
        )
        # Dask calls close() on every extension when the worker closes.
        worker.extensions[PLUGIN_NAME] = runner
    return runner


def close_runner(worker: Worker) -> None:
    """Closes the worker's runner and its children; a no-op once closed."""
    runner = worker_runner(worker)
    if runner is not None:
        del worker.extensions[PLUGIN_NAME]
        runner.close()


class ModelOpsWorkerPlugin(WorkerPlugin):
    """Installs the worker's runner, or adopts the one it already has. Stateless, so the
    instance a client pickles carries nothing but its class."""

    name = PLUGIN_NAME

    def setup(self, worker: Worker) -> None:
        install_runner(worker)

    def teardown(self, worker: Worker) -> None:
        """Leaves the runner running. Dask tears a plugin down when a client registers its
        successor (which adopts the runner), when a client unregisters it, and when the
        worker closes; the runner, a worker extension, is closed with the worker."""


def run_sim_batch(tasks: list[SimTask]) -> list[SimReturn]:
    """The Dask task: runs a few simulations of one study on a worker thread, one after
    another through one warm child; never raises for a simulation's own failure."""
    worker = get_worker()
    runner = worker_runner(worker)
    if runner is None:
        raise RuntimeError(
            f"ModelOps is not loaded on worker {worker.address}: start workers with "
            "`dask worker --preload modelops.cluster.preload SCHEDULER` (if they were, the "
            "worker's log says why it failed), or connect with modelops.cluster.open_cluster, "
            "which installs the worker plugin"
        )
    return runner.run_many(tasks, worker=worker.address)
