"""What every `mops` command shares: the consoles, argument parsers, and how errors end."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from modelops.cli.render import error_view
from modelops.contracts import ErrorInfo
from modelops.contracts.sizes import parse_size_mb

console = Console()
stderr = Console(stderr=True)


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
