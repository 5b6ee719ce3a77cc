"""A warm child process: one bundle's wire function, loaded once, serving many tasks.

The parent trusts no frame it did not ask for. It reads the child's answers from a
non-blocking pipe, so the task's deadline and memory watch hold while a frame arrives as well
as before it starts; it checks every length against the protocol's limits before reading or
allocating anything; and an answer must carry the id of the task it was asked. A child that
breaks any of this is killed, and the task is a `crash` with a `protocol error` message.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import functools
import io
import itertools
import os
import select
import signal
import subprocess
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil

from modelops.bundle.cache import FetchedBundle
from modelops.contracts import Artifact, ErrorClass, ErrorInfo, ModelOpsError, SimReturn, SimTask
from modelops.runtime import child_runner
from modelops.runtime.child_runner import (
    BLOB,
    FRAME,
    LOG_TAIL_BYTES,
    MAX_HEADER_BYTES,
    FrameError,
    check_blob,
    check_frame,
    encode_header,
    parse_header,
    size_text,
    write_message,
)
from modelops.runtime.childdir import ChildFolder

RUNNER = Path(child_runner.__file__)
STARTUP_TIMEOUT_S = 300.0
MEMORY_POLL_S = 0.05
MAX_WAIT_S = 3600.0  # the longest single wait: a huge timeout is waited in slices
READ_CHUNK = 1 << 20  # the most one read of a large output asks for
SMALL_READ = 64 << 10  # what one read asks for at least
PIPE_BYTES = 1 << 20  # asked of the kernel for the answer pipe; a smaller pipe works too
RETIRE_AT = 0.8  # of a task's memory limit: a child past it after a task is replaced
AHEAD_BYTES = 16 << 10  # requests written ahead of their turn, at most; under a pipe's size
THREAD_LIMIT_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

SCRATCH_VAR = "MODELOPS_SCRATCH"
CHILD_ENV_VAR = "MODELOPS_CHILD_ENV"
# What a model gets of the worker's environment: what programs need to run (paths, user,
# locale, time zone, temporary folder, terminal), to reach the network as the machine does
# (proxies, certificate bundles), to find native libraries and devices, and to size their
# thread pools. Everything else stays with the worker unless the operator names it in
# MODELOPS_CHILD_ENV; ModelOps' own credentials never pass, even then.
CHILD_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "TMPDIR",
        "TMP",
        "TEMP",
        *(f"{name}_proxy" for name in ("http", "https", "ftp", "all", "no")),
        *(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "FTP", "ALL", "NO")),
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "LD_LIBRARY_PATH",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
        "VECLIB_MAXIMUM_THREADS",
    }
)
CHILD_ENV_PREFIXES = ("LC_", "OMP_", "MKL_", "OPENBLAS_", "NUMEXPR_")
SECRET_VARS = frozenset(
    {"MODELOPS_REGISTRY_USERNAME", "MODELOPS_REGISTRY_PASSWORD", "DOCKER_CONFIG"}
)


class ProtocolError(Exception):
    """The child sent what the protocol does not allow; the message says what."""


class WarmChild:
    """Start with `WarmChild.start`; `run` never raises for a model's own failures."""

    def __init__(
        self,
        process: subprocess.Popen,
        requests,
        responses: int,
        folder: ChildFolder,
        oom_counter: int | None = None,
    ) -> None:
        self.process = process
        self._requests = requests
        self._responses = responses  # a raw, non-blocking file descriptor
        self._buffer = bytearray()  # read from it, not yet part of a message
        self._poll = select.poll()
        self._poll.register(responses, select.POLLIN)
        self.folder = folder
        self.log_dir = folder.logs
        self.tasks_served = 0
        self.wire = ""  # the wire it loaded: the bundle's own, or one its environment provides
        self._oom_counter = oom_counter  # an open fd on the cgroup's OOM kill count, or None
        self._oom_kills: int | None = None
        self._memory_limit_mb: float | None = None
        self._closed = False
        self.retiring = False  # used up: finishes what it was given, then is closed
        self._ahead_limit = min(AHEAD_BYTES, _pipe_size(requests.fileno()) // 2)

    @classmethod
    def start(
        cls,
        python: Path,
        bundle: FetchedBundle,
        children: Path,
        threads: int = 1,
        sdk: Path | None = None,
    ) -> WarmChild:
        """A child serving `bundle`, in its own folder under `children`; raises StaleBundle
        when the cache no longer holds the bundle's files, ModelOpsError when the child
        could not load the wire."""
        folder = ChildFolder.create(children, bundle)
        fds: list[int] = []
        try:
            env = _child_env(python, threads, folder.scratch)
            request_read, request_write = os.pipe()
            fds += [request_read, request_write]
            response_read, response_write = os.pipe()
            fds += [response_read, response_write]
            with contextlib.suppress(OSError, AttributeError):  # Linux only; a hint
                fcntl.fcntl(response_write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            with (folder.logs / "startup.log").open("wb") as startup_log:
                process = subprocess.Popen(
                    [
                        str(python),
                        "-I",
                        "-B",
                        str(RUNNER),
                        "--bundle",
                        str(folder.tree),
                        "--wire",
                        bundle.config.wire,
                        "--requests",
                        str(request_read),
                        "--responses",
                        str(response_write),
                        "--logs",
                        str(folder.logs),
                        *(f"--path={folder.tree / path}" for path in bundle.config.import_paths),
                        *(["--sdk", str(sdk)] if sdk else []),
                    ],
                    pass_fds=(request_read, response_write),
                    stdin=subprocess.DEVNULL,
                    stdout=startup_log,
                    stderr=subprocess.STDOUT,
                    cwd=folder.tree,
                    env=env,
                    start_new_session=True,
                )
        except BaseException:
            for fd in fds:
                os.close(fd)
            folder.remove()
            raise
        os.close(request_read)
        os.close(response_write)
        os.set_blocking(response_read, False)
        child = cls(
            process,
            os.fdopen(request_write, "wb"),
            response_read,
            folder,
            _open_oom_counter(process.pid),
        )
        try:
            child._await_ready()
        except BaseException:
            child.close()
            raise
        return child

    def _await_ready(self) -> None:
        self._oom_kills = _read_oom_kills(self._oom_counter)
        header, _ = self._receive("startup", STARTUP_TIMEOUT_S)
        if header.get("type") == "fatal":
            try:
                info = _error_info(header)
            except (KeyError, TypeError, ValueError, AttributeError):
                raise self._broken("startup", "a fatal error report it cannot read") from None
            raise ModelOpsError.from_info(info)
        if header.get("type") != "ready":
            raise self._broken("startup", f"a first message of type {header.get('type')!r}")
        self.wire = str(header.get("wire", ""))

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def reusable(self) -> bool:
        """Alive, and not retiring: fit to be given another task."""
        return not self.retiring and self.alive

    def run(self, task: SimTask) -> SimReturn:
        """One task; every failure of the task (model error, crash, timeout, memory) comes
        back as a SimReturn. After a crash, timeout, memory kill or protocol error the child
        is dead."""
        results = self.run_many([task])
        try:
            return next(results)
        finally:
            results.close()

    def run_many(self, tasks: Iterable[SimTask]) -> Iterator[SimReturn]:
        """The tasks' results, in order, as `run` gives them. Requests are written ahead of
        their turn (a few KiB of them wait in the pipe), so the child goes from one task to
        the next without waiting for the parent, which handles an answer while the child
        works on the next. A task's clock and memory watch start when the child can start it:
        when the answer before it arrived. Stops after a task that left the child dead; the
        tasks after it are not run, and the caller gives them to another child."""
        todo = iter(tasks)
        # sent and not yet answered, in order; a task that could not be sent waits its turn
        # here with its failure
        ahead: deque[tuple[SimTask, int, SimReturn | None]] = deque()
        ahead_bytes = 0
        try:
            while True:
                for task in todo:
                    try:
                        request = _encode_task(task)
                    except ModelOpsError as exc:  # never sent: the child is untouched
                        ahead.append((task, 0, SimReturn.failure(task.task_id, exc.info)))
                        continue
                    if ahead_bytes and ahead_bytes + len(request) > self._ahead_limit:
                        todo = itertools.chain([task], todo)  # its turn comes later
                        break
                    try:
                        self._send(request, task)
                    except ModelOpsError as exc:
                        if ahead_bytes:  # died on an earlier task: its answer will say
                            todo = iter(())
                            break
                        yield SimReturn.failure(task.task_id, exc.info, logs=self.task_logs())
                        return
                    ahead.append((task, len(request), None))
                    ahead_bytes += len(request)
                    if ahead_bytes >= self._ahead_limit:
                        break
                if not ahead:
                    return
                task, size, unsent = ahead.popleft()
                if unsent is not None:
                    yield unsent
                    continue
                ahead_bytes -= size
                result, alive = self._answer(task, last=not ahead_bytes)
                yield result
                if not alive:
                    return
        finally:
            if ahead_bytes and self.alive:
                self._kill()  # working on, or holding answers to, tasks no one will read
            elif self.retiring:
                self.close()

    def _answer(self, task: SimTask, last: bool) -> tuple[SimReturn, bool]:
        """The answer to `task`, the oldest one sent, and whether the child lives on."""
        during = f"task {task.task_id}"
        limits = task.limits
        self._memory_limit_mb = limits.memory_limit_mb
        self._oom_kills = _read_oom_kills(self._oom_counter)
        try:
            header, blobs = self._receive(
                during, limits.timeout_s, limits.memory_limit_mb, task.task_id
            )
        except ModelOpsError as exc:
            return SimReturn.failure(task.task_id, exc.info, logs=self.task_logs()), False
        except BaseException:
            self._kill()  # it may be working on, or have sent, an answer no one will read
            raise
        finally:
            self.tasks_served += 1
        if last and (self._buffer or self._poll.poll(0)):
            self._kill()  # more than the answers asked for: it serves no other task
            return self._result(task, header, blobs), False
        limit = limits.memory_limit_mb
        if limit is not None and self._own_rss_mb() >= RETIRE_AT * limit:
            self.retiring = True  # a leak: a fresh child for the next task, not a kill at the limit
            return self._result(task, header, blobs), False
        return self._result(task, header, blobs), True

    def _send(self, request: bytes, task: SimTask) -> None:
        try:
            self._requests.write(request)
            self._requests.flush()
        except OSError:  # the child is gone (a broken pipe)
            raise ModelOpsError.from_info(self._crash_info(f"task {task.task_id}")) from None

    def _result(self, task: SimTask, header: dict, blobs: list[bytes]) -> SimReturn:
        logs = str(header.get("logs", ""))  # the child's tails: it has moved on since
        timings = {"wire_s": header["wire_s"]} if "wire_s" in header else {}
        if header["type"] == "error":
            return SimReturn.failure(task.task_id, _error_info(header), logs=logs)
        outputs = {
            name: Artifact.from_bytes(data)
            for name, data in zip(header["names"], blobs, strict=True)
        }
        if task.outputs is not None:
            missing = [name for name in task.outputs if name not in outputs]
            if missing:
                error = ErrorInfo(
                    ErrorClass.BAD_OUTPUT,
                    "MissingOutput",
                    f"the model did not produce requested output(s) {missing}; "
                    f"it produced {sorted(outputs)}",
                )
                return SimReturn.failure(task.task_id, error, timings=timings, logs=logs)
            outputs = {name: outputs[name] for name in task.outputs}
        return SimReturn(task.task_id, outputs, timings=timings, logs=logs)

    def task_logs(self) -> str:
        parts = []
        for stream in ("stdout", "stderr"):
            tail = _tail(self.log_dir / f"task.{stream}")
            if tail:
                parts.append(f"--- {stream} ---\n{tail}")
        return "\n".join(parts)

    def _receive(
        self,
        during: str,
        timeout_s: float | None = None,
        memory_limit_mb: float | None = None,
        task_id: str | None = None,
    ) -> tuple[dict, list[bytes]]:
        """The child's next message, read within the deadline while watching its memory.
        With `task_id`, the message must be the answer to that task."""
        watch = _Watch(self, during, timeout_s, memory_limit_mb)
        try:
            prefix = self._read(FRAME.size, watch, allow_eof=True)
            if prefix is None:
                raise EOFError
            head_length, blob_count = FRAME.unpack(prefix)
            check_frame(head_length, blob_count)
            header = parse_header(self._read(head_length, watch))
            if task_id is not None:
                _check_answer(header, task_id, blob_count)
            blobs = []
            total = 0
            for _ in range(blob_count):
                (length,) = BLOB.unpack(self._read(BLOB.size, watch))
                total += length
                check_blob(length, total)
                blobs.append(self._read(length, watch))
        except (FrameError, ProtocolError) as exc:
            raise self._broken(during, str(exc)) from None
        except (EOFError, OSError):
            raise ModelOpsError.from_info(self._crash_info(during)) from None
        return header, blobs

    def _read(self, size: int, watch: _Watch, allow_eof: bool = False) -> bytes:
        """Exactly `size` bytes, read as they arrive; None for an end of stream before the
        first byte when `allow_eof`. Small reads ask for a little more (a whole small answer
        in one system call); what they get beyond `size` waits in a buffer for the next."""
        buffer = self._buffer
        if len(buffer) >= size:
            data = bytes(buffer[:size])
            del buffer[:size]
            return data
        # grows as bytes arrive (a length alone allocates nothing); getvalue() hands over
        # its buffer without copying it, so a large output costs its size once
        out = io.BytesIO()
        out.write(buffer)
        got = len(buffer)
        buffer.clear()
        while got < size:
            missing = size - got
            try:
                chunk = os.read(self._responses, min(max(missing, SMALL_READ), READ_CHUNK))
            except BlockingIOError:
                watch.wait(self._poll)
                continue
            if not chunk:
                if allow_eof and got == 0:
                    return None  # type: ignore[return-value]
                raise EOFError
            if len(chunk) > missing:
                buffer += chunk[missing:]
                chunk = chunk[:missing]
            if got == 0 and len(chunk) == size:
                return chunk  # the common case: all of it in one read
            out.write(chunk)
            got += len(chunk)
        return out.getvalue()

    def _broken(self, during: str, what: str) -> ModelOpsError:
        self._kill()
        return ModelOpsError(
            ErrorClass.CRASH,
            f"protocol error during {during}: {what}; the child process was killed",
            type="ProtocolError",
            traceback=self._stderr_tail(),
        )

    def _rss_mb(self) -> float:
        """Resident memory of the child and anything it started."""
        try:
            root = psutil.Process(self.process.pid)
            processes = [root, *root.children(recursive=True)]
            total = 0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
            return total / 2**20
        except psutil.Error:
            return 0.0

    def _own_rss_mb(self) -> float:
        """Resident memory of the child process alone: cheap enough to read after every task."""
        try:
            return psutil.Process(self.process.pid).memory_info().rss / 2**20
        except psutil.Error:
            return 0.0

    def _kill(self) -> None:
        _kill_group(self.process)

    def _stderr_tail(self) -> str:
        stderr = _tail(self.log_dir / "task.stderr") or _tail(self.log_dir / "startup.log")
        last = "\n".join(stderr.splitlines()[-20:])
        return f"last lines of the child's stderr:\n{last}" if last else ""

    def _crash_info(self, during: str) -> ErrorInfo:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._kill()
            return ErrorInfo(
                ErrorClass.CRASH,
                "ChildCrashed",
                f"the child process closed its answer pipe during {during} but did not exit; "
                "it was killed",
                self._stderr_tail(),
            )
        if code == -signal.SIGKILL:
            before, after = self._oom_kills, _read_oom_kills(self._oom_counter)
            if before is not None and after is not None and after > before:
                limit = self._memory_limit_mb
                return ErrorInfo(
                    ErrorClass.OOM,
                    "OutOfMemoryKilled",
                    "out of memory: the kernel's OOM killer killed the child process (SIGKILL) "
                    f"during {during} (its cgroup's oom_kill count rose from {before} to "
                    f"{after}); "
                    + (
                        "no ModelOps memory limit was set"
                        if limit is None
                        else f"it was under its memory limit of {limit:g} MB when last checked"
                    ),
                    self._stderr_tail(),
                )
            return ErrorInfo(
                ErrorClass.CRASH,
                "ChildCrashed",
                f"SIGKILL: the child process died during {during}; a SIGKILL that ModelOps did "
                "not send is often the kernel's out-of-memory killer (give the worker more "
                "memory, run fewer tasks at once, or set a memory limit to have ModelOps stop "
                "the model first)",
                self._stderr_tail(),
            )
        what = signal.Signals(-code).name if code is not None and code < 0 else f"exit code {code}"
        return ErrorInfo(
            ErrorClass.CRASH,
            "ChildCrashed",
            f"{what}: the child process died during {during}",
            self._stderr_tail(),
        )

    def close(self) -> None:
        """Ask the child to stop; kill its process group if it does not, and anything it
        left running in it; remove its folder (working copy, scratch, logs)."""
        if self._closed:
            return
        self._closed = True
        if self.alive:
            try:
                write_message(self._requests, {"type": "shutdown"})
                self.process.wait(timeout=5)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        _kill_group(self.process)  # the child, if it did not stop, and what it started
        with contextlib.suppress(OSError):
            self._requests.close()
        with contextlib.suppress(OSError):
            os.close(self._responses)
        if self._oom_counter is not None:
            os.close(self._oom_counter)
        self.folder.remove()


class _Watch:
    """The clock and memory of one wait for the child."""

    def __init__(
        self, child: WarmChild, during: str, timeout_s: float | None, memory_limit_mb: float | None
    ) -> None:
        self.child = child
        self.during = during
        self.timeout_s = timeout_s
        self.memory_limit_mb = memory_limit_mb
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def wait(self, poll: select.poll) -> None:
        """Until the child's pipe has something to read; raises (having killed the child) at
        the deadline or past the memory limit."""
        while True:
            wait = MAX_WAIT_S
            if self.deadline is not None:
                wait = min(wait, self.deadline - time.monotonic())
            if self.memory_limit_mb is not None:
                wait = min(wait, MEMORY_POLL_S)
            if poll.poll(max(0, int(wait * 1000) + 1)):
                return
            child = self.child
            if self.deadline is not None and time.monotonic() >= self.deadline:
                child._kill()
                raise ModelOpsError(
                    ErrorClass.TIMEOUT,
                    f"timeout after {self.timeout_s:g} s during {self.during}; "
                    "the child process was killed",
                    type="Timeout",
                    traceback=child._stderr_tail(),
                )
            if self.memory_limit_mb is not None:
                used = child._rss_mb()
                if used > self.memory_limit_mb:
                    child._kill()
                    raise ModelOpsError(
                        ErrorClass.OOM,
                        f"out of memory: used {used:.0f} MB, limit {self.memory_limit_mb:g} MB, "
                        f"during {self.during}; the child process was killed",
                        type="MemoryLimitExceeded",
                        traceback=child._stderr_tail(),
                    )


def _encode_task(task: SimTask) -> bytes:
    """The frame that asks a child to run `task`; a one-line bad_input error when its params
    and config are past the header's limit."""
    try:
        head = encode_header(
            {
                "type": "run",
                "task_id": task.task_id,
                "entrypoint": task.entrypoint,
                "params": task.params,
                "seed": task.seed,
                "config": task.config,
                "outputs": list(task.outputs) if task.outputs is not None else None,
            }
        )
    except FrameError as exc:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"the task's params and config take more than {size_text(MAX_HEADER_BYTES)} as "
            f"JSON ({exc}); put large inputs in the bundle's files",
            type="TaskTooLarge",
        ) from None
    return FRAME.pack(len(head), 0) + head


def _check_answer(header: dict, task_id: str, blob_count: int) -> None:
    """ProtocolError unless `header` answers `task_id` as the protocol says."""
    kind = header.get("type")
    if kind not in ("result", "error"):
        raise ProtocolError(f"an answer of type {kind!r}")
    if header.get("task_id") != task_id:
        raise ProtocolError(f"the child answered for task {str(header.get('task_id'))[:64]}")
    if kind == "error":
        try:
            _error_info(header)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProtocolError("an error report without a class, type and message") from None
        if blob_count:
            raise ProtocolError(f"an error report with {blob_count} outputs")
        return
    names = header.get("names")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ProtocolError("a result without a list of output names")
    if len(names) != blob_count:
        raise ProtocolError(f"a result naming {len(names)} outputs but carrying {blob_count}")


def _error_info(header: dict) -> ErrorInfo:
    return ErrorInfo.from_dict(header["error"])


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def _child_env(python: Path, threads: int, scratch: Path) -> dict[str, str]:
    """The child's environment: the allow-listed part of the worker's, the names the operator
    adds in MODELOPS_CHILD_ENV (exact names, or patterns such as `SLURM_*`), never
    ModelOps' own credentials."""
    wanted = [name.strip() for name in os.environ.get(CHILD_ENV_VAR, "").split(",")]
    wanted = [name for name in wanted if name]
    refused = sorted(name for name in wanted if name in SECRET_VARS)
    if refused:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"{CHILD_ENV_VAR} names {', '.join(refused)}: ModelOps never passes its registry "
            f"credentials to a model; remove {'it' if len(refused) == 1 else 'them'} from "
            f"{CHILD_ENV_VAR}",
        )

    def passes(name: str) -> bool:
        if name in SECRET_VARS:
            return False
        if name in CHILD_ENV_NAMES or name.startswith(CHILD_ENV_PREFIXES):
            return True
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in wanted)

    env = {name: value for name, value in os.environ.items() if passes(name)}
    env["VIRTUAL_ENV"] = str(python.parent.parent)
    env["PATH"] = os.pathsep.join(filter(None, [str(python.parent), env.get("PATH")]))
    env[SCRATCH_VAR] = str(scratch)
    for name in THREAD_LIMIT_VARS:
        env.setdefault(name, str(threads))
    return env


