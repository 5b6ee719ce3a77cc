"""What every `mops` command shares: the consoles, argument parsers, and how errors end."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.console import Console

if TYPE_CHECKING:  # the commands import what they use, so that `mops --help` stays fast
    from modelops.api import LockMode
    from modelops.contracts import ErrorInfo

console = Console()
stderr = Console(stderr=True)

SchedulerOption = Annotated[
    str | None,
    typer.Option(envvar="MODELOPS_SCHEDULER", help="tcp://host:8786; default: embedded cluster"),
]
ClusterOption = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        envvar="MODELOPS_CLUSTER",
        help="embedded, scheduler, slurm or kubernetes (default: the settings).",
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers", min=1, help="Workers to start: embedded (default: cores), Slurm jobs (1)."
    ),
]
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
    from modelops.api import LockMode

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


def parse_size(text: str) -> float:
    """A memory size in MB, or the usage error that says what a size looks like."""
    from modelops.contracts.sizes import parse_size_mb

    try:
        return parse_size_mb(text)
    except ValueError as exc:
        raise typer.BadParameter(f"memory limit {exc}") from None


def fail(error: ErrorInfo) -> typer.Exit:
    """Show `error` as its one line (and remote traceback), and the exit that ends the
    command with status 1."""
    from modelops.cli.render import error_view

    stderr.print(error_view(error), soft_wrap=True)
    return typer.Exit(1)


@contextmanager
def errors_end_the_command() -> Iterator[None]:
    """The one way a command ends on a ModelOps error: `fail`, never a traceback."""
    from modelops.contracts import ModelOpsError

    try:
        yield
    except ModelOpsError as exc:
        raise fail(exc.info) from None
