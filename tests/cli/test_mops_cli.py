"""`mops` as a user runs it: a real process, real cluster, output parsed and checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import SMOKE_BUNDLE, write_project

from modelops.bundle import LayoutStore
from modelops.settings import Settings

MOPS = [sys.executable, "-m", "modelops.cli"]


def mops(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MOPS, *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )


def sim_json(*args: str) -> tuple[int, dict]:
    done = mops("sim", *args, "--json")
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    return done.returncode, json.loads(lines[0])


def test_sim_json_runs_one_simulation_of_a_folder() -> None:
    code, doc = sim_json(
        str(SMOKE_BUNDLE), "-e", "sir", "-p", "beta=0.35", "-p", "days=40", "--seed", "11"
    )
    assert code == 0, doc
    assert doc["status"] == "ok" and doc["error"] is None
    assert doc["bundle"].startswith("smoke-bundle@sha256:")
    assert doc["outputs"]["result"]["kind"] == "table"
    assert doc["outputs"]["result"]["rows"] == 40
    assert doc["outputs"]["metadata"] == {
        "kind": "bytes",
        "rows": None,
        "bytes": doc["outputs"]["metadata"]["bytes"],
    }
    assert doc["outputs"]["metadata"]["bytes"] > 0
    assert doc["timings"]["total_s"] > 0


SEED_WIRE = """
import pyarrow as pa

