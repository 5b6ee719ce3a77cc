"""Dask: the worker plugin, starting or connecting to a cluster, bounded submission."""

from modelops.cluster.connect import Dashboard, cluster_kind, open_cluster
from modelops.cluster.plugin import ModelOpsWorkerPlugin
from modelops.cluster.submit import SchedulerLost, run_tasks, task_outcome

__all__ = [
    "Dashboard",
    "ModelOpsWorkerPlugin",
    "SchedulerLost",
    "cluster_kind",
    "open_cluster",
    "run_tasks",
    "task_outcome",
]
