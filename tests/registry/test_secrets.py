"""A registry password never appears in an error, a log, a repr, a job record or the task graph.

Against real registries (htpasswd and bearer-token `docker-registry` processes) and a real
Dask cluster: the secrets are used for real, then everything a person or another process
could see is searched for them.
"""

from __future__ import annotations

import base64
import logging
import os
import pickle
import secrets
import shutil
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.protocol import pickle as dask_pickle
from tests.conftest import SMOKE_BUNDLE
from tests.registry_servers import RunningRegistry

import modelops
from modelops import api
from modelops.api import Registry
from modelops.bundle.registry import Credentials, RegistryClient, RegistryHost
from modelops.bundle.store_in_use import open_store, registry_client
from modelops.cluster.plugin import ModelOpsWorkerPlugin
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError, SimTask
from modelops.jobs import run_study
from modelops.settings import Settings
from modelops.store import JobState
from modelops.study import load_study

MOPS = [sys.executable, "-m", "modelops.cli"]
SECRET = "pa55-Wd-" + secrets.token_hex(6)


def creds(registry: RunningRegistry) -> dict[str, str]:
    assert registry.username is not None and registry.password is not None
    return {"username": registry.username, "password": registry.password}


def needles(registry: RunningRegistry) -> list[str]:
    """The password, and the basic-auth form that carries it."""
    user, password = creds(registry).values()
    return [password, base64.b64encode(f"{user}:{password}".encode()).decode()]


def everything_said(exc: BaseException) -> str:
    text = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, ModelOpsError):
        text += [repr(exc.info), exc.info.message, exc.info.traceback]
    return "\n".join(text)


def files_containing(root: Path, secrets_: list[str]) -> list[str]:
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            found += [str(path) for secret in secrets_ if secret.encode() in data]
    return found


@pytest.fixture(params=["basic", "token"])
def real_registry(
    request: pytest.FixtureRequest, basic_registry: RunningRegistry, token_registry: RunningRegistry
) -> RunningRegistry:
    return basic_registry if request.param == "basic" else token_registry


# --- credentials inside the registry setting -----------------------------------------------

WITH_USERINFO = [
    f"https://bob:{SECRET}@myregistry.example.com",
    f"http://bob:{SECRET}@127.0.0.1:5000",
    f"bob:{SECRET}@localhost:5000",
    f"https://bob:{SECRET}@myregistry.example.com/team/models",
    f"https://{SECRET}@myregistry.example.com",  # a token given as the user name
    f"https://bob:{SECRET}@@/x:1@myregistry.example.com",  # a password with @, / and :
]


@pytest.mark.parametrize(
    "value",
    WITH_USERINFO,
    ids=["https", "http-loopback", "no-scheme", "with-path", "token-as-user", "odd-password"],
)
def test_a_registry_with_credentials_in_it_is_refused_without_repeating_them(value: str) -> None:
    """Before: `https://bob:secret@host` was read as host `bob`, port `secret@host`, and the
    error repeated the whole value."""
    calls = [
        lambda: RegistryHost.parse(value),
        lambda: api.push(SMOKE_BUNDLE, registry=value),
        lambda: api.list_bundles(value),
        lambda: api.login(Registry(value, "bob", SECRET)),
        lambda: registry_client(value),
    ]
    for call in calls:
        with pytest.raises(ModelOpsError) as caught:
            call()
        info = caught.value.info
        assert info.error_class is ErrorClass.BAD_INPUT
        assert "\n" not in info.message
        assert "contains '@': a registry takes no credentials" in info.message
        assert "mops bundle login" in info.message
        assert SECRET not in everything_said(caught.value)
        assert "bob" not in info.message


def test_a_registry_setting_with_credentials_in_it_is_refused_on_workers_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MODELOPS_BUNDLE_REGISTRY is what every worker's plugin opens its store from."""
    monkeypatch.setenv("MODELOPS_BUNDLE_REGISTRY", WITH_USERINFO[0])
    with pytest.raises(ModelOpsError) as caught:
        open_store(Settings.from_env())
    assert caught.value.info.error_class is ErrorClass.BAD_INPUT
    assert SECRET not in everything_said(caught.value)


