"""How long `mops --help` takes, against the floor any Python CLI of this kind pays: the
interpreter itself, and the interpreter plus typer and rich. Prints the median of N runs of
each and the ratios; the goal (issue 11) is `mops --help` under 0.3 s on a 2-core machine.

    python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
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


def measure(runs: int) -> dict[str, float]:
    mops = shutil.which("mops") or sys.exit("mops is not on PATH: pip install -e .")
    return {
        "python -c pass": median_s([sys.executable, "-c", "pass"], runs),
        "python -c 'import typer, rich'": median_s(
            [sys.executable, "-c", "import typer, rich.console, rich.table"], runs
        ),
        "mops --help": median_s([mops, "--help"], runs),
        "mops run --help": median_s([mops, "run", "--help"], runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="one JSON object of the figures")
    args = parser.parse_args()
    figures = measure(args.runs)
    if args.json:
        print(json.dumps(figures))
        return
    floor = figures["python -c 'import typer, rich'"]
    for name, seconds in figures.items():
        print(f"{name:34s} {seconds * 1000:7.0f} ms   {seconds / floor:5.2f}x typer+rich")


if __name__ == "__main__":
    main()
