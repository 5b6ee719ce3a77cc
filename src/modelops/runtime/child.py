"""A warm child process: one bundle's wire function, loaded once, serving many tasks."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from modelops.bundle.cache import FetchedBundle
from modelops.contracts import Artifact, ErrorClass, ErrorInfo, ModelOpsError, SimReturn, SimTask
from modelops.runtime import child_runner
from modelops.runtime.child_runner import read_message, write_message

RUNNER = Path(child_runner.__file__)
STARTUP_TIMEOUT_S = 300.0
MEMORY_POLL_S = 0.05
LOG_TAIL_BYTES = 16 * 1024
THREAD_LIMIT_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class WarmChild:
    """Start with `WarmChild.start`; `run` never raises for a model's own failures."""

    def __init__(self, process: subprocess.Popen, requests, responses, log_dir: Path) -> None:
        self.process = process
        self._requests = requests
        self._responses = responses
        self.log_dir = log_dir
        self.tasks_served = 0
        self.wire = ""  # the wire it loaded: the bundle's own, or one its environment provides

    @classmethod
    def start(
        cls,
        python: Path,
        bundle: FetchedBundle,
        log_root: Path,
        threads: int = 1,
        sdk: Path | None = None,
    ) -> WarmChild:
        log_root.mkdir(parents=True, exist_ok=True)
        log_dir = Path(tempfile.mkdtemp(dir=log_root, prefix=f"{bundle.ref.hex[:12]}-"))
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        with (log_dir / "startup.log").open("wb") as startup_log:
            process = subprocess.Popen(
                [
                    str(python),
                    "-I",
                    "-B",
                    str(RUNNER),
                    "--bundle",
                    str(bundle.root),
                    "--wire",
                    bundle.config.wire,
                    "--requests",
                    str(request_read),
                    "--responses",
                    str(response_write),
                    "--logs",
                    str(log_dir),
                    *(f"--path={bundle.root / path}" for path in bundle.config.import_paths),
                    *(["--sdk", str(sdk)] if sdk else []),
                ],
                pass_fds=(request_read, response_write),
                stdin=subprocess.DEVNULL,
                stdout=startup_log,
                stderr=subprocess.STDOUT,
                cwd=bundle.root,
                env=_child_env(python, threads),
                start_new_session=True,
            )
        os.close(request_read)
        os.close(response_write)
        child = cls(
            process, os.fdopen(request_write, "wb"), os.fdopen(response_read, "rb"), log_dir
        )
        child._await_ready()
        return child

    def _await_ready(self) -> None:
        header, _ = self._receive("startup", STARTUP_TIMEOUT_S)
        if header["type"] == "fatal":
            self.close()
            raise ModelOpsError.from_info(ErrorInfo.from_dict(header["error"]))
        self.wire = header["wire"]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, task: SimTask) -> SimReturn:
        """One task; every failure of the task (model error, crash, timeout, memory) comes
        back as a SimReturn. After a crash, timeout or memory kill the child is dead."""
        try:
            self._send_task(task)
            header, blobs = self._receive(
                f"task {task.task_id}", task.limits.timeout_s, task.limits.memory_limit_mb
            )
        except ModelOpsError as exc:
            return SimReturn.failure(task.task_id, exc.info, logs=self.task_logs())
        finally:
            self.tasks_served += 1
        return self._result(task, header, blobs)

    def _send_task(self, task: SimTask) -> None:
        write_message(
            self._requests,
            {
                "type": "run",
                "task_id": task.task_id,
                "entrypoint": task.entrypoint,
                "params": task.params,
                "seed": task.seed,
                "config": task.config,
                "outputs": list(task.outputs) if task.outputs is not None else None,
            },
        )

    def _result(self, task: SimTask, header: dict, blobs: list[bytes]) -> SimReturn:
        logs = self.task_logs()
        timings = {"wire_s": header["wire_s"]} if "wire_s" in header else {}
        if header["type"] == "error":
            return SimReturn.failure(task.task_id, ErrorInfo.from_dict(header["error"]), logs=logs)
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
        self, during: str, timeout_s: float | None = None, memory_limit_mb: float | None = None
    ) -> tuple[dict, list[bytes]]:
        """The child's next message, watching the clock and its memory while waiting."""
        self._watch(during, timeout_s, memory_limit_mb)
        try:
            message = read_message(self._responses)
        except ValueError as exc:
            self.close()
            raise ModelOpsError(ErrorClass.INTERNAL, f"child runner: {exc}") from exc
        except (EOFError, OSError):
            message = None
        if message is None:
            raise ModelOpsError.from_info(self._crash_info(during))
        return message

    def _watch(self, during: str, timeout_s: float | None, memory_limit_mb: float | None) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            waits = []
            if deadline is not None:
                waits.append(deadline - time.monotonic())
            if memory_limit_mb is not None:
                waits.append(MEMORY_POLL_S)
            wait = max(0.0, min(waits)) if waits else None
            ready, _, _ = select.select([self._responses], [], [], wait)
            if ready:
                return
            if deadline is not None and time.monotonic() >= deadline:
                self._kill()
                raise ModelOpsError(
                    ErrorClass.TIMEOUT,
                    f"timeout after {timeout_s:g} s during {during}; the child process was killed",
                    type="Timeout",
                    traceback=self._stderr_tail(),
                )
            if memory_limit_mb is not None:
                used = self._rss_mb()
                if used > memory_limit_mb:
                    self._kill()
                    raise ModelOpsError(
                        ErrorClass.OOM,
                        f"out of memory: used {used:.0f} MB, limit {memory_limit_mb:g} MB, "
                        f"during {during}; the child process was killed",
                        type="MemoryLimitExceeded",
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
            self.close()
            code = self.process.returncode
        what = signal.Signals(-code).name if code is not None and code < 0 else f"exit code {code}"
        return ErrorInfo(
            ErrorClass.CRASH,
            "ChildCrashed",
            f"{what}: the child process died during {during}",
            self._stderr_tail(),
        )

    def close(self) -> None:
        """Ask the child to stop; kill its process group if it does not."""
        if self.alive:
            try:
                write_message(self._requests, {"type": "shutdown"})
                self.process.wait(timeout=5)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                _kill_group(self.process)
        for stream in (self._requests, self._responses):
            with contextlib.suppress(OSError):
                stream.close()


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def _child_env(python: Path, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["VIRTUAL_ENV"] = str(python.parent.parent)
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    for name in THREAD_LIMIT_VARS:
        env.setdefault(name, str(threads))
    return env


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
