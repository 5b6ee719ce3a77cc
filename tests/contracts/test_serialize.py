"""The reference serialization of SimTask and SimReturn, pinned by golden files.

The golden files in tests/golden were written once, by hand, from the known objects below:

    encode_task(known_task())          -> tests/golden/sim_task.json
    encode_return(known_return())      -> tests/golden/sim_return.bin
    encode_return(known_error_return()) -> tests/golden/sim_return_error.bin

These tests never rewrite them: a failure here means the wire format changed. If that is
intended, bump PROTOCOL_VERSION, record the decision, and regenerate the files by hand.
"""

from __future__ import annotations

import json
import math
import pickle
import struct
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import modelops.contracts
from modelops.contracts import (
    PROTOCOL_VERSION,
    Artifact,
    ArtifactKind,
    BundleRef,
    ErrorClass,
    ErrorInfo,
    ModelOpsError,
    SimReturn,
    SimTask,
)
from modelops.contracts.artifacts import TableFormat
from modelops.contracts.ids import canonical_json, sha256_hex
from modelops.contracts.serialize import decode_return, decode_task, encode_return, encode_task
from modelops.runtime import child_runner

GOLDEN = Path(__file__).resolve().parent.parent / "golden"

DIGEST = "sha256:" + "5e" * 32
BUNDLE = BundleRef("examples/sir-model", DIGEST)

# An Arrow IPC stream of a 3-row table (step: int64 [0, 1, 2], value: float64 [0.5, 1.5, 2.5]),
# written once with pyarrow and frozen here so the golden bytes never depend on pyarrow.
ARROW_STREAM = bytes.fromhex(
    "ffffffffb00000001000000000000a000c000600050008000a000000000104000c00000008000800"
    "000004000800000004000000020000004800000004000000d0ffffff00000103100000001c000000"
    "04000000000000000500000076616c75650006000800060006000000000002001000140008000600"
    "07000c00000010001000000000000102100000002000000004000000000000000400000073746570"
    "0000000008000c0008000700080000000000000140000000ffffffffb80000001400000000000000"
    "0c0016000600050008000c000c0000000003040018000000300000000000000000000a0018000c00"
    "040008000a0000005c00000010000000030000000000000000000000040000000000000000000000"
    "00000000000000000000000000000000180000000000000018000000000000000000000000000000"
    "18000000000000001800000000000000000000000200000003000000000000000000000000000000"
    "03000000000000000000000000000000000000000000000001000000000000000200000000000000"
    "000000000000e03f000000000000f83f0000000000000440ffffffff00000000"
)
META_JSON = b'{"model": "sir", "version": 3}'
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/bundle/sir.py", line 12, in step\n'
    "    rate = infected / population\n"
    "ZeroDivisionError: division by zero\n"
)
KNOWN_TASK_ID = "73777b9be983646ee937ce8722658ef5"


def known_task() -> SimTask:
    return SimTask(
        bundle=BUNDLE,
        entrypoint="sir:baseline",
        params={
            "beta": 0.3,
            "gamma": 1.0,
            "population": 1000,
            "name": "Zürich",
            "schedule": [0, 7.5, 14.0],
            "flags": {"vaccination": True, "imports": None},
        },
        seed=2**63 + 12345,
        config={"dt": 0.5, "solver": "euler"},
        outputs=("prevalence", "incidence"),
    )


def known_return() -> SimReturn:
    return SimReturn(
        task_id=KNOWN_TASK_ID,
        outputs={
            "incidence": Artifact(ARROW_STREAM, ArtifactKind.TABLE, 3, TableFormat.ARROW_STREAM),
            "meta.json": Artifact(META_JSON, ArtifactKind.BYTES),
        },
        timings={"import": 0.125, "run": 1.5},
        logs="step 1\nstep 2 ✓\n",
        worker="tcp://127.0.0.1:40123",
    )


