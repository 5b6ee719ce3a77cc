"""Run one SimTask to one SimReturn: fetch the bundle, ensure its env, use a warm child.

`TaskRunner.run` never raises: every failure becomes a classified error in the SimReturn,
so a worker always hands the client something it can store and show.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from modelops.bundle.cache import BundleSource, FetchedBundle, fetch_bundle
from modelops.contracts import BundleRef, ErrorClass, ErrorInfo, ModelOpsError, SimReturn, SimTask
from modelops.runtime.child import WarmChild
from modelops.runtime.env import ensure_env
from modelops.runtime.pool import WarmPool


class TaskRunner:
    def __init__(self, source: BundleSource, cache: Path, max_idle_children: int = 2) -> None:
        self.source = source
        self.cache = cache
        self.pool = WarmPool(max_idle_children)
        self._ready: dict[BundleRef, tuple[FetchedBundle, Path]] = {}

    def run(self, task: SimTask, worker: str = "") -> SimReturn:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        try:
            bundle, python = self._prepare(task.bundle, timings)
            result = self._run_in_child(task, bundle, python, timings)
        except ModelOpsError as exc:
            result = SimReturn.failure(task.task_id, exc.info)
        except Exception as exc:
            result = SimReturn.failure(
                task.task_id, ErrorInfo.from_exception(exc, ErrorClass.INTERNAL)
            )
        timings.update(result.timings)
        timings["total_s"] = time.perf_counter() - started
        return replace(result, timings=timings, worker=worker)

    def _prepare(self, ref: BundleRef, timings: dict[str, float]) -> tuple[FetchedBundle, Path]:
        """The fetched bundle and its env's python; looked up once per bundle per worker."""
        if ref not in self._ready:
            began = time.perf_counter()
            bundle = fetch_bundle(ref, self.source, self.cache)
            timings["fetch_s"] = time.perf_counter() - began
            python = ensure_env(bundle, self.cache)
            timings["env_s"] = time.perf_counter() - began - timings["fetch_s"]
            self._ready[ref] = (bundle, python)
        return self._ready[ref]

    def _run_in_child(
        self, task: SimTask, bundle: FetchedBundle, python: Path, timings: dict[str, float]
    ) -> SimReturn:
        def start() -> WarmChild:
            began = time.perf_counter()
            child = WarmChild.start(python, bundle, self.cache / "logs")
            timings["start_s"] = time.perf_counter() - began
            return child

        with self.pool.acquire((str(python), bundle.ref.digest), start) as child:
            return child.run(task)

    def close(self) -> None:
        self.pool.close()
