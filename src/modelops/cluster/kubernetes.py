"""The `kubernetes` cluster kind: a Dask cluster run by the Dask Kubernetes Operator, reached
with `dask-kubernetes` from the user's kubeconfig.

With no image set, it connects to the `DaskCluster` of that name (deployed from
`deploy/kubernetes/`, where the registry Secret and cache volume are) and leaves it running.
With an image (pinned by digest), it creates that cluster when it does not exist: workers
run the image's worker command, and the cluster is removed when the client closes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from modelops.cluster.preload import WORKER_COMMAND
from modelops.contracts import ErrorClass, ModelOpsError
from modelops.settings import Settings

PINNED = re.compile(r"@sha256:[0-9a-f]{64}$")
# Settings a worker needs from the client; never a credential (those reach workers through
# the Secret mounted by the deployment, or their own environment).
FORWARDED = {
    "bundle_registry": "MODELOPS_BUNDLE_REGISTRY",
    "child_threads": "MODELOPS_CHILD_THREADS",
}


def cluster_options(settings: Settings, n_workers: int) -> dict[str, Any]:
    """The arguments of `KubeCluster` for these settings: connect to the named cluster, or,
    with an image, create it with workers that start with ModelOps loaded."""
    options: dict[str, Any] = {
        "name": settings.kubernetes_name,
        "namespace": settings.kubernetes_namespace,
    }
    image = settings.kubernetes_image
    if image is None:
        return options | {"create_mode": "CONNECT_ONLY", "shutdown_on_close": False}
    if not PINNED.search(image):
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"kubernetes.image {image!r} must be pinned by digest (NAME@sha256:<64 hex>), "
            "never by a tag that can move",
        )
    env = {
        variable: str(getattr(settings, name))
        for name, variable in FORWARDED.items()
        if getattr(settings, name) is not None
    }
    return options | {
        "image": image,
        "n_workers": n_workers,
        "env": env | {"OMP_NUM_THREADS": "1"},
        "worker_command": list(WORKER_COMMAND),
        "create_mode": "CREATE_OR_CONNECT",
        "shutdown_on_close": True,
    }


@contextmanager
def kubernetes_cluster(settings: Settings, n_workers: int) -> Iterator[Any]:
    try:
        from dask_kubernetes.operator import KubeCluster
        from dask_kubernetes.operator.kubecluster.kubecluster import CreateMode
    except ImportError:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            "the kubernetes cluster kind needs dask-kubernetes: pip install 'modelops[kubernetes]'",
        ) from None
    options = cluster_options(settings, n_workers)
    options["create_mode"] = CreateMode[options["create_mode"]]
    try:
        cluster = KubeCluster(**options, quiet=True)
    except Exception as exc:  # kubeconfig, API server or operator: said in one line
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"cannot reach the Dask cluster {options['name']!r} on Kubernetes "
            f"({type(exc).__name__}: {exc}); check `kubectl get daskclusters` and that "
            "deploy/kubernetes is applied",
        ) from None
    with cluster:
        yield cluster
