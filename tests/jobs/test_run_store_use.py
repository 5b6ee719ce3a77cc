"""A study run opens the bundle store once and reads its bundle's manifest and config once,
though it locates the bundle, checks the study against the model (fetching the bundle into
an empty cache) and records the bundle's environment in the job's manifest."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tests.bundle.store_use import count_store_use
from tests.conftest import write_project

from modelops.bundle import LayoutStore, build_bundle
from modelops.jobs import run_study
from modelops.settings import Settings
from modelops.store import JobState
from modelops.study import load_study

SDK_MODEL = {
    "model.py": """
        from modelops.sdk import BaseModel, Param, model_output


        class Counted(BaseModel):
            params = {"rate": Param(0.0, 1.0, default=0.1)}

            def build_sim(self, params, config):
                return params["rate"]

            def run_sim(self, rate, seed):
                return [rate * day for day in range(3)]

            @model_output("series")
            def series(self, values):
                return {"value": values}
    """,
    "pyproject.toml": """
        [project]
        name = "counted"
        version = "1"
        dependencies = ["pyarrow"]

        [tool.modelops]
        wire = "modelops.sdk:wire"
        models = ["model:Counted"]
    """,
}


def test_a_study_run_opens_the_store_once_and_reads_its_bundle_once(
    tmp_path: Path, store: LayoutStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(tmp_path))
    built = build_bundle(write_project(tmp_path / "counted", SDK_MODEL))
    ref = store.put(built)
    fetched = Settings.from_env().cache / "bundles" / ref.hex
    assert not fetched.exists()  # so checking the study fetches it, reading the store too
    study = tmp_path / "study.toml"
    study.write_text(
        textwrap.dedent(
            f"""
            bundle = "{ref}"
            entrypoint = "model:Counted"
            [parameters]
            sampler = "grid"
            [parameters.dims.rate]
            low = 0.1
            high = 0.2
            points = 2
            """
        )
    )
    use = count_store_use(monkeypatch)

    job = run_study(load_study(study), n_workers=1)

    assert job.state is JobState.SUCCEEDED
    assert fetched.is_dir()  # the study was checked against the model, on this machine
    assert use.opened == 1
    assert use.manifest_reads == {ref: 1}
    assert use.blob_reads[built.config_blob.digest] == 1
