"""Run tasks one after another in this process (tests, debugging)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from wearflow.executors.base import TaskEvent
from wearflow.plan import TaskSpec
from wearflow.worker import execute


class InlineExecutor:
    workers = 1

    def run(self, tasks: Sequence[TaskSpec], run_id: str) -> Iterator[TaskEvent]:
        for task in tasks:
            yield TaskEvent("started", task.key)
            yield TaskEvent("finished", task.key, execute(task, run_id))
