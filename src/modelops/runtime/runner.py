"""Run one SimTask to one SimReturn: fetch the bundle, ensure its env, run it in a child.

`TaskRunner.run` never raises: every failure becomes a classified error in the SimReturn,
so a worker always hands the client something it can store and show. Crashes and timeouts
are retried in a fresh child (`RunLimits.retries`, default 1); model errors never are.
"""

from __future__ import annotations

import errno
import functools
import itertools
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
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

# What a worker retries itself; a lost worker is Dask's to retry, and never reaches a runner.
RETRYABLE = frozenset({ErrorClass.CRASH, ErrorClass.TIMEOUT})
RECHECK_S = 1.0  # how often a bundle in use is checked for, and marked as used, on disk


@dataclass
class _Ready:
    """A bundle fetched and its environment built, as this runner last found them on disk."""

    bundle: FetchedBundle
    python: Path
    checked: float  # time.monotonic() of the last look

    @property
    def pool_key(self) -> tuple[str, str]:
        return (str(self.python), self.bundle.ref.digest)


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
        self._ready: dict[BundleRef, _Ready] = {}
        remove_leftovers(cache)  # of workers that died on this machine before

    def run(self, task: SimTask, worker: str = "") -> SimReturn:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        return self._finish(task, self._attempt(task, timings), timings, started, worker)

    def run_many(self, tasks: Sequence[SimTask], worker: str = "") -> list[SimReturn]:
        """`run` for each task, results in the same order. Consecutive tasks of a bundle
        that runs warm share one child, their requests written ahead so the child never
        waits for this side between them (`WarmChild.run_many`); a task that leaves the
        child dead is retried as `run` would, and the rest go on in a new child."""
        results: list[SimReturn] = []
        todo = deque(tasks)
        while todo:
            results.extend(self._run_some(todo, worker))
        return results

    def _run_some(self, todo: deque[SimTask], worker: str) -> Iterator[SimReturn]:
        """Runs the first task of `todo`, and those after it that can share its child; each
        is taken off `todo` as its result is yielded."""
        first = todo[0]
        timings: dict[str, float] = {}
        started = time.perf_counter()
        ready: _Ready | None = None
        try:
            ready = self._prepare(first.bundle, timings)
            isolation, max_tasks = mode = _mode(first, ready)
            if isolation is Isolation.COLD:
                yield self.run(todo.popleft(), worker)
                return

            def shares_child(task: SimTask) -> bool:
                return task.bundle == first.bundle and _mode(task, ready) == mode

            start = functools.partial(self._start, ready, timings)
            with self.pool.acquire(ready.pool_key, start) as child:
                cap = None if isolation is Isolation.WARM else max_tasks - child.tasks_served
                group = list(itertools.islice(itertools.takewhile(shares_child, todo), cap))
                for result in child.run_many(group):
                    yield self._finish(todo.popleft(), result, timings, started, worker)
                    timings, started = {}, time.perf_counter()
                if isolation is Isolation.RECYCLE and child.tasks_served >= max_tasks:
                    child.close()
        except Exception as exc:  # no child to run it in
            failure = SimReturn.failure(todo[0].task_id, self._error_info(exc))
            result = self._finish(todo.popleft(), failure, timings, started, worker)
            yield result
            if ready is None and result.error is not None:
                # The bundle could not be fetched or its environment built, nor can it be
                # for the rest of the batch a moment later: a registry outage would cost
                # each of them the fetch's retries (7.5 s), one after another.
                while todo and todo[0].bundle == first.bundle:
                    task = todo.popleft()
                    shared = SimReturn.failure(task.task_id, result.error)
                    yield replace(shared, timings={"attempts": 1, "total_s": 0.0}, worker=worker)

    def _finish(
        self,
        task: SimTask,
        result: SimReturn,
        timings: dict[str, float],
        started: float,
        worker: str,
    ) -> SimReturn:
        """`result`, the task's first attempt, or the last of its retries; with timings."""
        attempts = 1
        while (
            result.error is not None
            and result.error.error_class in RETRYABLE
            and attempts <= task.limits.retries
        ):
            attempts += 1
            result = self._attempt(task, timings)
        timings.update(result.timings)
        timings["attempts"] = attempts
        # written ahead, a task's wire call may end before the last answer was handled
        timings["total_s"] = max(time.perf_counter() - started, timings.get("wire_s", 0.0))
        return replace(result, timings=timings, worker=worker)

    def load(self, ref: BundleRef) -> tuple[FetchedBundle, str]:
        """Make `ref` runnable without running a task: fetch it, build its environment and
        start a child that imports its wire (kept warm for the next task, unless the bundle
        runs cold; an idle warm child of the bundle already proves it). Returns the bundle
        and the wire the child loaded, which a package of the environment may provide.
        Raises the classified error of the step that failed."""
        ready = self._prepare(ref, {})
        if ready.bundle.config.runtime.isolation is Isolation.COLD:
            child = self._start(ready, {})
            child.close()
            return ready.bundle, child.wire
        with self.pool.acquire(ready.pool_key, lambda: self._start(ready, {})) as child:
            return ready.bundle, child.wire

    def _attempt(self, task: SimTask, timings: dict[str, float]) -> SimReturn:
        try:
            return self._run_in_child(task, self._prepare(task.bundle, timings), timings)
        except Exception as exc:
            return SimReturn.failure(task.task_id, self._error_info(exc))

    def _error_info(self, exc: Exception) -> ErrorInfo:
        if isinstance(exc, ModelOpsError):
            return exc.info
        if isinstance(exc, OSError):
            return self._os_error(exc)
        return ErrorInfo.from_exception(exc, ErrorClass.INTERNAL)

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

    def _prepare(self, ref: BundleRef, timings: dict[str, float]) -> _Ready:
        """The fetched bundle and its env's python; looked up once per bundle per worker
        (again if the cache lost either, to eviction or anything else). Looked for on disk,
        and marked as used for eviction, at most every RECHECK_S: a warm child needs neither,
        and starting a new one looks again (`_start`)."""
        ready = self._ready.get(ref)
        now = time.monotonic()
        if ready is not None and now - ready.checked < RECHECK_S:
            return ready
        if ready is None or not ready.bundle.root.is_dir() or not ready.python.exists():
            began = time.perf_counter()
            try:  # timed even when it fails: a registry outage's retries show where time went
                bundle = fetch_bundle(ref, self.source, self.cache)
            finally:
                timings["fetch_s"] = time.perf_counter() - began
            try:
                python = ensure_env(bundle, self.cache)
            finally:
                timings["env_s"] = time.perf_counter() - began - timings["fetch_s"]
            ready = self._ready[ref] = _Ready(bundle, python, now)
            if self.cache_max_bytes is not None:
                evict_lru(self.cache, self.cache_max_bytes)
        ready.checked = now
        touch(ready.bundle.root.parent)
        touch(ready.python.parent.parent)
        return ready

    def _run_in_child(self, task: SimTask, ready: _Ready, timings: dict[str, float]) -> SimReturn:
        def start() -> WarmChild:
            return self._start(ready, timings)

        isolation, max_tasks = _mode(task, ready)
        if isolation is Isolation.COLD:
            child = start()
            try:
                return child.run(task)
            finally:
                child.close()
        with self.pool.acquire(ready.pool_key, start) as child:
            result = child.run(task)
            if isolation is Isolation.RECYCLE and child.tasks_served >= max_tasks:
                child.close()
            return result

    def _start(self, ready: _Ready, timings: dict[str, float]) -> WarmChild:
        """A new child with its own copy of the bundle's files. A cached bundle that lost or
        changed files since it was verified is removed and fetched again, once; an
        environment that went missing is built again."""
        began = time.perf_counter()
        sdk = sdk_folder(self.cache)
        if not ready.python.exists():
            ready.python = ensure_env(ready.bundle, self.cache)
        children = self.cache / CHILDREN
        try:
            child = WarmChild.start(ready.python, ready.bundle, children, self.child_threads, sdk)
        except StaleBundle:
            ready.bundle = self._fetch_again(ready.bundle.ref, timings)
            try:
                child = WarmChild.start(
                    ready.python, ready.bundle, children, self.child_threads, sdk
                )
            except StaleBundle as exc:
                raise ModelOpsError(
                    ErrorClass.BAD_BUNDLE,
                    f"bundle {ready.bundle.ref} fetched again is still not its own files: {exc}",
                ) from None
        timings["start_s"] = time.perf_counter() - began
        return child

    def _fetch_again(self, ref: BundleRef, timings: dict[str, float]) -> FetchedBundle:
        discard(self.cache / "bundles" / ref.hex)
        began = time.perf_counter()
        bundle = fetch_bundle(ref, self.source, self.cache)
        timings["fetch_s"] = timings.get("fetch_s", 0.0) + time.perf_counter() - began
        return bundle

    def close(self) -> None:
        self.pool.close()


def _mode(task: SimTask, ready: _Ready) -> tuple[Isolation, int]:
    """How the task runs: its isolation, and the tasks a recycled child serves."""
    runtime = ready.bundle.config.runtime
    max_tasks = task.limits.max_tasks_per_process or runtime.max_tasks_per_process or 1
    return task.limits.isolation or runtime.isolation, max_tasks
