"""Workers as Slurm jobs (`--cluster slurm`): the job script dask-jobqueue submits, the
one-line errors, and, in a slow test, a study run through a real one-node Slurm (munged,
slurmctld and slurmd from Debian's slurm-wlm and munge, started and stopped here)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.conftest import write_project

import modelops
from modelops.contracts import ModelOpsError
from modelops.settings import Settings

pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed")

SECRET = "s3cret-registry-password-do-not-leak"
START_TIMEOUT_S = 60
SBIN = os.pathsep.join(["/usr/sbin", "/sbin", os.environ.get("PATH", "")])
DAEMONS = ("munged", "mungekey", "munge", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue")

MODEL = """
import json

def wire(entrypoint, params, seed):
    return {"echo": json.dumps({"x": params["x"], "seed": seed}).encode()}
"""


# ---------------------------------------------------------------------------------------
# The job script, with a stand-in sbatch that keeps what it is given


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`sbatch` and `scancel` on PATH that keep the scripts they get and submit nothing:
    `sbatch --test-only` answers as Slurm does, a submission gets job 4242."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kept = tmp_path / "kept"
    kept.mkdir()
    (bin_dir / "sbatch").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--test-only" ]; then\n'
        f'  cat > "{kept}/test-only.sh"\n'
        f'  if [ -f "{kept}/refuse" ]; then cat "{kept}/refuse" >&2; exit 1; fi\n'
        '  echo "sbatch: Job 4241 to start at now" >&2; exit 0\n'
        "fi\n"
        f'cp "$1" "{kept}/submitted.sh"\n'
        'echo "Submitted batch job 4242"\n'
    )
    (bin_dir / "scancel").write_text(f'#!/bin/sh\necho "$@" >> "{kept}/cancelled"\n')
    for tool in ("sbatch", "scancel"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return kept


def _wait_for(path: Path, timeout_s: float = START_TIMEOUT_S) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.1)
    time.sleep(0.2)  # written by a shell: let it finish
    return path.read_text()


def test_the_job_script_runs_the_image_worker_command_with_the_settings_and_no_secret(
    tmp_path: Path, fake_slurm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelops.cluster.slurm import slurm_cluster

    project = write_project(tmp_path / "project", {"wire.py": MODEL})
    (project / "modelops.toml").write_text(
        '[slurm]\nqueue = "compute"\ncores = 3\nmemory = "1.5GB"\nwalltime = "02:30:00"\n'
        '[registry]\nhost = "registry.example.org:5000"\n'
    )
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(project))
    monkeypatch.setenv("MODELOPS_REGISTRY_USERNAME", "modeller")
    monkeypatch.setenv("MODELOPS_REGISTRY_PASSWORD", SECRET)
    settings = Settings.from_env()

    with slurm_cluster(settings, 1) as cluster:
        script = _wait_for(fake_slurm / "submitted.sh")
        address = cluster.scheduler_address
        assert cluster.job_script().splitlines()[:-1] == script.splitlines()[:-1]
    assert "4242" in (fake_slurm / "cancelled").read_text()  # closing cancels the job
    checked = (fake_slurm / "test-only.sh").read_text()  # checked before anything started

    for text in (script, checked):
        lines = text.splitlines()
        assert "#SBATCH -p compute" in lines
        assert "#SBATCH -n 1" in lines
        assert "#SBATCH --cpus-per-task=3" in lines
        assert "#SBATCH --mem=1536M" in lines
        assert "#SBATCH -t 02:30:00" in lines
        assert "#SBATCH -J modelops-worker" in lines
        log_dir = project / ".modelops" / "slurm"
        assert f"#SBATCH -o {log_dir}/modelops-worker-%J.out" in lines
        assert "export OMP_NUM_THREADS=1" in lines
        assert "export MODELOPS_BUNDLE_REGISTRY=registry.example.org:5000" in lines
        assert f"export MODELOPS_HOME={os.environ['MODELOPS_HOME']}" in lines
        # the image's worker command, on this Python: one worker, threads = cores
        command = lines[-1]
        assert command.startswith(f"{sys.executable} -m distributed.cli.dask_worker ")
        assert " --preload modelops.cluster.preload" in command
        assert " --nthreads 3 " in command and "--nworkers" not in command
        assert " --memory-limit 1.50GiB " in command
        # no secret, and no credential variable at all: workers read their own
        assert SECRET not in text
        assert "PASSWORD" not in text and "USERNAME" not in text
    assert address in script.splitlines()[-1]


def test_without_sbatch_on_path_the_slurm_kind_is_one_line_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelops.cluster.connect import open_cluster

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(ModelOpsError) as raised, open_cluster(kind="slurm"):
        pass
    message = str(raised.value.info.message)
    assert message.startswith("the slurm cluster kind needs Slurm's sbatch on PATH; ")
    assert "\n" not in message


def test_without_dask_jobqueue_the_slurm_kind_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelops.cluster.slurm import slurm_cluster

    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # import fails as if missing
    with pytest.raises(ModelOpsError) as raised, slurm_cluster(Settings.from_env(), 1):
        pass
    assert raised.value.info.error_class == "bad_input"
    assert raised.value.info.message == (
        "the slurm cluster kind needs dask-jobqueue: pip install dask-jobqueue"
    )


def test_a_job_slurm_refuses_is_one_line_with_slurms_words_and_nothing_submitted(
    fake_slurm: Path,
) -> None:
    from modelops.cluster.slurm import slurm_cluster

    (fake_slurm / "refuse").write_text(
        "sbatch: error: invalid partition specified: nope\n"
        "allocation failure: Invalid partition name specified\n"
    )
    with pytest.raises(ModelOpsError) as raised, slurm_cluster(Settings.from_env(), 1):
        pass
    assert raised.value.info.message == (
        "Slurm refused the worker job ([slurm] queue, cores, memory, walltime in "
        "modelops.toml): invalid partition specified: nope; allocation failure: Invalid "
        "partition name specified"
    )
    assert not (fake_slurm / "submitted.sh").exists()


# ---------------------------------------------------------------------------------------
# A real one-node Slurm


@dataclass
class OneNodeSlurm:
    conf: Path
    folder: Path
    timings_s: dict[str, float] = field(default_factory=dict)


def _tool(name: str) -> str:
    return shutil.which(name, path=SBIN) or name


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group of a daemon started here (slurmctld's slurmscriptd is
    in it), SIGKILL if it does not go."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _until(check, what: str, processes: list[subprocess.Popen], logs: list[Path]) -> float:
    """Seconds until `check()` is true; a RuntimeError with the logs' tails if a daemon
    exits or it takes longer than START_TIMEOUT_S."""
    start = time.monotonic()
    while not check():
        exited = [p.args[0] for p in processes if p.poll() is not None]
        if exited or time.monotonic() - start > START_TIMEOUT_S:
            tails = " | ".join(
                f"{log.name}: {' / '.join(log.read_text(errors='replace').splitlines()[-3:])}"
                for log in logs
                if log.exists()
            )
            reason = f"{', '.join(exited)} exited" if exited else f"no {what} in time"
            raise RuntimeError(f"{reason}: {tails}")
        time.sleep(0.2)
    return time.monotonic() - start


def _quiet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=30)


@pytest.fixture(scope="module")
def slurm() -> Iterator[OneNodeSlurm]:
    """munged, slurmctld and slurmd on this machine, as root, in a folder of their own;
    every process is stopped by the PID started here, and the jobs left are cancelled
    first, however the test ends. Skipped, saying why, where that cannot run."""
    missing = [tool for tool in DAEMONS if shutil.which(tool, path=SBIN) is None]
    if missing:
        pytest.skip(
            f"slurm-wlm and munge are not installed ({', '.join(missing)} missing): "
            "apt-get install -y slurm-wlm munge"
        )
    if os.geteuid() != 0:
        pytest.skip(f"a one-node Slurm runs slurmd as root; this test runs as uid {os.geteuid()}")
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    if memory_mb < 3072:
        pytest.skip(f"a one-node Slurm here wants 3 GB of memory; this machine has {memory_mb} MB")
    # a short folder: munge's socket path must fit in a Unix socket address
    folder = Path(tempfile.mkdtemp(prefix="mops-slurm-"))
    folder.chmod(stat.S_IRWXU | stat.S_IXGRP | stat.S_IXOTH)
    (folder / "state").mkdir()
    (folder / "spool").mkdir()
    conf = folder / "slurm.conf"
    conf.write_text(
        f"""\