def known_error_return() -> SimReturn:
    return SimReturn.failure(
        KNOWN_TASK_ID,
        ErrorInfo(ErrorClass.MODEL, "ZeroDivisionError", "division by zero", TRACEBACK),
        timings={"run": 0.25},
        logs="starting\n",
        worker="tcp://127.0.0.1:40123",
    )


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def assert_same_return(actual: SimReturn, expected: SimReturn) -> None:
    assert actual.task_id == expected.task_id
    assert sorted(actual.outputs) == sorted(expected.outputs)
    for name, artifact in expected.outputs.items():
        got = actual.outputs[name]
        assert got.data == artifact.data
        assert got.kind is artifact.kind
        assert got.rows == artifact.rows
        assert got.table_format == artifact.table_format
    assert actual.error == expected.error
    assert actual.timings == expected.timings
    assert actual.logs == expected.logs
    assert actual.cached == expected.cached
    assert actual.worker == expected.worker
    assert actual.protocol == expected.protocol == PROTOCOL_VERSION
    assert actual == expected


# --- golden files ---------------------------------------------------------------------------


def test_known_arrow_stream_is_a_three_row_table() -> None:
    artifact = Artifact.from_bytes(ARROW_STREAM)
    assert artifact == known_return().outputs["incidence"]
    assert artifact.table().to_pydict() == {"step": [0, 1, 2], "value": [0.5, 1.5, 2.5]}
    assert Artifact.from_bytes(META_JSON) == known_return().outputs["meta.json"]


def test_encode_task_matches_golden() -> None:
    assert encode_task(known_task()) == golden("sim_task.json")


def test_decode_golden_task() -> None:
    task = decode_task(golden("sim_task.json"))
    expected = known_task()
    assert task.bundle == expected.bundle
    assert task.entrypoint == expected.entrypoint
    assert task.params == expected.params
    assert task.seed == expected.seed
    assert task.config == expected.config
    assert task.outputs == ("incidence", "prevalence")
    assert task.protocol == PROTOCOL_VERSION
    assert task == expected
    assert type(task.params["gamma"]) is float
    assert [type(x) for x in task.params["schedule"]] == [int, float, float]
    assert type(task.params["population"]) is int
    assert task.task_id == KNOWN_TASK_ID


def test_golden_task_is_sorted_compact_utf8_json() -> None:
    data = golden("sim_task.json")
    fields = json.loads(data)
    assert list(fields) == sorted(fields)
    assert fields["protocol"] == PROTOCOL_VERSION
    assert fields["bundle"] == str(BUNDLE)
    assert b": " not in data
    assert b", " not in data
    assert "Zürich".encode() in data


def test_encode_return_matches_golden() -> None:
    assert encode_return(known_return()) == golden("sim_return.bin")


def test_decode_golden_return() -> None:
    result = decode_return(golden("sim_return.bin"))
    assert_same_return(result, known_return())
    assert result.ok
    assert result.outputs["incidence"].table().num_rows == 3


def test_encode_error_return_matches_golden() -> None:
    assert encode_return(known_error_return()) == golden("sim_return_error.bin")


def test_decode_golden_error_return() -> None:
    result = decode_return(golden("sim_return_error.bin"))
    assert_same_return(result, known_error_return())
    assert not result.ok
    assert result.outputs == {}
    assert result.error is not None
    assert result.error.error_class is ErrorClass.MODEL
    assert result.error.traceback == TRACEBACK


def test_golden_return_frame_layout() -> None:
    """4-byte big-endian header length, sorted-key JSON header, raw payloads in name order."""
    data = golden("sim_return.bin")
    (length,) = struct.unpack(">I", data[:4])
    header = json.loads(data[4 : 4 + length])
    assert list(header) == sorted(header)
    assert [o["name"] for o in header["outputs"]] == ["incidence", "meta.json"]
    assert header["outputs"][0] == {
        "name": "incidence",
        "kind": "table",
        "rows": 3,
        "format": "arrow_stream",
        "size": len(ARROW_STREAM),
    }
    assert header["outputs"][1]["format"] is None
    assert data[4 + length :] == ARROW_STREAM + META_JSON


# --- round trips and refusals ---------------------------------------------------------------


@pytest.mark.parametrize(
    "result",
    [
        SimReturn(task_id="t"),
        SimReturn(task_id="t", cached=True, timings={"run": 0.0}),
        SimReturn(task_id="t", outputs={"empty": Artifact(b"", ArtifactKind.BYTES)}),
        SimReturn(
            task_id="t",
            outputs={
                "z": Artifact(b"\x00\x01", ArtifactKind.BYTES),
                "a": Artifact(ARROW_STREAM, ArtifactKind.TABLE, 3, TableFormat.ARROW_STREAM),
            },
            logs="x" * 10_000,
        ),
    ],
)
def test_return_round_trip(result: SimReturn) -> None:
    assert_same_return(decode_return(encode_return(result)), result)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(ModelOpsError) as excinfo:
        decode_return(golden("sim_return.bin") + b"extra")
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT


