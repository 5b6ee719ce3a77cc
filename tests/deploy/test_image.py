"""The container images (deploy/docker/Dockerfile): the fixed points read from the file, and
(slow) a real build on a Debian base made here with mmdebstrap, a scheduler and a worker
container from it, and `mops dev smoke-test` run from this machine against them."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import distributed
import pytest
from distributed import Client

from tests.registry_servers import RunningRegistry

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
IGNOREFILE = REPO / "deploy" / "docker" / "Dockerfile.dockerignore"
PRELOAD = "modelops.cluster.preload"
WORKER_CMD = ["dask", "worker", "--preload", PRELOAD]
SCHEDULER_CMD = ["dask", "scheduler"]
UID = 10001


# --- the Dockerfile, read as instructions -------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                values[name] = value
        return values


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: comments dropped, continuation lines joined."""
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in logical]


def _stages() -> tuple[list[str], list[Stage]]:
    """The ARGs before the first FROM, and the stages in order."""
    global_args: list[str] = []
    stages: list[Stage] = []
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            base, _, name = args.partition(" AS ")
            stages.append(Stage(name.strip(), base.strip()))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            global_args.append(args)
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


def _stage(name: str) -> Stage:
    return next(s for s in _stages()[1] if s.name == name)


def test_the_base_image_is_a_build_argument_with_a_slim_python_default() -> None:
    global_args, stages = _stages()
    assert global_args == ["BASE_IMAGE=python:3.11-slim"]
    assert stages[0].base == "${BASE_IMAGE}"
    # the one virtual environment works on python:3.11-slim and on a Debian python3 alike
    assert any("python3 -m venv /opt/modelops" in run for run in stages[0].all("RUN"))
    assert "/opt/modelops/bin" in stages[0].env()["PATH"]


def test_modelops_is_installed_from_the_wheel_a_builder_stage_built() -> None:
    builder, runtime = _stage("builder"), _stage("runtime")
    assert any("uv build --wheel" in run for run in builder.all("RUN"))
    assert any(copy.startswith("--from=builder ") for copy in runtime.all("COPY"))
    assert any("uv pip install" in run and ".whl" in run for run in runtime.all("RUN"))
    # the final image gets the wheel and nothing else of the checkout
    assert runtime.all("COPY") == ["--from=builder /dist/ /tmp/dist/"]


def test_the_processes_run_as_a_numeric_non_root_user() -> None:
    users = _stage("runtime").all("USER")
    assert users == [f"{UID}:{UID}"]
    for target in ("scheduler", "worker"):
        assert not _stage(target).all("USER"), f"{target} must not switch back to root"


def test_bundles_environments_and_the_uv_cache_live_in_one_volume() -> None:
    runtime = _stage("runtime")
    env = {**_stage("python").env(), **runtime.env()}
    home = env["MODELOPS_HOME"]
    assert env["UV_CACHE_DIR"].startswith(home + "/")
    volumes = [v for args in runtime.all("VOLUME") for v in json.loads(args)]
    assert volumes == [home]
    assert env["OMP_NUM_THREADS"] == "1"
    assert env["UV_PYTHON_DOWNLOADS"] == "never"


def test_the_worker_and_scheduler_commands() -> None:
    stages = _stages()[1]
    assert stages[-1].name == "worker", "the worker is the default target"
    assert [json.loads(c) for c in _stage("worker").all("CMD")] == [WORKER_CMD]
    assert [json.loads(c) for c in _stage("scheduler").all("CMD")] == [SCHEDULER_CMD]
    for stage in stages:  # so Kubernetes `args` replace the command as a whole
        assert not stage.all("ENTRYPOINT")


def test_the_preload_module_the_worker_command_names_exists() -> None:
    assert importlib.util.find_spec(PRELOAD) is not None


# --- a real build and run (slow) ----------------------------------------------------------


