"""`mops config show`: every setting, its value and the source it came from."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.table import Table

from modelops.cli.common import console, errors_end_the_command
from modelops.cli.render import literal

config_app = typer.Typer(no_args_is_help=True, help="Show where settings come from.")

SECRETS = ("MODELOPS_REGISTRY_USERNAME", "MODELOPS_REGISTRY_PASSWORD")
HIDDEN = "******** (hidden)"


@config_app.command("show")
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Each setting with its value and source: flag > environment > the project's
    modelops.toml > the user's config file > default. Secrets are never shown."""
    from modelops.settings import Settings, user_config_path

    with errors_end_the_command():
        settings = Settings.from_env()
    rows = settings.shown()
    for name in SECRETS:  # credentials are read from the environment only, never from files
        if os.environ.get(name):
            value = HIDDEN if name.endswith("PASSWORD") else os.environ[name]
            rows.append((name.removeprefix("MODELOPS_").lower(), name, value, "environment"))
    if as_json:
        print(
            json.dumps(
                {
                    "user_config": str(user_config_path()),
                    "settings": [
                        {"setting": s, "variable": v, "value": value or None, "source": src}
                        for s, v, value, src in rows
                    ],
                }
            )
        )
        return
    table = Table(title=f"user config: {user_config_path()}", title_justify="left")
    for column in ("setting", "variable", "value", "source"):
        table.add_column(column, overflow="fold")  # a path is shown whole, never cut to …
    for row in rows:
        table.add_row(*(literal(cell) for cell in row))
    console.print(table)
