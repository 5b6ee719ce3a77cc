"""Bounded submission: a window of tasks in flight, results handed back as they complete.

Neither the whole study nor all its results are ever held at once: a new task is
submitted only when one finishes, and each result is released from Dask once yielded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

from distributed import Client, Future, as_completed

from modelops.cluster.plugin import run_sim
from modelops.contracts import ErrorClass, ErrorInfo, SimReturn, SimTask


def run_tasks(
    client: Client, tasks: Iterable[SimTask], window: int | None = None
) -> Iterator[SimReturn]:
    """Run `tasks` on the cluster; yields one SimReturn per task, in completion order."""
    if window is None:
        window = 2 * max(1, sum(client.nthreads().values()))
    pending = iter(tasks)
    counter = itertools.count()
    in_flight: dict[str, SimTask] = {}
    completed = as_completed()

    def submit(task: SimTask) -> None:
        key = f"modelops-sim-{task.task_id}-{next(counter)}"
        in_flight[key] = task
        completed.add(client.submit(run_sim, task, key=key, pure=False, retries=0))

    for task in itertools.islice(pending, window):
        submit(task)
    for future in completed:
        task = in_flight.pop(future.key)
        yield _result_of(future, task)
        future.release()
        following = next(pending, None)
        if following is not None:
            submit(following)


def _result_of(future: Future, task: SimTask) -> SimReturn:
    try:
        return future.result()
    except Exception as exc:
        lost = type(exc).__name__ in ("KilledWorker", "CommClosedError", "FutureCancelledError")
        error_class = ErrorClass.WORKER_LOST if lost else ErrorClass.INTERNAL
        return SimReturn.failure(task.task_id, ErrorInfo.from_exception(exc, error_class))
