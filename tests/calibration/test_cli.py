"""`mops calibrate …` as a user types it: run, show, report, and a run killed with SIGKILL
that `mops calibrate resume` finishes without running any stored simulation again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import modelops
from modelops.calibration.run import SEARCH_FILE, calibration_folder
from modelops.calibration.search import read_trials
from modelops.settings import Settings
from modelops.store import JobRecords
from tests.calibration.test_run import GROWTH, calibration, observed

REPO = Path(__file__).resolve().parents[2]


def mops(project: Path, *args: str) -> subprocess.Popen[str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "modelops.cli", *args],
        env={**os.environ, "MODELOPS_PROJECT_DIR": str(project), "PYTHONPATH": path},
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def mops_done(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    process = mops(project, *args)
    out, err = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def scored_trials(records: JobRecords, at_least: int, timeout_s: float = 300) -> int:
    """How many trials the newest calibration has scored, once it has `at_least` (or the
    timeout has passed)."""
    deadline = time.monotonic() + timeout_s
    scored = 0
    while time.monotonic() < deadline and scored < at_least:
        time.sleep(0.2)
        jobs = records.list() if records.path.exists() else []
        if jobs:
            search = calibration_folder(Settings.from_env(), jobs[0].job_id) / SEARCH_FILE
            scored = sum(t.state == "complete" for t in read_trials(search))
    return scored


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(tmp_path))
    return tmp_path


def test_run_show_and_report(project: Path) -> None:
    body = textwrap.dedent(GROWTH).replace("trials = 60", "trials = 12")
    calibration(project, body, {"observed.csv": observed(r=0.1)})

    ran = mops_done(project, "calibrate", "run", "calibration.toml", "--workers", "2")

    assert ran.returncode == 0, ran.stderr
    job_id = ran.stdout.strip().splitlines()[-1].removeprefix("job: ")
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", job_id), ran.stdout
    assert "12/12" in ran.stdout and "best" in ran.stdout and "/min" in ran.stdout
    assert "loss by target" in ran.stdout

    shown = mops_done(project, "calibrate", "show", job_id, "--json")
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["state"] == "succeeded"
    assert summary["trials"] == 12
    best = summary["best"]
    assert set(best["params"]) == {"r", "a", "days"}
    assert set(best["targets"]) == {"cases"}
    trials = modelops.calibration_job(job_id).trials()
    assert best["loss"] == min(t.score for t in trials if t.score is not None)

    text = mops_done(project, "calibrate", "show", job_id)
    assert f"calibration {job_id} (growth): succeeded, 12 of 12 trials" in text.stdout

    # the simulations are a study job's results too
    table = mops_done(project, "results", "show", job_id, "simulations", "--limit", "2")
    assert table.returncode == 0, table.stderr
    assert f"simulations: {2 * len({json.dumps(t.params) for t in trials})} rows" in table.stdout

    # a calibration is a job: listed, and `mops jobs resume` continues it (nothing left here)
    listed = mops_done(project, "jobs", "list")
    assert job_id in listed.stdout and "growth" in listed.stdout
    again = mops_done(project, "jobs", "resume", job_id)
    assert again.returncode == 0, again.stderr
    assert "12 of 12 trials" in again.stdout
    assert again.stdout.strip().splitlines()[-1] == f"job: {job_id}"
    assert len(modelops.calibration_job(job_id).trials()) == 12

    out = project / "out" / "fit.html"
    report = mops_done(project, "calibrate", "report", job_id, "--out", str(out))
    assert report.returncode == 0, report.stderr
    html = out.read_text()
    assert "<html" in html.lower() and "growth" in html
    assert not re.search(r"""<(script|link|img|iframe)[^>]*(src|href)=["']?https?:""", html)


def test_show_of_an_unknown_or_study_job_is_one_line(project: Path) -> None:
    missing = mops_done(project, "calibrate", "show", "20990101-000000-0000")
    assert missing.returncode == 1
    assert "20990101-000000-0000" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    job = JobRecords(Settings.from_env().jobs_db).create(
        "study", "x/y@sha256:" + "0" * 64, {"bundle": "."}, "r", 1
    )
    study = mops_done(project, "calibrate", "report", job.job_id)
    assert study.returncode == 1
    assert f"job {job.job_id} is a study, not a calibration" in study.stderr
    assert len(study.stderr.strip().splitlines()) == 1


