"""Every benchmark, one after another, each printing its own figures and ratios.

python benchmarks/run_all.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = [
    "warm_dispatch.py",
    "runtime_modes.py",
    "registry_transfer.py",
    "study_scale.py",
    "calibration_throughput.py",
    "cli_startup.py",
]

if __name__ == "__main__":
    here = Path(__file__).parent
    failed = []
    for name in BENCHMARKS:
        print(f"\n== {name}", flush=True)
        if subprocess.run([sys.executable, str(here / name)]).returncode != 0:
            failed.append(name)
    sys.exit(f"failed: {', '.join(failed)}" if failed else 0)
