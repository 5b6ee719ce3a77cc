"""The result store with real Parquet files, on local disk and on fsspec's memory://."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import polars as pl
import pyarrow.parquet as pq
import pytest

from modelops.contracts import Artifact, ErrorClass, ModelOpsError, SimReturn
from modelops.store import ResultStore, SimMeta
from tests.store.helpers import failed, meta, succeeded, table_artifact

SUMMARY = b'{"peak": 12}'


def incidence(i: int) -> Artifact:
    return table_artifact({"t": [0, 1, 2], "infected": [i, i + 1, i + 2]})


def part_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("part-"))


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    return tmp_path / "results"


@pytest.fixture
def memory_root() -> Iterator[str]:
    root = f"memory://store-test-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_tables_and_bytes_round_trip_with_meta_and_param_columns(results_root: Path) -> None:
    store = ResultStore(results_root)
    with store.writer("job-a") as writer:
        for i in range(3):
            m = meta(i, {"beta": 0.5, "n": i, "t": 7})  # `t` is also a model column
            writer.add(
                m, succeeded(m, incidence=incidence(i), summary=Artifact.from_bytes(SUMMARY))
            )

    results = store.open("job-a")
    assert results.outputs() == ["incidence", "summary"]
    frame = results["incidence"].sort("sim_id", "t").collect()
    assert frame.columns == [
        "job_id", "sim_id", "param_set", "replicate", "seed",
        "beta", "n", "param_t", "t", "infected",
    ]  # fmt: skip
    assert frame.schema["param_set"] == pl.Int64
    assert frame.schema["replicate"] == pl.Int64
    assert frame.schema["seed"] == pl.UInt64
    assert frame.schema["beta"] == pl.Float64
    assert frame.height == 9
    assert frame["job_id"].unique().to_list() == ["job-a"]
    assert frame.filter(pl.col("sim_id") == "task000002")["infected"].to_list() == [2, 3, 4]
    assert frame["seed"].unique().sort().to_list() == [2**64 - 3, 2**64 - 2, 2**64 - 1]
    assert frame["param_t"].unique().to_list() == [7]
    assert frame["t"].to_list()[:3] == [0, 1, 2]

    summary = results.scan("summary").sort("sim_id").collect()
    assert summary.columns == [
        "job_id", "sim_id", "param_set", "replicate", "seed", "beta", "n", "t", "data",
    ]  # fmt: skip
    assert summary["data"].to_list() == [SUMMARY] * 3
    assert summary["n"].to_list() == [0, 1, 2]


def test_model_columns_named_like_meta_columns_are_kept_as_model_columns(
    results_root: Path,
) -> None:
    store = ResultStore(results_root)
    with store.writer("job-b") as writer:
        m = meta(1, {"seed": 3})
        writer.add(m, succeeded(m, out=table_artifact({"seed": [42], "sim_id": ["mine"]})))
    frame = store.open("job-b")["out"].collect()
    assert frame.columns == [
        "job_id", "sim_id", "param_set", "replicate", "seed",
        "param_seed", "model_seed", "model_sim_id",
    ]  # fmt: skip
    assert frame.row(0) == ("job-b", "task000001", 1, 0, 2**64 - 2, 3, 42, "mine")


def test_simulations_record_succeeded_failed_and_cached_results(results_root: Path) -> None:
    store = ResultStore(results_root)
    with store.writer("job-c") as writer:
        ok, bad, hit = meta(0), meta(1), meta(2, {"beta": 1.0, "n": 2})
        writer.add(ok, succeeded(ok, incidence=incidence(0)))
        writer.add(bad, failed(bad))
        writer.add(hit, SimReturn(hit.task_id, cached=True), cached_from="20260101-000000-abcd")

    results = store.open("job-c", cached_from={})
    sims = results.simulations().sort("sim_id").collect()
    assert sims["status"].to_list() == ["succeeded", "failed", "cached"]
    assert sims["error_class"].to_list() == [None, "model", None]
    assert sims["error_type"].to_list() == [None, "ValueError", None]
    assert sims["error_message"][1] == "beta must be positive"
    assert sims["error_traceback"][1].startswith("Traceback (most recent call last)")
    assert sims["cached_from"].to_list() == [None, None, "20260101-000000-abcd"]
    assert sims["worker"].to_list() == ["tcp://127.0.0.1:1234", None, None]
    assert sims["wire_s"].to_list() == [0.5, None, None]
    assert sims["start_s"].to_list() == [None, None, None]
    assert sims["total_s"].to_list() == [0.6, 0.1, None]
    assert sims["attempts"].to_list() == [1, 2, None]
    assert sims["logs"].to_list() == ["hello from the model\n", None, None]
    assert [json.loads(p) for p in sims["params_json"]] == [
        {"beta": 0.5, "n": 0},
        {"beta": 0.5, "n": 1},
        {"beta": 1.0, "n": 2},
    ]
    assert sims["params_json"][2] == '{"beta":1.0,"n":2}'  # what the model was given
    # only the success stored outputs
    assert results["incidence"].collect()["sim_id"].unique().to_list() == ["task000000"]


def test_flush_by_rows_writes_one_zstd_row_group_per_part(results_root: Path) -> None:
    store = ResultStore(results_root)
    writer = store.writer("job-d", flush_rows=3, output_rows=3, flush_seconds=3600)
    folder = results_root / "jobs" / "job-d" / "outputs" / "incidence"
    for i in range(4):
        m = meta(i)
        writer.add(m, succeeded(m, incidence=incidence(i)))  # 3 rows each: every add flushes
    assert part_files(folder) == [f"part-{n:05d}.parquet" for n in range(4)]
    sims_folder = results_root / "jobs" / "job-d" / "simulations"
    assert len(part_files(sims_folder)) == 4
    writer.close()

    small = store.writer("job-e", flush_rows=5, output_rows=5, flush_seconds=3600)
    for i in range(12):
        m = meta(i)
        small.add(m, succeeded(m, one=table_artifact({"x": [i]})))
    folder = results_root / "jobs" / "job-e" / "outputs" / "one"
    assert len(part_files(folder)) == 2  # after 5 and 10 rows
    small.close()
    parts = part_files(folder)
    assert len(parts) == 3
    sizes = []
    for name in parts:
        metadata = pq.ParquetFile(folder / name).metadata
        assert metadata.num_row_groups == 1
        assert metadata.row_group(0).column(0).compression == "ZSTD"
        sizes.append(metadata.num_rows)
    assert sizes == [5, 5, 2]
    assert store.open("job-e")["one"].collect()["x"].sort().to_list() == list(range(12))


def test_flush_by_time_and_by_bytes(results_root: Path) -> None:
    store = ResultStore(results_root)
    writer = store.writer("job-f", flush_rows=10**6, flush_seconds=0.2)
    folder = results_root / "jobs" / "job-f" / "outputs" / "one"
    m = meta(0)
    writer.add(m, succeeded(m, one=table_artifact({"x": [0]})))
    assert not folder.exists()
    writer.flush_if_due()
    assert not folder.exists()  # not due yet
    time.sleep(0.25)
    writer.flush_if_due()
    assert part_files(folder) == ["part-00000.parquet"]
    m = meta(1)
    writer.add(m, succeeded(m, one=table_artifact({"x": [1]})))
    time.sleep(0.25)
    m = meta(2)
    writer.add(m, succeeded(m, one=table_artifact({"x": [2]})))  # due: flushes on add
    assert part_files(folder) == ["part-00000.parquet", "part-00001.parquet"]
    writer.close()

    by_bytes = store.writer("job-g", flush_rows=10**6, flush_seconds=3600, flush_bytes=1000)
    folder = results_root / "jobs" / "job-g" / "outputs" / "blob"
    for i in range(5):
        m = meta(i)
        by_bytes.add(m, succeeded(m, blob=Artifact.from_bytes(bytes([i]) * 600)))
    assert len(part_files(folder)) == 2  # after the 2nd and the 4th 600-byte blob
    by_bytes.close()
    assert len(part_files(folder)) == 3


def test_on_flush_reports_only_results_stored_in_this_job(results_root: Path) -> None:
    reported: list[list[str]] = []
    store = ResultStore(results_root)
    with store.writer("job-h", flush_rows=2, on_flush=reported.append) as writer:
        for i in range(4):
            m = meta(i)
            if i == 1:
                writer.add(m, failed(m))
            elif i == 2:
                writer.add(m, SimReturn(m.task_id, cached=True), cached_from="older-job")
            else:
                writer.add(m, succeeded(m, incidence=incidence(i)))
    assert reported == [["task000000"], ["task000003"]]


def test_part_numbering_continues_when_a_job_is_resumed(results_root: Path) -> None:
    with ResultStore(results_root).writer("job-i", flush_rows=1) as writer:
        for i in range(2):
            m = meta(i)
            writer.add(m, succeeded(m, incidence=incidence(i)))
    with ResultStore(results_root).writer("job-i", flush_rows=1) as writer:
        m = meta(2)
        writer.add(m, succeeded(m, incidence=incidence(2)))
    folder = results_root / "jobs" / "job-i" / "outputs" / "incidence"
    assert part_files(folder) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    results = ResultStore(results_root).open("job-i")
    assert results["incidence"].select(pl.len()).collect().item() == 9
    assert results.simulations().select(pl.len()).collect().item() == 3


def test_half_written_temporary_parts_are_ignored(results_root: Path) -> None:
    store = ResultStore(results_root)
    with store.writer("job-j") as writer:
        for i in range(3):
            m = meta(i)
            writer.add(m, succeeded(m, incidence=incidence(i)))
    job = results_root / "jobs" / "job-j"
    complete = (job / "outputs" / "incidence" / "part-00000.parquet").read_bytes()
    for folder in (job / "outputs" / "incidence", job / "simulations"):
        (folder / f".tmp-{uuid.uuid4().hex}.parquet").write_bytes(complete[: len(complete) // 2])
    (job / "outputs" / "incidence" / "notes.txt").write_text("not a part")

    results = store.open("job-j")
    assert results.outputs() == ["incidence"]
    assert results["incidence"].select(pl.len()).collect().item() == 9
    assert results.simulations().select(pl.len()).collect().item() == 3
    with store.writer("job-j") as writer:  # a resumed writer numbers past complete parts only
        m = meta(3)
        writer.add(m, succeeded(m, incidence=incidence(3)))
    assert part_files(job / "outputs" / "incidence") == ["part-00000.parquet", "part-00001.parquet"]


def test_parts_with_drifting_schemas_scan_together(results_root: Path) -> None:
    store = ResultStore(results_root)
    with store.writer("job-k", flush_rows=1) as writer:
        rows = [
            ({"n": 1, "label": "a"}, {"t": [0], "a": [1]}),
            ({"n": 2.5, "label": 3}, {"t": [0], "a": [2], "b": ["new"]}),  # float; str/int mix
            ({"n": 3, "label": "c"}, {"t": [0], "a": [0.5]}),  # the model's `a` became a float
            ({"n": 4, "label": None}, {"t": [0], "a": [4]}),
        ]
        for i, (params, model) in enumerate(rows):
            m = meta(i, params)
            writer.add(m, succeeded(m, out=table_artifact(model)))
    frame = store.open("job-k")["out"].collect()
    assert frame["sim_id"].to_list() == [meta(i).task_id for i in range(4)]  # in part order
    assert frame.schema["n"] == pl.Float64
    assert frame["n"].to_list() == [1.0, 2.5, 3.0, 4.0]
    assert frame.schema["label"] == pl.String
    assert frame["label"].to_list() == ["a", "3", "c", None]
    assert frame.schema["a"] == pl.Float64
    assert frame["a"].to_list() == [1.0, 2.0, 0.5, 4.0]
    assert frame["b"].to_list() == [None, "new", None, None]
    assert frame.schema["seed"] == pl.UInt64


def test_ints_and_floats_in_one_flush_make_a_float_parameter_column(results_root: Path) -> None:
    store = ResultStore(results_root)
    with store.writer("job-l") as writer:
        for i, beta in enumerate([1, 2, 0.25]):
            m = meta(i, {"beta": beta})
            writer.add(m, succeeded(m, out=table_artifact({"x": [i]})))
    frame = store.open("job-l")["out"].sort("sim_id").collect()
    assert frame.schema["beta"] == pl.Float64
    assert frame["beta"].to_list() == [1.0, 2.0, 0.25]


def test_output_names_are_encoded_as_one_path_component(results_root: Path) -> None:
    store = ResultStore(results_root)
    with store.writer("job-m") as writer:
        m = meta(0)
        writer.add(m, succeeded(m, **{"../up/là": table_artifact({"x": [1]})}))
    assert [p.name for p in (results_root / "jobs" / "job-m" / "outputs").iterdir()] == [
        "%2E.%2Fup%2Fl%C3%A0"
    ]
    results = store.open("job-m")
    assert results.outputs() == ["../up/là"]
    assert results["../up/là"].collect()["x"].to_list() == [1]


def test_manifest_is_replaced_atomically(results_root: Path) -> None:
    store = ResultStore(results_root)
    store.write_manifest("job-n", {"study": {"name": "sir"}, "total": 4})
    store.write_manifest("job-n", {"study": {"name": "sir"}, "total": 8})
    assert store.read_manifest("job-n") == {"study": {"name": "sir"}, "total": 8}
    assert [p.name for p in (results_root / "jobs" / "job-n").iterdir()] == ["manifest.json"]
    with pytest.raises(ModelOpsError) as missing:
        store.read_manifest("job-zzz")
    assert missing.value.info.error_class is ErrorClass.NOT_FOUND
    assert store.job_url("job-n") == str(results_root / "jobs" / "job-n")


def test_a_job_without_results_yet_has_an_empty_simulations_table(results_root: Path) -> None:
    store = ResultStore(results_root)
    store.write_manifest("job-o", {"total": 0})
    results = store.open("job-o")
    assert results.outputs() == []
    sims = results.simulations().collect()
    assert sims.height == 0
    assert sims.schema["seed"] == pl.UInt64 and "params_json" in sims.columns


def test_errors_name_what_is_missing_on_one_line(results_root: Path) -> None:
    store = ResultStore(results_root)
    nothing = store.open("20260101-000000-beef")  # nothing stored yet: empty, not an error
    assert not store.exists("20260101-000000-beef")
    assert nothing.outputs() == [] and nothing.simulations().collect().height == 0
    with pytest.raises(ModelOpsError) as no_output:
        nothing.scan("incidence")
    assert str(no_output.value) == (
        "not_found: job '20260101-000000-beef' has no output 'incidence' (outputs: none)"
    )

    with store.writer("job-p") as writer:
        m = meta(0)
        writer.add(m, succeeded(m, incidence=incidence(0)))
    with pytest.raises(ModelOpsError) as no_output:
        store.open("job-p").scan("prevalence")
    assert str(no_output.value) == (
        "not_found: job 'job-p' has no output 'prevalence' (outputs: incidence)"
    )
    for bad in ("../escape", "", ".hidden", "a/b"):
        with pytest.raises(ModelOpsError) as bad_id:
            store.writer(bad)
        assert bad_id.value.info.error_class is ErrorClass.BAD_INPUT


def cached_jobs(store: ResultStore) -> None:
    """Job A ran sims 0-3; job B reused 0 and 1 from A and ran 4 and 5; C reused only."""
    with store.writer("job-A") as writer:
        for i in range(4):
            m = meta(i)
            writer.add(
                m, succeeded(m, incidence=incidence(i), summary=Artifact.from_bytes(SUMMARY))
            )
    with store.writer("job-B") as writer:
        for i in (0, 1):
            writer.add(meta(i), SimReturn(meta(i).task_id, cached=True), cached_from="job-A")
        for i in (4, 5):
            m = meta(i)
            writer.add(
                m, succeeded(m, incidence=incidence(i), summary=Artifact.from_bytes(SUMMARY))
            )
    with store.writer("job-C") as writer:
        for i in (2, 3):
            writer.add(meta(i), SimReturn(meta(i).task_id, cached=True), cached_from="job-A")


def check_cached_union(store: ResultStore) -> None:
    b = store.open("job-B")
    assert b.outputs() == ["incidence", "summary"]
    frame = b["incidence"].sort("sim_id", "t").collect()
    assert frame["sim_id"].unique().sort().to_list() == [meta(i).task_id for i in (0, 1, 4, 5)]
    assert frame["job_id"].unique().to_list() == ["job-B"]
    assert frame.height == 12
    assert frame.filter(pl.col("sim_id") == meta(1).task_id)["infected"].to_list() == [1, 2, 3]
    assert b["summary"].collect().height == 4

    c = store.open("job-C")  # every simulation was a cache hit: still complete results
    frame = c["incidence"].collect()
    assert sorted(frame["sim_id"].unique()) == [meta(2).task_id, meta(3).task_id]
    assert frame["job_id"].unique().to_list() == ["job-C"]
    assert c.simulations().collect()["status"].to_list() == ["cached", "cached"]

    # the mapping may also be given, e.g. straight from JobRecords.cached_results
    only_one = store.open("job-C", cached_from={meta(3).task_id: "job-A"})
    assert only_one["incidence"].collect()["sim_id"].unique().to_list() == [meta(3).task_id]


def test_cached_simulations_are_read_from_the_job_that_stored_them(results_root: Path) -> None:
    store = ResultStore(results_root)
    cached_jobs(store)
    check_cached_union(store)


def test_memory_filesystem(memory_root: str) -> None:
    store = ResultStore(memory_root)
    cached_jobs(store)
    check_cached_union(store)
    assert store.job_url("job-A") == f"{memory_root.replace('://', ':///')}/jobs/job-A"

    store.write_manifest("job-A", {"total": 4})
    assert store.read_manifest("job-A") == {"total": 4}
    fs = fsspec.filesystem("memory")
    folder = f"{memory_root}/jobs/job-A/outputs/incidence"
    with fs.open(f"{folder}/.tmp-{uuid.uuid4().hex}.parquet", "wb") as file:
        file.write(b"PAR1 truncated")
    results = store.open("job-A")
    assert results["incidence"].select(pl.len()).collect().item() == 12
    assert sorted(results["incidence"].collect()["infected"].to_list())[:3] == [0, 1, 1]
    with store.writer("job-A", flush_rows=1) as writer:  # resumes after the existing part
        m = meta(9)
        writer.add(m, succeeded(m, incidence=incidence(9)))
    assert sorted(fs.ls(folder, detail=False))[-2:] == [
        f"/{memory_root.removeprefix('memory://')}/jobs/job-A/outputs/incidence/part-00000.parquet",
        f"/{memory_root.removeprefix('memory://')}/jobs/job-A/outputs/incidence/part-00001.parquet",
    ]
    assert store.open("job-A")["incidence"].select(pl.len()).collect().item() == 15


def test_file_urls_name_the_same_store_as_paths(results_root: Path) -> None:
    with ResultStore(f"file://{results_root}").writer("job-q") as writer:
        m = meta(0)
        writer.add(m, succeeded(m, incidence=incidence(0)))
    assert (
        results_root / "jobs" / "job-q" / "outputs" / "incidence" / "part-00000.parquet"
    ).exists()
    assert ResultStore(results_root).open("job-q")["incidence"].collect().height == 3


def test_a_mismatched_meta_is_refused(results_root: Path) -> None:
    writer = ResultStore(results_root).writer("job-r")
    with pytest.raises(ModelOpsError):
        writer.add(SimMeta("other", 0, 0, 1, {}), succeeded(meta(0)))
    writer.close()
    with pytest.raises(ModelOpsError):
        writer.add(meta(0), succeeded(meta(0)))


def test_a_result_a_worker_served_from_its_cache_keeps_its_outputs_here(
    results_root: Path,
) -> None:
    store = ResultStore(results_root)
    with store.writer("job-s") as writer:
        m = meta(0)
        hit = SimReturn(m.task_id, outputs={"incidence": incidence(0)}, cached=True)
        writer.add(m, hit)  # no cached_from: the outputs came with the result
    results = store.open("job-s")
    assert results.simulations().collect()["status"].to_list() == ["cached"]
    assert results.cached_from() == {}
    assert results["incidence"].collect()["infected"].to_list() == [0, 1, 2]


def test_a_models_many_rows_per_simulation_flush_by_output_rows(results_root: Path) -> None:
    """10 simulations of 3 rows: the simulations buffer (flush_rows) is far from full, the
    output's rows (output_rows) decide."""
    store = ResultStore(results_root)
    with store.writer("job-o", flush_rows=100, output_rows=6, flush_seconds=3600) as writer:
        for i in range(10):
            m = meta(i)
            writer.add(m, succeeded(m, incidence=incidence(i)))
    folder = results_root / "jobs" / "job-o" / "outputs" / "incidence"
    assert len(part_files(folder)) == 5  # after 2, 4, 6, 8 and 10 simulations
    assert len(part_files(results_root / "jobs" / "job-o" / "simulations")) == 5
    assert store.open("job-o")["incidence"].collect().height == 30
    with pytest.raises(ModelOpsError):
        store.writer("job-p", output_rows=0)
