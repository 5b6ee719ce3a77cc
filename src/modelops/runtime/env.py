"""Bundle environments: one uv venv per environment digest, built once per machine.

A venv depends on the files that decide the environment (the bundle's lock digest), the
Python that runs it and the platform, never on the bundle's code, so code-only changes reuse
it. uv never downloads a Python here: workers are often offline, so the venv uses the
worker's own interpreter.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from filelock import FileLock

from modelops.bundle.cache import FetchedBundle
from modelops.bundle.discover import PYTHON_VERSION_FILE
from modelops.bundle.uv import run_uv, uv_error_summary
from modelops.contracts import ErrorClass, ModelOpsError
from modelops.contracts.ids import canonical_json, sha256_hex
from modelops.runtime.eviction import LAST_USED

ENV_RECORD = ".modelops-env.json"  # written last: what the env is for, and who built it
OURS = frozenset({ENV_RECORD, LAST_USED})  # what ModelOps writes into a venv's root after uv
# Bytecode compiled once, when the environment is built: children run with `python -B`
# (nothing written into the cache), so without it every child compiled its imports afresh,
# 1.3 s for numpy, pandas and pyarrow against 0.3 s (decision 77).
COMPILE_BYTECODE = "--compile-bytecode"
# Files copied from uv's cache, not hard-linked to it (uv's default): a model that writes
# into its venv then damages that venv alone, which the fingerprint catches and a rebuild
# repairs, never uv's cache and with it every venv on the machine (decision 78).
OWN_FILES = ("--link-mode", "copy")
BUILD_RECIPE = 2  # part of the env digest: a change to how envs are built builds them again
UV_NO_SPACE = "(os error 28)"  # how uv's errors end when the disk is full (ENOSPC)


def pinned_python(bundle: FetchedBundle) -> str | None:
    """The interpreter a bundle pins in `.python-version`, if it does."""
    if PYTHON_VERSION_FILE not in bundle.config.environment.files:
        return None
    lines = (bundle.root / PYTHON_VERSION_FILE).read_text().splitlines()
    return next((ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")), None)


def env_digest(bundle: FetchedBundle) -> str:
    python = pinned_python(bundle) or f"{sys.implementation.name}-{platform.python_version()}"
    return "sha256:" + sha256_hex(
        canonical_json(
            {
                "lock": bundle.config.environment.lock_digest,
                "kind": bundle.config.environment.kind,
                "python": python,
                "platform": sysconfig.get_platform(),
                "recipe": BUILD_RECIPE,
            }
        )
    )


def ensure_env(bundle: FetchedBundle, cache: Path) -> Path:
    """The python executable of the bundle's environment, building it if needed, and
    building it again if it was damaged since (files gone or of another size)."""
    home = cache / "envs"
    final = home / env_digest(bundle).removeprefix("sha256:")
    if not _intact(final):
        home.mkdir(parents=True, exist_ok=True)
        with FileLock(home / f"{final.name}.lock"):
            if final.is_dir() and not _intact(final):
                _set_aside(final)
            if not final.is_dir():
                _build_into(bundle, home, final)
    return final / "bin" / "python"


def _fingerprint(venv: Path) -> dict[str, int]:
    """How many files the venv holds and how many bytes: a file deleted or cut short shows.
    Bytecode caches are left out, since Python may write them into a venv at any import, and
    so are the files ModelOps keeps at its root (its record, the eviction's recency mark)."""
    files = size = 0
    root = str(venv)
    for folder, subfolders, names in os.walk(venv):
        subfolders[:] = [name for name in subfolders if name != "__pycache__"]
        for name in names:
            path = os.path.join(folder, name)
            if folder == root and name in OURS:
                continue
            files += 1
            size += os.lstat(path).st_size
    return {"files": files, "bytes": size}


def _intact(venv: Path) -> bool:
    """Whether the venv is as its build left it (as far as its record's fingerprint tells)."""
    try:
        record = json.loads((venv / ENV_RECORD).read_text())
    except (OSError, ValueError):
        return False
    fingerprint = record.get("fingerprint") if isinstance(record, dict) else None
    return fingerprint == _fingerprint(venv) and (venv / "bin" / "python").exists()


def _set_aside(venv: Path) -> None:
    """Remove a damaged venv for everyone at once (renamed, then deleted); the caller holds
    its digest's lock."""
    doomed = Path(tempfile.mkdtemp(dir=venv.parent, prefix=f".evicting-{venv.name[:12]}-"))
    os.rename(venv, doomed / venv.name)
    shutil.rmtree(doomed, ignore_errors=True)


def _build_into(bundle: FetchedBundle, home: Path, final: Path) -> None:
    """Build in a scratch folder renamed into place when complete; scratch folders of this
    digest left by a build that crashed are removed first (we hold its lock)."""
    prefix = f".partial-{final.name[:12]}-"
    for stale in home.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(dir=home, prefix=prefix))
    venv = work / "venv"
    try:
        python_request = pinned_python(bundle) or sys.executable
        _uv(["venv", "--relocatable", "--python", python_request, str(venv)], bundle, venv)
        environment = bundle.config.environment
        python = str(venv / "bin" / "python")
        if environment.kind == "uv.lock":
            _uv(
                [
                    "sync",
                    COMPILE_BYTECODE,
                    *OWN_FILES,
                    "--frozen",
                    "--no-install-project",
                    "--no-dev",
                    "--python",
                    python,
                    "--project",
                    str(bundle.root),
                ],
                bundle,
                venv,
                UV_PROJECT_ENVIRONMENT=str(venv),
            )
        elif environment.kind in ("requirements.txt", "pyproject.toml"):
            source = bundle.root / environment.kind
            install = ["pip", "install", COMPILE_BYTECODE, *OWN_FILES, "--python", python]
            _uv([*install, "-r", str(source)], bundle, venv)
        (venv / ENV_RECORD).write_text(
            json.dumps(
                {
                    "env_digest": env_digest(bundle),
                    "kind": environment.kind,
                    "lock_digest": environment.lock_digest,
                    "python": pinned_python(bundle) or sys.version.split()[0],
                    "built_by_pid": os.getpid(),
                    "built_for": str(bundle.ref),
                    "fingerprint": _fingerprint(venv),
                }
            )
        )
        os.rename(venv, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _uv(args: list[str], bundle: FetchedBundle, venv: Path, **extra_env: str) -> None:
    """Run uv to build `venv`; a full disk is raised as the OSError it is (the runner names
    the cache and what to do), any other failure as an env_build error with uv's words."""
    done = run_uv(args, **extra_env)
    if done.returncode == 0:
        return
    if UV_NO_SPACE in done.stderr:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(venv))
    raise ModelOpsError(
        ErrorClass.ENV_BUILD,
        f"could not build the environment of {bundle.ref}: {uv_error_summary(done.stderr)}",
        type="UvError",
        traceback=f"$ uv {' '.join(args)}\n{done.stderr}",
    )