def wire(entrypoint, params, seed):
    table = pa.table({"seed": [str(seed)], "type": [type(seed).__name__]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {"seen": sink.getvalue().to_pybytes()}
"""


def test_sim_passes_the_largest_64_bit_seed_to_the_model_unchanged(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "seeds", {"wire.py": SEED_WIRE, "requirements.txt": "pyarrow\n"}
    )
    done = mops("sim", str(project), "--seed", str(2**64 - 1))
    assert done.returncode == 0, done.stderr
    assert "18446744073709551615" in done.stdout
    assert "int" in done.stdout


@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_sim_refuses_a_seed_out_of_range_in_one_line_before_building(
    tmp_path: Path, seed: str
) -> None:
    project = write_project(tmp_path / "unbuilt", {"wire.py": SEED_WIRE})
    done = mops("sim", str(project), "--seed", seed)
    assert done.returncode == 1
    assert done.stderr.strip() == f"bad_input: seed must be in [0, 2**64), got {seed}"
    stored = LayoutStore(Settings.from_env().bundle_store).refs()
    assert "unbuilt" not in {ref.repository for ref, _ in stored}


def test_sim_by_reference_prints_a_table_preview() -> None:
    built = mops("bundle", "build", str(SMOKE_BUNDLE))
    assert built.returncode == 0, built.stderr
    ref = built.stdout.strip()
    done = mops("sim", ref, "-e", "sir", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert ref in done.stdout.replace("\n", "")
    assert "result: 60 rows x 5 columns" in done.stdout
    assert "susceptible" in done.stdout
    assert "metadata:" in done.stdout


def test_model_error_gives_class_and_remote_traceback(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "raising",
        {"wire.py": "def wire(e, p, s):\n    raise RuntimeError('beta too high')\n"},
    )
    code, doc = sim_json(str(project))
    assert code == 1
    assert doc["status"] == "error"
    assert doc["error"]["class"] == "model"
    assert doc["error"]["type"] == "RuntimeError"
    assert doc["error"]["message"] == "RuntimeError: beta too high"
    assert "raise RuntimeError('beta too high')" in doc["error"]["traceback"]

    text = mops("sim", str(project))
    assert text.returncode == 1
    assert "model: RuntimeError: beta too high" in text.stderr + text.stdout
    assert "remote traceback" in text.stderr + text.stdout


@pytest.mark.parametrize(
    ("argument", "error_class", "fragment"),
    [
        ("smoke@sha256:1234", "bad_reference", "64 lowercase hex characters"),
        ("no-such-folder", "bad_reference", "neither a project folder nor a bundle reference"),
        ("smoke@sha256:" + "0" * 64, "not_found", "is not in the bundle store"),
    ],
)
def test_bad_references_give_one_line_errors(
    argument: str, error_class: str, fragment: str
) -> None:
    code, doc = sim_json(argument)
    assert code == 1
    assert doc["status"] == "error"
    assert doc["error"]["class"] == error_class
    assert fragment in doc["error"]["message"]
    assert "\n" not in doc["error"]["message"]

    text = mops("sim", argument)
    assert text.returncode == 1
    assert len(text.stderr.strip().splitlines()) == 1
    assert fragment in text.stderr


def test_folder_without_wire_is_refused_with_the_fix(tmp_path: Path) -> None:
    project = write_project(tmp_path / "nowire", {"model.py": "x = 1\n"})
    code, doc = sim_json(str(project))
    assert code == 1
    assert doc["error"]["class"] == "bad_bundle"
    assert "no wire function" in doc["error"]["message"]
    assert "wire.py" in doc["error"]["message"]


def test_bad_param_syntax_is_a_clear_error() -> None:
    code, doc = sim_json(str(SMOKE_BUNDLE), "-p", "beta")
    assert code == 1
    assert doc["error"]["class"] == "bad_input"
    assert doc["error"]["message"] == "-p 'beta': expected NAME=VALUE, e.g. days=90"


def test_smoke_test_command_passes_and_reports() -> None:
    done = mops("dev", "smoke-test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke test passed: 24 simulations ran on 2 workers" in done.stdout
    assert "time to first result" in done.stdout
    assert "total time" in done.stdout
    assert "result: 60 rows x 5 columns" in done.stdout


# -- model text is printed as written, never read as rich markup (issue 10) ------------------

MARKUP_WIRE = """
import pyarrow as pa

def wire(entrypoint, params, seed):
    print("[bold]loud[/] log [/]")
    if params.get("fail"):
        raise ValueError("bad [/] [bold]x")
    table = pa.table({"[b]note": ["[red]v[/]"], "plain": ["[/]"]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {"out": sink.getvalue().to_pybytes()}
"""
WIDE = {"COLUMNS": "2000"}  # whole cells, so the text can be compared as written


def mops_in(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`mops …` in a project folder of its own (job records and results stay there)."""
    return subprocess.run(
        [*MOPS, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=project,
        env={**os.environ, "MODELOPS_PROJECT_DIR": str(project), **WIDE, **env},
    )


def test_sim_prints_model_logs_tables_and_errors_literally(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "markup", {"wire.py": MARKUP_WIRE, "requirements.txt": "pyarrow\n"}
    )
    ok = mops_in(tmp_path, "sim", str(project))
    assert ok.returncode == 0, ok.stderr
    assert "[b]note" in ok.stdout and "[red]v[/]" in ok.stdout
    assert "[bold]loud[/] log [/]" in ok.stdout

    failed = mops_in(tmp_path, "sim", str(project), "-p", "fail=true")
    shown = failed.stdout + failed.stderr
    assert failed.returncode == 1
    assert "Traceback (most recent call last)" in shown  # the model's, in its panel
    assert "MarkupError" not in shown
    assert "model: ValueError: bad [/] [bold]x" in failed.stderr
    assert 'raise ValueError("bad [/] [bold]x")' in failed.stderr
    assert "[bold]loud[/] log [/]" in failed.stdout


MARKUP_STUDY = """
name = "[bold]sweep[/]"
bundle = "markup"
[parameters]
sampler = "list"
[[parameters.sets]]
label = "[red]a[/]"
[[parameters.sets]]
label = "[/]b"
fail = true
"""


def test_results_show_and_jobs_list_print_model_text_literally(tmp_path: Path) -> None:
    write_project(tmp_path / "markup", {"wire.py": MARKUP_WIRE, "requirements.txt": "pyarrow\n"})
    (tmp_path / "study.toml").write_text(MARKUP_STUDY)
    ran = mops_in(tmp_path, "run", "study.toml", "--workers", "1")
    assert ran.returncode == 1, ran.stderr  # partial: one set fails, as written
    job_id = ran.stdout.strip().splitlines()[-1].removeprefix("job: ")

    out = mops_in(tmp_path, "results", "show", job_id, "out")
    assert out.returncode == 0, out.stderr
    assert "out: 1 rows (showing 1)" in out.stdout
    for text in ("[b]note", "[red]v[/]", "[red]a[/]", " [/] "):
        assert text in out.stdout, text

    sims = mops_in(tmp_path, "results", "show", job_id, "simulations")
    assert sims.returncode == 0, sims.stderr
    assert "ValueError: bad [/] [bold]x" in sims.stdout
    assert "[bold]loud[/] log [/]" in sims.stdout  # the model's log column

    listed = mops_in(tmp_path, "jobs", "list")
    assert listed.returncode == 0, listed.stderr
    assert "[bold]sweep[/]" in listed.stdout


# -- MODELOPS_* settings that cannot be used: one line, from any command (issue 10) ---------


@pytest.mark.parametrize(
    "command",
    [
        ("jobs", "list"),
        ("sim", str(SMOKE_BUNDLE), "--seed", "1"),
        ("bundle", "build", str(SMOKE_BUNDLE)),
        ("run", "study.toml"),
        ("results", "show", "20260101-000000-beef"),
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_an_unusable_setting_is_one_line_naming_the_variable(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    done = mops_in(tmp_path, *command, MODELOPS_CACHE_MAX_GB="abc")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "bad_input: MODELOPS_CACHE_MAX_GB='abc' is not usable: expected a positive number of "
        "gigabytes, e.g. 50"
    )
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MODELOPS_CACHE_MAX_GB", "nan", "a positive number of gigabytes, e.g. 50"),
        ("MODELOPS_CACHE_MAX_GB", "-3", "a positive number of gigabytes, e.g. 50"),
        ("MODELOPS_CHILD_THREADS", "1.5", "a positive whole number of threads, e.g. 1"),
        ("MODELOPS_CHILD_THREADS", "0", "a positive whole number of threads, e.g. 1"),
    ],
)
def test_each_numeric_setting_says_what_it_takes(
    tmp_path: Path, name: str, value: str, expected: str
) -> None:
    done = mops_in(tmp_path, "jobs", "list", **{name: value})
    assert done.returncode == 1
    assert done.stderr.strip() == f"bad_input: {name}={value!r} is not usable: expected {expected}"
