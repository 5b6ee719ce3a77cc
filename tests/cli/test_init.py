"""`mops init`: a new project is complete, locked with uv, and its study runs as made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import modelops

FILES = {".modelopsignore", "README.md", "model.py", "pyproject.toml", "study.toml", "uv.lock"}


def mops(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelops.cli", *args],
        cwd=cwd,
        env={**os.environ, "MODELOPS_PROJECT_DIR": str(cwd), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("template", "output", "rows", "sim_rows"),
    [("sir", "incidence", 4 * 2 * 60, 120), ("blank", "series", 2 * 3 * 20, 30)],
)
def test_init_makes_a_locked_project_that_simulates_and_whose_study_runs(
    template: str,
    output: str,
    rows: int,
    sim_rows: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = mops(tmp_path, "init", "demo", "--template", template)
    assert made.returncode == 0, made.stdout + made.stderr
    project = tmp_path / "demo"
    assert {p.name for p in project.iterdir()} == FILES
    assert 'name = "demo"' in (project / "pyproject.toml").read_text()
    assert "warning" not in made.stderr

    # no entrypoint: the project's only model runs with its defaults and config
    simulated = mops(project, "sim", ".")
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    assert f"{output}: {sim_rows} rows x " in simulated.stdout

    ran = mops(project, "run", "study.toml", "--workers", "2")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    job_id = ran.stdout.strip().splitlines()[-1].removeprefix("job: ")
    # the job is named at once (where to watch its workers follows once Dask's dashboard
    # serves: tests/cluster/test_embedded_cluster.py)
    assert ran.stdout.startswith(f"job {job_id}: ")
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(project))
    table = modelops.results(job_id)[output].collect()
    assert table.height == rows


def test_init_into_another_folder(tmp_path: Path) -> None:
    made = mops(tmp_path, "init", "other_model", "--template", "blank", "--dir", "models")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "models" / "other_model" / "model.py").is_file()


def test_init_offline_keeps_the_project_and_says_to_lock_later(tmp_path: Path) -> None:
    """No index and an empty uv cache: locking cannot work, the project must survive."""
    made = mops(
        tmp_path, "init", "demo", UV_OFFLINE="1", UV_CACHE_DIR=str(tmp_path / "empty-cache")
    )
    assert made.returncode == 0, made.stderr
    assert "run `uv lock`" in made.stderr
    assert len(made.stderr.strip().splitlines()) == 1
    assert {p.name for p in (tmp_path / "demo").iterdir()} == FILES - {"uv.lock"}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("9lives", "invalid project name '9lives'"),
        ("bad name", "invalid project name 'bad name'"),
        ("taken", "already exists and is not empty"),
    ],
)
def test_init_refuses_bad_names_and_used_folders(name: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine\n")
    made = mops(tmp_path, "init", name)
    assert made.returncode == 1
    assert message in made.stderr
    assert len(made.stderr.strip().splitlines()) == 1
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine\n"
    assert not (tmp_path / "9lives").exists()


def test_init_refuses_an_unknown_template(tmp_path: Path) -> None:
    made = mops(tmp_path, "init", "demo", "--template", "seir")
    assert made.returncode == 1
    assert "unknown template 'seir'" in made.stderr
    assert not (tmp_path / "demo").exists()
