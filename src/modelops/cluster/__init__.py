"""Dask: the worker plugin, starting or connecting to a cluster, bounded submission."""

from modelops.cluster.connect import open_cluster
from modelops.cluster.plugin import ModelOpsWorkerPlugin
from modelops.cluster.submit import run_tasks

__all__ = ["ModelOpsWorkerPlugin", "open_cluster", "run_tasks"]
