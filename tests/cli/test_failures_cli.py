"""Failures a new user can read, through the real `mops` processes and a real cluster: what
`mops run` and `mops jobs show` say about them, `mops jobs errors`, a resume that reruns
only the failed simulations, and `mops results show` in 80 and 200 columns."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import write_project

import modelops

MOPS = [sys.executable, "-m", "modelops.cli"]
TIMES = "\u00d7"  # the multiplication sign of `4 TIMES model: ValueError: ...`

# Every simulation fails while the marker file exists (outside the bundle: removing it is
# "fixing the cause" without a new bundle), each beta in its own way; beta 0.1 never fails.
MODEL = """
import os
import pyarrow as pa

def wire(entrypoint, params, seed):
    beta = round(params["beta"], 1)
    print(f"[bold]running[/] beta={beta} seed={seed}")
    if beta > 0.1 and os.path.exists(params["marker"]):
        check(beta)
    table = pa.table({"day": [0, 1], "cases": [seed % 7, seed % 11], "note": ["[red]ok[/]"] * 2})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {"incidence": sink.getvalue().to_pybytes()}

def check(beta):
    if beta in (0.3, 0.4):
        raise ValueError(f"beta {beta} too high [/] for [bold]this model")
    if beta == 0.2:
        raise KeyError("incidence")
    if beta == 0.5:
        raise RuntimeError("solver diverged")
    if beta == 0.6:
        raise TypeError("bad type")
    if beta == 0.7:
        return 1 / 0
    if beta == 0.8:
        raise OSError("disk full")
