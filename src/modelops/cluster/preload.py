"""Workers that start with ModelOps loaded:

    dask worker --preload modelops.cluster.preload tcp://SCHEDULER:8786

`dask_setup` installs the worker plugin before the worker joins the scheduler: one
TaskRunner per worker, configured from the worker's own `MODELOPS_*` environment. A client
that connects later (`open_cluster`) registers the plugin again, and the worker keeps its
runner and warm children. `dask_teardown` closes the runner when the worker closes.

This module path is the workers' command line in the container image and in Kubernetes and
Slurm deployments: keep it."""

from __future__ import annotations

from distributed import Worker

from modelops.cluster.plugin import PLUGIN_NAME, ModelOpsWorkerPlugin, close_runner

WORKER_COMMAND = ("dask", "worker", "--preload", __name__)  # then the scheduler's address


async def dask_setup(worker: Worker) -> None:
    if not isinstance(worker, Worker):
        raise TypeError(
            f"modelops.cluster.preload loads ModelOps on a worker (`dask worker --preload "
            f"modelops.cluster.preload`), not on a {type(worker).__name__}"
        )
    # A bad setting raises here: Dask logs it and starts the worker without ModelOps; a
    # client's open_cluster then tries again and raises the same error on the client.
    await worker.plugin_add(ModelOpsWorkerPlugin(), name=PLUGIN_NAME, catch_errors=False)


def dask_teardown(worker: Worker) -> None:
    if isinstance(worker, Worker):
        close_runner(worker)
