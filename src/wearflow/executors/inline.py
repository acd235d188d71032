"""Run tasks one after another in this process (tests, debugging)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

from wearflow.task import TaskEvent, TaskSpec
from wearflow.worker import execute


class InlineExecutor:
    workers = 1

    def run(self, tasks: Sequence[TaskSpec], run_id: str,
            stop: threading.Event | None = None,
            claim: Callable[[TaskSpec], bool] | None = None) -> Iterator[TaskEvent]:
        for task in tasks:
            if stop is not None and stop.is_set():
                return
            if claim is not None and not claim(task):
                continue
            yield TaskEvent("started", task.key)
            yield TaskEvent("finished", task.key, execute(task, run_id))

    def close(self) -> None:
        pass