def _pipe_size(fd: int) -> int:
    """The pipe's capacity: what a write may add without waiting for the reader."""
    try:
        return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    except (OSError, AttributeError):  # not Linux: the least a pipe holds
        return select.PIPE_BUF


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


# --- the kernel's OOM kills, counted per cgroup ------------------------------------------


def oom_kill_file(proc_cgroup: str, mountinfo: str, exists=os.path.exists) -> Path | None:
    """The file whose `oom_kill` line counts the kernel's OOM kills in the cgroup that
    `proc_cgroup` (the text of /proc/<pid>/cgroup) names, found among the cgroup file
    systems `mountinfo` (the text of /proc/self/mountinfo) lists: `memory.oom_control` where
    the memory controller is on a cgroup v1 hierarchy, else `memory.events` (cgroup v2).
    None when there is no such file."""
    v1_path = v2_path = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if "memory" in controllers.split(","):
            v1_path = path
        elif hierarchy == "0" and not controllers:
            v2_path = path
    candidates = []
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields, kind = before.split(), after.split()
        if len(fields) < 5 or len(kind) < 3:
            continue
        root, mount_point, fs_type, options = fields[3], fields[4], kind[0], kind[2].split(",")
        if fs_type == "cgroup" and "memory" in options and v1_path is not None:
            candidates.insert(0, Path(mount_point, _under(v1_path, root), "memory.oom_control"))
        elif fs_type == "cgroup2" and v2_path is not None and v1_path is None:
            candidates.append(Path(mount_point, _under(v2_path, root), "memory.events"))
    return next((path for path in candidates if exists(path)), None)


def _under(path: str, root: str) -> str:
    """`path` (a cgroup) relative to a mount whose root is the cgroup `root`."""
    if root != "/" and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    return path.lstrip("/")


@functools.cache
def _mountinfo() -> str:
    try:
        return Path("/proc/self/mountinfo").read_text()
    except OSError:
        return ""


def _open_oom_counter(pid: int) -> int | None:
    """A file descriptor on the OOM kill count of the cgroup of process `pid`, kept open
    for the life of its child: read again before every task, it costs one pread."""
    try:
        path = oom_kill_file(Path(f"/proc/{pid}/cgroup").read_text(), _mountinfo())
        return None if path is None else os.open(path, os.O_RDONLY)
    except OSError:
        return None


def _read_oom_kills(fd: int | None) -> int | None:
    if fd is None:
        return None
    try:
        for line in os.pread(fd, 4096, 0).splitlines():
            key, _, value = line.partition(b" ")
            if key == b"oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None