def test_truncated_frame_is_refused() -> None:
    with pytest.raises(ModelOpsError) as excinfo:
        decode_return(golden("sim_return.bin")[:-10])
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT


def with_protocol(data: dict[str, Any], version: int) -> dict[str, Any]:
    return {**data, "protocol": version}


def test_task_of_another_protocol_is_refused() -> None:
    fields = with_protocol(json.loads(golden("sim_task.json")), PROTOCOL_VERSION + 1)
    with pytest.raises(ModelOpsError) as excinfo:
        decode_task(json.dumps(fields).encode())
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT
    assert "protocol" in str(excinfo.value)


def test_return_of_another_protocol_is_refused() -> None:
    data = golden("sim_return_error.bin")
    (length,) = struct.unpack(">I", data[:4])
    header = with_protocol(json.loads(data[4 : 4 + length]), PROTOCOL_VERSION + 1)
    head = json.dumps(header).encode()
    with pytest.raises(ModelOpsError) as excinfo:
        decode_return(struct.pack(">I", len(head)) + head + data[4 + length :])
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT
    assert "protocol" in str(excinfo.value)


def test_protocol_version_matches_the_child_runner() -> None:
    assert child_runner.PROTOCOL_VERSION == modelops.contracts.PROTOCOL_VERSION


# --- SimTask --------------------------------------------------------------------------------


def task(**changes: Any) -> SimTask:
    fields: dict[str, Any] = {
        "bundle": BUNDLE,
        "entrypoint": "sir:baseline",
        "params": {"a": 1},
        "seed": 7,
        "config": {},
        "outputs": None,
    }
    fields.update(changes)
    return SimTask(**fields)


@pytest.mark.parametrize("seed", [-1, 2**64, 2**70, -(2**63)])
def test_seed_out_of_range_is_refused(seed: int) -> None:
    with pytest.raises(ModelOpsError) as excinfo:
        task(seed=seed)
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT
    assert "seed" in str(excinfo.value)


@pytest.mark.parametrize("seed", [True, False, 1.0, 7.5, "7", None, [7]])
def test_non_integer_seed_is_refused(seed: object) -> None:
    with pytest.raises(ModelOpsError) as excinfo:
        task(seed=seed)
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT
    assert "seed must be an integer" in str(excinfo.value)


@pytest.mark.parametrize("seed", [0, 1, 2**32, 2**64 - 1])
def test_seed_bounds_are_accepted(seed: int) -> None:
    assert decode_task(encode_task(task(seed=seed))).seed == seed


def test_entrypoint_must_be_a_string() -> None:
    with pytest.raises(ModelOpsError) as excinfo:
        task(entrypoint=3)
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT


def test_non_finite_params_are_refused_with_their_path() -> None:
    with pytest.raises(ModelOpsError) as excinfo:
        task(params={"x": {"y": math.inf}})
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT
    assert "params.x.y" in str(excinfo.value)


def test_floats_keep_their_type_through_encode_and_decode() -> None:
    original = task(
        params={"a": 1.0, "b": [2.0, 3], "c": {"d": -0.0, "e": 4}},
        config={"dt": 1.0, "steps": 10},
    )
    decoded = decode_task(encode_task(original))
    assert decoded == original
    assert type(decoded.params["a"]) is float
    assert [type(x) for x in decoded.params["b"]] == [float, int]
    assert type(decoded.params["c"]["e"]) is int
    assert math.copysign(1.0, decoded.params["c"]["d"]) == -1.0
    assert type(decoded.config["dt"]) is float
    assert type(decoded.config["steps"]) is int


def test_task_id_is_pinned() -> None:
    task_id = known_task().task_id
    assert task_id == KNOWN_TASK_ID
    assert len(task_id) == 32
    assert all(c in "0123456789abcdef" for c in task_id)


def test_task_id_compares_numbers_by_value() -> None:
    assert task(params={"a": 1}).task_id == task(params={"a": 1.0}).task_id
    assert task(config={"dt": 1}).task_id == task(config={"dt": 1.0}).task_id
    assert task(params={"a": 1, "b": 2}).task_id == task(params={"b": 2, "a": 1}).task_id


