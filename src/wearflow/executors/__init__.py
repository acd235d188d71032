"""Executors: where tasks run. ``inline`` (this process), ``local`` (process pool),
``dask`` (a local Dask cluster, or an existing one at ``dask://host:port``) and
``slurm`` (Dask workers as SLURM batch jobs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wearflow.executors.base import Executor
from wearflow.executors.inline import InlineExecutor
from wearflow.executors.local import LocalExecutor
from wearflow.task import TaskEvent

if TYPE_CHECKING:
    from wearflow.deployment import SlurmConfig
    from wearflow.executors.dask import DaskExecutor

__all__ = ["DaskExecutor", "Executor", "InlineExecutor", "LocalExecutor", "TaskEvent",
           "make_executor"]

EXECUTOR_CHOICES = ("inline", "local", "dask", "dask://host:port", "tcp://host:port",
                    "tls://host:port", "slurm")


def __getattr__(name: str) -> object:
    # Dask is imported only when asked for: `import wearflow` stays fast without it.
    if name == "DaskExecutor":
        return _dask_executor()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _dask_executor() -> type[DaskExecutor]:
    """The Dask executor class; a ConfigError naming the extra when Dask is not installed."""
    from wearflow.extras import require

    require("distributed", "dask", "the dask executor", subject="executor")
    from wearflow.executors.dask import DaskExecutor

    return DaskExecutor


def make_executor(name: str, workers: int | None = None, *, persistent: bool = False,
                  memory_limit_gb: float | None = None,
                  slurm: SlurmConfig | None = None) -> Executor:
    """The executor a study or the command line names.

    ``persistent``: keep worker processes between runs (the watcher).
    ``memory_limit_gb``: what all workers of this machine may use together.
    ``slurm``: the study's ``slurm:`` section, which ``slurm`` needs (its jobs decide the
    workers and their memory).

    Raises
    ------
    ConfigError
        Unknown name, not a scheduler address, the scheduler cannot be reached, Dask
        (or dask-jobqueue) is not installed (the ``dask`` extra), ``slurm`` without its
        section, or without ``sbatch`` on this machine.
    """
    if name == "inline":
        return InlineExecutor()
    if name == "local":
        return LocalExecutor(workers, persistent=persistent, memory_limit_gb=memory_limit_gb)
    if name == "dask" or name.startswith(("dask://", "tcp://", "tls://")):
        dask_executor = _dask_executor()
        return dask_executor(None if name == "dask" else name, workers,
                             memory_limit_gb=memory_limit_gb, persistent=persistent)
    from wearflow.errors import ConfigError

    if name == "slurm":
        if slurm is None:
            raise ConfigError("executor slurm needs the study's slurm: section (queue, cores, "
                              "memory_gb, walltime, jobs)", subject="executor")
        _dask_executor()
        from wearflow.extras import require

        require("dask_jobqueue", "dask", "the slurm executor", subject="executor")
        from wearflow.executors.slurm import SlurmExecutor

        return SlurmExecutor(slurm, persistent=persistent)
    raise ConfigError(f"unknown executor {name!r}; use one of: {', '.join(EXECUTOR_CHOICES)}",
                      subject="executor")
