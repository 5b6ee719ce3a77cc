"""Run one SimTask to one SimReturn: fetch the bundle, ensure its env, run it in a child.

`TaskRunner.run` never raises: every failure becomes a classified error in the SimReturn,
so a worker always hands the client something it can store and show. Crashes and timeouts
are retried in a fresh child (`RunLimits.retries`, default 1); model errors never are.
"""

from __future__ import annotations

import errno
import time
from dataclasses import replace
from pathlib import Path

from modelops.bundle.cache import BundleSource, FetchedBundle, fetch_bundle
from modelops.contracts import (
    BundleRef,
    ErrorClass,
    ErrorInfo,
    Isolation,
    ModelOpsError,
    SimReturn,
    SimTask,
)
from modelops.runtime.child import WarmChild
from modelops.runtime.childdir import CHILDREN, StaleBundle
from modelops.runtime.env import ensure_env
from modelops.runtime.eviction import discard, evict_lru, remove_leftovers, touch
from modelops.runtime.pool import WarmPool
from modelops.runtime.sdk_link import sdk_folder

RETRYABLE = frozenset({ErrorClass.CRASH, ErrorClass.TIMEOUT, ErrorClass.WORKER_LOST})


class TaskRunner:
    def __init__(
        self,
        source: BundleSource,
        cache: Path,
        max_idle_children: int = 2,
        cache_max_bytes: int | None = None,
        child_threads: int = 1,
    ) -> None:
        self.source = source
        self.cache = cache
        self.cache_max_bytes = cache_max_bytes
        self.child_threads = child_threads
        self.pool = WarmPool(max_idle_children)
        self._ready: dict[BundleRef, tuple[FetchedBundle, Path]] = {}
        remove_leftovers(cache)  # of workers that died on this machine before

    def run(self, task: SimTask, worker: str = "") -> SimReturn:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        attempts = 0
        while True:
            attempts += 1
            result = self._attempt(task, timings)
            retry = result.error is not None and result.error.error_class in RETRYABLE
            if not retry or attempts > task.limits.retries:
                break
        timings.update(result.timings)
        timings["attempts"] = attempts
        timings["total_s"] = time.perf_counter() - started
        return replace(result, timings=timings, worker=worker)

    def load(self, ref: BundleRef) -> tuple[FetchedBundle, str]:
        """Make `ref` runnable without running a task: fetch it, build its environment and
        start a child that imports its wire (kept warm for the next task, unless the bundle
        runs cold; an idle warm child of the bundle already proves it). Returns the bundle
        and the wire the child loaded, which a package of the environment may provide.
        Raises the classified error of the step that failed."""
        bundle, python = self._prepare(ref, {})
        if bundle.config.runtime.isolation is Isolation.COLD:
            child = self._start(bundle, python, {})
            child.close()
            return bundle, child.wire
        key = (str(python), bundle.ref.digest)
        with self.pool.acquire(key, lambda: self._start(bundle, python, {})) as child:
            return bundle, child.wire

    def _attempt(self, task: SimTask, timings: dict[str, float]) -> SimReturn:
        try:
            bundle, python = self._prepare(task.bundle, timings)
            return self._run_in_child(task, bundle, python, timings)
        except ModelOpsError as exc:
            return SimReturn.failure(task.task_id, exc.info)
        except OSError as exc:
            return SimReturn.failure(task.task_id, self._os_error(exc))
        except Exception as exc:
            return SimReturn.failure(
                task.task_id, ErrorInfo.from_exception(exc, ErrorClass.INTERNAL)
            )

    def _os_error(self, exc: OSError) -> ErrorInfo:
        """A full disk says which folder's disk and what to do; other OS errors as they are."""
        if exc.errno != errno.ENOSPC:
            return ErrorInfo.from_exception(exc, ErrorClass.INTERNAL)
        return ErrorInfo(
            ErrorClass.INTERNAL,
            "NoSpaceLeft",
            f"no space left on the disk that holds the cache {self.cache} (writing "
            f"{exc.filename or 'a file'}): free space there, or keep the cache smaller "
            "(MODELOPS_CACHE_MAX_GB)",
        )

    def _prepare(self, ref: BundleRef, timings: dict[str, float]) -> tuple[FetchedBundle, Path]:
        """The fetched bundle and its env's python; looked up once per bundle per worker
        (again if the cache lost either, to eviction or anything else), and marked as used
        for eviction."""
        ready = self._ready.get(ref)
        if ready is None or not ready[0].root.is_dir() or not ready[1].exists():
            began = time.perf_counter()
            bundle = fetch_bundle(ref, self.source, self.cache)
            timings["fetch_s"] = time.perf_counter() - began
            python = ensure_env(bundle, self.cache)
            timings["env_s"] = time.perf_counter() - began - timings["fetch_s"]
            ready = self._ready[ref] = (bundle, python)
            if self.cache_max_bytes is not None:
                evict_lru(self.cache, self.cache_max_bytes)
        bundle, python = ready
        touch(bundle.root.parent)
        touch(python.parent.parent)
        return ready

    def _run_in_child(
        self, task: SimTask, bundle: FetchedBundle, python: Path, timings: dict[str, float]
    ) -> SimReturn:
        def start() -> WarmChild:
            return self._start(bundle, python, timings)

        runtime = bundle.config.runtime
        isolation = task.limits.isolation or runtime.isolation
        if isolation is Isolation.COLD:
            child = start()
            try:
                return child.run(task)
            finally:
                child.close()
        max_tasks = task.limits.max_tasks_per_process or runtime.max_tasks_per_process
        with self.pool.acquire((str(python), bundle.ref.digest), start) as child:
            result = child.run(task)
            if isolation is Isolation.RECYCLE and child.tasks_served >= (max_tasks or 1):
                child.close()
            return result

    def _start(self, bundle: FetchedBundle, python: Path, timings: dict[str, float]) -> WarmChild:
        """A new child with its own copy of the bundle's files. A cached bundle that lost or
        changed files since it was verified is removed and fetched again, once."""
        began = time.perf_counter()
        sdk = sdk_folder(self.cache)
        try:
            child = WarmChild.start(python, bundle, self.cache / CHILDREN, self.child_threads, sdk)
        except StaleBundle:
            bundle = self._fetch_again(bundle.ref, timings)
            try:
                child = WarmChild.start(
                    python, bundle, self.cache / CHILDREN, self.child_threads, sdk
                )
            except StaleBundle as exc:
                raise ModelOpsError(
                    ErrorClass.BAD_BUNDLE,
                    f"bundle {bundle.ref} fetched again is still not its own files: {exc}",
                ) from None
        timings["start_s"] = time.perf_counter() - began
        return child

    def _fetch_again(self, ref: BundleRef, timings: dict[str, float]) -> FetchedBundle:
        discard(self.cache / "bundles" / ref.hex)
        began = time.perf_counter()
        bundle = fetch_bundle(ref, self.source, self.cache)
        timings["fetch_s"] = timings.get("fetch_s", 0.0) + time.perf_counter() - began
        ready = self._ready.get(ref)
        if ready is not None:
            self._ready[ref] = (bundle, ready[1])
        return bundle

    def close(self) -> None:
        self.pool.close()
