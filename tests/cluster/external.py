"""External clusters for tests: `dask scheduler` and `dask worker` started with the real CLI as
separate OS processes, and stopped when the test ends, however it ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 120
DASK = str(Path(sys.executable).parent / "dask")  # the CLI installed beside this Python
PRELOAD = "modelops.cluster.preload"  # the workers' command line in images and deployments


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
            start_new_session=True,
        )


def _stop(process: subprocess.Popen) -> None:
    """Stops the process and everything in its session (a worker's nanny and its worker)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _scheduler_address(scheduler_file: Path, scheduler: subprocess.Popen, log: Path) -> str:
    """The address the scheduler writes to its file once it listens (the file may be seen
    before it is complete: read until it parses)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            assert scheduler.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)


@dataclass
class ExternalCluster:
    address: str
    scheduler: subprocess.Popen
    workers: subprocess.Popen  # one `dask worker` command: a nanny and a worker per --nworkers
    log: Path  # the workers' log

    def close_workers_gracefully(self) -> None:
        """SIGTERM to the `dask worker` command alone, as an orchestrator stops a pod: its
        nannies close their workers (plugins, extensions, preloads torn down)."""
        self.workers.send_signal(signal.SIGTERM)
        self.workers.wait(timeout=60)


@contextmanager
def external_cluster(
    folder: Path, n_workers: int = 2, preload: bool = False
) -> Iterator[ExternalCluster]:
    """A scheduler and `n_workers` single-thread workers started with the real `dask` CLI,
    the workers with `--preload modelops.cluster.preload` when `preload`; yields once every
    worker has joined (so a preload has run)."""
    from distributed import Client

    scheduler_file = folder / "scheduler.json"
    processes: list[subprocess.Popen] = []
    try:
        processes.append(
            _start(
                [
                    DASK,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(scheduler_file),
                ],
                folder / "scheduler.log",
            )
        )
        address = _scheduler_address(scheduler_file, processes[0], folder / "scheduler.log")
        log = folder / "workers.log"
        processes.append(
            _start(
                [
                    DASK,
                    "worker",
                    *(["--preload", PRELOAD] if preload else []),
                    address,
                    "--nworkers",
                    str(n_workers),
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--death-timeout",
                    str(START_TIMEOUT_S),
                ],
                log,
            )
        )
        with Client(address, timeout=START_TIMEOUT_S) as probe:
            probe.wait_for_workers(n_workers, timeout=START_TIMEOUT_S)
        yield ExternalCluster(address, processes[0], processes[1], log)
    finally:
        for process in reversed(processes):
            _stop(process)