def test_sigkilled_run_resumes_without_running_a_stored_simulation_again(project: Path) -> None:
    body = textwrap.dedent(GROWTH).replace("days = 30", "days = 30\nsleep = 0.05")
    body = body.replace("trials = 60", "trials = 30").replace("batch = 4", "batch = 3")
    calibration(project, body, {"observed.csv": observed(r=0.1)})
    records = JobRecords(Settings.from_env().jobs_db)

    client = mops(project, "calibrate", "run", "calibration.toml", "--workers", "2")
    started: list[psutil.Process] = []
    try:
        assert scored_trials(records, at_least=10) >= 10, "the calibration did not get going"
        started = psutil.Process(client.pid).children(recursive=True)
        client.send_signal(signal.SIGKILL)
        client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate(timeout=60)
        for process in started:  # the embedded cluster's workers outlive a SIGKILLed client
            if process.is_running():
                process.kill()
    [job] = records.list()
    before = read_trials(calibration_folder(Settings.from_env(), job.job_id) / SEARCH_FILE)
    # in flight: asked and handed out (a trial killed while its parameters were drawn was not)
    in_flight = [t for t in before if t.state == "running" and {"r", "a"} <= t.params.keys()]

    resumed = mops_done(project, "calibrate", "resume", job.job_id, "--workers", "2")

    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == f"job: {job.job_id}"
    handle = modelops.calibration_job(job.job_id)
    summary = handle.summary()
    assert summary.state == "succeeded"
    assert summary.trials == 30 == summary.complete
    trials = handle.trials()
    retried = {trial.retry_of for trial in trials if trial.retry_of is not None}
    assert retried == {trial.number for trial in in_flight}
    # no simulation ran twice: one attempt each, whichever run stored it
    attempts = handle.results.attempts().collect()
    assert attempts["sim_id"].n_unique() == attempts.height
    distinct = {json.dumps(t.params, sort_keys=True) for t in trials if t.state == "complete"}
    assert attempts.height == 2 * len(distinct)


def test_show_while_running_then_cancel_then_resume(project: Path) -> None:
    """`mops calibrate show` reads a running calibration; `mops jobs cancel` (Ctrl-C to the
    client) stops it cleanly, keeping what was told; a resume finishes it."""
    body = textwrap.dedent(GROWTH).replace("days = 30", "days = 30\nsleep = 0.25")
    body = body.replace("trials = 60", "trials = 30").replace("batch = 4", "batch = 3")
    calibration(project, body, {"observed.csv": observed(r=0.1)})
    records = JobRecords(Settings.from_env().jobs_db)

    client = mops(project, "calibrate", "run", "calibration.toml", "--workers", "2")
    try:
        assert scored_trials(records, at_least=6) >= 6, "the calibration did not get going"
        [job] = records.list()

        shown = mops_done(project, "calibrate", "show", job.job_id, "--json")
        assert shown.returncode == 0, shown.stderr
        running = json.loads(shown.stdout)
        assert running["state"] == "running"
        assert 6 <= running["trials"] < 30 and running["best"] is not None

        cancelled = mops_done(project, "jobs", "cancel", job.job_id)
        assert cancelled.returncode == 0, cancelled.stderr
        out, err = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate(timeout=60)
    assert client.returncode == 130, err
    assert f"`mops calibrate resume {job.job_id}`" in err
    assert out.strip().splitlines()[-1] == f"job: {job.job_id}"
    assert records.get(job.job_id).state.value == "cancelled"

    resumed = mops_done(project, "calibrate", "resume", job.job_id, "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    handle = modelops.calibration_job(job.job_id)
    assert handle.summary().trials == 30
    html = handle.report(project / "report.html").read_text()
    assert "abandoned" not in html  # trials asked again after the stop stand for them
