"""The smoke test names the stage, the task and the remote traceback when something fails."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelops.bundle import build_bundle
from modelops.devtools import smoke
from modelops.devtools.smoke import SmokeTestFailed, run_smoke_test


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    copy = tmp_path / "smoke_bundle"
    shutil.copytree(smoke.SMOKE_BUNDLE, copy)
    wire = copy / "wire.py"
    source = wire.read_text()
    assert old in source
    wire.write_text(source.replace(old, new))
    return copy


def test_a_failing_simulation_names_stage_task_and_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = broken_copy(
        tmp_path,
        "    table = pa.table(",
        "    if params['beta'] == 0.4:\n        raise ArithmeticError('beta 0.4 breaks')\n"
        "    table = pa.table(",
    )
    monkeypatch.setattr(smoke, "SMOKE_BUNDLE", bundle)

    with pytest.raises(SmokeTestFailed) as failed:
        run_smoke_test(simulations=8)

    assert failed.value.stage == "simulation"
    task_ids = {
        t.task_id for t in smoke.smoke_tasks(build_bundle(bundle).ref, 8) if t.params["beta"] == 0.4
    }
    assert failed.value.task_id in task_ids
    assert "model: ArithmeticError: beta 0.4 breaks" in str(failed.value)
    assert "raise ArithmeticError('beta 0.4 breaks')" in failed.value.remote_traceback


def test_a_wrong_result_fails_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = broken_copy(
        tmp_path,
        "table = pa.table(simulate(seed=seed, **params))",
        "table = pa.table(simulate(seed=seed, **params)).drop_columns(['recovered'])",
    )
    monkeypatch.setattr(smoke, "SMOKE_BUNDLE", bundle)

    with pytest.raises(SmokeTestFailed) as failed:
        run_smoke_test(simulations=4)

    assert failed.value.stage == "validation"
    assert failed.value.task_id
    assert "result columns are ['day', 'susceptible', 'infected', 'incidence']" in str(failed.value)