"""
STUDY = """
name = "fails"
bundle = "model"
seed = 3
replicates = 2
[parameters]
sampler = "grid"
[parameters.dims.beta]
low = 0.1
high = 0.8
points = 8
[parameters.fixed]
days = 2
marker = "{marker}"
"""
# 16 simulations: 2 succeed (beta 0.1); 14 fail by 6 causes: ValueError (4: beta 0.3 and
# 0.4), then KeyError, RuntimeError, TypeError, ZeroDivisionError, OSError (2 each)
SIMS = 16
FAILED = 14
CAUSES = 6


def mops(project: Path, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """`mops …` as a user types it, in a terminal `columns` wide."""
    return subprocess.run(
        [*MOPS, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=project,
        env={**os.environ, "MODELOPS_PROJECT_DIR": str(project), "COLUMNS": str(columns)},
    )


@pytest.fixture(scope="module")
def failed_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, str, subprocess.CompletedProcess[str]]:
    """One failing study, run once by `mops run` in 80 columns: (project, job id, the run)."""
    project = tmp_path_factory.mktemp("failing-study")
    write_project(project / "model", {"wire.py": MODEL, "requirements.txt": "pyarrow\n"})
    marker = project / "broken"
    marker.write_text("remove me to fix the model\n")
    (project / "study.toml").write_text(STUDY.format(marker=marker))
    ran = mops(project, "run", "study.toml", "--workers", "2")
    job_id = ran.stdout.strip().splitlines()[-1].removeprefix("job: ")
    return project, job_id, ran


def stored_failures(project: Path, job_id: str) -> pl.DataFrame:
    os.environ["MODELOPS_PROJECT_DIR"] = str(project)
    try:
        sims = modelops.results(job_id).simulations().collect()
    finally:
        del os.environ["MODELOPS_PROJECT_DIR"]
    return sims.filter(pl.col("status") == "failed").sort("param_set", "replicate")


def test_run_summarises_failures_by_cause_and_says_what_to_do(failed_run) -> None:
    project, job_id, ran = failed_run
    assert ran.returncode == 1, ran.stderr
    lines = ran.stdout.strip().splitlines()
    assert lines[-1] == f"job: {job_id}"  # still the last line, for scripts
    assert lines[-3:-1] == [
        f"next: fix the cause, then `mops jobs resume {job_id}` runs the {FAILED} failed "
        "simulations again (the 2 finished are kept)",
        "      a resume keeps this job's bundle and study: if the fix is in the model's code "
        "or the study file, run the study again instead",
    ]
    out = ran.stdout
    assert f"{FAILED} simulations failed, {CAUSES} causes:" in out
    # the largest cause first, with the real message of its example (model text literally)
    failed = stored_failures(project, job_id)
    example = failed.filter(pl.col("error_type") == "ValueError").row(0, named=True)
    assert example["error_message"] == "ValueError: beta 0.3 too high [/] for [bold]this model"
    assert (
        f"4 {TIMES} model: ValueError: beta 0.3 too high [/] for [bold]this model  "
        "(2 variants of this message)" in out
    )
    short = example["sim_id"][:12]
    assert (
        f"  e.g. sim {short}: param set {example['param_set']}, replicate 0, "
        f"seed {example['seed']}" in out
    )
    assert f'  params: beta=0.3 days=2 marker="{project / "broken"}"' in out
    assert '        raise ValueError(f"beta {beta} too high [/] for [bold]this model")' in out
    assert f"  more: mops jobs errors {job_id} --sim {short}" in out
    # five causes are shown, in order of size then study order; the sixth is counted
    causes = [line for line in lines if f" {TIMES} " in line]
    assert [line.split(f" {TIMES} ")[0] for line in causes] == ["4", "2", "2", "2", "2"]
    assert [line.split(": ")[1] for line in causes] == [
        "ValueError",
        "KeyError",
        "RuntimeError",
        "TypeError",
        "ZeroDivisionError",
    ]
    assert "OSError" not in out  # the sixth cause: the last set, counted but not shown
    assert f"and 1 more cause: mops jobs errors {job_id} lists every failed simulation" in out
    assert "MarkupError" not in out + ran.stderr


def test_the_command_it_names_shows_the_whole_traceback_and_logs(failed_run) -> None:
    project, job_id, ran = failed_run
    more = next(line for line in ran.stdout.splitlines() if line.startswith("  more: mops"))
    args = more.removeprefix("  more: mops ").split()

    shown = mops(project, *args)

    assert shown.returncode == 0, shown.stderr
    example = stored_failures(project, job_id).row(2, named=True)  # beta 0.3, replicate 0
    assert shown.stdout.startswith(
        f"simulation {example['sim_id']} of job {job_id}: failed after 1 attempt\n"
    )
    assert f"seed {example['seed']}" in shown.stdout
    assert "model: ValueError: beta 0.3 too high [/] for [bold]this model" in shown.stdout
    traceback = example["error_traceback"].rstrip()
    assert traceback.startswith("Traceback (most recent call last):")
    assert traceback in shown.stdout  # whole and as written, however wide its lines
    assert f"[bold]running[/] beta=0.3 seed={example['seed']}" in shown.stdout  # its logs

    as_json = json.loads(mops(project, *args, "--json").stdout)
    assert as_json["sim_id"] == example["sim_id"]
    assert as_json["error"]["traceback"] == example["error_traceback"]
    assert as_json["params"]["beta"] == 0.3
    assert "[bold]running[/]" in as_json["logs"]


def test_jobs_errors_lists_each_failed_simulation_on_one_line(failed_run) -> None:
    project, job_id, _ = failed_run
    listed = mops(project, "jobs", "errors", job_id[:12])
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.rstrip("\n").splitlines()
    assert lines[0] == f"job {job_id}: {FAILED} failed simulations"
    assert lines[1].split() == ["sim", "set", "rep", "seed", "class", "message"]
    assert lines[-1] == f"one in full: mops jobs errors {job_id} --sim SIM"
    rows = lines[2:-1]
    assert all(len(line) <= 80 for line in lines)
    failed = stored_failures(project, job_id)
    assert len(rows) == failed.height
    for line, sim in zip(rows, failed.iter_rows(named=True), strict=True):
        fields = line.split(maxsplit=5)
        assert fields[:5] == [
            sim["sim_id"][:12],
            str(sim["param_set"]),
            str(sim["replicate"]),
            str(sim["seed"]),
            sim["error_class"],
        ]
        assert sim["error_message"].startswith(fields[5].rstrip().removesuffix("…"))

    few = mops(project, "jobs", "errors", job_id, "--limit", "3")
    assert few.stdout.splitlines()[0] == f"job {job_id}: {FAILED} failed simulations (showing 3)"
    assert few.stdout.rstrip().endswith("--sim SIM; --limit 0 lists all")

    doc = json.loads(mops(project, "jobs", "errors", job_id, "--json").stdout)
    assert [sim["sim_id"] for sim in doc] == failed["sim_id"].to_list()
    assert doc[0]["params"]["beta"] == 0.2 and doc[0]["params"]["days"] == 2
    assert doc[0]["error"] == {
        "class": "model",
        "type": "KeyError",
        "message": failed["error_message"][0],
    }
    assert doc[0]["seed"] == failed["seed"][0] and doc[0]["replicate"] == 0


def test_jobs_show_summarises_failures_and_exits_0(failed_run) -> None:
    project, job_id, _ = failed_run
    shown = mops(project, "jobs", "show", job_id)
    assert shown.returncode == 0, shown.stderr
    assert f"{FAILED} simulations failed, {CAUSES} causes:" in shown.stdout
    assert f"next: fix the cause, then `mops jobs resume {job_id}`" in shown.stdout
    as_json = json.loads(mops(project, "jobs", "show", job_id, "--json").stdout)
    failures = as_json["failures"]
    assert failures["failed"] == FAILED and failures["more_groups"] == 1
    assert [group["count"] for group in failures["groups"]] == [4, 2, 2, 2, 2]
    first = failures["groups"][0]
    assert first["pattern"] == "ValueError: beta <n> too high [/] for [bold]this model"
    assert first["example"]["traceback_tail"][-1] == first["example"]["error"]["message"]


def columns_of(table: str) -> list[str]:
    """The header line of a `results show` table: its column names."""
    return table.splitlines()[1].split()


def test_results_show_fits_80_columns_and_shows_all_in_200(failed_run) -> None:
    project, job_id, _ = failed_run
    narrow = mops(project, "results", "show", job_id, "incidence")
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert lines[0] == "incidence: 4 rows (showing 4)"  # beta 0.1: 2 simulations x 2 days
    assert all(len(line) <= 80 for line in lines), narrow.stdout
    assert "…" not in narrow.stdout and "..." not in narrow.stdout
    header = columns_of(narrow.stdout)
    # where a row sits, the model's columns, the parameters that fit whole, then the seed;
    # the marker's long path and the simulation id give way, and say so
    assert header == ["param_set", "replicate", "seed", "beta", "days", "day", "cases", "note"]
    assert lines[-1] == (
        "+3 columns hidden: job_id, sim_id, marker; choose columns with --columns a,b,c"
    )
    assert "[red]ok[/]" in narrow.stdout

    wide = mops(project, "results", "show", job_id, "incidence", columns=200)
    header = columns_of(wide.stdout)
    assert header == [
        "sim_id", "param_set", "replicate", "seed", "beta", "days", "marker",
        "day", "cases", "note",
    ]  # fmt: skip
    assert "…" not in wide.stdout
    frame = pl.read_json(
        io.StringIO(mops(project, "results", "show", job_id, "incidence", "--json").stdout)
    )
    for sim_id, seed in zip(frame["sim_id"], frame["seed"], strict=True):
        assert sim_id in wide.stdout and str(seed) in wide.stdout  # whole, never cut short
    assert wide.stdout.splitlines()[-1] == (
        "+1 column hidden: job_id; choose columns with --columns a,b,c"
    )


def test_results_show_of_the_simulations_table_fits_80_columns(failed_run) -> None:
    project, job_id, _ = failed_run
    shown = mops(project, "results", "show", job_id, "simulations", "--limit", "0")
    assert shown.returncode == 0, shown.stderr
    assert all(len(line) <= 80 for line in shown.stdout.splitlines()), shown.stdout
    assert "…" not in shown.stdout
    assert columns_of(shown.stdout)[:4] == ["param_set", "replicate", "status", "error_class"]
    assert shown.stdout.splitlines()[0] == f"simulations: {SIMS} rows (showing {SIMS})"
    assert shown.stdout.count(" failed ") == FAILED


def test_results_show_columns_json_and_csv_for_scripts(failed_run) -> None:
    project, job_id, _ = failed_run
    chosen = mops(project, "results", "show", job_id, "incidence", "--columns", "seed,cases")
    assert chosen.returncode == 0, chosen.stderr
    assert columns_of(chosen.stdout) == ["seed", "cases"]

    as_json = mops(project, "results", "show", job_id, "incidence", "--json")
    as_csv = mops(project, "results", "show", job_id, "incidence", "--csv")
    assert as_json.returncode == 0 and as_csv.returncode == 0, as_json.stderr + as_csv.stderr
    os.environ["MODELOPS_PROJECT_DIR"] = str(project)
    try:
        stored = modelops.results(job_id)["incidence"].collect()
    finally:
        del os.environ["MODELOPS_PROJECT_DIR"]
    from_json = pl.read_json(io.StringIO(as_json.stdout), schema=stored.schema)
    from_csv = pl.read_csv(io.StringIO(as_csv.stdout), schema=stored.schema)
    assert from_json.equals(stored) and from_csv.equals(stored)

    limited = mops(project, "results", "show", job_id, "incidence", "--csv", "--limit", "1")
    assert pl.read_csv(io.StringIO(limited.stdout)).height == 1
    assert limited.stderr.strip() == "1 of 4 rows; --limit 0 for all"

    unknown = mops(project, "results", "show", job_id, "incidence", "--columns", "seed,nope")
    assert unknown.returncode != 0
    assert "no column 'nope'" in unknown.stderr


def test_fixing_the_cause_and_resuming_reruns_only_the_failed(failed_run) -> None:
    """Last in this module: it changes the job every other test reads."""
    project, job_id, _ = failed_run
    (project / "broken").unlink()  # the cause, fixed

    resumed = mops(project, "jobs", "resume", job_id, "--workers", "2")

    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == f"job: {job_id}"
    assert "failed" not in resumed.stdout.split("results ")[-1]  # no summary, no advice
    os.environ["MODELOPS_PROJECT_DIR"] = str(project)
    try:
        stored = modelops.results(job_id)
        attempts = stored.attempts().group_by("sim_id").len().collect()
        last = stored.simulations().collect()
    finally:
        del os.environ["MODELOPS_PROJECT_DIR"]
    assert set(last["status"]) == {"succeeded"} and last.height == SIMS
    runs = dict(zip(attempts["sim_id"], attempts["len"], strict=True))
    ran_once = {sim for sim, n in runs.items() if n == 1}
    assert set(last.filter(pl.col("param_set") == 0)["sim_id"]) == ran_once  # kept, not rerun
    assert sorted(runs.values()) == [1] * (SIMS - FAILED) + [2] * FAILED
    assert mops(project, "jobs", "errors", job_id).stdout.startswith(
        f"job {job_id}: 0 failed simulations"
    )


ALL_FAIL = """
bundle = "model"
replicates = 3
[parameters]
sampler = "list"
[[parameters.sets]]
beta = 0.2
marker = "{marker}"
"""


def test_a_study_where_everything_fails_exits_1_and_so_does_its_resume(tmp_path: Path) -> None:
    """The new user's case: every simulation failed. Said once per cause, not as a count;
    resuming while the cause is still there fails the same way, and says so."""
    write_project(tmp_path / "model", {"wire.py": MODEL, "requirements.txt": "pyarrow\n"})
    (tmp_path / "broken").write_text("still broken\n")
    (tmp_path / "study.toml").write_text(ALL_FAIL.format(marker=tmp_path / "broken"))

    ran = mops(tmp_path, "run", "study.toml", "--workers", "1")

    assert ran.returncode == 1, ran.stderr
    job_id = ran.stdout.strip().splitlines()[-1].removeprefix("job: ")
    assert f"job {job_id}: failed" in ran.stdout
    assert "3 simulations failed, 1 cause:" in ran.stdout
    assert f"3 {TIMES} model: KeyError: 'incidence'\n" in ran.stdout
    assert ran.stdout.strip().splitlines()[-3] == (
        f"next: fix the cause, then `mops jobs resume {job_id}` runs the 3 failed simulations again"
    )

    again = mops(tmp_path, "jobs", "resume", job_id, "--workers", "1")

    assert again.returncode == 1, again.stderr
    assert again.stdout.strip().splitlines()[-1] == f"job: {job_id}"
    assert "3 simulations failed, 1 cause:" in again.stdout
    assert f"more: mops jobs errors {job_id} --sim " in again.stdout
