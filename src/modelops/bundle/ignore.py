"""Which files of a project folder belong in its bundle (`.modelopsignore`, gitignore syntax)."""

from __future__ import annotations

from pathlib import Path

import pathspec

IGNORE_FILE = ".modelopsignore"

# Never part of a bundle: tool state, caches and environments that workers rebuild.
ALWAYS_IGNORED = [
    ".git/",
    ".hg/",
    ".svn/",
    ".venv/",
    ".modelops/",
    "__pycache__/",
    "*.py[cod]",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".ipynb_checkpoints/",
    "*.egg-info/",
    ".DS_Store",
]


def ignore_spec(root: Path) -> pathspec.GitIgnoreSpec:
    lines = list(ALWAYS_IGNORED)
    ignore_file = root / IGNORE_FILE
    if ignore_file.is_file():
        lines += ignore_file.read_text(encoding="utf-8").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)
