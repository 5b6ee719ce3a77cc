"""How long `mops --help` takes, against the floor any Python CLI of this kind pays: the
interpreter itself, and the interpreter plus typer and rich. Prints the median of N runs of
each and the ratios; the goal (issue 11) is `mops --help` under 0.3 s on a 2-core machine.

    python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_s(command: list[str], runs: int) -> float:
    subprocess.run(command, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    mops = shutil.which("mops") or sys.exit("mops is not on PATH: pip install -e .")
    figures = {
        "python -c pass": median_s([sys.executable, "-c", "pass"], args.runs),
        "python -c 'import typer, rich'": median_s(
            [sys.executable, "-c", "import typer, rich.console, rich.table"], args.runs
        ),
        "mops --help": median_s([mops, "--help"], args.runs),
        "mops run --help": median_s([mops, "run", "--help"], args.runs),
    }
    floor = figures["python -c 'import typer, rich'"]
    for name, seconds in figures.items():
        print(f"{name:34s} {seconds * 1000:7.0f} ms   {seconds / floor:5.2f}x typer+rich")


if __name__ == "__main__":
    main()
