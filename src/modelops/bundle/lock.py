"""A project's uv.lock checked against its pyproject.toml before it is built, the way uv does.

A lock that has drifted from pyproject.toml would install an environment without the
packages the project asks for, and the model would fail later with an ImportError deep in a
library. So, like `uv sync`: by default an out-of-date lock is locked again in the project
folder, with one line saying what changed; `locked` refuses it; `frozen` uses it as it is.
uv itself decides whether the lock is current, offline when its cache allows.
"""

from __future__ import annotations

import subprocess
import tomllib
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from modelops.bundle.uv import run_uv, uv_error_summary
from modelops.contracts import ErrorClass, ModelOpsError

LOCK_FILE = "uv.lock"
LOCK_TIMEOUT_S = 300.0
_STALE = "needs to be updated"
_NETWORK = (
    "Failed to fetch",
    "error sending request",
    "tcp connect error",
    "dns error",
    "network was disabled",
    "network connectivity is disabled",
    "timed out",
)


class LockMode(StrEnum):
    """What to do with a uv.lock that is out of date with pyproject.toml (uv's own flags)."""

    UPDATE = "update"  # lock again, say what changed, build from the new lock
    LOCKED = "locked"  # refuse to build
    FROZEN = "frozen"  # build from the lock as it is, unchecked


class LockUpdated(UserWarning):
    """The project's uv.lock was out of date and has been locked again; says what changed."""


def check_lock(project: Path, mode: LockMode = LockMode.UPDATE) -> None:
    """Make sure `project/uv.lock` satisfies its pyproject.toml before the project is built.
    A project without a uv.lock is left alone: it builds from pyproject.toml or
    requirements.txt, as it always did."""
    root = Path(project)
    lock = root / LOCK_FILE
    if mode is LockMode.FROZEN or not lock.is_file() or not (root / "pyproject.toml").is_file():
        return
    offline = _uv_lock_check(root, offline=True)
    if offline.returncode == 0:
        return
    if mode is LockMode.LOCKED:
        _refuse_stale(root, offline)
    else:
        _relock(root)


def _uv_lock_check(root: Path, offline: bool) -> subprocess.CompletedProcess[str]:
    """uv's own answer to 'does the lock satisfy pyproject.toml?'; offline it answers from
    the lock and uv's cache alone, or says it cannot tell."""
    args = ["lock", "--check", "--project", str(root)]
    return run_uv([*args, "--offline"] if offline else args, timeout=LOCK_TIMEOUT_S)


def _refuse_stale(root: Path, offline: subprocess.CompletedProcess[str]) -> None:
    checked = offline if _STALE in offline.stderr else _uv_lock_check(root, offline=False)
    lock = root / LOCK_FILE
    if checked.returncode == 0:
        return
    if _STALE not in checked.stderr:
        raise _uv_failed(
            lock, "could not be checked against pyproject.toml", checked.stderr, "check it"
        )
    raise ModelOpsError(
        ErrorClass.BAD_BUNDLE,
        f"{lock} is out of date with pyproject.toml ({describe_drift(root)}) and --locked "
        "was given; run `uv lock` in the project, or build without --locked to lock it again",
    )


def _relock(root: Path) -> None:
    """`uv lock`, which leaves a current lock as it is, and one line when it changed it."""
    lock = root / LOCK_FILE
    drift = describe_drift(root)
    before = lock.read_bytes()
    done = run_uv(["lock", "--project", str(root)], timeout=LOCK_TIMEOUT_S)
    if done.returncode != 0:
        raise _uv_failed(lock, f"is out of date with pyproject.toml ({drift})", done.stderr)
    after = lock.read_bytes()
    if after != before:
        changes = _package_changes(before, after)
        warnings.warn(
            f"{LOCK_FILE} was out of date with pyproject.toml ({drift}); locked again"
            + (f" ({changes})" if changes else ""),
            LockUpdated,
            stacklevel=4,
        )