def test_task_id_ignores_the_order_of_requested_outputs() -> None:
    assert task(outputs=("b", "a")).task_id == task(outputs=("a", "b", "a")).task_id


@pytest.mark.parametrize(
    "changes",
    [
        {"seed": 8},
        {"config": {"dt": 0.5}},
        {"entrypoint": "sir:lockdown"},
        {"outputs": ("incidence",)},
        {"outputs": ()},
        {"params": {"a": 2}},
        {"params": {"a": True}},
        {"bundle": BundleRef("examples/sir-model", "sha256:" + "5f" * 32)},
    ],
    ids=["seed", "config", "entrypoint", "outputs", "no-outputs", "params", "bool", "digest"],
)
def test_task_id_changes_with_every_provenance_field(changes: dict[str, Any]) -> None:
    assert task(**changes).task_id != task().task_id


def test_task_id_does_not_depend_on_the_repository() -> None:
    here = task(bundle=BundleRef("examples/sir-model", DIGEST))
    there = task(bundle=BundleRef("mirror/other-name", DIGEST))
    assert here.task_id == there.task_id
    provenance = here.provenance()
    assert set(provenance) == {"bundle", "entrypoint", "params", "config", "seed", "outputs"}
    assert provenance["bundle"] == DIGEST
    assert "examples/sir-model" not in json.dumps(provenance)
    assert provenance == there.provenance()


def test_task_survives_pickling() -> None:
    original = known_task()
    copy = pickle.loads(pickle.dumps(original))
    assert copy == original
    assert copy.task_id == original.task_id


# --- errors as data -------------------------------------------------------------------------


def test_error_info_round_trips_through_dict_and_pickle() -> None:
    info = known_error_return().error
    assert info is not None
    assert ErrorInfo.from_dict(info.to_dict()) == info
    assert ErrorInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    error = ModelOpsError.from_info(info)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.info == info
    assert str(copy) == "model: division by zero"


def test_error_info_from_a_plain_exception_keeps_type_and_traceback() -> None:
    try:
        _ = 1 / 0
    except ZeroDivisionError as exc:
        info = ErrorInfo.from_exception(exc, ErrorClass.MODEL)
    assert info.error_class is ErrorClass.MODEL
    assert info.type == "ZeroDivisionError"
    assert "division by zero" in info.message
    assert "Traceback" in info.traceback
    assert "ZeroDivisionError" in info.traceback


def test_arrow_output_of_a_decoded_return_is_a_real_table() -> None:
    table = decode_return(golden("sim_return.bin")).outputs["incidence"].table()
    assert isinstance(table, pa.Table)
    assert table.column("value").to_pylist() == [0.5, 1.5, 2.5]


@pytest.mark.parametrize("end", [0, 2, 50])
def test_frame_truncated_inside_its_header_is_refused_as_bad_input(end: int) -> None:
    with pytest.raises(ModelOpsError) as excinfo:
        decode_return(golden("sim_return.bin")[:end])
    assert excinfo.value.info.error_class is ErrorClass.BAD_INPUT


@pytest.mark.parametrize("seed", [0, 1, 42, 2**32, 2**64 - 1])
def test_a_replicate_made_with_another_seed_is_the_task_made_from_scratch(seed: int) -> None:
    """`with_seed` (a study's replicates) shares the id's prefix: the id must still be the
    hash of the whole provenance key, as the golden id pins it."""
    first = known_task()
    params = {"beta": 1.0, "name": "München", "nested": {"b": [1, 2.5], "a": None}}
    other = SimTask(BUNDLE, "sir", params, seed=7, outputs=("b", "a"))
    for template in (first, other):
        replicate = template.with_seed(seed)
        scratch = SimTask(
            template.bundle,
            template.entrypoint,
            template.params,
            seed,
            template.config,
            template.outputs,
            template.limits,
        )
        assert replicate == scratch
        assert replicate.task_id == scratch.task_id
        assert replicate.task_id == sha256_hex(canonical_json(scratch.provenance()))[:32]
    assert known_task().with_seed(known_task().seed).task_id == KNOWN_TASK_ID
    with pytest.raises(ModelOpsError):
        first.with_seed(-1)
