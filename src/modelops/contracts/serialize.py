"""The one reference serialization of SimTask and SimReturn.

A SimTask is JSON with sorted keys that keeps floats as floats (ids, not transport, treat
1 and 1.0 alike). A SimReturn is a binary frame: a 4-byte big-endian header
length, a sorted-key JSON header, then each output's raw bytes in header order, so payloads
are never base64'd or JSON-escaped. Golden files in tests/golden pin the exact bytes.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from modelops.contracts.artifacts import Artifact, ArtifactKind, TableFormat
from modelops.contracts.errors import ErrorClass, ErrorInfo, ModelOpsError
from modelops.contracts.ids import faithful_json
from modelops.contracts.refs import BundleRef
from modelops.contracts.tasks import PROTOCOL_VERSION, RunLimits, SimReturn, SimTask

_HEADER_LENGTH = struct.Struct(">I")


def _check_protocol(data: dict[str, Any], what: str) -> None:
    if data.get("protocol") != PROTOCOL_VERSION:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"{what} uses protocol {data.get('protocol')!r}; this modelops speaks "
            f"protocol {PROTOCOL_VERSION}: upgrade the older side",
        )


def encode_task(task: SimTask) -> bytes:
    """`limits` is written only when it differs from the defaults, so tasks written before
    limits existed keep their bytes."""
    fields: dict[str, Any] = {
        "protocol": task.protocol,
        "bundle": str(task.bundle),
        "entrypoint": task.entrypoint,
        "params": task.params,
        "seed": task.seed,
        "config": task.config,
        "outputs": list(task.outputs) if task.outputs is not None else None,
    }
    if task.limits != RunLimits():
        fields["limits"] = task.limits.to_dict()
    return faithful_json(fields)


def decode_task(data: bytes) -> SimTask:
    try:
        fields = json.loads(data)
        _check_protocol(fields, "task")
        outputs = fields["outputs"]
        return SimTask(
            bundle=BundleRef.parse(fields["bundle"]),
            entrypoint=fields["entrypoint"],
            params=fields["params"],
            seed=fields["seed"],
            config=fields["config"],
            outputs=tuple(outputs) if outputs is not None else None,
            limits=RunLimits(**fields.get("limits", {})),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise _malformed("task", exc) from exc


def _malformed(what: str, exc: Exception) -> ModelOpsError:
    return ModelOpsError(ErrorClass.BAD_INPUT, f"malformed {what}: {type(exc).__name__}: {exc}")


def encode_return(result: SimReturn) -> bytes:
    names = sorted(result.outputs)
    header = {
        "protocol": result.protocol,
        "task_id": result.task_id,
        "outputs": [
            {
                "name": name,
                "kind": result.outputs[name].kind.value,
                "rows": result.outputs[name].rows,
                "format": result.outputs[name].table_format,
                "size": result.outputs[name].size,
            }
            for name in names
        ],
        "error": result.error.to_dict() if result.error else None,
        "timings": result.timings,
        "logs": result.logs,
        "cached": result.cached,
        "worker": result.worker,
    }
    head = faithful_json(header)
    return b"".join(
        [_HEADER_LENGTH.pack(len(head)), head, *(result.outputs[n].data for n in names)]
    )


def decode_return(data: bytes) -> SimReturn:
    try:
        (length,) = _HEADER_LENGTH.unpack_from(data)
        header = json.loads(data[_HEADER_LENGTH.size : _HEADER_LENGTH.size + length])
    except (struct.error, ValueError) as exc:
        raise _malformed("result frame header", exc) from exc
    _check_protocol(header, "result")
    offset = _HEADER_LENGTH.size + length
    outputs = {}
    for entry in header["outputs"]:
        payload = data[offset : offset + entry["size"]]
        offset += entry["size"]
        table_format = TableFormat(entry["format"]) if entry["format"] else None
        outputs[entry["name"]] = Artifact(
            payload, ArtifactKind(entry["kind"]), entry["rows"], table_format
        )
    if offset != len(data):
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"result frame is {len(data)} bytes but its header accounts for {offset}",
        )
    error = ErrorInfo.from_dict(header["error"]) if header["error"] else None
    return SimReturn(
        task_id=header["task_id"],
        outputs=outputs,
        error=error,
        timings=header["timings"],
        logs=header["logs"],
        cached=header["cached"],
        worker=header["worker"],
    )