def _uv_failed(lock: Path, state: str, stderr: str, doing: str = "lock it again") -> ModelOpsError:
    summary = uv_error_summary(stderr)
    if any(marker in stderr for marker in _NETWORK):
        return ModelOpsError(
            ErrorClass.ENV_BUILD,
            f"{lock} {state}, and no package index could be reached to {doing} "
            f"({summary}); build with --frozen to use the lock as it is",
        )
    return ModelOpsError(
        ErrorClass.ENV_BUILD, f"{lock} {state}, and uv could not {doing}: {summary}"
    )


def describe_drift(root: Path) -> str:
    """How pyproject.toml's dependencies differ from those the lock was made for, in words:
    'pyarrow missing', 'six no longer required', 'numpy now >=2'."""
    wanted = _requirements(_pyproject_dependencies(root))
    locked = _locked_requirements(root)
    if locked is None:
        return "requirements changed"
    notes = [f"{name} missing" for name in wanted if name not in locked]
    notes += [f"{name} no longer required" for name in locked if name not in wanted]
    notes += [
        f"{name} now {wanted[name] or 'any version'}"
        for name in wanted
        if name in locked and wanted[name] != locked[name]
    ]
    return ", ".join(notes) if notes else "requirements changed"


def _pyproject_dependencies(root: Path) -> list[str]:
    try:
        pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ModelOpsError(
            ErrorClass.BAD_BUNDLE, f"{root / 'pyproject.toml'} is not valid TOML: {exc}"
        ) from exc
    dependencies = pyproject.get("project", {}).get("dependencies", [])
    return [d for d in dependencies if isinstance(d, str)]


def _requirements(lines: list[str]) -> dict[str, str]:
    """name → specifier (with extras and markers), for comparing, not for installing."""
    out = {}
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        marker = f"; {req.marker}" if req.marker else ""
        out[canonicalize_name(req.name)] = f"{extras}{req.specifier}{marker}".strip()
    return out


def _locked_requirements(root: Path) -> dict[str, str] | None:
    """The project's requirements as the lock recorded them (its own package's
    `requires-dist`), or None when the lock does not say."""
    lock = _read_lock(root / LOCK_FILE)
    own = [p for p in lock.get("package", []) if _is_project_source(p.get("source", {}))]
    if len(own) != 1:
        return None
    requires = own[0].get("metadata", {}).get("requires-dist", [])
    lines = []
    for entry in requires:
        name = entry.get("name", "")
        extras = f"[{','.join(entry['extras'])}]" if entry.get("extras") else ""
        marker = f"; {entry['marker']}" if entry.get("marker") else ""
        lines.append(f"{name}{extras}{entry.get('specifier', '')}{marker}")
    return _requirements(lines)


def _is_project_source(source: dict[str, Any]) -> bool:
    return source.get("virtual") == "." or source.get("editable") == "."


def _read_lock(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _package_changes(before: bytes, after: bytes, shown: int = 6) -> str:
    """'+pyarrow 18.1.0, numpy 1.26.4 → 2.1.0, -six': what the new lock installs differently."""

    def versions(data: bytes) -> dict[str, str]:
        try:
            packages = tomllib.loads(data.decode("utf-8")).get("package", [])
        except (UnicodeDecodeError, tomllib.TOMLDecodeError):
            return {}
        return {
            p["name"]: p.get("version", "")
            for p in packages
            if "name" in p and not _is_project_source(p.get("source", {}))
        }

    old, new = versions(before), versions(after)
    changes = [f"+{name} {new[name]}" for name in sorted(new) if name not in old]
    changes += [
        f"{name} {old[name]} \u2192 {new[name]}"
        for name in sorted(new)
        if name in old and old[name] != new[name]
    ]
    changes += [f"-{name}" for name in sorted(old) if name not in new]
    more = len(changes) - shown
    return ", ".join(changes[:shown]) + (f", and {more} more" if more > 0 else "")
