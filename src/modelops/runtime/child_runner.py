"""The child runner: runs inside a bundle's venv and serves wire() calls over two pipes.

It imports only the standard library until it imports the bundle, because the bundle's
environment has no modelops in it, and it runs on Python 3.8 and later, because a bundle
may pin an older interpreter than the worker's. The parent imports this module too, for the framing
functions, so both sides share one definition of a frame:

    u32 header length | u32 blob count | header (UTF-8 JSON) | (u64 blob length | blob)*

Every header carries the protocol version; a reader refuses a frame of another version, and
a frame past the limits below (a header of more than 64 MiB, more than 65,536 blobs, a blob
of more than 4 GiB, 8 GiB of blobs in all) before reading or allocating any of it.

Payload bytes travel raw, never base64'd or JSON-escaped. The protocol has its own pipes:
the model's stdout and stderr go to log files, so a model that prints cannot corrupt a
message and a full pipe cannot hang anyone.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import struct
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any, BinaryIO

PROTOCOL_VERSION = 1  # must equal modelops.contracts.PROTOCOL_VERSION (checked by a test)

FRAME = struct.Struct(">II")
BLOB = struct.Struct(">Q")

# Limits of one frame, the same on both sides. Generous: outputs can be large tables. A
# reader checks each length before it reads or allocates anything, so a corrupt or hostile
# length costs nothing.
MAX_HEADER_BYTES = 64 << 20  # task params and config; names of outputs; an error report
MAX_BLOBS = 65536  # outputs of one task
MAX_BLOB_BYTES = 4 << 30  # one output
MAX_PAYLOAD_BYTES = 8 << 30  # all outputs of one task
MAX_ERROR_MESSAGE = 64 << 10  # an error's message and traceback are cut to fit in a header
MAX_ERROR_TRACEBACK = 1 << 20
LOG_TAIL_BYTES = 16 * 1024  # of each of a task's stdout and stderr, sent with its answer


class FrameError(ValueError):
    """A frame this protocol does not allow: past a limit, not JSON, another version."""


def size_text(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"


def check_frame(head_length: int, blob_count: int) -> None:
    """FrameError naming the limit a frame's prefix breaks, before any of it is read."""
    if head_length > MAX_HEADER_BYTES:
        raise FrameError(
            f"a frame header of {head_length} bytes (the limit is {size_text(MAX_HEADER_BYTES)})"
        )
    if blob_count > MAX_BLOBS:
        raise FrameError(f"a frame of {blob_count} blobs (the limit is {MAX_BLOBS})")


def check_blob(length: int, total: int) -> None:
    """FrameError naming the limit a blob of `length` breaks, `total` counting it too."""
    if length > MAX_BLOB_BYTES:
        raise FrameError(f"an output of {length} bytes (the limit is {size_text(MAX_BLOB_BYTES)})")
    if total > MAX_PAYLOAD_BYTES:
        raise FrameError(
            f"outputs of {total} bytes in all (the limit is {size_text(MAX_PAYLOAD_BYTES)})"
        )


def encode_header(header: dict[str, Any]) -> bytes:
    head = json.dumps(dict(header, protocol=PROTOCOL_VERSION), allow_nan=False).encode()
    if len(head) > MAX_HEADER_BYTES:
        raise FrameError(
            f"a frame header of {len(head)} bytes (the limit is {size_text(MAX_HEADER_BYTES)})"
        )
    return head


def write_message(stream: BinaryIO, header: dict[str, Any], blobs: Sequence[bytes] = ()) -> None:
    head = encode_header(header)
    stream.write(FRAME.pack(len(head), len(blobs)) + head)
    for blob in blobs:
        stream.write(BLOB.pack(len(blob)))
        stream.write(blob)
    stream.flush()


