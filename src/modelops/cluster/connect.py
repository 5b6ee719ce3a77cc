"""One way to get a Dask client with the ModelOps plugin: an embedded LocalCluster by default,
or any running scheduler by address."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from distributed import Client, LocalCluster

from modelops.cluster.plugin import PLUGIN_NAME, ModelOpsWorkerPlugin

# Worker processes take seconds to start on a busy 2-core machine; the earlier system's
# 5 s death timeout made its fixtures hang. Be generous.
CONNECT_TIMEOUT_S = 120


@contextmanager
def open_cluster(
    scheduler: str | None = None, n_workers: int | None = None, threads_per_worker: int = 1
) -> Iterator[Client]:
    """A client whose workers all have ModelOps loaded; closes what it started.

    The plugin is registered on every connect, so workers without the preload get it, and
    so do workers that join later; a worker that already has a runner (from the preload or
    an earlier client) keeps it with its warm children (see `plugin`)."""
    with ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler, timeout=CONNECT_TIMEOUT_S))
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n_workers or os.cpu_count() or 1,
                    threads_per_worker=threads_per_worker,
                    processes=True,
                    dashboard_address=None,
                    # The scheduler's HTTP endpoints (health, metrics) on a free loopback
                    # port, so two embedded clusters never fight over 8787.
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.ERROR,
                    death_timeout=CONNECT_TIMEOUT_S,
                )
            )
            client = stack.enter_context(Client(cluster, timeout=CONNECT_TIMEOUT_S))
        client.register_plugin(ModelOpsWorkerPlugin(), name=PLUGIN_NAME)
        yield client
