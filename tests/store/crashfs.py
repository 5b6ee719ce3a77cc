"""A local filesystem that kills its own process at a chosen step of writing results.

Test code only, installed in a child process before it writes: the store is unchanged and
reaches this class the way it reaches any fsspec filesystem (it replaces fsspec's "file"
implementation in that process, so results paths stay plain paths every other process reads
as usual). The process is killed with SIGKILL, as a crash or the OOM killer would.

The crash is described by `CRASH_ENV`, a JSON object:

- `part`: "outputs" or "simulations", the kind of part whose write triggers the crash;
- `skip`: how many such parts to let through first;
- `when`: "open" (killed before the part's first byte: every earlier part of the flush is
  complete), "write" (killed after its first bytes: a half-written temporary file), or
  "unreported" (simulations only: the part is written and renamed into place, and the
  process is killed while it waits to record the flush in the job records, whose write lock
  this class takes, through a second SQLite connection, before the part is written);
- `db`: the job records' database (for "unreported");
- `group`: kill the whole process group (a client and the cluster it started) instead of
  only this process.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

CRASH_ENV = "MODELOPS_TEST_CRASH"


def crash_spec(part: str, when: str, skip: int, db: Path | None = None, group: bool = False) -> str:
    return json.dumps(
        {"part": part, "when": when, "skip": skip, "db": str(db) if db else None, "group": group}
    )


def install() -> None:
    """Make every local path this process writes go through `CrashingFileSystem`."""
    spec = os.environ.get(CRASH_ENV)
    if spec:
        CrashingFileSystem.spec = json.loads(spec)
        fsspec.register_implementation("file", CrashingFileSystem, clobber=True)


def die(group: bool) -> None:
    if group:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


class CrashingFileSystem(LocalFileSystem):
    spec: ClassVar[dict[str, Any]] = {}
    seen: ClassVar[int] = 0  # parts of the chosen kind opened for writing so far

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        spec = self.spec
        target = "w" in mode and f"/{spec['part']}/" in path and "/.tmp-" in path
        if not target:
            return super()._open(path, mode, **kwargs)
        type(self).seen += 1
        if type(self).seen <= spec["skip"]:
            return super()._open(path, mode, **kwargs)
        if spec["when"] == "open":
            die(spec["group"])
        file = super()._open(path, mode, **kwargs)
        if spec["when"] == "write":
            write = file.write

            def write_then_die(data: Any) -> Any:
                written = write(data)
                file.flush()
                die(spec["group"])
                return written

            file.write = write_then_die
        elif spec["when"] == "unreported":
            _hold_records_then_die(Path(spec["db"]), path, spec["group"])
        return file


def _hold_records_then_die(db: Path, temporary: str, group: bool) -> None:
    """Take the job records' write lock now; once the part being written is in place under
    its final name, the writer's process is stuck waiting for that lock: kill it there."""
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    folder = Path(temporary).parent
    before = {p.name for p in folder.glob("part-*.parquet")}

    def watch() -> None:  # holds `holder` (and so the lock) until the process dies
        assert holder.in_transaction
        while not {p.name for p in folder.glob("part-*.parquet")} - before:
            time.sleep(0.01)
        time.sleep(0.5)  # well inside the writer's 30 s wait for the lock
        die(group)

    threading.Thread(target=watch, daemon=True).start()