def _missing_tools() -> list[str]:
    return [tool for tool in ("podman", "mmdebstrap") if shutil.which(tool) is None]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Podman:
    """podman with storage of its own (vfs, removed afterwards): nothing of the machine's
    own images or containers is seen or touched."""

    def __init__(self, root: Path) -> None:
        self.command = [
            "podman",
            "--root",
            str(root / "storage"),
            "--runroot",
            str(root / "run"),
            "--tmpdir",
            str(root / "tmp"),
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]
        # crun refuses a hybrid cgroup v1/v2 machine ("cgroups in hybrid mode not
        # supported"); runc runs there.
        if shutil.which("runc"):
            self.command += ["--runtime", "runc"]
        # The container keeps this process's limits: raising them needs CAP_SYS_RESOURCE,
        # which a sandbox may not have ("setrlimit RLIMIT_NOFILE: Operation not permitted").
        nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
        self.ulimits = ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]
        # The suite points DOCKER_CONFIG at an empty folder; podman then fails on its missing
        # config.json ("stat .../config.json: no such file or directory"). Nothing here
        # needs registry credentials.
        self.env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"}

    def __call__(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [*self.command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"podman {shlex.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
            )
        return done.stdout.strip()

    def logs(self, container: str) -> str:
        """A container's output: Dask logs to stderr, which podman keeps apart."""
        done = subprocess.run(
            [*self.command, "logs", container],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=self.env,
        )
        return done.stdout + done.stderr

    def quietly(self, *args: str, timeout: float = 120) -> None:
        subprocess.run(
            [*self.command, *args], capture_output=True, timeout=timeout, check=False, env=self.env
        )


class Steps:
    """Wall-clock time of each step, printed and kept as the test's properties."""

    def __init__(self, record) -> None:
        self.record = record
        self.times: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = round(time.perf_counter() - started, 1)
            self.record(f"seconds: {name}", self.times[name])
            print(f"[image test] {name}: {self.times[name]:.1f} s", flush=True)


def _debian_base_tar(out: Path) -> None:
    """A minimal Debian of this machine's release with python3, python3-venv and
    ca-certificates, from the apt sources this machine uses. The machine's CA bundle goes in
    too, so a TLS-intercepting proxy that this machine trusts is trusted in the build."""
    release = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    suite = release.get("VERSION_CODENAME", "").strip('"')
    assert suite, "/etc/os-release names no VERSION_CODENAME"
    sources = next(
        (
            p
            for p in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
            if p.is_file()
        ),
        None,
    )
    assert sources is not None, "no apt sources file to build the Debian base from"
    subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=apt",
            "--include=python3,python3-venv,ca-certificates",
            "--skip=output/dev",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--customize-hook=upload /etc/ssl/certs/ca-certificates.crt "
            "/etc/ssl/certs/ca-certificates.crt",
            suite,
            str(out),
            str(sources),
        ],
        check=True,
        timeout=900,
    )


