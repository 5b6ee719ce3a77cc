"""What every `mops` command shares: the consoles, argument parsers, and how errors end."""

from __future__ import annotations

import json
import re
from typing import Any

import typer
from rich.console import Console

from modelops.cli.render import error_view
from modelops.contracts import ErrorInfo

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


_SIZE_UNITS = {"": 1, "k": 2**-10, "m": 1, "g": 2**10, "t": 2**20}


def parse_size_mb(text: str) -> float:
    """`512MB`, `2GB`, `1.5g` or a bare number of megabytes, in MB (binary units)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match:
        raise typer.BadParameter(f"memory limit {text!r} is not a size like 512MB or 2GB")
    return float(match.group(1)) * _SIZE_UNITS[match.group(2)]


def fail(error: ErrorInfo) -> typer.Exit:
    stderr.print(error_view(error), soft_wrap=True)
    return typer.Exit(1)
