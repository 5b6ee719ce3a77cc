"""Set-up shared by the fault tests: a project whose bundle goes through a real registry, a
scheduler and two workers started as separate OS processes with the real `dask` CLI (and
`--preload modelops.cluster.preload`), `mops` commands started as a terminal starts them,
and ways to read what the job stored and what the registry served.

Every process a test starts here is stopped when the test ends, however it ends: the
registry by `own_registry` (tests/conftest.py), the cluster by `external_cluster`
(tests/cluster/external.py), `mops` commands and background runs by the fixtures below."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import pytest
from distributed import Client

import modelops
from modelops.settings import Settings
from modelops.store import JobRecord, JobRecords
from tests.cluster.external import START_TIMEOUT_S, ExternalCluster, external_cluster
from tests.registry_servers import RunningRegistry

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# Standard library only: the bundle's environment is a bare venv, built in a second.
MODEL = """
import json, os, time

def wire(entrypoint, params, seed):
    time.sleep(params["sleep"])
    return {"echo": json.dumps({"seed": seed, "pid": os.getpid()}).encode()}
"""


def write_study(
    project: Path,
    sims: int,
    sleep: float,
    batch_size: int | None = None,
    files: dict[str, bytes] | None = None,
) -> Path:
    """The model (with extra `files`) in `project/model`, and a study of `sims` replicates
    of one parameter set whose simulations each take `sleep` seconds."""
    model = project / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "wire.py").write_text(textwrap.dedent(MODEL).lstrip())
    for name, data in (files or {}).items():
        (model / name).write_bytes(data)
    resources = f"[resources]\nbatch_size = {batch_size}\n" if batch_size else ""
    study = project / "study.toml"
    study.write_text(
        textwrap.dedent(
            f"""
            name = "faults"
            bundle = "model"
            seed = 14
            replicates = {sims}
            [parameters]
            sampler = "list"
            [[parameters.sets]]
            beta = 0.2
            [parameters.fixed]
            sleep = {sleep}
            """
        ).lstrip()
        + resources
    )
    return study


@pytest.fixture
def project(own_registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder whose `.modelops/` holds this test's job records and results, and
    whose bundles are pushed to this test's own registry; the client's cache is its own."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setenv("MODELOPS_BUNDLE_REGISTRY", own_registry.host)
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "client-home"))
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(root))
    return root


@dataclass
class Cluster:
    """A scheduler and two single-thread workers, each a separate OS process (with its
    nanny), sharing one cache folder, as workers on one machine do."""

    external: ExternalCluster
    home: Path  # the workers' MODELOPS_HOME

    @property
    def address(self) -> str:
        return self.external.address

    @property
    def cache(self) -> Path:
        return self.home / "cache"


@pytest.fixture
def cluster(own_registry: RunningRegistry, tmp_path: Path) -> Iterator[Cluster]:
    """Workers that fetch from this test's registry into an empty cache of their own."""
    folder = tmp_path / "cluster"
    folder.mkdir()
    home = tmp_path / "workers-home"
    env = {"MODELOPS_BUNDLE_REGISTRY": own_registry.host, "MODELOPS_HOME": str(home)}
    with external_cluster(folder, n_workers=2, preload=True, worker_env=env) as running:
        yield Cluster(running, home)


@pytest.fixture
def probe(cluster: Cluster) -> Iterator[Client]:
    """A Dask client of the test's own, to look at the workers (never to run simulations)."""
    with Client(cluster.address, timeout=START_TIMEOUT_S) as client:
        client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield client


def worker_pids(client: Client) -> dict[str, int]:
    """Each worker's address and the pid of its process (not of its nanny)."""
    return client.run(os.getpid)


def busy_workers(client: Client) -> dict[str, int]:
    """Address and pid of each worker that is executing a task right now."""

    def state(dask_worker: Any) -> tuple[int, int]:
        return os.getpid(), dask_worker.state.executing_count

    return {
        address: pid for address, (pid, executing) in client.run(state).items() if executing > 0
    }


def wait_for(condition: Callable[[], T], what: str, timeout_s: float = 120) -> T:
    """`condition()` once it is truthy; fails the test naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def attempts(job_id: str) -> pl.DataFrame:
    """Every simulations row the job has committed, in the order written."""
    return modelops.results(job_id).attempts().collect()


def newest_job() -> JobRecord | None:
    records = JobRecords(Settings.from_env().jobs_db)
    if not records.path.exists():
        return None
    jobs = records.list(limit=1)
    return jobs[0] if jobs else None


def blob_gets(registry: RunningRegistry, repository: str, digest: str) -> int:
    """GET requests the registry answered for one blob (its access log has one line per
    request), whatever the answer."""
    line = re.compile(rf'"GET /v2/{re.escape(repository)}/blobs/{re.escape(digest)} HTTP/')
    return sum(1 for text in registry.log_path.read_text().splitlines() if line.search(text))


def manifest_gets(registry: RunningRegistry, repository: str, digest: str) -> int:
    line = re.compile(rf'"GET /v2/{re.escape(repository)}/manifests/{re.escape(digest)} HTTP/')
    return sum(1 for text in registry.log_path.read_text().splitlines() if line.search(text))


def stored_manifest(registry: RunningRegistry, digest: str) -> dict[str, Any]:
    """A manifest as the registry stores it on disk (read without a request to it)."""
    hex_digest = digest.removeprefix("sha256:")
    blob = registry.storage / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest
    return json.loads((blob / "data").read_bytes())


def layer_digests(registry: RunningRegistry, digest: str) -> list[str]:
    """The digests of the layers of the bundle whose manifest has `digest`."""
    return [layer["digest"] for layer in stored_manifest(registry, digest)["layers"]]


class Background:
    """A call run in a thread of this process (a client, as a notebook's would be); its
    result, or its exception, is handed over by `result`."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self._value = call()
        except BaseException as exc:  # handed to the test in result()
            self._error = exc

    def alive(self) -> bool:
        return self._thread.is_alive()

    def result(self, timeout_s: float = 300) -> Any:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"still running after {timeout_s} s"
        if self._error is not None:
            raise self._error
        return self._value


@dataclass
class Mops:
    """One `mops …` process, in a session of its own, its output in files."""

    process: subprocess.Popen
    out: Path
    err: Path

    def wait(self, timeout_s: float = 300) -> int:
        return self.process.wait(timeout=timeout_s)

    def output(self) -> str:
        return f"stdout:\n{self.out.read_text()}\nstderr:\n{self.err.read_text()}"


@pytest.fixture
def mops(project: Path, tmp_path: Path) -> Iterator[Callable[..., Mops]]:
    """Starts `mops ARGS` in the project as a user's terminal would, in its own session, so
    that a kill reaches the client alone, never the cluster. What is still running when the
    test ends is killed, by its own process group."""
    started: list[subprocess.Popen] = []
    counter = iter(range(1000))

    def start(*args: str) -> Mops:
        number = next(counter)
        out, err = tmp_path / f"mops-{number}.out", tmp_path / f"mops-{number}.err"
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "modelops.cli", *args],
                env={**os.environ, "PYTHONPATH": path},
                cwd=project,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        started.append(process)
        return Mops(process, out, err)

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
