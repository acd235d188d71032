"""Executors: where tasks run. ``inline`` (this process) and ``local`` (process pool)."""

from __future__ import annotations

from wearflow.executors.base import Executor, TaskEvent
from wearflow.executors.inline import InlineExecutor
from wearflow.executors.local import LocalExecutor

__all__ = ["Executor", "InlineExecutor", "LocalExecutor", "TaskEvent", "make_executor"]


def make_executor(name: str, workers: int | None = None, *,
                  persistent: bool = False, memory_limit_gb: float | None = None) -> Executor:
    """``persistent``: keep worker processes between runs (the watcher)."""
    if name == "inline":
        return InlineExecutor()
    if name == "local":
        return LocalExecutor(workers, persistent=persistent, memory_limit_gb=memory_limit_gb)
    from wearflow.errors import ConfigError

    raise ConfigError(f"unknown executor {name!r}; use 'inline' or 'local'", subject="executor")
