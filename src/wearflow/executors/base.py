"""The executor protocol: run tasks somewhere, yield events as they start and finish."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from wearflow.task import TaskEvent, TaskSpec


class Executor(Protocol):
    """Runs tasks; yields a ``started`` event before and a ``finished`` event after each.

    When ``stop`` is set, no further task is started; running ones finish and
    the rest stay pending in the state database for the next run. ``claim`` is
    asked just before a task starts; a task it refuses (another coordinator has
    it) is skipped without events.
    """

    workers: int

    def run(self, tasks: Sequence[TaskSpec], run_id: str,
            stop: threading.Event | None = None,
            claim: Callable[[TaskSpec], bool] | None = None) -> Iterator[TaskEvent]: ...

    def close(self) -> None:
        """Release workers kept between runs (a no-op for executors that keep none)."""
