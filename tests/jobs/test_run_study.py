"""Studies end to end: run, cache, resume, cancel, results in polars, the CLI a user types."""

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
import pytest
from tests.conftest import write_project

import modelops
from modelops.jobs import resume_job, run_study
from modelops.jobs.run import final_counts
from modelops.settings import Settings
from modelops.store import JobRecord, JobRecords, JobState, ResultStore
from modelops.study import load_study

MODEL = """
import io, json, os, time
import pyarrow as pa

def wire(entrypoint, params, seed):
    if params.get("fail_beta") is not None and params["beta"] >= params["fail_beta"]:
        raise ValueError(f"beta {params['beta']} too high")
    time.sleep(params.get("sleep", 0))
    table = pa.table({"day": [0, 1, 2], "cases": [seed % 7, seed % 11, seed % 13]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {"incidence": sink.getvalue().to_pybytes(),
            "meta": json.dumps({"pid": os.getpid()}).encode()}
"""


def study_file(root: Path, body: str) -> Path:
    write_project(root / "model", {"wire.py": MODEL, "requirements.txt": "pyarrow\n"})
    path = root / "study.toml"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder whose .modelops/ holds this test's job records and results."""
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(tmp_path))
    return tmp_path


GRID = """
    name = "grid"
    bundle = "model"
    seed = 7
    replicates = 3
    [parameters]
    sampler = "grid"
    [parameters.dims.beta]
    type = "float"
    low = 0.1
    high = 0.5
    points = 4
    [parameters.fixed]
    days = 3
    [resources]
    batch_size = 2
"""


def test_a_study_runs_stores_and_reruns_from_the_cache(project: Path) -> None:
    spec = load_study(study_file(project, GRID))
    first = run_study(spec, n_workers=2)
    again = run_study(spec, n_workers=2)

    assert first.state is JobState.SUCCEEDED
    assert (first.counts.total, first.counts.succeeded, first.counts.cached) == (12, 12, 0)
    assert again.state is JobState.SUCCEEDED
    assert (again.counts.succeeded, again.counts.cached) == (0, 12)

    for job in (first, again):
        opened = modelops.results(job.job_id)
        incidence = opened["incidence"].collect()
        assert incidence.height == 12 * 3
        assert set(incidence["job_id"]) == {job.job_id}
        assert sorted(incidence["beta"].unique().to_list()) == pytest.approx(
            [0.1, 0.1 + 0.4 / 3, 0.1 + 0.8 / 3, 0.5]
        )
        assert set(incidence["days"]) == {3}
        assert incidence.group_by("sim_id").len()["len"].to_list() == [3] * 12
        sims = opened.simulations().collect()
        assert sims.height == 12
    manifest = ResultStore(first.results).read_manifest(first.job_id)
    assert manifest["job"] == first.job_id and manifest["state"] == "succeeded"
    assert manifest["bundle"] == first.bundle
    assert manifest["environment"]["kind"] == "requirements.txt"
    assert manifest["environment"]["lock_digest"].startswith("sha256:")
    assert manifest["counts"] == {"total": 12, "succeeded": 12, "failed": 0, "cached": 0}
    assert manifest["started"] <= manifest["ended"]
    assert manifest["spec"]["name"] == "grid" and manifest["modelops_version"]
    first_rows = modelops.results(first.job_id)["incidence"].sort("sim_id", "day").drop("job_id")
    again_rows = modelops.results(again.job_id)["incidence"].sort("sim_id", "day").drop("job_id")
    assert first_rows.collect().equals(again_rows.collect())


def test_seeds_are_stable_across_runs_and_distinct(project: Path) -> None:
    spec = load_study(study_file(project, GRID))
    job = run_study(spec, n_workers=1)
    sims = modelops.results(job.job_id).simulations().collect()
    assert sims["seed"].n_unique() == 12
    replan = load_study(project / "study.toml")
    from modelops.study import plan

    assert sorted(sims["seed"].to_list()) == sorted(p.seed for p in plan(replan))


FAILING = """
    bundle = "model"
    [parameters]
    sampler = "list"
    [[parameters.sets]]
    beta = 0.1
    [[parameters.sets]]
    beta = 0.9
    [parameters.fixed]
    fail_beta = 0.5
"""