def _wait_healthy(url: str, logs, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.read().strip() == b"ok":
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered ok:\n{logs()}"
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.timeout(2700)
def test_the_images_run_the_smoke_test_as_scheduler_and_worker_containers(
    tmp_path: Path, registry: RunningRegistry, record_property
) -> None:
    missing = _missing_tools()
    if missing:
        pytest.skip(
            "building and running the image needs podman and mmdebstrap "
            f"(apt-get install podman mmdebstrap runc); missing: {', '.join(missing)}"
        )
    if os.geteuid() != 0:
        pytest.skip("mmdebstrap --mode=root and podman with storage of its own need root")

    steps = Steps(record_property)
    # A short path of our own: podman's sockets live under it (108-byte socket paths).
    root = Path(tempfile.mkdtemp(prefix="mops-podman-"))
    podman = Podman(root)
    suffix = os.urandom(4).hex()
    base = "localhost/modelops-test-base:debian"
    images = {t: f"localhost/modelops-{t}:test-{suffix}" for t in ("scheduler", "worker")}
    scheduler_name, worker_name = f"mops-scheduler-{suffix}", f"mops-worker-{suffix}"
    try:
        with steps.step("mmdebstrap base"):
            _debian_base_tar(root / "base.tar")
        with steps.step("podman import"):
            podman("import", str(root / "base.tar"), base)
        (root / "base.tar").unlink()

        for target in ("worker", "scheduler"):
            with steps.step(f"build {target}"):
                podman(
                    "build",
                    "--network=host",
                    *podman.ulimits,
                    "--file",
                    str(DOCKERFILE),
                    "--ignorefile",
                    str(IGNOREFILE),
                    "--build-arg",
                    f"BASE_IMAGE={base}",
                    # the containers and this client must agree on Dask
                    "--build-arg",
                    f"DASK_VERSION={distributed.__version__}",
                    "--target",
                    target,
                    "--tag",
                    images[target],
                    str(REPO),
                    timeout=1500,
                )
        config = {
            t: json.loads(podman("image", "inspect", "--format", "{{json .Config}}", images[t]))
            for t in images
        }
        assert config["worker"]["Cmd"] == WORKER_CMD
        assert config["scheduler"]["Cmd"] == SCHEDULER_CMD
        assert config["worker"]["User"] == f"{UID}:{UID}"

        # Host networking, everything on loopback; both containers as Kubernetes runs them
        # in deploy/kubernetes: read-only root, /tmp a tmpfs, no capabilities.
        hardened = ["--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges"]
        port, dashboard = _free_port(), _free_port()
        address = f"tcp://127.0.0.1:{port}"
        with steps.step("start scheduler"):
            podman(
                "run", "--detach", "--name", scheduler_name, "--network=host",
                *podman.ulimits, *hardened, images["scheduler"],
                *config["scheduler"]["Cmd"],
                "--host", "127.0.0.1", "--port", str(port),
                "--dashboard-address", f"127.0.0.1:{dashboard}",
            )  # fmt: skip
            _wait_healthy(
                f"http://127.0.0.1:{dashboard}/health", lambda: podman.logs(scheduler_name)
            )

        # The client checks that simulations ran in an environment under its own
        # MODELOPS_HOME, so the worker's volume is mounted at that same path; the bundle
        # travels through the registry, as it does to a cluster.
        client_home = tmp_path / "client-home"
        worker_home = tmp_path / "worker-volume"
        worker_home.mkdir()
        os.chown(worker_home, UID, UID)
        with steps.step("start worker"):
            podman(
                "run", "--detach", "--name", worker_name, "--network=host",
                *podman.ulimits, *hardened,
                "--volume", f"{worker_home}:{client_home}",
                "--env", f"MODELOPS_HOME={client_home}",
                "--env", f"UV_CACHE_DIR={client_home}/uv-cache",
                "--env", f"MODELOPS_BUNDLE_REGISTRY={registry.host}",
                images["worker"],
                *config["worker"]["Cmd"],
                "--host", "127.0.0.1", "--nthreads", "2", "--no-dashboard", address,
            )  # fmt: skip
            with Client(address, timeout=120) as probe:
                probe.wait_for_workers(1, timeout=120)
        worker_log = podman.logs(worker_name)
        assert f"Run preload setup: {PRELOAD}" in worker_log, worker_log

        mops = shutil.which("mops", path=str(Path(sys.executable).parent))
        command = [mops] if mops else [sys.executable, "-m", "modelops.cli"]
        with steps.step("mops dev smoke-test"):
            done = subprocess.run(
                [*command, "dev", "smoke-test", "--scheduler", address],
                env={
                    **os.environ,
                    "MODELOPS_HOME": str(client_home),
                    "MODELOPS_BUNDLE_REGISTRY": registry.host,
                    "MODELOPS_SCHEDULER": address,
                    "COLUMNS": "200",
                },
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{output}\n--- worker log ---\n{podman.logs(worker_name)}"
        assert re.search(r"smoke test passed: 24 simulations ran on 1 workers", output), output
        # the worker wrote its caches as its own non-root user, into the volume
        assert (worker_home / "cache" / "envs").is_dir()
        assert (worker_home / "uv-cache").is_dir()
        assert {p.stat().st_uid for p in worker_home.iterdir()} == {UID}
        print(f"[image test] times: {json.dumps(steps.times)}", flush=True)
    finally:
        for name, grace in ((worker_name, "30"), (scheduler_name, "10")):
            podman.quietly("rm", "--force", "--time", grace, name)
        podman.quietly("rm", "--all", "--force")
        leftovers = subprocess.run(
            [*podman.command, "ps", "--all", "--external", "--quiet"],
            capture_output=True,
            text=True,
            check=False,
            env=podman.env,
        ).stdout.split()
        for container in leftovers:  # a build's working containers, after a failed build
            podman.quietly("rm", "--force", container)
        shutil.rmtree(root, ignore_errors=True)
