"""Where and how a study runs, as opposed to what it computes.

:data:`DEPLOYMENT_FIELDS` are the study file's keys that change no result: the
locations read and written, the state database, the executor and its limits, alert
targets. A deployment profile (:mod:`wearflow.profiles`) may set exactly these, and
none of them enters the study fingerprint, so one study gives the same results under
``dev``, ``stage`` and ``prod``. :class:`SlurmConfig` is the ``slurm:`` section of
``executor: slurm``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# the keys a deployment profile may set; none of them enters the study fingerprint
DEPLOYMENT_FIELDS = frozenset({
    "input", "output", "state", "storage_options", "notifications", "webhook", "identity",
    "executor", "workers", "memory_limit_gb", "task_timeout_s", "task_memory_limit_gb",
    "retries", "reports", "alerts", "audit", "slurm"})


class SlurmConfig(BaseModel):
    """The SLURM jobs of ``executor: slurm`` (through dask-jobqueue): each job is one
    batch allocation of ``cores`` cores and ``memory_gb`` GiB for ``walltime``, running
    ``processes`` single-threaded Dask workers (default: one per core) that share the
    memory evenly; ``jobs`` such jobs are submitted for a run.

    ``job_extra``: further ``#SBATCH`` directives, e.g. ``--qos=long``. ``interface``:
    the network interface the scheduler and workers talk on (e.g. ``ib0``; default:
    Dask's). ``python``: the interpreter a worker runs (default: this one, so a shared
    virtual environment is used by every node). ``start_timeout_s``: how long a run waits
    for its first worker (the jobs may queue); then it stops, saying so.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.,-]+$")
    account: str | None = Field(default=None, min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    cores: int = Field(default=1, ge=1, le=1024)
    processes: int | None = Field(default=None, ge=1)
    memory_gb: float = Field(gt=0)
    walltime: str = Field(default="01:00:00",
                          pattern=r"^(\d+-)?\d{1,3}:[0-5]\d(:[0-5]\d)?$")
    jobs: int = Field(default=1, ge=1, le=10_000)
    job_extra: tuple[str, ...] = ()
    interface: str | None = None
    python: str | None = None
    start_timeout_s: float = Field(default=3600.0, gt=0)

    @property
    def worker_processes(self) -> int:
        """Worker processes in one job (one per core unless ``processes`` says)."""
        return min(self.processes or self.cores, self.cores)
