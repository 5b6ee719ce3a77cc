"""Bounded, batched submission: a window of Dask tasks in flight, results handed back as
they complete, short simulations grouped so scheduler overhead does not dominate them.

Neither the whole study nor all its results are ever held at once: a new batch is
submitted only when one finishes, and each result is released from Dask once yielded.
Leaving the iterator early (Ctrl-C, an error in the consumer) cancels what is in flight.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from typing import Any

from distributed import Client, Future, as_completed
from distributed.client import FutureCancelledError

from modelops.cluster.plugin import run_sim_batch
from modelops.contracts import ErrorClass, ErrorInfo, ModelOpsError, SimReturn, SimTask

TARGET_TASK_S = 0.25  # aim for Dask tasks of about this long when sizing batches
MAX_BATCH = 1000
WINDOW_RESIZE_S = 2.0  # how often the window looks for workers that joined


class SchedulerLost(ModelOpsError):
    """The client lost its scheduler (killed, or its allocation ended): Dask cancels every
    future at once, and a scheduler that comes back knows none of them, so the run stops
    rather than store the batches in flight as failures or wait for a reconnection."""

    def __init__(self, address: str) -> None:
        super().__init__(
            ErrorClass.WORKER_LOST,
            f"lost the connection to the Dask scheduler at {address}",
            type="SchedulerLost",
        )


class BatchSizer:
    """Batch size from measured simulation time: one simulation per task until there is a
    measurement, then as many as fill about TARGET_TASK_S."""

    def __init__(self, fixed: int | None = None) -> None:
        self.fixed = fixed
        self._mean_s: float | None = None

    def observe(self, seconds: float) -> None:
        if self._mean_s is None:
            self._mean_s = seconds
        else:
            self._mean_s = 0.8 * self._mean_s + 0.2 * seconds

    @property
    def size(self) -> int:
        if self.fixed is not None:
            return self.fixed
        if self._mean_s is None:
            return 1
        return max(1, min(MAX_BATCH, int(TARGET_TASK_S / max(self._mean_s, 1e-6))))


def run_tasks(
    client: Client,
    tasks: Iterable[SimTask],
    window: int | None = None,
    batch_size: int | None = None,
) -> Iterator[SimReturn]:
    """Run `tasks`; yields one SimReturn per task, in completion order. `window` bounds the
    Dask tasks in flight (default: twice the cluster's threads, looked at again every few
    seconds as workers join); `batch_size` fixes the
    simulations per Dask task (default: sized from measured durations)."""
    sized = window is None  # grows as workers join: Slurm jobs and pods start late

    def cluster_window() -> int:
        return 2 * max(1, sum(client.nthreads().values()))

    window = cluster_window() if window is None else window
    sized_at = time.monotonic()
    pending = iter(tasks)
    sizer = BatchSizer(batch_size)
    counter = itertools.count()
    in_flight: dict[str, tuple[Future, list[SimTask]]] = {}
    completed = as_completed()

    def submit() -> bool:
        batch = list(itertools.islice(pending, sizer.size))
        if not batch:
            return False
        key = f"modelops-sims-{batch[0].task_id}-{next(counter)}"
        future = client.submit(run_sim_batch, batch, key=key, pure=False, retries=0)
        in_flight[key] = (future, batch)
        completed.add(future)
        return True

    try:
        for _ in range(window):
            if not submit():
                break
        for future in completed:
            _, batch = in_flight.pop(future.key)
            results, error = task_outcome(future)
            future.release()
            if error is not None:
                results = [SimReturn.failure(task.task_id, error) for task in batch]
            for result in results:
                if result.ok:
                    sizer.observe(result.timings.get("total_s", 0.0))
            yield from results
            submit()
            if sized and time.monotonic() - sized_at >= WINDOW_RESIZE_S:
                sized_at = time.monotonic()
                grown = cluster_window()
                for _ in range(grown - window):  # workers joined: keep them busy too
                    submit()
                window = max(window, grown)
    finally:
        if in_flight:
            client.cancel([future for future, _ in in_flight.values()], force=True)


def task_outcome(future: Future) -> tuple[Any, ErrorInfo | None]:
    """A finished Dask task's result and None, or None and why it has none: a lost worker
    (or a cancelled task) is `worker_lost`, anything else `internal`. A lost scheduler
    raises SchedulerLost instead: nothing in flight is stored, or told to a search, as
    failed; a resume runs it again."""
    try:
        return future.result(), None
    except FutureCancelledError as exc:
        if exc.reason == "scheduler-connection-lost":
            raise SchedulerLost(future.client.scheduler.address) from None
        return None, ErrorInfo.from_exception(exc, ErrorClass.WORKER_LOST)
    except Exception as exc:  # the task itself failed: a lost worker, most often
        lost = type(exc).__name__ in ("KilledWorker", "CommClosedError")
        return None, ErrorInfo.from_exception(
            exc, ErrorClass.WORKER_LOST if lost else ErrorClass.INTERNAL
        )
