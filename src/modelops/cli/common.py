"""What every `mops` command shares: the consoles, argument parsers, and how errors end."""

from __future__ import annotations

import json
import warnings
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console

from modelops.api import LockMode
from modelops.cli.render import error_view
from modelops.contracts import ErrorInfo
from modelops.contracts.sizes import parse_size_mb

console = Console()
stderr = Console(stderr=True)

LockedOption = Annotated[
    bool,
    typer.Option("--locked", help="Refuse a uv.lock that is out of date with pyproject.toml."),
]
FrozenOption = Annotated[
    bool, typer.Option("--frozen", help="Build from uv.lock as it is, without checking it.")
]


def lock_mode(locked: bool, frozen: bool) -> LockMode:
    """uv's pair of flags: --locked refuses a stale lock, --frozen skips the check, and
    neither locks a stale one again."""
    if locked and frozen:
        raise typer.BadParameter("--locked and --frozen exclude each other; choose one")
    return LockMode.LOCKED if locked else LockMode.FROZEN if frozen else LockMode.UPDATE


def show_warnings_as_lines() -> None:
    """ModelOps' own notices (a relocked uv.lock, a study warning) as one plain line on
    stderr, instead of Python's file:line form; other warnings keep theirs."""
    default = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if category.__module__.startswith("modelops."):
            stderr.print(str(message), highlight=False, markup=False, soft_wrap=True)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def parse_param(text: str) -> tuple[str, Any]:
    """`name=value`; the value is read as JSON when it parses (numbers, true, lists), else text."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise typer.BadParameter(f"{text!r} is not name=value")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


def parse_size(text: str) -> float:
    """A memory size in MB, or the usage error that says what a size looks like."""
    try:
        return parse_size_mb(text)
    except ValueError as exc:
        raise typer.BadParameter(f"memory limit {exc}") from None


def fail(error: ErrorInfo) -> typer.Exit:
    stderr.print(error_view(error), soft_wrap=True)
    return typer.Exit(1)
