"""`modelops.sample_study(..., out=)` writes the study file `mops study sample` writes, and
never replaces one the user has unless asked to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import modelops
from modelops.study import load_study


def test_out_writes_a_study_file_that_loads_back_equal(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    out = tmp_path / "studies" / "sweep.toml"
    out.parent.mkdir()
    spec = modelops.sample_study(
        tmp_path / "model",
        sampler="grid",
        dims=["beta=0.1:0.3:3"],
        fixed=["days=90", "region=north"],
        replicates=2,
        out=out,
    )
    assert load_study(out) == spec
    assert spec.n_simulations == 6 and spec.parameters.fixed == {"days": 90, "region": "north"}


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    out = tmp_path / "study.toml"
    out.write_text("# mine\n")
    words = dict(sampler="list", fixed=["days=90"], out=out)
    with pytest.raises(modelops.ModelOpsError, match=r"study\.toml exists; pass --force"):
        modelops.sample_study(tmp_path / "model", **words)  # type: ignore[arg-type]
    assert out.read_text() == "# mine\n"
    command = ["study", "sample", "--bundle", "model", "--sampler", "list"]
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelops.cli",
            *command,
            "--fixed",
            "days=90",
            "--out",
            "study.toml",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "bad_input: study.toml exists; pass --force (force=True) to overwrite it"
    )
    assert out.read_text() == "# mine\n"
    modelops.sample_study(tmp_path / "model", force=True, **words)  # type: ignore[arg-type]
    assert load_study(out).parameters.fixed == {"days": 90}