ClusterName=modelops
SlurmctldHost={socket.gethostname().split(".")[0]}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={folder}/munge.socket
CredType=cred/munge
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory=2048 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
    )
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": SBIN}
    socket_path = folder / "munge.socket"
    processes: list[subprocess.Popen] = []
    logs = [folder / name for name in ("munged.out", "slurmctld.out", "slurmd.out")]
    running = OneNodeSlurm(conf, folder)

    def start(args: list[str], log: Path) -> None:
        with log.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            )

    try:
        began = time.monotonic()
        subprocess.run(
            ["mungekey", "--create", f"--keyfile={folder}/munge.key"],
            check=True,
            capture_output=True,
            env=env,
        )
        start(
            [
                _tool("munged"),
                "--foreground",
                "--force",
                f"--socket={socket_path}",
                f"--key-file={folder}/munge.key",
                f"--pid-file={folder}/munged.pid",
                f"--log-file={folder}/munged.log",
                f"--seed-file={folder}/munged.seed",
            ],
            logs[0],
        )
        running.timings_s["munged"] = _until(
            lambda: _quiet("munge", "-n", "-S", str(socket_path), env=env).returncode == 0,
            "munge credential",
            processes,
            logs,
        )
        start([_tool("slurmctld"), "-D", "-f", str(conf)], logs[1])
        running.timings_s["slurmctld"] = _until(
            lambda: _quiet("scontrol", "ping", env=env).stdout.count("UP") > 0,
            "answer to scontrol ping",
            processes,
            logs,
        )
        start(
            [_tool("slurmd"), "-D", "-N", "localhost", "-f", str(conf)],
            logs[2],
        )
        running.timings_s["slurmd"] = _until(
            lambda: "idle" in _quiet("sinfo", "-h", "-o", "%T", env=env).stdout,
            "idle node",
            processes,
            logs,
        )
        running.timings_s["total"] = time.monotonic() - began
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        for process in reversed(processes):
            _stop(process)
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"a one-node Slurm could not start here: {exc}")
    try:
        yield running
    finally:
        # the jobs' processes live under slurmstepd, not under the daemons: cancel them
        # and wait until Slurm has reaped them before stopping slurmd
        jobs = _quiet("squeue", "-h", "-o", "%i", env=env).stdout.split()
        if jobs:
            _quiet("scancel", "--full", *jobs, env=env)
        deadline = time.monotonic() + 60
        while _quiet("squeue", "-h", "-o", "%i", env=env).stdout.strip():
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for process in reversed(processes):
            _stop(process)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def slurm_env(slurm: OneNodeSlurm, monkeypatch: pytest.MonkeyPatch) -> OneNodeSlurm:
    """This test's sbatch, squeue and scancel talk to the one-node Slurm."""
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    return slurm


