"""What runs on a worker: read -> run solution -> write the FileResult.

:func:`execute` never raises: every failure becomes a failed
:class:`TaskOutcome` with its problem tag and a one-line reason naming the file.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import hashlib
import resource
import signal
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pandas as pd
import psutil

from wearflow.clock import iso_utc, utc_now
from wearflow.combine import Part, combine_recordings
from wearflow.errors import AlgorithmError, SoftwareMismatchError, Tag, WearflowError
from wearflow.memory import format_gb, max_inflated_bytes, memory_budget_bytes
from wearflow.provenance import InputRef, Provenance, current_user, software
from wearflow.qc import (
    QC_TABLE,
    RecordingSummary,
    day_validity,
    summarise,
    summary_qc,
    window_flags,
)
from wearflow.readers import decompression_cap, read_recording
from wearflow.recording import Recording
from wearflow.results import single_wrist_dir, write_result
from wearflow.solutions import FileResult, Solution, load_solution, solution_ref
from wearflow.storage import Store, sha256_bytes
from wearflow.streamed import run_streamed, streams
from wearflow.task import InputFile, TaskOutcome, TaskSpec, TaskState, installed_version
from wearflow.task_meter import TaskMeter, worker_name


def warm_up(*, ignore_sigint: bool) -> None:
    """Prepare a worker process before its first task.

    ``ignore_sigint``: Ctrl-C reaches the coordinator's whole process group, its local
    workers included; the coordinator decides when to stop, a worker finishes its task.
    """
    if ignore_sigint and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Pay scikit-digital-health's import (seconds, hundreds of MB) once per worker, and
    # numba's (the streaming kernels', wearflow._jit)
    import skdh  # noqa: F401

    from wearflow import _jit

    _jit.prepare("wearflow.readers._cwa_kernels", "wearflow.readers._finish_kernels",
                 "wearflow.streaming.kernels")


class Stopwatch:
    """Wall and thread-CPU seconds spent in named stages (a stage entered twice adds up),
    and the stage an error first came out of (``failed_in``)."""

    def __init__(self) -> None:
        self._wall: dict[str, float] = {}
        self._cpu: dict[str, float] = {}
        self.failed_in: str | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        except BaseException:
            self.failed_in = self.failed_in or name
            raise
        finally:
            self._wall[name] = self._wall.get(name, 0.0) + time.perf_counter() - wall
            self._cpu[name] = self._cpu.get(name, 0.0) + time.thread_time() - cpu

    def wall(self) -> tuple[tuple[str, float], ...]:
        return tuple(self._wall.items())

    def cpu(self) -> tuple[tuple[str, float], ...]:
        return tuple(self._cpu.items())


def execute(task: TaskSpec, run_id: str, *, own_process: bool = False) -> TaskOutcome:
    """Run one task end to end; return its outcome (never raises), done or failed, with
    its stage seconds, what it cost the worker process and which worker ran it.

    The task's limits (:attr:`TaskSpec.timeout_s`, :attr:`TaskSpec.memory_limit_bytes`)
    hold as far as this process allows: the time limit when the task runs on the main
    thread (a worker process, the inline executor); the memory limit, and a hard stop of
    the process shortly after the time limit (for code that never returns to Python),
    only with ``own_process``, a worker process that runs nothing else (the local
    executor's). A task over a limit fails with the stage it was in, naming its file.
    """
    meter = TaskMeter()
    watch = Stopwatch()
    outcome = _attempt(task, run_id, watch, own_process)
    return dataclasses.replace(outcome, stage_s=watch.wall(), stage_cpu_s=watch.cpu(),
                               cpu_s=meter.cpu_s(), peak_rss_bytes=meter.peak_rss_bytes(),
                               worker=worker_name())


# what a task was doing when it ran out of time or memory, and whose issue that is: the
# file's while it is read, the solution's afterwards
_DOING = {"fetch": ("fetching", Tag.DATA_ISSUE), "decode": ("decoding", Tag.DATA_ISSUE),
          "verify": ("verifying", Tag.DATA_ISSUE),
          "solution": ("running the solution on", Tag.ALGORITHM_ISSUE),
          "qc": ("checking the quality of", Tag.ALGORITHM_ISSUE),
          "write": ("writing the results of", Tag.ALGORITHM_ISSUE)}
_STARTING = ("preparing", Tag.ALGORITHM_ISSUE)
HARD_STOP_GRACE_S = 60.0
"""After its time limit, a task stuck where Python cannot interrupt it (inside a C
routine) has this long before its worker process is stopped (local executor only)."""


def _attempt(task: TaskSpec, run_id: str, watch: Stopwatch, own_process: bool) -> TaskOutcome:
    started = utc_now()
    hard_stop = None if task.timeout_s is None or not own_process else HARD_STOP_GRACE_S
    try:
        with (time_limit(task.timeout_s, hard_stop_after_s=hard_stop),
              memory_limit(task.memory_limit_bytes if own_process else None)):
            folder, flags, prov_sha, data_s = _run(task, run_id, started, watch)
    except WearflowError as exc:
        return TaskOutcome.failed(task.key, started, utc_now(), exc.message, tag=exc.tag.value,
                                  transient=exc.transient)
    except TaskTimedOut:
        doing, tag = _DOING.get(watch.failed_in or "", _STARTING)
        return TaskOutcome.failed(
            task.key, started, utc_now(),
            f"ran longer than task_timeout_s ({task.timeout_s:g} s) while {doing} the file; "
            "stopped (raise task_timeout_s in the study file if the file is sound)",
            tag=tag.value)
    except MemoryError:
        doing, tag = _DOING.get(watch.failed_in or "", _STARTING)
        limit = ("" if task.memory_limit_bytes is None or not own_process else
                 f": the task may take {format_gb(task.memory_limit_bytes)} on top of its "
                 "worker (task_memory_limit_gb, by default memory_limit_gb); raise it if the "
                 "file is sound")
        return TaskOutcome.failed(task.key, started, utc_now(),
                                  f"out of memory while {doing} the file{limit}", tag=tag.value)
    except Exception as exc:  # a bug: keep the study going, report where it happened
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return TaskOutcome.failed(task.key, started, utc_now(),
                                  f"{type(exc).__name__}: {exc} "
                                  f"({where.filename}:{where.lineno})")
    return TaskOutcome(task.key, TaskState.DONE, started, utc_now(), result_dir=folder, flags=flags,
                       provenance_sha256=prov_sha, data_s=data_s)


class TaskTimedOut(BaseException):
    """Raised in the task's thread when its time limit is over. A BaseException, so that
    the ``except Exception`` of a reader or a solution does not swallow it."""


@contextmanager
def time_limit(seconds: float | None, *, hard_stop_after_s: float | None = None
               ) -> Iterator[None]:
    """Raise :class:`TaskTimedOut` in this (main) thread after ``seconds`` of wall-clock
    time: a SIGALRM timer, so that it lands wherever Python code runs. Elsewhere than on
    the main thread, or while an earlier timer of the caller's is pending, nothing is
    armed (that timer is left as it is, and set again afterwards when it is later).

    ``hard_stop_after_s``: for a process that runs nothing else, end the process that
    long after the limit when the task has not stopped (stuck inside a C routine, where
    no signal handler runs): faulthandler's watchdog, a thread of C that needs no
    interpreter lock, writes every thread's traceback to stderr and exits.
    """
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    outer_s, outer_interval_s = signal.getitimer(signal.ITIMER_REAL)
    if outer_s and outer_s <= seconds:  # the caller's own deadline comes first
        yield
        return

    armed = True

    def expired(_signum: int, _frame: FrameType | None) -> None:
        if armed:
            raise TaskTimedOut

    previous = signal.signal(signal.SIGALRM, expired)
    began = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    if hard_stop_after_s is not None:
        faulthandler.dump_traceback_later(seconds + hard_stop_after_s, exit=True)
    try:
        yield
    finally:
        try:
            armed = False  # an alarm landing from here on is too late to matter
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            if hard_stop_after_s is not None:
                faulthandler.cancel_dump_traceback_later()
            # None: a handler installed outside Python; the default is the closest
            signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
            if outer_s:
                left = max(outer_s - (time.monotonic() - began), 1e-3)
                signal.setitimer(signal.ITIMER_REAL, left, outer_interval_s)


@contextmanager
def memory_limit(limit_bytes: int | None) -> Iterator[None]:
    """Let this process take at most ``limit_bytes`` more address space (RLIMIT_AS) than
    it holds now, until the block ends: past it, an allocation fails (MemoryError) instead
    of the machine running out of memory. For a process that runs nothing else: every
    thread of it is held to the limit."""
    if limit_bytes is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    allowed = psutil.Process().memory_info().vms + limit_bytes
    for ceiling in (soft, hard):
        if ceiling != resource.RLIM_INFINITY:
            allowed = min(allowed, ceiling)
    resource.setrlimit(resource.RLIMIT_AS, (allowed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _run(task: TaskSpec, run_id: str, started: str, watch: Stopwatch
         ) -> tuple[str, tuple[str, ...], str, float]:
    solution = _planned_solution(task)
    parts: list[Part] = []
    try:
        if streams(solution, task):  # one file, read chunk by chunk in the solution's passes
            result, summary = run_streamed(task, solution, watch.stage,
                                           _inflate_cap(task, task.inputs[0]))
        else:
            result, summary, parts = _run_whole(task, solution, watch)
    except AlgorithmError as exc:
        raise AlgorithmError(exc.message, subject=task.uri) from exc
    with watch.stage("qc"):
        qc, flags, tables = _quality(task, summary, result, parts)
    folder = single_wrist_dir(solution.name, task.participant, task.file_name, task.key)
    provenance = Provenance(
        kind="single-wrist", study=task.study, study_fingerprint=task.study_fingerprint,
        task_key=task.key, run_id=run_id, user=task.user or current_user(),
        input=_input_refs(task),
        solution=solution_ref(solution), software=software(), started_utc=started,
        finished_utc=utc_now(), flags=list(flags), task_inputs=dict(task.metadata),
    )
    output = Store(task.output, dict(task.storage_options))
    with watch.stage("write"):
        _, prov_sha = write_result(output, folder, tables, {"qc": qc}, provenance)
    return folder, flags, prov_sha, summary.duration_s


def _run_whole(task: TaskSpec, solution: Solution, watch: Stopwatch
               ) -> tuple[FileResult, RecordingSummary, list[Part]]:
    """Read every input file whole, combine them, run the solution on the recording."""
    recordings = [_read(task, part, watch) for part in task.inputs]
    parts: list[Part] = []
    if len(recordings) == 1:
        recording = recordings[0]
    else:
        with watch.stage("decode"):
            recording, parts = combine_recordings(recordings, [p.uri for p in task.inputs])
    del recordings
    with watch.stage("solution"):
        result = solution.run(recording, dict(task.metadata))
    return result, summarise(recording), parts


def _inflate_cap(task: TaskSpec, part: InputFile, compressed_bytes: int | None = None) -> int:
    """How far a gzip file may inflate: its content's own estimate fits what the task may
    take (its limit, or this machine's memory budget)."""
    may_use = task.memory_limit_bytes or memory_budget_bytes()
    size = part.size_bytes if compressed_bytes is None else compressed_bytes
    return min(decompression_cap(size),
               max_inflated_bytes(part.path, may_use, task.solution.bytes_per_sample))


def _read(task: TaskSpec, part: InputFile, watch: Stopwatch) -> Recording:
    """Fetch and decode one input file, checking that its bytes are the cataloged ones."""
    source = Store(part.location, dict(task.storage_options))
    with watch.stage("fetch"):
        data = source.read_bytes(part.path)
    # The bytes are hashed on a second thread while they are decoded (hashlib releases
    # the GIL): the check costs CPU, not time on the task's path. A file whose bytes
    # are not the cataloged ones is never processed, whatever its decoder said.
    digest = _Digest(data)
    inflate_cap = _inflate_cap(task, part, len(data))  # a gzip inflates no further
    try:
        with watch.stage("decode"):
            recording = read_recording(data, part.uri, device_time_zone=task.device_time_zone,
                                       max_decompressed_bytes=inflate_cap)
    finally:
        with watch.stage("verify"):
            changed = digest.hexdigest() != part.sha256
        if changed:
            raise WearflowError("file changed since it was cataloged; it will be re-planned",
                                subject=part.uri) from None
    return recording


def _input_refs(task: TaskSpec) -> InputRef | list[InputRef]:
    """The provenance of the input: one file, or every recording combined."""
    refs = [InputRef(uri=p.uri, sha256=p.sha256, size_bytes=p.size_bytes,
                     participant=task.participant, side=task.side) for p in task.inputs]
    return refs[0] if len(refs) == 1 else refs


SAME_SOFTWARE = ("start the workers from the same image/version as the coordinator, "
                 "then `wearflow retry` the file")


def _planned_solution(task: TaskSpec) -> Solution:
    """The solution the task was planned with, run by the software it was planned with,
    or a refusal (:class:`SoftwareMismatchError`, not retried): a worker with another
    wearflow, another environment or a pipeline file edited between planning and
    execution would give a result under a task key and provenance that do not describe
    it. The solution's environment is built from the lock the task carries."""
    here = worker_name()
    if task.wearflow_version != installed_version():
        raise SoftwareMismatchError(
            f"worker {here} runs wearflow {installed_version()}, the coordinator "
            f"{task.wearflow_version}: task refused; {SAME_SOFTWARE}", subject=task.uri)
    solution = load_solution(task.solution, task.environment_lock or None)
    lock = solution.environment_lock
    theirs = task.environment_lock_sha256
    mine = hashlib.sha256(lock.encode()).hexdigest() if lock else ""
    if mine != theirs:
        raise SoftwareMismatchError(
            f"worker {here} built solution {solution.name}'s environment from lock "
            f"{mine[:12] or '(none)'}, the coordinator planned it with lock "
            f"{theirs[:12] or '(none)'}: task refused; {SAME_SOFTWARE}", subject=task.uri)
    if solution.fingerprint != task.solution_fingerprint:
        raise SoftwareMismatchError(
            f"worker {here} has solution {solution.name} with fingerprint "
            f"{solution.fingerprint[:12]}..., the coordinator planned it with "
            f"{task.solution_fingerprint[:12]}...: task refused; if the pipeline file was "
            "edited since, the next run plans the file again with it; otherwise "
            f"{SAME_SOFTWARE}", subject=task.uri)
    return solution


class _Digest:
    """The sha256 of ``data``, computed on a thread of its own."""

    def __init__(self, data: bytes) -> None:
        self._value = ""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(data,),
                                        name="wearflow-verify", daemon=True)
        self._thread.start()

    def _run(self, data: bytes) -> None:
        try:
            self._value = sha256_bytes(data)
        except BaseException as exc:  # raised again on the task's thread
            self._error = exc

    def hexdigest(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _quality(task: TaskSpec, summary: RecordingSummary, result: FileResult,
             parts: Sequence[Part] = ()
             ) -> tuple[dict[str, Any], tuple[str, ...], dict[str, pd.DataFrame]]:
    """The file's qc.json figures, every flag, and the tables with the per-day QC table."""
    flags = (*summary.flags, *result.flags, *window_flags(summary, task.metadata))
    tables = {**result.tables, QC_TABLE: day_validity(
        result.tables, float(task.metadata.get("min_wear_hours", 16)),
        (task.metadata.get("protocol_start"), task.metadata.get("protocol_end")))}
    qc = {
        "n_samples": summary.n_samples,
        "sampling_rate_hz": summary.sampling_rate_hz,
        "start_utc": iso_utc(summary.first_s),
        "end_utc": iso_utc(summary.last_s),
        "duration_h": round(summary.duration_s / 3600.0, 6),
        "has_temperature": summary.has_temperature,
        "device": {"format": summary.device.format, "serial": summary.device.serial,
                   "model": summary.device.model, "firmware": summary.device.firmware},
        **summary_qc(summary),
        "flags": list(flags),
        **dict(result.qc),
    }
    if parts:  # several recordings combined: each one's span and what of it was used
        qc["recordings"] = [dataclasses.asdict(p) for p in parts]
    return qc, flags, tables