def test_failed_simulations_are_recorded_and_retried_on_resume(project: Path) -> None:
    path = study_file(project, FAILING)
    job = run_study(load_study(path), n_workers=1)
    assert job.state is JobState.PARTIAL
    assert (job.counts.succeeded, job.counts.failed) == (1, 1)
    sims = modelops.results(job.job_id).simulations().collect()
    failed = sims.filter(pl.col("status") == "failed").row(0, named=True)
    assert failed["error_class"] == "model"
    assert "beta 0.9 too high" in failed["error_message"]

    resumed = resume_job(job.job_id, n_workers=1)  # the model still fails: ran again, not cached
    assert resumed.job_id == job.job_id
    assert (resumed.counts.succeeded, resumed.counts.failed) == (1, 1)
    again = modelops.results(job.job_id).simulations().collect()
    assert again.height == 2
    # a run that saw every simulation keeps its own counts: the same as the store's
    stored = final_counts(ResultStore(resumed.results), job.job_id, resumed.counts.total)
    assert (resumed.counts, job.counts) == (stored, stored)


def test_a_job_recorded_before_seed_bits_resumes_with_the_seeds_it_had(project: Path) -> None:
    """Jobs recorded before 32-bit seeds became the default ran with 64-bit seeds and have no
    seed_bits in their record: resuming one must not re-plan it with other seeds."""
    path = study_file(
        project, FAILING.replace('bundle = "model"', 'bundle = "model"\nseed_bits = 64')
    )
    job = run_study(load_study(path), n_workers=1)
    assert job.spec["seed_bits"] == 64
    old_spec = {k: v for k, v in job.spec.items() if k != "seed_bits"}
    with sqlite3.connect(Settings.from_env().jobs_db) as db:
        db.execute("UPDATE jobs SET spec = ? WHERE job_id = ?", (json.dumps(old_spec), job.job_id))

    resumed = resume_job(job.job_id, n_workers=1)

    assert (resumed.counts.succeeded, resumed.counts.failed) == (1, 1)
    sims = modelops.results(job.job_id).simulations().collect()
    assert sims.height == 2  # the failed one ran again; nothing was planned anew
    assert sims["seed"].min() >= 2**32


