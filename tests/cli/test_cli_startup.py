"""`mops --help` loads the command line and nothing it does not need: the heavy parts
(Dask, numpy, polars, pyarrow, httpx) are imported by the commands that use them. The time
it takes is measured by benchmarks/cli_startup.py, not here."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("distributed", "dask", "numpy", "polars", "pyarrow", "httpx", "pydantic")


def test_the_cli_loads_no_heavy_module_until_a_command_runs() -> None:
    probe = (
        "import json, sys; import modelops.cli.main; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_help_lists_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelops.cli", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    for command in ("sim", "run", "init", "bundle", "jobs", "results", "study", "dev"):
        assert f" {command} " in done.stdout


def test_a_commands_help_loads_no_heavy_module() -> None:
    """`mops run --help` runs the `mops` callback (it checks the settings) but no command.
    Typer loads pydantic when it runs, so only the rest are looked for here."""
    looked_for = [*(m for m in HEAVY if m != "pydantic"), "modelops.api"]
    probe = (
        "import json, sys\n"
        "from modelops.cli.main import app\n"
        "try:\n"
        "    app(['run', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {looked_for!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
