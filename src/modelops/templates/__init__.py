"""Project templates for `mops init`: a new model project that runs as soon as it exists.

Each template is a folder of `*.tmpl` files next to this module (package data, so they
ship in the wheel). `{{name}}` is replaced with the project name, the `.tmpl` suffix is
dropped and a `dot_` prefix becomes a leading dot (`dot_modelopsignore.tmpl` →
`.modelopsignore`), since hidden files are easy to lose in packaging.
"""

from __future__ import annotations

import re
import warnings
from importlib import resources
from pathlib import Path

from modelops.bundle.uv import run_uv, uv_error_summary

TEMPLATES = ("sir", "blank")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
LOCK_TIMEOUT_S = 180


class ProjectError(ValueError):
    """A project that cannot be created (bad name, unknown template, folder in use)."""


class LockWarning(UserWarning):
    """The project was created but its environment could not be locked (e.g. offline)."""


def create_project(name: str, template: str, parent: Path) -> Path:
    """Create `parent/name` from `template` and lock its environment with uv.

    Locking needs the package index; when it fails the project is kept and a LockWarning
    says to run `uv lock` later (bundles without a lock still build from pyproject.toml).
    """
    if not NAME.fullmatch(name):
        raise ProjectError(
            f"invalid project name {name!r}: use letters, digits, '-' and '_', "
            "starting with a letter"
        )
    if template not in TEMPLATES:
        raise ProjectError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    root = Path(parent) / name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ProjectError(f"{root} already exists and is not empty")
    source = resources.files(__name__) / template
    files = {
        _target_name(entry.name): entry.read_text(encoding="utf-8").replace("{{name}}", name)
        for entry in source.iterdir()
        if entry.name.endswith(".tmpl")
    }
    root.mkdir(parents=True, exist_ok=True)
    for filename, text in sorted(files.items()):
        (root / filename).write_text(text, encoding="utf-8")
    problem = lock_project(root)
    if problem is not None:
        warnings.warn(
            f"could not lock the environment ({problem}); run `uv lock` in {root} later",
            LockWarning,
            stacklevel=2,
        )
    return root


def lock_project(root: Path) -> str | None:
    """Run `uv lock` for the project; None when it worked, else uv's error as one line."""
    done = run_uv(["lock", "--project", str(root)], timeout=LOCK_TIMEOUT_S)
    return None if done.returncode == 0 else uv_error_summary(done.stderr)[:300]


def _target_name(template_name: str) -> str:
    name = template_name.removesuffix(".tmpl")
    return "." + name.removeprefix("dot_") if name.startswith("dot_") else name