def mops(project: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELOPS_PROJECT_DIR": str(project)}
    return subprocess.run(
        [sys.executable, "-m", "modelops.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=project,
    )


SLOW = """
    name = "slow"
    bundle = "model"
    replicates = 40
    [parameters]
    sampler = "list"
    [[parameters.sets]]
    beta = 0.2
    [parameters.fixed]
    sleep = 0.1
    [resources]
    batch_size = 1
"""


def start_run(project: Path, study: Path, **popen: object) -> subprocess.Popen:
    """`mops run` in the background, as a user's terminal would run it."""
    env = {**os.environ, "MODELOPS_PROJECT_DIR": str(project)}
    return subprocess.Popen(
        [sys.executable, "-m", "modelops.cli", "run", str(study), "--workers", "1"],
        env=env,
        cwd=project,
        **popen,
    )


def wait_for_progress(records: JobRecords, done: int, timeout_s: float = 120) -> JobRecord | None:
    """The newest job once it has `done` simulations recorded, or None on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = records.list() if records.path.exists() else []
        if jobs and jobs[0].counts.done >= done:
            return jobs[0]
        time.sleep(0.2)
    return None


def test_interrupted_run_keeps_its_results_and_resumes_only_what_is_missing(
    project: Path,
) -> None:
    path = study_file(project, SLOW)
    process = start_run(project, path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records = JobRecords(Settings.from_env().jobs_db)
    job = wait_for_progress(records, done=5)
    assert job is not None, process.communicate()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert f"job: {job.job_id}" in out
    cancelled = records.get(job.job_id)
    assert cancelled.state is JobState.CANCELLED
    kept = cancelled.counts.succeeded
    assert 5 <= kept < 40

    resumed = mops(project, "jobs", "resume", job.job_id, "--workers", "1")
    assert resumed.returncode == 0, resumed.stderr
    shown = json.loads(mops(project, "jobs", "show", job.job_id, "--json").stdout)
    assert shown["state"] == "succeeded"
    assert shown["counts"] == {"total": 40, "succeeded": 40, "failed": 0, "cached": 0}
    sims = modelops.results(job.job_id).simulations().collect()
    assert sims.height == 40 and sims["sim_id"].n_unique() == 40


def test_the_cli_runs_a_study_and_shows_and_exports_results(project: Path) -> None:
    path = study_file(project, GRID)
    ran = mops(project, "run", str(path), "--workers", "2")
    assert ran.returncode == 0, ran.stderr
    job_id = ran.stdout.strip().splitlines()[-1].removeprefix("job: ")
    shown = json.loads(mops(project, "jobs", "show", job_id, "--json").stdout)
    assert shown["job"] == job_id and shown["state"] == "succeeded"
    assert shown["counts"] == {"total": 12, "succeeded": 12, "failed": 0, "cached": 0}
    assert shown["bundle"].startswith("model@sha256:")

    listed = mops(project, "jobs", "list")
    assert job_id in listed.stdout
    table = mops(project, "results", "show", job_id, "incidence", "--limit", "5")
    assert table.returncode == 0, table.stderr
    assert "incidence: 36 rows" in table.stdout
    out = project / "export"
    exported = mops(project, "results", "export", job_id, "--format", "csv", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    csv = pl.read_csv(out / "incidence.csv")
    assert csv.height == 36

    missing = mops(project, "results", "show", job_id, "prevalence")
    assert missing.returncode != 0
    assert "has no output 'prevalence'" in missing.stderr + missing.stdout


def test_bad_study_files_are_refused_with_file_line_and_field(project: Path) -> None:
    path = study_file(project, GRID.replace("high = 0.5", "high = 0.05"))
    done = mops(project, "run", str(path))
    assert done.returncode == 1
    assert done.stderr.strip().startswith(f"bad_input: {path}:")
    assert "parameters.dims.beta" in done.stderr
    assert (
        not (project / ".modelops" / "jobs.db").exists()
        or "grid" not in mops(project, "jobs", "list").stdout
    )


def test_a_bundle_that_does_not_exist_is_named_with_its_line(project: Path) -> None:
    missing = "model@sha256:" + "0" * 64
    path = study_file(project, GRID.replace('bundle = "model"', f'bundle = "{missing}"'))
    done = mops(project, "run", str(path))
    assert done.returncode == 1
    assert done.stderr.strip().startswith(f"not_found: {path}:2: bundle: bundle {missing}")
    assert not (project / ".modelops" / "jobs.db").exists()


def test_a_killed_client_leaves_a_job_that_resumes(project: Path) -> None:
    path = study_file(project, SLOW)
    process = start_run(
        project,
        path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    records = JobRecords(Settings.from_env().jobs_db)
    job = wait_for_progress(records, done=5)
    assert job is not None
    os.killpg(process.pid, signal.SIGKILL)  # the client and its embedded cluster, at once
    process.wait(timeout=60)
    assert records.get(job.job_id).state is JobState.RUNNING  # nobody lived to say otherwise

    resumed = resume_job(job.job_id, n_workers=1)
    assert resumed.state is JobState.SUCCEEDED
    assert resumed.counts.succeeded == 40
    sims = modelops.results(job.job_id).simulations().collect()
    assert sims["sim_id"].n_unique() == 40


def test_from_sample_to_results_as_the_readme_shows(project: Path) -> None:
    write_project(project / "model", {"wire.py": MODEL, "requirements.txt": "pyarrow\n"})
    sampled = mops(
        project,
        "study",
        "sample",
        "--bundle",
        "model",
        "--sampler",
        "lhs",
        "--n",
        "4",
        "--dim",
        "beta=0.1:0.9",
        "--dim",
        "population=int:100:200",
        "--fixed",
        "days=3",
        "--replicates",
        "2",
        "--seed",
        "5",
        "--out",
        "study.toml",
    )
    assert sampled.returncode == 0, sampled.stderr
    spec = load_study(project / "study.toml")
    assert spec.n_simulations == 8
    ran = mops(project, "run", "study.toml", "--workers", "2")
    assert ran.returncode == 0, ran.stderr
    job_id = ran.stdout.strip().splitlines()[-1].removeprefix("job: ")
    frame = modelops.results(job_id)["incidence"].collect()
    assert frame.height == 8 * 3
    assert frame["population"].dtype == pl.Int64
    assert frame["beta"].min() >= 0.1 and frame["beta"].max() <= 0.9


def test_jobs_cancel_stops_a_running_job_and_keeps_what_it_finished(project: Path) -> None:
    path = study_file(project, SLOW)
    process = start_run(project, path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records = JobRecords(Settings.from_env().jobs_db)
    job = wait_for_progress(records, done=3)
    assert job is not None, process.communicate()

    cancelled = mops(project, "jobs", "cancel", job.job_id[:15])
    _, err = process.communicate(timeout=120)

    assert cancelled.returncode == 0, cancelled.stderr
    assert f"job {job.job_id}: cancelled" in cancelled.stdout
    assert process.returncode == 130, err
    record = records.get(job.job_id)
    assert record.state is JobState.CANCELLED
    assert 3 <= record.counts.succeeded < 40
    stored = modelops.results(job.job_id).simulations().collect()
    assert stored.height == record.counts.succeeded
