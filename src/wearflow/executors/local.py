"""Run tasks on a local pool of worker processes, one file per worker at a time.

The workers exit when their coordinator dies, however it dies (``kill -9`` included):
on Linux the kernel signals them (``prctl(PR_SET_PDEATHSIG)``), elsewhere, and as a
fallback, a thread in each worker watches its parent's process id. The pool's resource
tracker then exits too (its pipe closes with the last of them).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from wearflow.clock import utc_now
from wearflow.errors import Tag
from wearflow.memory import format_gb, memory_budget_bytes, too_big
from wearflow.task import TaskEvent, TaskOutcome, TaskSpec
from wearflow.worker import execute, warm_up


class LocalExecutor:
    """A process pool. Only ``workers`` tasks are in flight at once, so a task's
    ``started`` event is emitted when a worker is free to take it.

    Memory-aware: tasks start only while the sum of their estimated peaks
    (``TaskSpec.memory_bytes``) fits the memory budget (``memory_limit_gb``, by
    default 80% of physical memory); a big recording waits for running tasks to
    finish rather than pushing the machine into swap. A task whose estimate
    alone exceeds the budget is not started: it fails saying how much it needs.

    Each task is held to its limits in its worker (:func:`wearflow.worker.execute`):
    its wall-clock ``timeout_s`` (the worker is stopped when the task cannot be
    interrupted) and the memory it may take, by default the whole budget.

    With ``persistent=True`` the worker processes (and their scikit-digital-health
    import, seconds each) outlive one ``run`` and serve the next, as the watcher
    needs; call :meth:`close` at the end.
    """

    def __init__(self, workers: int | None = None, *, persistent: bool = False,
                 memory_limit_gb: float | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.persistent = persistent
        self.memory_budget_bytes = memory_budget_bytes(memory_limit_gb)
        self._pool: ProcessPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")  # no fork of a threaded coordinator
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                             initializer=functools.partial(
                                                 _start_worker, os.getpid()))
        return self._pool

    def run(self, tasks: Sequence[TaskSpec], run_id: str,
            stop: threading.Event | None = None,
            claim: Callable[[TaskSpec], bool] | None = None) -> Iterator[TaskEvent]:
        if not tasks:
            return
        workers = self.workers
        queue = list(reversed(tasks))
        idle_pools = 0
        while queue and not (stop and stop.is_set()):
            # A pool whose worker died (killed, out of memory) is unusable: the tasks it
            # held fail with that reason and the rest continue on a fresh pool.
            finished = yield from self._run_pool(queue, workers, run_id, stop, claim)
            idle_pools = 0 if finished else idle_pools + 1
            if idle_pools >= 2:  # workers cannot even start: fail the rest, say why
                now = utc_now()
                while queue:
                    task = queue.pop()
                    yield TaskEvent("started", task.key)
                    yield TaskEvent("finished", task.key, TaskOutcome.failed(
                        task.key, now, now, "worker processes cannot start"))
        if not self.persistent:
            self.close()

    def _run_pool(self, queue: list[TaskSpec], workers: int, run_id: str,
                  stop: threading.Event | None, claim: Callable[[TaskSpec], bool] | None
                  ) -> Generator[TaskEvent, None, int]:
        """Run tasks from ``queue`` until it is empty, stopped or the pool breaks;
        return how many tasks finished."""
        done = 0
        pool = self._get_pool()
        try:
            running: dict[Future[TaskOutcome], TaskSpec] = {}
            began: dict[Future[TaskOutcome], float] = {}
            broken = False
            while running or (queue and not broken and not (stop and stop.is_set())):
                while (queue and not broken and len(running) < workers
                       and not (stop and stop.is_set())):
                    refusal = too_big(queue[-1].memory_bytes, self.memory_budget_bytes)
                    if refusal is not None:
                        yield from self._refuse(queue.pop(), refusal, claim)
                        continue
                    in_use = sum(t.memory_bytes for t in running.values())
                    if running and in_use + queue[-1].memory_bytes > self.memory_budget_bytes:
                        break  # wait for memory to free up
                    task = queue.pop()
                    if claim is not None and not claim(task):
                        continue  # another coordinator runs it
                    try:
                        future = pool.submit(execute, self._limited(task), run_id,
                                             own_process=True)
                    except BrokenProcessPool:
                        queue.append(task)  # claimed: the fresh pool's claim renews it
                        broken = True
                        break
                    yield TaskEvent("started", task.key)
                    running[future] = task
                    began[future] = time.monotonic()
                if not running:
                    if queue and not broken and not (stop and stop.is_set()):
                        continue  # every task popped so far was someone else's
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=lambda f: running[f].key):
                    task = running.pop(future)
                    outcome = _outcome(future, task, time.monotonic() - began.pop(future))
                    broken = broken or (outcome.message or "").startswith(_DIED)
                    done += 1
                    yield TaskEvent("finished", task.key, outcome)
        finally:
            if broken:
                self.close()
        return done

    def _limited(self, task: TaskSpec) -> TaskSpec:
        """The task with the memory it may take in its worker: the study's
        ``task_memory_limit_gb``, by default the whole memory budget (no task may take
        more than all the workers together)."""
        if task.memory_limit_bytes is not None:
            return task
        return dataclasses.replace(task, memory_limit_bytes=self.memory_budget_bytes)

    @staticmethod
    def _refuse(task: TaskSpec, reason: str, claim: Callable[[TaskSpec], bool] | None
                ) -> Iterator[TaskEvent]:
        """A task that cannot start here fails at once, with ``reason``."""
        if claim is not None and not claim(task):
            return
        now = utc_now()
        yield TaskEvent("started", task.key)
        yield TaskEvent("finished", task.key, TaskOutcome.failed(task.key, now, now, reason))


def _start_worker(coordinator_pid: int) -> None:
    """A pool worker's initializer: tie its life to its coordinator's, then warm up."""
    exit_with_parent(coordinator_pid)
    warm_up(ignore_sigint=True)


# Linux's PR_SET_PDEATHSIG (<linux/prctl.h>): signal me when my parent dies
_PR_SET_PDEATHSIG = 1
# The parent-death signal. Not SIGKILL: the kernel sends it when the *thread* that
# started the worker ends, which a coordinator running tasks from a short-lived thread
# survives; the handler exits only once the parent process is gone. Not SIGTERM either:
# that is how a broken pool's workers are terminated.
_PARENT_DIED = signal.SIGUSR1
PARENT_POLL_S = 0.5  # the fallback's look at the parent


def exit_with_parent(parent_pid: int, poll_s: float = PARENT_POLL_S) -> None:
    """Make this process exit as soon as process ``parent_pid``, its parent, is gone.

    On Linux the kernel sends ``SIGUSR1`` when the parent dies; everywhere a daemon
    thread checks ``os.getppid()`` every ``poll_s`` seconds (an orphan is adopted by
    another process), which also covers a main thread busy in C code that holds on
    to the signal. Call it in the process's main thread, first thing.
    """
    def parent_gone() -> bool:
        return os.getppid() != parent_pid

    if threading.current_thread() is threading.main_thread():
        def on_parent_death(_signum: int, _frame: object) -> None:
            if parent_gone():
                os._exit(1)

        signal.signal(_PARENT_DIED, on_parent_death)
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(_PR_SET_PDEATHSIG, int(_PARENT_DIED), 0, 0, 0)
            except (OSError, AttributeError):  # no prctl here: the thread below suffices
                pass

    def watch() -> None:
        while not parent_gone():
            time.sleep(poll_s)
        os._exit(1)

    if parent_gone():  # died before we were watching
        os._exit(1)
    threading.Thread(target=watch, name="wearflow-parent-watch", daemon=True).start()


_DIED = "worker process died (killed, or out of memory)"


def _outcome(future: Future[TaskOutcome], task: TaskSpec, elapsed_s: float) -> TaskOutcome:
    try:
        return future.result()
    except BrokenProcessPool:
        now = utc_now()
        if task.timeout_s is not None and elapsed_s >= task.timeout_s:
            # its worker stopped itself after the task's time limit (wearflow.worker)
            return TaskOutcome.failed(
                task.key, now, now,
                f"ran longer than task_timeout_s ({task.timeout_s:g} s) and could not be "
                "interrupted; its worker process was stopped (raise task_timeout_s in the "
                "study file if the file is sound)", tag=Tag.DATA_ISSUE.value)
        # which of the pool's tasks killed it is unknown: each is retried (transient)
        return TaskOutcome.failed(task.key, now, now,
                                  f"{_DIED}; estimated peak {format_gb(task.memory_bytes)}",
                                  transient=True)
