"""The kubernetes cluster kind, as far as it runs without a Kubernetes cluster: the options
handed to dask-kubernetes (connect to the deployed DaskCluster, or create one from an image
pinned by digest, workers preloaded, no credential in the spec), and one-line errors."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest

from modelops.cluster import open_cluster
from modelops.cluster.kubernetes import cluster_options
from modelops.contracts import ModelOpsError
from modelops.settings import Settings

DIGEST = "sha256:" + "ab" * 32


def test_without_an_image_it_connects_to_the_deployed_cluster_and_leaves_it_running() -> None:
    settings = replace(Settings.from_env(), kubernetes_namespace="science")
    assert cluster_options(settings, 4) == {
        "name": "modelops",
        "namespace": "science",
        "create_mode": "CONNECT_ONLY",
        "shutdown_on_close": False,
    }


def test_with_an_image_it_creates_preloaded_workers_and_passes_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELOPS_REGISTRY_PASSWORD", "k8s-secret-pw")
    settings = replace(
        Settings.from_env(),
        kubernetes_image=f"registry.example/modelops@{DIGEST}",
        bundle_registry="registry.example",
    )
    options = cluster_options(settings, 3)
    assert options["image"] == f"registry.example/modelops@{DIGEST}"
    assert options["worker_command"] == ["dask", "worker", "--preload", "modelops.cluster.preload"]
    assert options["n_workers"] == 3 and options["create_mode"] == "CREATE_OR_CONNECT"
    assert options["env"] == {
        "MODELOPS_BUNDLE_REGISTRY": "registry.example",
        "MODELOPS_CHILD_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    assert "k8s-secret-pw" not in repr(options)


@pytest.mark.parametrize("image", ["registry.example/modelops:latest", "modelops@sha256:abc"])
def test_an_image_not_pinned_by_digest_is_refused_in_one_line(image: str) -> None:
    settings = replace(Settings.from_env(), kubernetes_image=image)
    with pytest.raises(ModelOpsError, match=r"must be pinned by digest") as raised:
        cluster_options(settings, 1)
    assert "\n" not in raised.value.info.message


def test_no_kubernetes_here_is_one_line_saying_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kubeconfig").write_text("")  # no cluster, no context
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    with pytest.raises(ModelOpsError) as raised, open_cluster(kind="kubernetes"):
        pass
    message = raised.value.info.message
    if importlib.util.find_spec("dask_kubernetes") is None:
        assert message == (
            "the kubernetes cluster kind needs dask-kubernetes: pip install 'modelops[kubernetes]'"
        )
    else:
        assert message.startswith("cannot reach the Dask cluster 'modelops' on Kubernetes")
        assert "kubectl get daskclusters" in message
    assert "\n" not in message
