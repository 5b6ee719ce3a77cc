"""A child killed by SIGKILL: named as the likely out-of-memory kill it is, and classed `oom`
when its cgroup counted an OOM kill."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops.bundle import LayoutStore
from modelops.contracts import BundleRef, ErrorClass, RunLimits, SimTask
from modelops.runtime import TaskRunner
from modelops.runtime.child import oom_kill_file
from modelops.settings import Settings

WIRE = """
import os, signal, sys, time

def wire(entrypoint, params, seed):
    if entrypoint == "sigkill":
        print("killing myself", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    if entrypoint == "allocate":
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")  # the kernel's first choice, whatever else the cgroup holds
        hog = []
        for _ in range(400):
            hog.append(b"x" * (10 << 20))
        time.sleep(60)
    return {"pid": str(os.getpid()).encode()}
"""


@pytest.fixture
def killable(make_bundle) -> BundleRef:
    return make_bundle({"wire.py": WIRE}, name="killable")


def test_a_sigkill_says_it_often_means_out_of_memory(
    runner: TaskRunner, killable: BundleRef
) -> None:
    task = SimTask(killable, "sigkill", {}, seed=1, limits=RunLimits(retries=0))
    killed = runner.run(task)
    assert killed.error is not None and killed.error.error_class is ErrorClass.CRASH
    assert killed.error.message == (
        f"SIGKILL: the child process died during task {task.task_id}; a SIGKILL that ModelOps "
        "did not send is often the kernel's out-of-memory killer (give the worker more memory, "
        "run fewer tasks at once, or set a memory limit to have ModelOps stop the model first)"
    )
    assert "killing myself" in killed.error.traceback


@pytest.mark.parametrize(
    ("proc_cgroup", "mountinfo", "expected"),
    [
        (  # cgroup v2 (unified), as on current distributions and Kubernetes nodes
            "0::/kubepods/pod1/worker\n",
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n",
            "/sys/fs/cgroup/kubepods/pod1/worker/memory.events",
        ),
        (  # a v2 namespace: the mount's root is the container's own cgroup
            "0::/\n",
            "30 23 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "/sys/fs/cgroup/memory.events",
        ),
        (  # cgroup v1 with a memory hierarchy, as on this machine
            "4:memory:/process_api/abc\n0::/\n",
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
            "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
            "/sys/fs/cgroup/memory/process_api/abc/memory.oom_control",
        ),
        ("0::/\n", "", None),  # no cgroup file system mounted: nothing to read
    ],
)
def test_the_oom_counter_is_found_for_both_cgroup_versions(
    proc_cgroup: str, mountinfo: str, expected: str | None
) -> None:
    found = oom_kill_file(proc_cgroup, mountinfo, exists=lambda path: True)
    assert found == (Path(expected) if expected else None)


def memory_cgroup_parent() -> Path | None:
    """A cgroup of this process's where a root process may create a child with a memory
    limit: the v1 memory hierarchy, or a v2 cgroup that delegates the memory controller."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            folder = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if (folder / "memory.limit_in_bytes").is_file():
                return folder
    for line in lines:
        if line.startswith("0::"):
            folder = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
            control = folder / "cgroup.subtree_control"
            if control.is_file() and "memory" in control.read_text().split():
                return folder
    return None


@pytest.fixture
def small_cgroup() -> Iterator[Path]:
    parent = memory_cgroup_parent()
    if parent is None or not os.access(parent, os.W_OK):
        pytest.skip("no writable memory cgroup here: cannot make a real OOM kill safely")
    group = parent / f"modelops-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup under {parent}: {exc}")
    limit = str(400 << 20)
    v1 = (group / "memory.limit_in_bytes").exists()
    (group / ("memory.limit_in_bytes" if v1 else "memory.max")).write_text(limit)
    for name, value in (("memory.swappiness", "0"), ("memory.swap.max", "0")):
        if (group / name).exists():  # no swapping instead of being killed
            (group / name).write_text(value)
    try:
        yield group
    finally:
        # only the processes this test started are in it: the worker and its child
        for _ in range(50):
            pids = [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        group.rmdir()


WORKER_IN_CGROUP = """
import json, os, sys
from pathlib import Path
Path(sys.argv[1], "cgroup.procs").write_text(str(os.getpid()))
from modelops.bundle import LayoutStore
from modelops.contracts import BundleRef, RunLimits, SimTask
from modelops.runtime import TaskRunner
runner = TaskRunner(LayoutStore(Path(sys.argv[2])), Path(sys.argv[3]))
task = SimTask(BundleRef.parse(sys.argv[4]), "allocate", {}, seed=1, limits=RunLimits(retries=0))
result = runner.run(task)
runner.close()
print(json.dumps(result.error.to_dict() if result.error else None))
"""


def test_a_kernel_oom_kill_in_the_workers_cgroup_is_classed_oom(
    runner: TaskRunner, store: LayoutStore, killable: BundleRef, small_cgroup: Path
) -> None:
    """A worker in a cgroup with 400 MB (a container's limit) and no ModelOps memory limit:
    the kernel kills the child that grows past it, and the report says so."""
    assert runner.run(SimTask(killable, "", {}, seed=1)).ok  # env built outside the cgroup
    cache = Settings.from_env().cache
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            WORKER_IN_CGROUP,
            str(small_cgroup),
            str(store.root),
            str(cache),
            str(killable),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    error = json.loads(done.stdout.splitlines()[-1])
    assert error["class"] == "oom", error
    assert error["message"].startswith(
        "out of memory: the kernel's OOM killer killed the child process (SIGKILL) during task "
    )
    assert error["message"].endswith("no ModelOps memory limit was set")
