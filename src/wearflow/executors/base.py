"""The executor protocol: run tasks somewhere, yield events as they start and finish."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from wearflow.plan import TaskSpec
from wearflow.worker import TaskOutcome


@dataclass(frozen=True)
class TaskEvent:
    kind: Literal["started", "finished"]
    key: str
    outcome: TaskOutcome | None = None


class Executor(Protocol):
    """Runs tasks; yields a ``started`` event before and a ``finished`` event after each."""

    workers: int

    def run(self, tasks: Sequence[TaskSpec], run_id: str) -> Iterator[TaskEvent]: ...
