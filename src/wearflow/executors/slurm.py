"""Run tasks on Dask workers submitted as SLURM batch jobs (dask-jobqueue).

``executor: slurm`` with a ``slurm:`` section (:class:`~wearflow.deployment.SlurmConfig`):
the coordinator (on a login node) starts a Dask scheduler, submits ``jobs`` batch jobs
with ``sbatch``, each running single-threaded Dask workers that advertise their share of
the job's memory as the ``MEMORY`` resource, and then runs the study as on any Dask
cluster (:class:`~wearflow.executors.dask.DaskExecutor`). The jobs end with the run
(or with the watcher). :func:`job_script` renders a job's script without submitting it
(``wearflow slurm-script STUDY``).
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

from dask_jobqueue.slurm import SLURMCluster, SLURMJob
from distributed import Client

from wearflow.deployment import SlurmConfig
from wearflow.errors import ConfigError, WearflowError, one_line
from wearflow.executors.dask import MEMORY, DaskExecutor
from wearflow.logs import log_event
from wearflow.memory import GB, format_gb

JOB_NAME = "wearflow-worker"
# what a rendered script names the scheduler when none is running (wearflow slurm-script)
SCHEDULER_PLACEHOLDER = "tcp://SCHEDULER-HOST:8786"


def worker_memory_bytes(config: SlurmConfig) -> int:
    """The memory limit (and ``MEMORY`` resource) of one worker process of a job."""
    return int(config.memory_gb * GB) // config.worker_processes


def cluster_options(config: SlurmConfig) -> dict[str, Any]:
    """The keyword arguments of :class:`dask_jobqueue.SLURMCluster` (and of its job)."""
    return {
        "queue": config.queue, "account": config.account, "cores": config.cores,
        "processes": config.worker_processes, "memory": f"{config.memory_gb}GiB",
        "walltime": config.walltime, "job_name": JOB_NAME,
        "job_extra_directives": list(config.job_extra),
        "worker_extra_args": ["--resources", f"{MEMORY}={worker_memory_bytes(config)}"],
        "python": config.python or sys.executable, "interface": config.interface,
    }


def job_script(config: SlurmConfig, scheduler: str = SCHEDULER_PLACEHOLDER) -> str:
    """The batch script one job runs, as ``sbatch`` would be given it (nothing submitted;
    no scheduler started: ``scheduler`` is the address written in it)."""
    job = SLURMJob(scheduler=scheduler, name=f"{JOB_NAME}-0",  # type: ignore[no-untyped-call]
                   **cluster_options(config))
    return str(job.job_script())  # type: ignore[no-untyped-call]


def require_sbatch() -> None:
    """Raise a ConfigError unless ``sbatch`` is on this machine's PATH."""
    if shutil.which("sbatch") is None:
        raise ConfigError("executor slurm: sbatch is not on PATH; run wearflow on a SLURM "
                          "login node (`wearflow slurm-script STUDY` shows the job script "
                          "without submitting it)", subject="executor")


class SlurmExecutor(DaskExecutor):
    """Tasks on Dask workers in SLURM jobs; :class:`DaskExecutor` for the rest.

    Parameters
    ----------
    config
        The study's ``slurm:`` section.
    persistent
        Keep the jobs between runs (the watcher); otherwise they end with the run.

    Raises
    ------
    ConfigError
        ``sbatch`` is not on PATH.
    """

    def __init__(self, config: SlurmConfig, persistent: bool = False) -> None:
        require_sbatch()
        super().__init__(None, config.jobs * config.worker_processes, persistent=persistent)
        self.slurm = config
        self._slurm_cluster: SLURMCluster | None = None

    def close(self) -> None:
        """Close the client and cancel the jobs (the scheduler stops with them)."""
        cluster, self._slurm_cluster = self._slurm_cluster, None
        try:
            super().close()
        finally:
            if cluster is not None:
                cluster.close()

    def _start_local_cluster(self) -> Client:
        config = self.slurm
        try:
            cluster = SLURMCluster(**cluster_options(config),
                                   scheduler_options={"dashboard_address": None})
            cluster.scale(jobs=config.jobs)  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise WearflowError(one_line(f"the SLURM cluster cannot start: "
                                          f"{type(exc).__name__}: {exc}"),
                                subject="executor") from None
        self._slurm_cluster = cluster
        client = Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
        log_event("INFO", f"SLURM cluster: {config.jobs} jobs submitted to {config.queue}, "
                  f"{config.worker_processes} workers each, "
                  f"{format_gb(worker_memory_bytes(config))} memory each; waiting up to "
                  f"{config.start_timeout_s:g} s for the first worker")
        try:
            # the first worker's MEMORY resource makes the scheduling memory-aware
            client.wait_for_workers(1, timeout=config.start_timeout_s)
        except TimeoutError:
            client.close()  # type: ignore[no-untyped-call]
            self.close()
            raise WearflowError(f"no SLURM worker joined within {config.start_timeout_s:g} s: "
                                "see `squeue --me` (still pending?) and the jobs' output "
                                "files", subject="executor") from None
        return client
