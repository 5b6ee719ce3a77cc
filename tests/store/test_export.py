"""Exporting a job as Parquet and CSV files, read back and compared with the store."""

from __future__ import annotations

import base64
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from modelops.contracts import Artifact, ErrorClass, ModelOpsError, SimReturn
from modelops.store import JobResults, ResultStore
from tests.store.helpers import failed, meta, succeeded, table_artifact

BLOB = bytes(range(256))


def make_job(root: Path) -> JobResults:
    store = ResultStore(root)
    with store.writer("older") as writer:
        m = meta(9)
        writer.add(
            m,
            succeeded(
                m,
                incidence=table_artifact({"t": [0, 1], "infected": [9, 10]}),
                blob=Artifact.from_bytes(BLOB),
            ),
        )
    with store.writer("job") as writer:
        for i in range(3):
            m = meta(i, {"beta": 0.1 * (i + 1), "tags": ["a", str(i)]})
            writer.add(
                m,
                succeeded(
                    m,
                    incidence=table_artifact(
                        {"t": [0, 1], "infected": [i, i + 1], "ages": [[1, 2], [i]]}
                    ),
                    blob=Artifact.from_bytes(BLOB[i:]),
                ),
            )
        writer.add(meta(3), failed(meta(3)))
        writer.add(meta(9), SimReturn(meta(9).task_id, cached=True), cached_from="older")
    return store.open("job")


def sorted_frame(frame: pl.DataFrame) -> pl.DataFrame:
    keys = [c for c in ("sim_id", "t") if c in frame.columns]
    return frame.sort(keys)


def test_export_parquet_reads_back_equal(tmp_path: Path) -> None:
    results = make_job(tmp_path / "results")
    written = results.export(tmp_path / "out", "parquet")
    assert [p.name for p in written] == ["blob.parquet", "incidence.parquet", "simulations.parquet"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)
    for output in ("blob", "incidence"):
        exported = pl.read_parquet(tmp_path / "out" / f"{output}.parquet")
        assert_frame_equal(sorted_frame(exported), sorted_frame(results[output].collect()))
    sims = pl.read_parquet(tmp_path / "out" / "simulations.parquet")
    assert_frame_equal(sorted_frame(sims), sorted_frame(results.simulations().collect()))
    assert sims["status"].sort().to_list() == [
        "cached",
        "failed",
        "succeeded",
        "succeeded",
        "succeeded",
    ]
    incidence = pl.read_parquet(tmp_path / "out" / "incidence.parquet")
    assert incidence.height == 8  # 3 sims run here + the cached one, two rows each
    assert incidence["job_id"].unique().to_list() == ["job"]


def test_export_csv_writes_binary_as_base64_and_lists_as_json(tmp_path: Path) -> None:
    results = make_job(tmp_path / "results")
    written = results.export(tmp_path / "out", "csv")
    assert [p.name for p in written] == ["blob.csv", "incidence.csv", "simulations.csv"]

    blob = sorted_frame(
        pl.read_csv(tmp_path / "out" / "blob.csv", schema_overrides={"seed": pl.UInt64})
    )
    expected = sorted_frame(results["blob"].collect())
    assert [base64.b64decode(text) for text in blob["data"]] == expected["data"].to_list()
    assert blob["sim_id"].to_list() == expected["sim_id"].to_list()
    assert blob["seed"].to_list() == expected["seed"].to_list()
    assert blob["beta"].to_list() == expected["beta"].to_list()

    incidence = sorted_frame(pl.read_csv(tmp_path / "out" / "incidence.csv"))
    expected = sorted_frame(results["incidence"].collect())
    assert incidence["infected"].to_list() == expected["infected"].to_list()
    assert incidence["ages"].to_list()[:2] == ["[1,2]", "[0]"]
    assert incidence["tags"].to_list()[0] == '["a","0"]'  # a list parameter is JSON already

    sims = sorted_frame(pl.read_csv(tmp_path / "out" / "simulations.csv"))
    expected = sorted_frame(results.simulations().collect())
    assert sims["status"].to_list() == expected["status"].to_list()
    assert sims["error_message"].to_list() == expected["error_message"].to_list()
    assert sims["params_json"].to_list() == expected["params_json"].to_list()


def test_export_refuses_unknown_formats(tmp_path: Path) -> None:
    results = make_job(tmp_path / "results")
    with pytest.raises(ModelOpsError) as bad:
        results.export(tmp_path / "out", "xlsx")  # type: ignore[arg-type]
    assert bad.value.info.error_class is ErrorClass.BAD_INPUT
