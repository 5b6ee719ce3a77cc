"""Artifacts: table bytes recognised, anything else kept opaque."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelops.contracts import Artifact, ArtifactKind
from modelops.contracts.artifacts import TableFormat


def sample_table(rows: int) -> pa.Table:
    return pa.table(
        {
            "step": pa.array(range(rows), pa.int64()),
            "value": pa.array([i * 0.5 for i in range(rows)], pa.float64()),
            "label": pa.array([f"r{i}" for i in range(rows)], pa.string()),
        }
    )


def arrow_stream(table: pa.Table, batch_rows: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=batch_rows)
    return sink.getvalue().to_pybytes()


def arrow_file(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


# --- tables ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encode", "table_format"),
    [
        (arrow_stream, TableFormat.ARROW_STREAM),
        (arrow_file, TableFormat.ARROW_FILE),
        (parquet, TableFormat.PARQUET),
    ],
)
@pytest.mark.parametrize("rows", [0, 1, 7, 1000])
def test_tables_are_recognised_with_their_row_count(
    encode: Callable[[pa.Table], bytes], table_format: TableFormat, rows: int
) -> None:
    table = sample_table(rows)
    data = encode(table)
    artifact = Artifact.from_bytes(data)
    assert artifact.kind is ArtifactKind.TABLE
    assert artifact.table_format is table_format
    assert artifact.rows == rows
    assert artifact.data == data
    assert artifact.size == len(data)
    assert artifact.table().equals(table)


def test_multi_batch_stream_counts_every_row() -> None:
    data = arrow_stream(sample_table(25), batch_rows=4)
    artifact = Artifact.from_bytes(data)
    assert artifact.kind is ArtifactKind.TABLE
    assert artifact.rows == 25


def test_parquet_with_several_row_groups_counts_every_row() -> None:
    buffer = io.BytesIO()
    pq.write_table(sample_table(100), buffer, row_group_size=10)
    artifact = Artifact.from_bytes(buffer.getvalue())
    assert artifact.table_format is TableFormat.PARQUET
    assert artifact.rows == 100


# --- opaque bytes ---------------------------------------------------------------------------


def assert_opaque(data: bytes) -> None:
    artifact = Artifact.from_bytes(data)
    assert artifact.kind is ArtifactKind.BYTES
    assert artifact.rows is None
    assert artifact.table_format is None
    assert artifact.data == data
    with pytest.raises(TypeError):
        artifact.table()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        json.dumps({"model": "sir", "version": 3, "ok": True}).encode(),
        b"[1, 2, 3]",
        "plain text with ünïcode\n".encode(),
        random.Random(0).randbytes(4096),
        random.Random(1).randbytes(3),
    ],
    ids=["empty", "json-object", "json-list", "text", "random-4k", "random-3"],
)
def test_other_bytes_are_kept_as_bytes(data: bytes) -> None:
    assert_opaque(data)


@pytest.mark.parametrize("cut", [0.25, 0.5, 0.75, 0.95])
def test_truncated_arrow_stream_is_bytes(cut: float) -> None:
    data = arrow_stream(sample_table(50))
    truncated = data[: int(len(data) * cut)]
    assert truncated.startswith(b"\xff\xff\xff\xff")
    assert_opaque(truncated)


@pytest.mark.parametrize("cut", [8, 100, 0.5, -1, -6])
def test_truncated_arrow_file_is_bytes(cut: float) -> None:
    data = arrow_file(sample_table(50))
    end = int(len(data) * cut) if isinstance(cut, float) else cut
    truncated = data[:end]
    assert truncated.startswith(b"ARROW1")
    assert_opaque(truncated)


def test_truncated_parquet_is_bytes() -> None:
    data = parquet(sample_table(50))
    assert_opaque(data[: len(data) // 2])
    assert_opaque(data[:-1])


@pytest.mark.parametrize(
    "data",
    [
        b"ARROW1" + b"\x00" * 64,
        b"ARROW1\x00\x00garbage...ARROW1",
        b"PAR1" + random.Random(2).randbytes(200) + b"PAR1",
        b"\xff\xff\xff\xff" + random.Random(3).randbytes(200),
        b"\xff\xff\xff\xff\x10\x00\x00\x00",
    ],
    ids=["arrow-file-magic", "arrow-file-magics", "parquet-magics", "stream-marker", "header"],
)
def test_magic_bytes_alone_do_not_make_a_table(data: bytes) -> None:
    assert_opaque(data)
