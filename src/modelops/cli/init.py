"""`mops init`: start a model project from a template (`modelops.init_project` does it)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from modelops.cli.common import console, stderr


def init(
    name: Annotated[str, typer.Argument(help="The project's name; also its folder's name.")],
    template: Annotated[
        str, typer.Option("--template", "-t", help="sir (a stochastic SIR) or blank.")
    ] = "sir",
    directory: Annotated[
        Path, typer.Option("--dir", help="The folder to create the project in.")
    ] = Path("."),
) -> None:
    """Create a model project: pyproject.toml, model.py, study.toml, README.md, uv.lock."""
    from modelops import api

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", api.LockWarning)
        try:
            root = api.init_project(name, template, directory)
        except api.ProjectError as exc:
            stderr.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    for warning in caught:
        if issubclass(warning.category, api.LockWarning):
            stderr.print(f"[yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True)
    console.print(f"created {root}", highlight=False, soft_wrap=True)
    console.print(f"next: cd {root} && mops run study.toml", highlight=False, soft_wrap=True)
