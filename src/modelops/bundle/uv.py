"""Running uv: one environment for every call, and its errors as one line.

uv never downloads a Python here (workers are often offline, and a bare `uv venv` would
try to fetch the newest CPython); its progress bars and colours are off, since its output
is read by us, not shown to a terminal.
"""

from __future__ import annotations

import os
import subprocess

from uv import find_uv_bin

_DECORATION = " \u00d7\u2570\u2500\u25b6\u2502"


def run_uv(
    args: list[str], timeout: float | None = None, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """uv's exit code and output; a call that outlives `timeout` comes back as a failure
    whose stderr says so, like any other uv error."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1", NO_COLOR="1", **extra_env)
    command = [find_uv_bin(), *args]
    try:
        return subprocess.run(
            command, env=env, capture_output=True, text=True, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(
            command, -1, "", f"error: uv {args[0]} timed out after {timeout:g} s"
        )


def uv_error_summary(stderr: str) -> str:
    """uv's error as one line: its 'error:' and 'cause:' lines, without decoration."""
    lines = [line.strip(_DECORATION) for line in stderr.splitlines()]
    useful = [
        line.removeprefix("error: ").removeprefix("cause: ")
        for line in lines
        if line and not line.startswith(("Using ", "Resolved ", "hint:"))
    ]
    return " ".join(useful)[:500] or "uv failed without a message"
