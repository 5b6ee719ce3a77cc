"""How long a user waits for the first result of `mops sim FOLDER`, wall clock, the command
started as a terminal starts it: for a bundle never run before (its code just changed; the
uv cache and the environment's packages are warm), and for the same bundle again
(everything warm). Against the floor of any such command: `python -c pass`.

    python benchmarks/first_result.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

WIRE = """
import json

def wire(entrypoint, params, seed):
    return {{"echo": json.dumps({{"seed": seed, "params": params}}).encode()}}  # {token}
"""


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return elapsed


def measure(runs: int) -> dict[str, float]:
    mops = shutil.which("mops") or sys.exit("mops is not on PATH: pip install -e .")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = root / "model"
        model.mkdir()
        env = {**os.environ, "MODELOPS_HOME": str(root / "home"), "MODELOPS_PROJECT_DIR": str(root)}
        command = [mops, "sim", str(model), "-p", "beta=0.3"]
        new, warm = [], []
        for run in range(runs + 1):
            (model / "wire.py").write_text(WIRE.format(token=uuid.uuid4().hex))
            first = timed(command, env, root)
            again = timed(command, env, root)
            if run:  # the first round builds the environment: not what this measures
                new.append(first)
                warm.append(again)
        floor = statistics.median(
            timed([sys.executable, "-c", "pass"], env, root) for _ in range(runs)
        )
    return {
        "new_bundle_s": statistics.median(new),
        "warm_s": statistics.median(warm),
        "python_s": floor,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON object of the figures")
    args = parser.parse_args()
    figures = measure(args.runs)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"median of {args.runs} runs, python {sys.version.split()[0]}")
    print(f"mops sim FOLDER, a new bundle         {figures['new_bundle_s']:6.2f} s")
    print(f"mops sim FOLDER, everything warm      {figures['warm_s']:6.2f} s")
    print(f"python -c pass                        {figures['python_s']:6.2f} s")


if __name__ == "__main__":
    main()
