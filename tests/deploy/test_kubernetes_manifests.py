"""The Kubernetes manifests (deploy/kubernetes): rendered with kustomize where it is installed
(`kustomize build`, or `kubectl kustomize`), read as plain YAML otherwise; the Dask custom
resources checked against the Dask operator's CRD schemas, the core objects and pod specs
with kubernetes-validate; and the promises of docs/deploy.md: images by digest, no secret in
the files, the workers' preload, a cache volume where MODELOPS_HOME points."""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
AUTOSCALER = KUBERNETES / "components" / "autoscaler"
VENDORED_CRDS = Path(__file__).parent / "crds"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
PLACEHOLDER = "sha256:" + "0" * 64
PRELOAD = ["dask", "worker", "--preload", "modelops.cluster.preload"]
# an overlay as docs/deploy.md writes one (a loopback registry: no real host in the tests)
OVERLAY_REGISTRY = "127.0.0.1:5000"
OVERLAY_DIGESTS = {
    "modelops-scheduler": "sha256:" + "a" * 64,
    "modelops-worker": "sha256:" + "b" * 64,
}


# --- loading and rendering -----------------------------------------------------------------


def _kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


NO_KUSTOMIZE = "neither kustomize nor kubectl (which has kustomize built in) is on PATH"


def render(folder: Path) -> list[dict[str, Any]]:
    command = _kustomize_command()
    if command is None:
        pytest.skip(NO_KUSTOMIZE)
    done = subprocess.run(
        [*command, str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def raw_documents() -> list[dict[str, Any]]:
    """Every resource the base and the components list, read as it is written."""
    docs = []
    for folder in (BASE, AUTOSCALER):
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        for name in kustomization.get("resources", []):
            docs += [d for d in yaml.safe_load_all((folder / name).read_text()) if d]
    return docs


def write_overlay(folder: Path, autoscaler: bool = True) -> Path:
    """An overlay of the base as docs/deploy.md has the user write one."""
    folder.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "modelops",
        "resources": [os.path.relpath(BASE, folder)],
        "components": [os.path.relpath(AUTOSCALER, folder)] if autoscaler else [],
        "images": [
            {"name": name, "newName": f"{OVERLAY_REGISTRY}/{name}", "digest": digest}
            for name, digest in OVERLAY_DIGESTS.items()
        ],
        "configMapGenerator": [
            {
                "name": "modelops-settings",
                "behavior": "merge",
                "literals": [f"MODELOPS_BUNDLE_REGISTRY={OVERLAY_REGISTRY}"],
            }
        ],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(BASE)


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return render(write_overlay(tmp_path_factory.mktemp("overlay")))


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(docs: list[dict[str, Any]], role: str) -> dict[str, Any]:
    """The one container of the DaskCluster's scheduler or worker pod."""
    (found,) = one(docs, "DaskCluster")["spec"][role]["spec"]["containers"]
    return found


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def images_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from images_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from images_in(item)


def quantity(value: str) -> float:
    """A Kubernetes quantity in bytes (or cores)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    units |= {"m": 1e-3}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, value
    number, unit = match.groups()
    return float(number) * units.get(unit, 1)


def settings_env() -> dict[str, str]:
    lines = (BASE / "settings.env").read_text().splitlines()
    return dict(ln.split("=", 1) for ln in lines if ln.strip() and not ln.startswith("#"))


# --- the promises --------------------------------------------------------------------------


def test_the_base_renders_to_the_settings_and_one_dask_cluster(base) -> None:
    assert sorted(d["kind"] for d in base) == ["ConfigMap", "DaskCluster"]
    assert one(base, "ConfigMap")["metadata"]["name"] == "modelops-settings"


def test_every_image_is_referenced_by_digest_never_by_tag() -> None:
    images = list(images_in(raw_documents()))
    assert len(images) == 2
    for image in images:
        assert DIGEST.search(image), f"{image} is not pinned by digest"
        name = image.split("@")[0]
        assert ":" not in name.rsplit("/", 1)[-1], f"{image} carries a tag"
        assert image.endswith(PLACEHOLDER), f"{image}: the base holds the placeholder digest"
    assert ":latest" not in "".join(p.read_text() for p in KUBERNETES.rglob("*.yaml"))


def test_an_overlay_replaces_the_placeholder_digests_everywhere(overlay) -> None:
    for role, name in (("scheduler", "modelops-scheduler"), ("worker", "modelops-worker")):
        assert container(overlay, role)["image"] == (
            f"{OVERLAY_REGISTRY}/{name}@{OVERLAY_DIGESTS[name]}"
        )
    assert PLACEHOLDER not in yaml.safe_dump_all(overlay)
    assert {d["metadata"]["namespace"] for d in overlay} == {"modelops"}
    settings = one(overlay, "ConfigMap")
    assert settings["metadata"]["name"] == "modelops-settings"  # the name the pods refer to
    assert settings["data"]["MODELOPS_BUNDLE_REGISTRY"] == OVERLAY_REGISTRY
    assert settings["data"]["MODELOPS_CACHE_MAX_GB"] == settings_env()["MODELOPS_CACHE_MAX_GB"]
    autoscaler = one(overlay, "DaskAutoscaler")
    assert autoscaler["spec"]["cluster"] == one(overlay, "DaskCluster")["metadata"]["name"]


CREDENTIAL = re.compile(r"(?i)password|passwd|token|secret|credential|api_?key")


def credential_values(node: Any, path: str = "") -> Iterator[str]:
    """Paths of keys that name a credential and hold a literal value (text or a number)."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if (
                CREDENTIAL.search(str(key))
                and isinstance(value, str | int | float)
                and (not isinstance(value, bool))
            ):
                yield here
            yield from credential_values(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from credential_values(item, f"{path}[{i}]")


def test_no_secret_value_is_written_in_the_manifests() -> None:
    docs = raw_documents()
    assert not [d for d in docs if d["kind"] == "Secret"], "create the Secret, never commit it"
    assert list(credential_values(docs)) == []
    assert not [name for name in settings_env() if CREDENTIAL.search(name)]
    worker_env = env_of(container(docs, "worker"))
    for name, key in [
        ("MODELOPS_REGISTRY_USERNAME", "username"),
        ("MODELOPS_REGISTRY_PASSWORD", "password"),
    ]:
        entry = worker_env[name]
        assert "value" not in entry
        ref = entry["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("modelops-registry", key)
        assert not ref.get("optional"), "a missing Secret must stop the pod, not run anonymous"
    # nothing else that looks like a credential is given as a value
    for c in (container(docs, "scheduler"), container(docs, "worker")):
        for entry in c.get("env", []):
            if CREDENTIAL.search(entry["name"]) or entry["name"].endswith("USERNAME"):
                assert "secretKeyRef" in entry.get("valueFrom", {}), entry
    # the scheduler never needs the registry's credentials
    assert "MODELOPS_REGISTRY" not in str(container(docs, "scheduler").get("env"))


def test_the_credential_check_would_see_a_literal_password() -> None:
    doc = copy.deepcopy(one(raw_documents(), "DaskCluster"))
    doc["spec"]["worker"]["spec"]["containers"][0]["env"].append(
        {"name": "X", "value": "y", "password": "hunter2"}
    )
    assert len(list(credential_values(doc))) == 1
    assert list(credential_values({"automountServiceAccountToken": False})) == []


def test_the_workers_run_dask_worker_with_the_modelops_preload() -> None:
    worker = container(raw_documents(), "worker")
    assert worker["args"][: len(PRELOAD)] == PRELOAD
    assert "command" not in worker  # the image has no entrypoint: args are the command
    # the operator gives each worker DASK_SCHEDULER_ADDRESS; no address in the args
    assert not [a for a in worker["args"] if a.startswith("tcp://")]
    scheduler = container(raw_documents(), "scheduler")
    assert scheduler["args"][:2] == ["dask", "scheduler"]


def test_the_cache_volume_is_mounted_where_modelops_home_points() -> None:
    docs = raw_documents()
    worker = container(docs, "worker")
    env = env_of(worker)
    home = env["MODELOPS_HOME"]["value"]
    assert env["UV_CACHE_DIR"]["value"].startswith(home + "/")  # one filesystem: uv links
    (mount,) = [m for m in worker["volumeMounts"] if m["mountPath"] == home]
    volumes = {v["name"]: v for v in one(docs, "DaskCluster")["spec"]["worker"]["spec"]["volumes"]}
    volume = volumes[mount["name"]]
    assert "emptyDir" in volume or "persistentVolumeClaim" in volume or "ephemeral" in volume
    if "emptyDir" in volume:
        # the kubelet evicts a pod whose emptyDir outgrows its sizeLimit: ModelOps' own
        # eviction must start well before
        limit = quantity(volume["emptyDir"]["sizeLimit"])
        assert limit >= float(settings_env()["MODELOPS_CACHE_MAX_GB"]) * 2**30 * 1.2
    # the image's volume is the same place
    assert f"MODELOPS_HOME={home}" in DOCKERFILE.read_text()


def test_the_bundle_registry_comes_from_the_settings_and_must_be_set() -> None:
    entry = env_of(container(raw_documents(), "worker"))["MODELOPS_BUNDLE_REGISTRY"]
    ref = entry["valueFrom"]["configMapKeyRef"]
    assert ref["name"] == "modelops-settings" and ref["key"] == "MODELOPS_BUNDLE_REGISTRY"
    assert not ref.get("optional")
    # not in the base: an overlay that forgets it gets a pod that will not start
    assert "MODELOPS_BUNDLE_REGISTRY" not in settings_env()


def test_worker_resources_have_requests_and_limits_that_fit_its_threads() -> None:
    worker = container(raw_documents(), "worker")
    resources = worker["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), kind
    assert resources["limits"]["memory"] == resources["requests"]["memory"]
    args = worker["args"]
    threads = int(args[args.index("--nthreads") + 1])
    assert threads <= quantity(resources["limits"]["cpu"])
    # at least 1 GiB of the limit per simulation slot, on top of the worker's own
    assert quantity(resources["limits"]["memory"]) >= (threads + 1) * 2**30


def test_the_pods_run_as_the_images_non_root_user() -> None:
    uid = int(re.search(r"^USER (\d+):", DOCKERFILE.read_text(), re.M).group(1))
    cluster = one(raw_documents(), "DaskCluster")
    for role in ("scheduler", "worker"):
        pod = cluster["spec"][role]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid
        assert pod["automountServiceAccountToken"] is False
        (c,) = pod["containers"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        if c["securityContext"].get("readOnlyRootFilesystem"):
            assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}


# --- schemas -------------------------------------------------------------------------------


def crd_sources() -> list[Path]:
    """The vendored CRDs, and those of an installed dask-kubernetes (found, not imported)."""
    sources = [VENDORED_CRDS]
    spec = importlib.util.find_spec("dask_kubernetes")
    if spec is not None and spec.submodule_search_locations:
        installed = Path(next(iter(spec.submodule_search_locations)))
        crds = installed / "operator" / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"
        if (crds / "daskcluster.yaml").is_file():
            sources.append(crds)
    return sources


def strict(schema: Any) -> Any:
    """The CRD's structural schema as the API server applies it with strict field
    validation: an unknown field is an error (jsonschema alone would accept it)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_validator(folder: Path, kind: str):
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema validates the Dask CRDs")
    file = folder / f"{kind.lower()}.yaml"
    crd = yaml.safe_load(file.read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    schema = strict(schema)
    # apiVersion, kind and metadata are the API server's, not the CRD's, to check
    schema["properties"] |= {
        "apiVersion": {"const": f"{crd['spec']['group']}/v1"},
        "kind": {"const": kind},
        "metadata": {"type": "object"},
    }
    return jsonschema.Draft7Validator(schema)


def schema_errors(validator, doc: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
    ]


@pytest.mark.parametrize(
    "source", crd_sources(), ids=lambda p: "vendored" if p == VENDORED_CRDS else "installed"
)
def test_the_dask_resources_match_the_operators_crd_schemas(source: Path) -> None:
    kinds = set()
    for doc in raw_documents():
        if doc["apiVersion"].startswith("kubernetes.dask.org/"):
            kinds.add(doc["kind"])
            assert schema_errors(crd_validator(source, doc["kind"]), doc) == []
    assert kinds == {"DaskCluster", "DaskAutoscaler"}


def test_the_crd_check_catches_a_misspelt_field_and_a_number_for_a_quantity() -> None:
    validator = crd_validator(VENDORED_CRDS, "DaskCluster")
    doc = copy.deepcopy(one(raw_documents(), "DaskCluster"))
    worker = doc["spec"]["worker"]["spec"]["containers"][0]
    worker["resource"] = worker.pop("resources")
    worker["resource"]["limits"] = {"cpu": 2}
    doc["spec"]["scheduler"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = 2
    errors = schema_errors(validator, doc)
    assert any("'resource' was unexpected" in e for e in errors), errors
    assert any("limits.cpu: 2 is not of type 'string'" in e for e in errors), errors


def kubernetes_validate_all(objects: list[dict[str, Any]]) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate checks the core objects"
    )
    version = kv.latest_version()
    for obj in objects:
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as error:
            pytest.fail(f"{obj['kind']} {'.'.join(map(str, error.path))}: {error.message}")


def test_the_pod_specs_and_the_service_are_valid_kubernetes() -> None:
    """The operator makes Pods (through Deployments) and the Service from these specs."""
    cluster = one(raw_documents(), "DaskCluster")
    meta = {"name": "modelops", "namespace": "modelops"}
    objects = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": cluster["spec"][r]["spec"]}
        for r in ("scheduler", "worker")
    ]
    service_spec = cluster["spec"]["scheduler"]["service"]
    objects.append({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": service_spec})
    kubernetes_validate_all(objects)


def test_the_rendered_core_objects_are_valid_kubernetes(overlay) -> None:
    objects = [d for d in overlay if not d["apiVersion"].startswith("kubernetes.dask.org/")]
    assert {o["kind"] for o in objects} == {"ConfigMap"}
    kubernetes_validate_all(objects)


def docs_patches() -> list[dict[str, Any]]:
    """Every kustomize patch docs/deploy.md shows: the `patches:` of its overlay example and
    the blocks that are lists of patches."""
    text = (REPO / "docs" / "deploy.md").read_text()
    patches = []
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and doc.get("kind") == "Kustomization":
            patches += doc.get("patches", [])
        elif isinstance(doc, list) and all("target" in p for p in doc):
            patches += doc
    return patches


def test_the_patches_docs_deploy_shows_render_and_stay_valid(tmp_path: Path) -> None:
    patches = docs_patches()
    assert len(patches) >= 3
    folder = write_overlay(tmp_path / "overlay")
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    kustomization["patches"] = patches
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    docs = render(folder)
    cluster = one(docs, "DaskCluster")
    assert cluster["spec"]["worker"]["replicas"] == 8
    assert cluster["spec"]["scheduler"]["service"]["type"] == "LoadBalancer"
    assert cluster["spec"]["worker"]["spec"]["imagePullSecrets"] == [{"name": "modelops-pull"}]
    for kind in ("DaskCluster", "DaskAutoscaler"):
        assert schema_errors(crd_validator(VENDORED_CRDS, kind), one(docs, kind)) == []
