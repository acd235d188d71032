"""Run tasks on a local pool of worker processes, one file per worker at a time."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from wearflow.errors import Tag
from wearflow.executors.base import TaskEvent
from wearflow.plan import TaskSpec
from wearflow.provenance import utc_now
from wearflow.worker import TaskOutcome, execute


def _warm_up() -> None:
    # Ctrl-C reaches the whole process group: the coordinator decides when to stop,
    # a worker finishes its task.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Pay scikit-digital-health's import (seconds, hundreds of MB) once per worker.
    import skdh  # noqa: F401


class LocalExecutor:
    """A process pool. Only ``workers`` tasks are in flight at once, so a task's
    ``started`` event is emitted when a worker is free to take it."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    def run(self, tasks: Sequence[TaskSpec], run_id: str,
            stop: threading.Event | None = None) -> Iterator[TaskEvent]:
        if not tasks:
            return
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded coordinator
        workers = min(self.workers, len(tasks))
        queue = list(reversed(tasks))
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_warm_up) as pool:
            running: dict[Future[TaskOutcome], TaskSpec] = {}
            while running or (queue and not (stop and stop.is_set())):
                while queue and len(running) < workers and not (stop and stop.is_set()):
                    task = queue.pop()
                    yield TaskEvent("started", task.key)
                    running[pool.submit(execute, task, run_id)] = task
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=lambda f: running[f].key):
                    task = running.pop(future)
                    yield TaskEvent("finished", task.key, _outcome(future, task))

def _outcome(future: Future[TaskOutcome], task: TaskSpec) -> TaskOutcome:
    try:
        return future.result()
    except BrokenProcessPool:
        now = utc_now()
        return TaskOutcome(task.key, "failed", now, now, tag=Tag.ERROR.value,
                           message=f"{task.uri}: worker process died (out of memory or killed)")
