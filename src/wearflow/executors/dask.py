"""Run tasks on a Dask cluster: a local one of worker processes, or an existing one.

The coordinator only moves :class:`~wearflow.plan.TaskSpec` objects and
:class:`~wearflow.worker.TaskOutcome` objects; workers read the inputs from and
write the results to the study's storage themselves (:func:`wearflow.worker.execute`).

Memory-aware: each worker advertises a ``MEMORY`` resource (its share of the
memory budget) and each task asks for its estimated peak
(:attr:`TaskSpec.memory_bytes`), so Dask never starts two tasks on one worker
whose estimates together exceed it. A task bigger than every worker fails at
once, saying so, instead of waiting for a worker that will never come.

When the workers offer no ``MEMORY`` (a cluster started without
``--resources MEMORY=<bytes>``), tasks are submitted without it, with one warning.

When a worker dies while running a task (killed, or over its memory limit),
Dask runs the task again on another worker, up to its ``allowed-failures``
(3 by default); after that the task fails with the reason. A lost scheduler
fails the tasks in flight as transient (the runner retries them after their
backoff); the run then stops with a :class:`WearflowError` and the tasks not
yet started stay pending.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from distributed import Client, Future, KilledWorker, LocalCluster, WorkerPlugin, as_completed

from wearflow.clock import utc_now
from wearflow.errors import ConfigError, Tag, WearflowError, one_line
from wearflow.logs import log_event
from wearflow.memory import format_gb, memory_budget_bytes, too_big
from wearflow.task import TaskEvent, TaskOutcome, TaskSpec
from wearflow.worker import execute, warm_up

MEMORY = "MEMORY"  # the worker resource memory-aware scheduling asks for, in bytes
IN_FLIGHT_PER_WORKER = 2  # futures submitted per worker thread: claims stay just-in-time
DEFAULT_PORT = 8786


def scheduler_address(name: str) -> str:
    """``dask://host:port`` -> ``tcp://host:port``; ``tcp://`` and ``tls://`` kept as given.

    Raises
    ------
    ConfigError
        Not a Dask scheduler address.
    """
    scheme, sep, rest = name.partition("://")
    parts = urlsplit(name) if sep else None
    if (parts is None or scheme not in ("dask", "tcp", "tls") or not parts.hostname
            or parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ConfigError(f"{name!r} is not a Dask scheduler address "
                          "(dask://host:port, tcp://host:port or tls://host:port)",
                          subject="executor")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name!r}: the port is not a number", subject="executor") from None
    netloc = rest.split("/", 1)[0]
    return f"{'tcp' if scheme == 'dask' else scheme}://{netloc}" + (
        "" if port is not None else f":{DEFAULT_PORT}")


class _WarmUp(WorkerPlugin):
    """Runs on every worker as it joins (restarted ones included), before its first task."""

    def __init__(self, ignore_sigint: bool) -> None:
        self.ignore_sigint = ignore_sigint

    def setup(self, worker: Any) -> None:
        warm_up(ignore_sigint=self.ignore_sigint)


@dataclass(frozen=True)
class _ClusterView:
    """What the scheduler says about its workers at the start of a run."""

    n_workers: int
    threads: int
    memory_resource_bytes: int | None  # the largest MEMORY any worker offers; None: none
    memory_limit_bytes: int  # the largest worker memory limit (0: unlimited or unknown)


class DaskExecutor:
    """Tasks on a Dask cluster, one file per worker thread at a time.

    Parameters
    ----------
    address
        ``None``: start a local cluster of ``workers`` worker processes (default:
        one per core), one thread each, sharing ``memory_limit_gb`` (default: 80%
        of physical memory) evenly as their memory limit and ``MEMORY`` resource.
        Otherwise the scheduler of an existing cluster (``dask://host:port``,
        ``tcp://...``, ``tls://...``); its workers decide the parallelism and
        should be started with ``--resources MEMORY=<bytes>``.
    workers
        Worker processes of a local cluster (ignored for an existing cluster,
        where :attr:`workers` is its total number of threads).
    memory_limit_gb
        Memory all workers of a local cluster may use together.
    persistent
        Keep the cluster (and its workers' imports) between runs, as the watcher
        needs; call :meth:`close` at the end. Otherwise :meth:`run` closes it.
    connect_timeout_s
        How long to try reaching an existing cluster's scheduler.

    Raises
    ------
    ConfigError
        ``address`` is not a scheduler address, or its scheduler cannot be reached.
    """

    def __init__(self, address: str | None = None, workers: int | None = None,
                 memory_limit_gb: float | None = None, persistent: bool = False, *,
                 connect_timeout_s: float = 10.0) -> None:
        self.address = scheduler_address(address) if address is not None else None
        self.memory_limit_gb = memory_limit_gb
        self.persistent = persistent
        self.connect_timeout_s = connect_timeout_s
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._warned_no_memory = False
        if self.address is not None:
            # Fail before the study starts, and learn the cluster's parallelism.
            self.workers = self._view(self._get_client()).threads

    def close(self) -> None:
        """Close the client, and the local cluster if this executor started it."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        try:
            if client is not None:
                client.close()  # type: ignore[no-untyped-call]
        finally:
            if cluster is not None:
                cluster.close()

    def _get_client(self) -> Client:
        if self._client is not None and self._client.status in ("closing", "closed", "failed"):
            self.close()  # gave up reconnecting (or its cluster is gone): start afresh
        if self._client is not None:
            return self._client
        if self.address is None:
            self._client = self._start_local_cluster()
        else:
            try:
                self._client = Client(  # type: ignore[no-untyped-call]
                    self.address, timeout=self.connect_timeout_s, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ConfigError(one_line(f"cannot reach the Dask scheduler at "
                                            f"{self.address} ({type(exc).__name__}: {exc})"),
                                  subject="executor") from None
        try:
            self._client.register_plugin(_WarmUp(ignore_sigint=self.address is None),
                                         name="wearflow-warm-up")
        except Exception as exc:  # raised by a worker: it cannot run wearflow's tasks
            self.close()
            raise ConfigError(one_line(f"the Dask workers cannot start: "
                                        f"{type(exc).__name__}: {exc}"),
                              subject=self.address or "local Dask cluster") from None
        return self._client

    def _start_local_cluster(self) -> Client:
        per_worker = memory_budget_bytes(self.memory_limit_gb) // self.workers
        started = time.perf_counter()
        try:
            self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=self.workers, threads_per_worker=1, processes=True,
                memory_limit=per_worker, resources={MEMORY: per_worker},
                dashboard_address=None, silence_logs=logging.ERROR,
                # no dashboard; the scheduler's HTTP endpoint (health, metrics) on a free
                # port, not 8787, which another cluster on this machine may hold
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        except Exception as exc:
            raise WearflowError(one_line(f"the local Dask cluster cannot start: "
                                          f"{type(exc).__name__}: {exc}"),
                                subject="executor") from None
        client = Client(self._cluster, set_as_default=False)  # type: ignore[no-untyped-call]
        log_event("INFO", f"local Dask cluster started: {self.workers} worker processes, "
                  f"{format_gb(per_worker)} memory each, in "
                  f"{time.perf_counter() - started:.1f} s")
        return client

    def _view(self, client: Client) -> _ClusterView:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        offered = [int(w["resources"][MEMORY]) for w in workers
                   if MEMORY in (w.get("resources") or {})]
        return _ClusterView(
            n_workers=len(workers),
            threads=max(1, sum(int(w["nthreads"]) for w in workers)),
            memory_resource_bytes=max(offered) if offered else None,
            memory_limit_bytes=max((int(w.get("memory_limit") or 0) for w in workers),
                                   default=0))

    def run(self, tasks: Sequence[TaskSpec], run_id: str,
            stop: threading.Event | None = None,
            claim: Callable[[TaskSpec], bool] | None = None) -> Iterator[TaskEvent]:
        try:
            if tasks:
                yield from self._run(tasks, run_id, stop, claim)
        finally:
            if not self.persistent:
                self.close()

    def _run(self, tasks: Sequence[TaskSpec], run_id: str, stop: threading.Event | None,
             claim: Callable[[TaskSpec], bool] | None) -> Iterator[TaskEvent]:
        client = self._get_client()
        view = self._view(client)
        if self.address is not None:
            self.workers = view.threads
        if not view.n_workers:
            log_event(Tag.PIPELINE_ISSUE.value, "the Dask cluster has no workers yet; tasks "
                      "wait until one joins", level=logging.WARNING, executor=self.address)
        elif view.memory_resource_bytes is None and not self._warned_no_memory:
            self._warned_no_memory = True
            log_event(Tag.PIPELINE_ISSUE.value, "the Dask workers advertise no MEMORY "
                      "resource: tasks are submitted without their memory estimate, so "
                      "big files may share a worker; start the workers with "
                      "--resources MEMORY=<bytes>", level=logging.WARNING,
                      executor=self.address)
        queue = list(reversed(tasks))
        window = IN_FLIGHT_PER_WORKER * self.workers
        running: dict[Future[TaskOutcome], tuple[TaskSpec, str]] = {}
        completed = as_completed(loop=client.loop)  # type: ignore[no-untyped-call]
        lost: str | None = None
        while True:
            # Claim and submit only as many tasks as the workers can start soon.
            while queue and len(running) < window and lost is None \
                    and not (stop and stop.is_set()):
                if client.status != "running":  # reconnecting, or given up
                    lost = f"the client is {client.status}"
                    break
                task = queue.pop()
                if claim is not None and not claim(task):
                    continue  # another coordinator runs it
                started = utc_now()
                failed = too_big(task.memory_bytes, view.memory_resource_bytes,
                                 limit="any worker has", remedy="or use bigger workers")
                if failed is None:
                    try:
                        future = self._submit(client, task, run_id, view)
                    except Exception as exc:  # the client is closed or lost its scheduler
                        lost = one_line(f"{type(exc).__name__}: {exc}")
                        failed = f"could not submit the task to Dask ({lost})"
                    else:
                        running[future] = (task, started)
                        completed.add(future)  # type: ignore[no-untyped-call]
                yield TaskEvent("started", task.key)
                if failed is not None:
                    yield TaskEvent("finished", task.key, _failed(
                        task, started, failed, transient=lost is not None))
            if not running:
                break
            future = next(completed)
            task, started = running.pop(future)
            yield TaskEvent("finished", task.key,
                            _outcome(future, task, started, view.memory_limit_bytes))
        if lost is not None and queue:
            raise WearflowError(f"lost the Dask scheduler ({lost}); {len(queue)} tasks not "
                                "started stay pending for the next run",
                                subject=self.address or "local Dask cluster")

    def _submit(self, client: Client, task: TaskSpec, run_id: str,
                view: _ClusterView) -> Future[TaskOutcome]:
        # Ask for the task's memory only where workers offer MEMORY: a task asking for
        # a resource no worker has would wait forever.
        memory = view.memory_resource_bytes is not None and task.memory_bytes > 0
        future: Future[TaskOutcome] = client.submit(
            execute, task, run_id, pure=False,
            key=f"wearflow-{task.key[:16]}-{uuid.uuid4().hex[:8]}",
            resources={MEMORY: task.memory_bytes} if memory else None)
        return future


def _failed(task: TaskSpec, started: str, message: str, *,
            transient: bool = False) -> TaskOutcome:
    """``transient``: the cluster, not the task, failed (retried with backoff); a worker
    that died under the task was already retried elsewhere by Dask itself."""
    return TaskOutcome.failed(task.key, started, utc_now(), message, transient=transient)


def _outcome(future: Future[TaskOutcome], task: TaskSpec, started: str, memory_limit_bytes: int
             ) -> TaskOutcome:
    """The task's own outcome, or a failed one naming why Dask could not produce it."""
    try:
        outcome = future.result()
    except KilledWorker as exc:
        limit = (f"exceeded its memory limit of {format_gb(memory_limit_bytes)}"
                 if memory_limit_bytes else "ran out of memory")
        tries = exc.allowed_failures + 1
        return _failed(task, started, f"the worker died while running it (killed, or {limit}); "
                       f"Dask tried {tries} worker{'s' if tries > 1 else ''}")
    except Exception as exc:  # cancelled, lost connection, unpicklable result, ...
        return _failed(task, started, f"Dask could not run it ({type(exc).__name__}: {exc})",
                       transient=True)
    if not isinstance(outcome, TaskOutcome):
        return _failed(task, started, f"Dask returned {type(outcome).__name__}, "
                       "not a task outcome")
    return outcome