def parse_header(data: bytes) -> dict[str, Any]:
    try:
        header = json.loads(data)
    except ValueError as exc:
        raise FrameError(f"a frame header that is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise FrameError(f"a frame header that is a JSON {type(header).__name__}, not an object")
    if header.get("protocol") != PROTOCOL_VERSION:
        raise FrameError(
            f"peer speaks protocol {header.get('protocol')!r}, this side {PROTOCOL_VERSION}"
        )
    return header


def read_message(stream: BinaryIO) -> tuple[dict[str, Any], list[bytes]] | None:
    """The next message, or None at a clean end of stream; blocks until it is whole (the
    child's side: it has nothing else to do)."""
    prefix = _read_exact(stream, FRAME.size, allow_eof=True)
    if prefix is None:
        return None
    head_length, blob_count = FRAME.unpack(prefix)
    check_frame(head_length, blob_count)
    header = parse_header(_read_exact(stream, head_length))
    blobs = []
    total = 0
    for _ in range(blob_count):
        (length,) = BLOB.unpack(_read_exact(stream, BLOB.size))
        total += length
        check_blob(length, total)
        blobs.append(_read_exact(stream, length))
    return header, blobs


def _read_exact(stream: BinaryIO, size: int, allow_eof: bool = False) -> bytes | None:
    data = stream.read(size)
    if allow_eof and not data:
        return None
    if data is None or len(data) != size:
        raise EOFError(f"stream ended inside a message ({len(data or b'')} of {size} bytes)")
    return data


def _error(error_class: str, exc: BaseException, message: str | None = None) -> dict[str, str]:
    text = message or f"{type(exc).__name__}: {exc}"
    if len(text) > MAX_ERROR_MESSAGE:
        text = text[:MAX_ERROR_MESSAGE] + f" [... {len(text) - MAX_ERROR_MESSAGE} more characters]"
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if len(trace) > MAX_ERROR_TRACEBACK:
        cut = len(trace) - MAX_ERROR_TRACEBACK
        trace = f"[... the first {cut} characters cut ...]\n" + trace[cut:]
    return {"class": error_class, "type": type(exc).__name__, "message": text, "traceback": trace}


def _load_wire(spec: str, bundle: str) -> Any:
    module_name, _, function_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        if exc.name and exc.name.split(".")[0] == top:
            raise _Fatal(
                "bad_bundle", exc, f"wire module {module_name!r} is not in the bundle at {bundle}"
            ) from exc
        raise _Fatal(
            "missing_dependency",
            exc,
            f"missing dependency: no module named {exc.name!r} (imported by wire module "
            f"{module_name!r}); add the package that provides it to the bundle's dependencies",
        ) from exc
    except BaseException as exc:
        raise _Fatal(
            "bad_bundle",
            exc,
            f"importing wire module {module_name!r} failed: {type(exc).__name__}: {exc}",
        ) from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise _Fatal(
            "bad_bundle",
            AttributeError(function_name),
            f"wire module {module_name!r} has no function {function_name!r}",
        )
    return function


WIRE_ENTRY_POINTS = "modelops.wire"


def _wire_from_environment() -> str:
    """The wire a package of the bundle's environment provides as a `modelops.wire` entry
    point, for a bundle that declares none of its own (as the earlier system's Calabaria
    did). Exactly one must exist: choosing among several is the author's call."""
    from importlib import metadata

    found = metadata.entry_points()
    if hasattr(found, "select"):
        group = found.select(group=WIRE_ENTRY_POINTS)
    else:  # Python 3.8 and 3.9: a dict of groups
        group = found.get(WIRE_ENTRY_POINTS, ())
    specs = sorted({entry.value.replace(" ", "") for entry in group})
    if len(specs) == 1:
        return specs[0]
    if not specs:
        raise _Fatal(
            "bad_bundle",
            LookupError(WIRE_ENTRY_POINTS),
            "no wire function: the bundle declares none (wire.py, [tool.modelops] wire or a "
            "modelops.wire entry point) and no package in its environment provides a "
            "'modelops.wire' entry point",
        )
    raise _Fatal(
        "bad_bundle",
        LookupError(WIRE_ENTRY_POINTS),
        f"packages in the bundle's environment provide {len(specs)} 'modelops.wire' entry "
        f"points ({', '.join(specs)}); choose one with [tool.modelops] wire = "
        '"module:function" in pyproject.toml',
    )


class _Fatal(Exception):
    def __init__(self, error_class: str, cause: BaseException, message: str) -> None:
        super().__init__(message)
        self.error = _error(error_class, cause, message)


def _accepts(function: Any, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


class _Wire:
    """The wire function and what it accepts, looked at once rather than on every call."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.takes_config = _accepts(function, "config")
        self.takes_outputs = _accepts(function, "outputs")


def _check_outputs(outputs: Any) -> list[tuple[str, bytes]]:
    if not isinstance(outputs, dict):
        raise _Fatal(
            "bad_output",
            TypeError(type(outputs).__name__),
            f"wire returned {type(outputs).__name__}; it must return dict[str, bytes]",
        )
    if len(outputs) > MAX_BLOBS:
        raise _Fatal(
            "bad_output",
            ValueError(len(outputs)),
            f"wire returned {len(outputs)} outputs; the limit is {MAX_BLOBS} (put many small "
            "values in one table)",
        )
    checked = []
    total = 0
    for name, value in outputs.items():
        if not isinstance(name, str):
            raise _Fatal(
                "bad_output", TypeError(repr(name)), f"wire output name {name!r} is not a string"
            )
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _Fatal(
                "bad_output",
                TypeError(type(value).__name__),
                f"wire output {name!r} is {type(value).__name__}; outputs must be bytes "
                "(Arrow IPC or Parquet for tables, encoded text for anything else)",
            )
        size = memoryview(value).nbytes
        total += size
        if size > MAX_BLOB_BYTES or total > MAX_PAYLOAD_BYTES:
            raise _Fatal(
                "bad_output",
                ValueError(size),
                f"wire output {name!r} is {size} bytes and the outputs {total} bytes in all; "
                f"the limits are {size_text(MAX_BLOB_BYTES)} per output and "
                f"{size_text(MAX_PAYLOAD_BYTES)} in all",
            )
        checked.append((name, bytes(value)))
    return checked


class _TaskLogs:
    """fd 1 and 2 point at the per-task log files, so C extensions' output is caught too.
    Emptied before each task only when the last one wrote to them; opened again only if the
    model pointed fd 1 or 2 elsewhere."""

    NAMES = ((1, "task.stdout"), (2, "task.stderr"))

    def __init__(self, log_dir: str) -> None:
        self.paths = {fd: os.path.join(log_dir, name) for fd, name in self.NAMES}
        self.files: dict[int, tuple[int, int]] = {}
        for fd in self.paths:
            self._open(fd)

    def _open(self, fd: int) -> None:
        target = os.open(self.paths[fd], os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
        os.dup2(target, fd)
        os.close(target)
        status = os.fstat(fd)
        self.files[fd] = (status.st_dev, status.st_ino)

    def empty(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in self.paths:
            try:
                status = os.fstat(fd)
            except OSError:
                status = None
            if status is None or (status.st_dev, status.st_ino) != self.files[fd]:
                self._open(fd)
            elif status.st_size:
                os.ftruncate(fd, 0)  # O_APPEND: the next write lands at the start

    def tails(self) -> str:
        """The last LOG_TAIL_BYTES of each log the task wrote to, as the parent shows them:
        sent with the answer, because the next task empties the files."""
        sys.stdout.flush()
        sys.stderr.flush()
        parts = []
        for fd, name in self.NAMES:
            try:
                size = os.fstat(fd).st_size
                if size:
                    tail = os.pread(fd, LOG_TAIL_BYTES, max(0, size - LOG_TAIL_BYTES))
            except OSError:  # fd 1 or 2 closed or pointed elsewhere by the model
                continue
            if size:
                stream = name.partition(".")[2]
                parts.append(f"--- {stream} ---\n{tail.decode('utf-8', errors='replace')}")
        return "\n".join(parts)


def _run(
    wire: _Wire, request: dict[str, Any], logs: _TaskLogs
) -> tuple[dict[str, Any], list[bytes]]:
    task_id = request["task_id"]
    logs.empty()
    kwargs: dict[str, Any] = {}
    config = request.get("config") or {}
    if config:
        if not wire.takes_config:
            raise _Fatal(
                "bad_input",
                TypeError("config"),
                f"the task sets config {sorted(config)} but this bundle's wire() takes no "
                "'config' argument; add one, or leave config empty",
            )
        kwargs["config"] = config
    if request.get("outputs") is not None and wire.takes_outputs:
        kwargs["outputs"] = list(request["outputs"])
    started = time.perf_counter()
    try:
        outputs = wire.function(request["entrypoint"], request["params"], request["seed"], **kwargs)
    except MemoryError as exc:
        raise _Fatal("oom", exc, f"out of memory: the model raised MemoryError {exc}") from exc
    except ModuleNotFoundError as exc:
        raise _Fatal(
            "missing_dependency",
            exc,
            f"missing dependency: no module named {exc.name!r} (imported while running "
            f"{request['entrypoint']!r}); add the package that provides it to the bundle's "
            "dependencies",
        ) from exc
    except BaseException as exc:
        # the SDK marks the caller's mistakes (bad params, unknown output) with their class
        error_class = getattr(exc, "modelops_error_class", "model")
        if error_class not in ("bad_input", "bad_output"):
            error_class = "model"
        raise _Fatal(error_class, exc, f"{type(exc).__name__}: {exc}") from exc
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    elapsed = time.perf_counter() - started
    checked = _check_outputs(outputs)
    header = {
        "type": "result",
        "task_id": task_id,
        "names": [name for name, _ in checked],
        "wire_s": elapsed,
        "logs": logs.tails(),
    }
    return header, [data for _, data in checked]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--wire", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--responses", type=int, required=True)
    parser.add_argument("--logs", required=True)
    parser.add_argument(
        "--path", action="append", default=[], help="a folder of the project's own code"
    )
    parser.add_argument("--sdk", help="a folder holding the worker's modelops package")
    args = parser.parse_args(argv)

    for fd in (args.requests, args.responses):
        os.set_inheritable(fd, False)  # a process the model starts must not hold the protocol
    requests = os.fdopen(args.requests, "rb")
    responses = os.fdopen(args.responses, "wb")
    os.chdir(args.bundle)
    sys.path[:0] = [args.bundle, *args.path]  # the project's code first, as `uv run` has it
    if args.sdk:  # after the bundle and its environment: they win if they ship their own
        sys.path.append(args.sdk)
    try:
        spec = args.wire or _wire_from_environment()
        wire = _Wire(_load_wire(spec, args.bundle))
    except _Fatal as fatal:
        write_message(responses, {"type": "fatal", "error": fatal.error})
        return 1
    write_message(
        responses,
        {"type": "ready", "pid": os.getpid(), "python": sys.version, "wire": spec},
    )
    logs = _TaskLogs(args.logs)
    while (message := read_message(requests)) is not None:
        request, _ = message
        if request["type"] == "shutdown":
            break
        try:
            header, blobs = _run(wire, request, logs)
            encode_header(header)  # many long output names could pass the header's limit
        except _Fatal as failure:
            header = {"type": "error", "task_id": request["task_id"], "error": failure.error}
            header["logs"] = logs.tails()
            blobs = []
        except FrameError as exc:
            error = _error("bad_output", exc, f"the wire's output names are too long: {exc}")
            header = {"type": "error", "task_id": request["task_id"], "error": error}
            header["logs"] = logs.tails()
            blobs = []
        write_message(responses, header, blobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
