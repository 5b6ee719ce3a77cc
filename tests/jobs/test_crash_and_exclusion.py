"""A job's runs as real processes: `mops run` killed between the steps of storing results,
two runs of one job at once, and `mops jobs cancel` with a pid that is no longer the job's."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import psutil
import pyarrow.parquet as pq
import pytest
from tests.conftest import write_project
from tests.store import crashfs

import modelops
from modelops.jobs import cancel_job
from modelops.settings import Settings
from modelops.store import JobRecord, JobRecords, JobState

REPO = Path(__file__).resolve().parents[2]
SIMS = 30

MODEL = """
import time
import pyarrow as pa

def wire(entrypoint, params, seed):
    time.sleep(params.get("sleep", 0))
    table = pa.table({"day": [0, 1, 2], "cases": [seed % 7, seed % 11, seed % 13]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {"incidence": sink.getvalue().to_pybytes()}
"""

STUDY = f"""
    name = "slow"
    bundle = "model"
    replicates = {SIMS}
    [parameters]
    sampler = "list"
    [[parameters.sets]]
    beta = 0.2
    [parameters.fixed]
    sleep = 0.2
    [resources]
    batch_size = 1
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with the slow study; its .modelops/ holds this test's records and results."""
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(tmp_path))
    write_project(tmp_path / "model", {"wire.py": MODEL, "requirements.txt": "pyarrow\n"})
    (tmp_path / "study.toml").write_text(textwrap.dedent(STUDY).lstrip())
    return tmp_path


def environment(project: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "MODELOPS_PROJECT_DIR": str(project), "PYTHONPATH": path, **extra}


def mops(project: Path, *args: str, **popen: object) -> subprocess.Popen:
    """`mops …` as a user's terminal starts it, in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "modelops.cli", *args],
        env=environment(project),
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def mops_done(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    process = mops(project, *args)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def newest_job(records: JobRecords, done: int = 0, timeout_s: float = 120) -> JobRecord | None:
    """The newest job once it has `done` simulations counted, or None on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = records.list() if records.path.exists() else []
        if jobs and jobs[0].counts.done >= done:
            return jobs[0]
        time.sleep(0.1)
    return None


def check_complete_once(project: Path, job_id: str) -> None:
    """Every read a user has shows each of the SIMS simulations once, with all its rows."""
    shown = json.loads(mops_done(project, "jobs", "show", job_id, "--json").stdout)
    assert shown["state"] == "succeeded"
    assert shown["counts"] == {"total": SIMS, "succeeded": SIMS, "failed": 0, "cached": 0}
    opened = modelops.results(job_id)
    incidence = opened["incidence"].collect()
    assert incidence.height == 3 * SIMS
    assert incidence.group_by("sim_id").len()["len"].to_list() == [3] * SIMS
    assert opened.simulations().collect()["sim_id"].n_unique() == SIMS
    assert opened.simulations().collect().height == SIMS
    table = mops_done(project, "results", "show", job_id, "incidence", "--limit", "3")
    assert table.returncode == 0, table.stderr
    assert f"incidence: {3 * SIMS} rows" in table.stdout
    sims = mops_done(project, "results", "show", job_id, "simulations", "--limit", "3")
    assert f"simulations: {SIMS} rows" in sims.stdout
    out = project / "export"
    exported = mops_done(project, "results", "export", job_id, "--format", "csv", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert pl.read_csv(out / "incidence.csv").height == 3 * SIMS
    assert pl.read_csv(out / "simulations.csv").height == SIMS


@pytest.mark.parametrize(
    "when",
    ["open", "unreported"],
    ids=["after the output part, before the simulations part", "before the records commit"],
)
def test_mops_run_killed_between_storing_steps_resumes_to_one_row_set_each(
    project: Path, when: str
) -> None:
    db = Settings.from_env().jobs_db
    crash = crashfs.crash_spec("simulations", when, skip=0, db=db, group=True)
    program = (
        "from tests.store.crashfs import install; install(); "
        "from modelops.cli.main import app; app(prog_name='mops')"
    )
    client = subprocess.Popen(
        [sys.executable, "-c", program, "run", "study.toml", "--workers", "1"],
        env=environment(project, **{crashfs.CRASH_ENV: crash}),
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the client and its cluster die together, by SIGKILL
    )
    out, err = client.communicate(timeout=300)
    assert client.returncode == -signal.SIGKILL, out + err
    records = JobRecords(db)
    job = records.list()[0]
    assert job.state is JobState.RUNNING  # nobody lived to say otherwise
    stored = project / ".modelops" / "results" / "jobs" / job.job_id
    raw = sum(pq.read_metadata(p).num_rows for p in stored.glob("outputs/incidence/part-*"))
    assert raw > 0  # the crash came after an output part was stored
    committed = modelops.results(job.job_id).simulations().collect()["sim_id"].to_list()
    if when == "unreported":  # the simulations part is stored, the cache never heard of it
        assert committed and not records.cached_results(committed)
    else:
        assert not committed

    resumed = mops_done(project, "jobs", "resume", job.job_id, "--workers", "1")

    assert resumed.returncode == 0, resumed.stderr
    check_complete_once(project, job.job_id)
    attempts = modelops.results(job.job_id).attempts().collect()
    assert attempts.height == SIMS  # what was committed before the crash did not run again
    assert set(committed) <= set(attempts["sim_id"])


def test_two_resumes_of_one_job_at_once_one_runs_the_other_is_refused(project: Path) -> None:
    records = JobRecords(Settings.from_env().jobs_db)
    first = mops(project, "run", "study.toml", "--workers", "1", start_new_session=True)
    job = newest_job(records, done=3)
    assert job is not None, first.communicate()
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)

    both = [mops(project, "jobs", "resume", job.job_id, "--workers", "1") for _ in range(2)]
    outcomes = [(process, *process.communicate(timeout=300)) for process in both]

    assert sorted(process.returncode for process in both) == [0, 1]
    winner = next(process for process in both if process.returncode == 0)
    (_, _, refused) = next(outcome for outcome in outcomes if outcome[0].returncode == 1)
    assert len(refused.strip().splitlines()) == 1, refused
    assert refused.startswith(
        f"bad_input: job {job.job_id} is already running (pid {winner.pid})"
    ), refused
    check_complete_once(project, job.job_id)
    assert modelops.results(job.job_id).attempts().collect().height == SIMS


def test_a_resume_after_a_cancel_that_timed_out_is_refused(project: Path) -> None:
    records = JobRecords(Settings.from_env().jobs_db)
    running = mops(project, "run", "study.toml", "--workers", "1")
    job = newest_job(records, done=2)
    assert job is not None, running.communicate()
    records.finish(job.job_id, JobState.CANCELLED)  # what a cancel does when its wait ends

    resumed = mops_done(project, "jobs", "resume", job.job_id, "--workers", "1")

    assert resumed.returncode == 1
    assert resumed.stderr.strip() == (
        f"bad_input: job {job.job_id} is already running (pid {running.pid}); wait for it, "
        f"or stop it with `mops jobs cancel {job.job_id}`"
    )
    _, err = running.communicate(timeout=300)
    assert running.returncode == 0, err  # the run went on undisturbed, to the end
    check_complete_once(project, job.job_id)
    assert modelops.results(job.job_id).attempts().collect().height == SIMS


def running_job(records: JobRecords, pid: int, pid_started: float | None) -> str:
    job = records.create("held", "b@sha256:" + "0" * 64, {}, "r", total=1)
    records.start(job.job_id, pid, pid_started=pid_started)
    return job.job_id


def test_cancel_leaves_alone_a_live_process_that_only_has_the_jobs_pid(project: Path) -> None:
    records = JobRecords(Settings.from_env().jobs_db)
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        started = psutil.Process(unrelated.pid).create_time()
        job_id = running_job(records, unrelated.pid, pid_started=started - 3600)

        cancelled = mops_done(project, "jobs", "cancel", job_id)

        assert cancelled.returncode == 0, cancelled.stderr
        assert f"job {job_id}: cancelled" in cancelled.stdout
        time.sleep(0.5)
        assert unrelated.poll() is None  # not signalled: still sleeping
        assert records.get(job_id).state is JobState.CANCELLED
    finally:
        unrelated.kill()
        unrelated.wait()


def test_cancel_leaves_alone_a_process_started_after_a_record_without_a_start_time(
    project: Path,
) -> None:
    """A record written before start times were kept: a process younger than the job's
    start cannot be the one that ran it."""
    records = JobRecords(Settings.from_env().jobs_db)
    job_id = running_job(records, os.getpid(), pid_started=None)
    # the job started 10 s ago: far beyond the slack and psutil's start times, which are
    # whole-second boot time plus clock ticks (a 1.5 s sleep here failed once in CI)
    with sqlite3.connect(records.path) as db:
        db.execute(
            "UPDATE jobs SET pid_started = NULL, started = started - 10 WHERE job_id = ?",
            (job_id,),
        )
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        with sqlite3.connect(records.path) as db:
            db.execute("UPDATE jobs SET pid = ? WHERE job_id = ?", (unrelated.pid, job_id))
        assert records.get(job_id).pid_started is None

        assert cancel_job(job_id).state is JobState.CANCELLED

        time.sleep(0.5)
        assert unrelated.poll() is None
    finally:
        unrelated.kill()
        unrelated.wait()


CLIENT = """
import signal, sys, time
from pathlib import Path
from modelops.store import JobRecords, JobState

records = JobRecords(Path(sys.argv[1]))

def stop(signum, frame):
    records.finish(sys.argv[2], JobState.CANCELLED)
    sys.exit(130)

signal.signal(signal.SIGINT, stop)
records.start(sys.argv[2], __import__("os").getpid())
print("running", flush=True)
time.sleep(120)
"""


def test_cancel_stops_the_process_the_record_names_by_pid_and_start_time(project: Path) -> None:
    records = JobRecords(Settings.from_env().jobs_db)
    job_id = records.create("held", "b@sha256:" + "0" * 64, {}, "r", total=1).job_id
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(records.path), job_id],
        env=environment(project),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "running"
        record = records.get(job_id)
        assert record.pid == client.pid
        assert record.pid_started == pytest.approx(psutil.Process(client.pid).create_time())

        assert cancel_job(job_id).state is JobState.CANCELLED

        assert client.wait(timeout=30) == 130  # it got Ctrl-C and finished the job itself
    finally:
        client.kill()
        client.wait()
