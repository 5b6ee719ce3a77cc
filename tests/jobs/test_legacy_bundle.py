"""A bundle written for the earlier system runs unchanged in a study of thousands of
simulations: an entry-point wire in a src-layout package, numpy's legacy global seeding,
pandas Parquet and JSON outputs, and a uv.lock that has drifted from pyproject.toml."""

from __future__ import annotations

import json
import shutil
import textwrap
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import modelops
from modelops.bundle.lock import LockUpdated
from modelops.bundle.uv import run_uv
from modelops.jobs import run_study
from modelops.store import JobState
from modelops.study import load_study

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy_bundle"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def legacy(project: Path) -> Path:
    """The legacy bundle, locked when it needed numpy alone: its lock lacks pandas and
    pyarrow, which its pyproject.toml lists."""
    root = project / "legacy"
    shutil.copytree(LEGACY, root)
    pyproject = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        pyproject.replace('["numpy", "pandas", "pyarrow"]', '["numpy"]')
    )
    done = run_uv(["lock", "--project", str(root)])
    assert done.returncode == 0, done.stderr
    (root / "pyproject.toml").write_text(pyproject)
    assert 'name = "pandas"' not in (root / "uv.lock").read_text()
    return root


def study(project: Path, replicates: int, points: int, extra: str = "") -> Path:
    path = project / "study.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            name = "legacy"
            bundle = "legacy"
            seed = 20261130
            replicates = {replicates}
            {extra}
            [parameters]
            sampler = "grid"
            [parameters.dims.alpha]
            type = "float"
            low = 0.5
            high = 5.0
            points = {points}
            [parameters.fixed]
            beta = 2.0
            """
        ).lstrip()
    )
    return path


def test_a_legacy_bundle_runs_a_study_of_2000_simulations(project: Path, legacy: Path) -> None:
    spec = load_study(study(project, replicates=20, points=100))
    assert spec.n_simulations == 2000

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        job = run_study(spec, n_workers=2)

    relocks = [str(w.message) for w in caught if issubclass(w.category, LockUpdated)]
    assert len(relocks) == 1
    assert "(pandas missing, pyarrow missing); locked again" in relocks[0]
    assert job.state is JobState.SUCCEEDED
    assert (job.counts.succeeded, job.counts.failed) == (2000, 0)

    found = modelops.results(job.job_id)
    sims = found.simulations().collect()
    assert sims.height == 2000
    assert (sims["status"] == "succeeded").all()
    assert sims["seed"].max() < 2**32
    per_set = sims.group_by("param_set").agg(pl.col("seed").n_unique().alias("distinct"))
    assert (per_set["distinct"] == 20).all()

    samples = found["samples"].collect()
    assert samples.height == 2000 * 100
    # the model seeded numpy's global RNG with the study's seed: recompute one by hand
    one = sims.sort("sim_id").row(0, named=True)
    rows = samples.filter(pl.col("sim_id") == one["sim_id"]).sort("draw")
    assert rows["seed"].unique().to_list() == [one["seed"]]
    np.random.seed(one["seed"])
    expected = np.random.beta(rows["alpha"][0], rows["beta"][0], size=100)
    got = rows["value"].to_numpy()
    np.testing.assert_allclose(got, expected)

    metadata = found["metadata"].collect()
    assert metadata.height == 2000
    first = json.loads(metadata.filter(pl.col("sim_id") == one["sim_id"])["data"][0])
    assert first["seed"] == one["seed"]
    assert first["mean"] == pytest.approx(expected.mean())


def test_with_64_bit_seeds_the_same_model_fails_as_it_did_before(
    project: Path, legacy: Path
) -> None:
    """Why 32-bit seeds are the default: numpy's legacy seeding refuses wider ones."""
    spec = load_study(study(project, replicates=2, points=2, extra="seed_bits = 64"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LockUpdated)
        job = run_study(spec, n_workers=1)
    assert job.counts.failed == 4
    sims = modelops.results(job.job_id).simulations().collect()
    assert sims["seed"].max() >= 2**32
    assert (sims["error_class"] == "model").all()
    assert sims["error_message"].str.contains("2\\*\\*32").all()