def _worker_jobs(log_dir: Path) -> dict[str, str]:
    """Worker address -> Slurm job id, from the workers' logs that Slurm wrote."""
    found = {}
    for log in log_dir.glob("modelops-worker-*.err"):
        job_id = log.name.removeprefix("modelops-worker-").removesuffix(".err")
        for address in re.findall(r"Start worker at:\s+(\S+)", log.read_text()):
            found[address] = job_id
    return found


@pytest.mark.slow
def test_a_study_runs_on_workers_started_as_slurm_jobs(
    tmp_path: Path, slurm_env: OneNodeSlurm, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = write_project(tmp_path / "project", {"wire.py": MODEL})
    (project / "modelops.toml").write_text(
        '[slurm]\ncores = 1\nmemory = "1GB"\nwalltime = "00:10:00"\n'
    )
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(project))
    monkeypatch.setenv("MODELOPS_REGISTRY_PASSWORD", SECRET)  # must not reach a job script
    spec = modelops.sample_study(project, sampler="grid", dims=["x=1:4:4"], replicates=2, seed=3)

    started = time.monotonic()
    job = modelops.run(spec, workers=2, progress=False, cluster="slurm")
    took = time.monotonic() - started

    assert job.state == "succeeded", job.failures()
    assert (job.counts.total, job.counts.succeeded, job.counts.failed) == (8, 8, 0)
    simulations = job.results.simulations().collect()
    assert simulations.height == 8  # one row per simulation
    assert simulations["sim_id"].n_unique() == 8
    echoes = sorted(row["x"] for row in job.results["echo"].collect().to_dicts())
    assert echoes == [1, 1, 2, 2, 3, 3, 4, 4]

    # every simulation ran on a worker that a Slurm job of ours started
    by_address = _worker_jobs(project / ".modelops" / "slurm")
    used = set(simulations["worker"].unique().to_list())
    assert used and used <= set(by_address), (used, by_address)
    env = {**os.environ, "PATH": SBIN}
    for job_id in {by_address[address] for address in used}:
        shown = _quiet("scontrol", "show", "job", job_id, env=env).stdout
        assert "JobName=modelops-worker" in shown, shown
        script = _quiet("scontrol", "write", "batch_script", job_id, "-", env=env).stdout
        assert "--preload modelops.cluster.preload" in script
        assert SECRET not in script
    # closing the cluster cancelled the worker jobs
    deadline = time.monotonic() + 60
    while _quiet("squeue", "-h", "-n", "modelops-worker", env=env).stdout.strip():
        assert time.monotonic() < deadline, "worker jobs still queued after the run"
        time.sleep(0.5)
    print(f"one-node Slurm started in {slurm_env.timings_s}; the study took {took:.1f} s")


@pytest.mark.slow
def test_a_queue_slurm_does_not_have_is_refused_before_anything_starts(
    slurm_env: OneNodeSlurm, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelops.cluster.slurm import slurm_cluster

    monkeypatch.setenv("MODELOPS_SLURM_QUEUE", "nope")
    with pytest.raises(ModelOpsError) as raised, slurm_cluster(Settings.from_env(), 1):
        pass
    assert "invalid partition specified: nope" in raised.value.info.message