@pytest.mark.parametrize("how", ["--registry", "MODELOPS_BUNDLE_REGISTRY"])
def test_mops_refuses_credentials_in_the_registry_in_one_line(
    basic_registry: RunningRegistry, how: str
) -> None:
    value = f"https://bob:{SECRET}@{basic_registry.host}"
    env = {**os.environ}
    if how == "--registry":
        args = ["bundle", "push", str(SMOKE_BUNDLE), "--registry", value]
    else:
        args = ["bundle", "list"]
        env["MODELOPS_BUNDLE_REGISTRY"] = value
    done = subprocess.run(
        [*MOPS, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bad_input: the registry given ")
    assert SECRET not in done.stderr


# --- reprs, str, pickling --------------------------------------------------------------------


def test_no_secret_in_reprs_of_hosts_credentials_clients_and_sources(
    real_registry: RunningRegistry,
) -> None:
    host_text = f"http://{real_registry.host}/"
    with registry_client(host_text, **creds(real_registry)) as client:
        client.check()
        client.repositories()  # fills the token cache of a token registry
        store = open_store(Settings.from_env(), Registry(host_text, **creds(real_registry)))
        auth = client._http.auth  # the RegistryAuth in use
        tokens = [token.value for token in auth._tokens.values()]
        if real_registry.auth == "token":
            assert tokens  # the token flow really ran
        objects = [client, client.host, auth, auth.credentials, store, *auth._tokens.values()]
        said = "\n".join(repr(o) + str(o) for o in objects)
        store.client.close()
    for secret in [*needles(real_registry), *tokens]:
        assert secret not in said
    assert real_registry.host in repr(client)
    assert real_registry.username in repr(client.host) + repr(auth.credentials)  # type: ignore[operator]


def test_credentials_and_clients_refuse_to_be_pickled(basic_registry: RunningRegistry) -> None:
    """Nothing that holds a password can be shipped to another process, by accident or not:
    workers resolve their own from their environment."""
    credentials = Credentials(**creds(basic_registry))
    with RegistryClient(RegistryHost.parse(basic_registry.host), credentials) as client:
        for holder in (credentials, client):
            with pytest.raises(TypeError) as caught:
                pickle.dumps(holder)
            assert "never leave" in str(caught.value)
            assert basic_registry.password not in everything_said(caught.value)  # type: ignore[operator]


# --- logs ------------------------------------------------------------------------------------


def test_no_secret_in_logs_at_debug_level(
    real_registry: RunningRegistry, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """httpx and httpcore log every request (and response headers) at DEBUG."""
    with caplog.at_level(logging.DEBUG):
        report = api.push(
            SMOKE_BUNDLE, registry=Registry(real_registry.host, **creds(real_registry))
        )
        api.pull(
            str(report.ref),
            dest=tmp_path / "out",
            registry=Registry(real_registry.host, **creds(real_registry)),
        )
        api.list_bundles(Registry(real_registry.host, **creds(real_registry)))
        with pytest.raises(ModelOpsError):
            api.list_bundles(Registry(real_registry.host, "bob", SECRET))
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)
    for secret in [*needles(real_registry), SECRET]:
        assert secret not in caplog.text


# --- the task graph and the job record of a registry-backed run -----------------------------


class GraphRecorder(SchedulerPlugin):
    """Keeps every task the scheduler is given, pickled as Dask ships it."""

    def __init__(self) -> None:
        self.pickled: list[bytes] = []

    def update_graph(self, scheduler, *, keys, **kwargs) -> None:  # type: ignore[no-untyped-def]
        for key in keys:
            task = scheduler.tasks.get(key)
            if task is not None and task.run_spec is not None:
                self.pickled.append(dask_pickle.dumps(task.run_spec))


STUDY = """
    name = "registry-backed"
    bundle = "model"
    entrypoint = "sir"
    seed = 11
    replicates = 2
    [parameters]
    sampler = "grid"
    [parameters.dims.beta]
    type = "float"
    low = 0.2
    high = 0.3
    points = 2
    [parameters.fixed]
    days = 5
"""


@pytest.fixture
def registry_backed(
    basic_registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A project whose bundle goes through the basic-auth registry, credentials in the
    environment (where workers read theirs), and an empty cache."""
    project = tmp_path / "project"
    shutil.copytree(SMOKE_BUNDLE, project / "model", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "study.toml").write_text(textwrap.dedent(STUDY).lstrip())
    user, password = creds(basic_registry).values()
    monkeypatch.setenv("MODELOPS_BUNDLE_REGISTRY", basic_registry.host)
    monkeypatch.setenv("MODELOPS_REGISTRY_USERNAME", user)
    monkeypatch.setenv("MODELOPS_REGISTRY_PASSWORD", password)
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(project))
    return project


@pytest.fixture
def cluster_with_recorder() -> Iterator[tuple[LocalCluster, GraphRecorder]]:
    recorder = GraphRecorder()
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
        death_timeout=120,
    ) as cluster:
        cluster.scheduler.add_plugin(recorder)
        yield cluster, recorder


def stored_text(job_id: str) -> str:
    """Every simulation row the job stored (Parquet is compressed: a byte search of the files
    alone could miss a secret), as text."""
    rows = modelops.results(job_id).attempts().collect()
    return rows.write_csv()


def test_no_secret_in_the_task_graph_or_the_job_record(
    basic_registry: RunningRegistry,
    registry_backed: Path,
    cluster_with_recorder: tuple[LocalCluster, GraphRecorder],
    tmp_path: Path,
) -> None:
    cluster, recorder = cluster_with_recorder
    job = run_study(load_study(registry_backed / "study.toml"), scheduler=cluster.scheduler_address)

    assert job.state is JobState.SUCCEEDED, job
    ref = BundleRef.parse(job.bundle)
    assert recorder.pickled  # the simulations' tasks, as the scheduler got them
    assert all(ref.digest.encode() in pickled for pickled in recorder.pickled)
    # What else the client hands Dask: the worker plugin; and SimTasks pickled on their own.
    shipped = [
        *recorder.pickled,
        dask_pickle.dumps(ModelOpsWorkerPlugin()),
        pickle.dumps(SimTask(ref, "sir", {"beta": 0.2}, 1)),
    ]
    for secret in needles(basic_registry):
        assert not any(secret.encode() in data for data in shipped)
        assert secret not in stored_text(job.job_id)
    # The job record (SQLite), the result files and the worker cache: nothing anywhere.
    assert (registry_backed / ".modelops" / "jobs.db").is_file()
    assert files_containing(tmp_path, needles(basic_registry)) == []


def test_no_secret_in_the_job_record_when_workers_are_refused(
    basic_registry: RunningRegistry, registry_backed: Path, tmp_path: Path
) -> None:
    """Workers with a wrong password fail every simulation with a registry-auth error; what
    the job stores names the cause and neither password."""
    wrong = f"wrong-{secrets.token_urlsafe(12)}"
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
        death_timeout=120,
        env={"MODELOPS_REGISTRY_PASSWORD": wrong},  # the client keeps the right one
    ) as cluster:
        job = run_study(
            load_study(registry_backed / "study.toml"), scheduler=cluster.scheduler_address
        )

    assert job.state is JobState.FAILED, job
    rows = modelops.results(job.job_id).attempts().collect()
    assert set(rows["error_class"]) == {"registry_auth"}
    assert all(
        f"authentication failed for {basic_registry.host} (HTTP 401)" in message
        for message in rows["error_message"]
    )
    said = stored_text(job.job_id)
    for secret in [*needles(basic_registry), wrong]:
        assert secret not in said
    assert files_containing(tmp_path, [*needles(basic_registry), wrong]) == []
