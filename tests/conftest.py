"""Shared test set-up: an isolated MODELOPS_HOME, bundle-making helpers, one embedded cluster."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client

from modelops.bundle import LayoutStore, build_bundle
from modelops.cluster import open_cluster
from modelops.contracts import BundleRef
from modelops.runtime import TaskRunner
from modelops.settings import Settings
from tests.registry_servers import RunningRegistry, run_registry

FIXTURES = Path(__file__).parent / "fixtures"
SMOKE_BUNDLE = FIXTURES / "smoke_bundle"


@pytest.fixture(scope="session", autouse=True)
def modelops_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test (and every worker process it starts) uses a fresh store and cache."""
    home = tmp_path_factory.mktemp("modelops-home")
    previous = os.environ.get("MODELOPS_HOME")
    os.environ["MODELOPS_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("MODELOPS_HOME", None)
    else:
        os.environ["MODELOPS_HOME"] = previous


@pytest.fixture(scope="session")
def store(modelops_home: Path) -> LayoutStore:
    return LayoutStore(Settings.from_env().bundle_store)


def write_project(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


@pytest.fixture
def make_bundle(tmp_path: Path, store: LayoutStore):
    """Write a project from {path: source}, build it and store it; returns its reference."""
    counter = iter(range(1_000_000))

    def make(files: dict[str, str], name: str = "project") -> BundleRef:
        root = write_project(tmp_path / f"{name}-{next(counter)}", files)
        return store.put(build_bundle(root, repository=name))

    return make


@pytest.fixture
def runner(store: LayoutStore) -> Iterator[TaskRunner]:
    """A worker's TaskRunner without Dask around it: real envs, real child processes."""
    runner = TaskRunner(store, Settings.from_env().cache)
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """An anonymous docker-registry shared by tests that do not stop or break it."""
    with run_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture
def own_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A registry of this test's own, for tests that stop it or tamper with its storage."""
    with run_registry(tmp_path) as running:
        yield running


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with run_registry(tmp_path_factory.mktemp("basic-registry"), auth="basic") as running:
        yield running


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with run_registry(tmp_path_factory.mktemp("token-registry"), auth="token") as running:
        yield running


@pytest.fixture(autouse=True)
def no_ambient_registry_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests see no registry, credentials, scheduler, Docker config or user config file from
    the machine they run on."""
    for name in (
        "MODELOPS_SCHEDULER",
        "MODELOPS_TLS_CA",
        "MODELOPS_TLS_CERT",
        "MODELOPS_TLS_KEY",
        "MODELOPS_BUNDLE_REGISTRY",
        "MODELOPS_REGISTRY_USERNAME",
        "MODELOPS_REGISTRY_PASSWORD",
        "MODELOPS_REGISTRY_INSECURE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path_factory.mktemp("docker-config")))
    # nor a user config file: settings come from the test's environment and project only
    monkeypatch.setenv("MODELOPS_CONFIG", str(tmp_path_factory.mktemp("user-config") / "none.toml"))


@pytest.fixture(scope="session")
def client(modelops_home: Path) -> Iterator[Client]:
    """One embedded LocalCluster (2 worker processes) shared by the tests that need Dask."""
    with open_cluster(n_workers=2, threads_per_worker=1) as client:
        yield client
