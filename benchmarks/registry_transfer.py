"""Push and pull of a bundle with a large data file against a loopback docker-registry,
side by side with `skopeo copy` of the same content in the same run.

    python benchmarks/registry_transfer.py [--size-mb 200]

Each of our operations runs in its own process so its peak RSS is its own. Prints times,
peak memory and the ratios against skopeo.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.registry_servers import run_registry

PUSH = """
import sys, time
from pathlib import Path
from modelops.bundle import build_bundle
from modelops.bundle.registry import push_bundle
from modelops.bundle.store_in_use import registry_client
started = time.perf_counter()
bundle = build_bundle(Path(sys.argv[1]), sys.argv[3])
built = time.perf_counter()
report = push_bundle(bundle, registry_client(sys.argv[2]))
print(len(report.uploaded), report.ref, built - started, time.perf_counter() - built)
"""

STORE = """
import sys
from pathlib import Path
from modelops.bundle import build_bundle, LayoutStore
LayoutStore(Path(sys.argv[2])).put(build_bundle(Path(sys.argv[1]), "ours"), tag="bench")
"""

PULL = """
import sys
from pathlib import Path
from modelops.bundle import fetch_bundle
from modelops.bundle.store_in_use import registry_client
from modelops.bundle.registry import RegistrySource
from modelops.contracts import BundleRef
fetched = fetch_bundle(BundleRef.parse(sys.argv[2]), RegistrySource(registry_client(sys.argv[1])),
                       Path(sys.argv[3]))
print(sum(1 for _ in fetched.root.rglob("*")))
"""


def peak_of(args: list[str]) -> tuple[float, float, str]:
    """Like `timed`, but in a fresh grandchild so RUSAGE_CHILDREN is this command's alone."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True)\n"
        "e = time.perf_counter() - t\n"
        "sys.stderr.write(p.stderr.decode())\n"
        "print(e, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "
        "p.returncode, p.stdout.decode().strip(), sep='|')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    elapsed, peak, code, stdout = out.stdout.strip().split("|", 3)
    if code != "0":
        raise SystemExit(f"{args[:3]} failed:\n{out.stderr}")
    return float(elapsed), float(peak), stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=200)
    args = parser.parse_args()
    py = sys.executable

    with tempfile.TemporaryDirectory() as tmp, run_registry(Path(tmp) / "registry") as registry:
        root = Path(tmp)
        project = root / "project"
        (project / "data").mkdir(parents=True)
        (project / "wire.py").write_text("def wire(e, p, s):\n    return {}\n")
        with (project / "data" / "big.bin").open("wb") as out:
            for _ in range(args.size_mb):
                out.write(os.urandom(1 << 20))
        layout = root / "layout"

        push_s, push_mb, pushed = peak_of([py, "-c", PUSH, str(project), registry.host, "ours"])
        uploads, ref, build_s, upload_s = pushed.split()
        repush_s, repush_mb, repushed = peak_of(
            [py, "-c", PUSH, str(project), registry.host, "ours"]
        )
        peak_of([py, "-c", STORE, str(project), str(layout)])  # skopeo's source: the same bundle
        pull_s, pull_mb, _ = peak_of([py, "-c", PULL, registry.host, ref, str(root / "cache")])
        skopeo_push_s, skopeo_push_mb, _ = peak_of(
            [
                "skopeo",
                "copy",
                "--dest-tls-verify=false",
                f"oci:{layout}:bench",
                f"docker://{registry.host}/theirs:bench",
            ]
        )
        skopeo_pull_s, skopeo_pull_mb, _ = peak_of(
            [
                "skopeo",
                "copy",
                "--src-tls-verify=false",
                f"docker://{registry.host}/theirs:bench",
                f"oci:{root / 'skopeo-pulled'}:bench",
            ]
        )

    print(
        f"bundle with a {args.size_mb} MB data file, loopback docker-registry, "
        f"{os.cpu_count()} cores"
    )
    print(f"{'operation':<34}{'seconds':>9}{'peak MB':>10}")
    for name, seconds, peak in [
        ("modelops push (whole process)", push_s, push_mb),
        ("  of which build", float(build_s), None),
        ("  of which upload", float(upload_s), None),
        ("skopeo copy oci: -> registry", skopeo_push_s, skopeo_push_mb),
        ("modelops pull (verify + extract)", pull_s, pull_mb),
        ("skopeo copy registry -> oci:", skopeo_pull_s, skopeo_pull_mb),
        (f"modelops re-push ({repushed.split()[0]} uploads)", repush_s, repush_mb),
    ]:
        print(f"{name:<34}{seconds:>9.2f}" + (f"{peak:>10.0f}" if peak else ""))
    print(
        f"ratios, ours / skopeo (whole processes): push {push_s / skopeo_push_s:.2f}x, "
        f"pull {pull_s / skopeo_pull_s:.2f}x; upload alone {float(upload_s) / skopeo_push_s:.2f}x;"
        f" first push uploaded {uploads} blobs"
    )


if __name__ == "__main__":
    main()
