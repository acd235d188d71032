"""The task contract: one sensor file under one solution, from planner to worker to state.

Every layer speaks these shapes and no other:

* :class:`TaskSpec`: everything a worker needs to run one task (small, picklable);
* :class:`TaskRecord`: a task as the planner decides it and the state stores it
  (the columns of the ``tasks`` table; the state converts its rows at its edge);
* :class:`TaskOutcome`: what a worker returns (done, or failed with a tag and reason);
* :class:`TaskEvent`: what an executor yields (started, finished with its outcome);
* :class:`TaskState`: the states a task moves through.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from importlib.metadata import version
from typing import Any, Literal, NamedTuple

from wearflow.config import SolutionConfig
from wearflow.errors import Tag, one_line


class TaskState(StrEnum):
    """Where a task stands. Stored as its string value."""

    PENDING = "pending"  # planned, runs at the next chance
    WAITING = "waiting"  # a requirement is missing (metadata, ...); runs when it arrives
    RUNNING = "running"  # claimed by a run under a lease
    DONE = "done"  # its result is written
    FAILED = "failed"  # it failed for good, with a tag and a reason
    EXCLUDED = "excluded"  # its file was excluded by hand (counted per file)


TASK_STATES = tuple(s.value for s in TaskState)
# States a plan never overwrites: the task finished, or belongs to whoever claimed it.
SETTLED_STATES = (TaskState.DONE, TaskState.FAILED, TaskState.RUNNING)


@lru_cache(maxsize=1)
def installed_version() -> str:
    """The wearflow version installed in this process's environment."""
    return version("wearflow")


@dataclass(frozen=True)
class InputFile:
    """One more recording a task combines with its own file (same wrist, same visit)."""

    file_id: int
    uri: str
    location: str
    path: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class TaskSpec:
    """Everything a worker needs for one task; small and picklable."""

    key: str
    file_id: int
    uri: str
    location: str
    path: str
    sha256: str
    size_bytes: int
    participant: str
    side: str
    solution: SolutionConfig
    solution_version: str
    solution_fingerprint: str
    study: str
    study_fingerprint: str
    output: str
    device_time_zone: str
    user: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    memory_bytes: int = 0  # estimated peak memory (see wearflow.memory)
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    visit: str = ""
    # the other recordings of the same wrist and visit, combined with this file's in
    # time order (a device restart, a battery swap); empty for one file
    parts: tuple[InputFile, ...] = ()
    # the task's limits (the study's task_timeout_s and task_memory_limit_gb): wall-clock
    # seconds, and the memory it may take on top of its worker's own (None: none known
    # here; a local executor gives its memory budget)
    timeout_s: float | None = None
    memory_limit_bytes: int | None = None
    # the software the coordinator planned it with; a worker runs only the same (see
    # wearflow.worker): its wearflow version, and for a solution with its own environment
    # the lock (hashes included) the study stored, which the worker builds exactly
    wearflow_version: str = field(default_factory=installed_version)
    environment_lock: str = field(default="", repr=False)

    @property
    def environment_lock_sha256(self) -> str:
        """The sha256 of :attr:`environment_lock`; "" for a solution without its own
        environment."""
        if not self.environment_lock:
            return ""
        return hashlib.sha256(self.environment_lock.encode()).hexdigest()

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def inputs(self) -> tuple[InputFile, ...]:
        """Every file the task reads: its own, then its parts."""
        own = InputFile(self.file_id, self.uri, self.location, self.path, self.sha256,
                        self.size_bytes)
        return (own, *self.parts)


class TaskRecord(NamedTuple):
    """One task as planned and stored: the columns of the ``tasks`` table, in order.

    A named tuple, not an ORM object: the planner and ``status`` handle up to
    100,000 at a time. The planner fills the first columns; the rest are the
    state's (leases, attempts, results).
    """

    key: str
    file_id: int
    solution: str
    solution_version: str
    solution_fingerprint: str
    participant: str | None
    side: str | None
    state: str
    current: bool = True
    lease_until_utc: str | None = None
    tag: str | None = None
    message: str | None = None
    attempts: int = 0
    retry_after_utc: str | None = None
    run_id: str | None = None
    result_dir: str | None = None
    provenance_sha256: str | None = None
    inputs_json: str = "{}"
    flags_json: str = "[]"
    created_utc: str = ""
    started_utc: str | None = None
    finished_utc: str | None = None
    parts_json: str | None = None  # the other files combined with this one (JSON file ids)

    @property
    def parts(self) -> list[int]:
        """The ids of the other files whose recordings this task combines with its own."""
        return list(json.loads(self.parts_json)) if self.parts_json else []

    @property
    def inputs(self) -> dict[str, str]:
        """The metadata inputs of the task (time zone, required fields, QC window)."""
        return dict(json.loads(self.inputs_json))

    @property
    def flags(self) -> list[str]:
        return list(json.loads(self.flags_json))


@dataclass(frozen=True)
class TaskOutcome:
    """What a worker (or an executor, for a task it could not run) reports."""

    key: str
    state: TaskState  # DONE or FAILED
    started_utc: str
    finished_utc: str
    result_dir: str | None = None
    provenance_sha256: str | None = None
    tag: str | None = None
    message: str | None = None
    flags: tuple[str, ...] = field(default_factory=tuple)
    transient: bool = False  # a failure worth retrying later (storage hiccup, worker died)
    # seconds per stage of a task that ran (fetch, decode, verify, solution, qc, write;
    # a failed one: the stages it reached): wall time, and CPU time of the thread that
    # ran the task
    stage_s: tuple[tuple[str, float], ...] = ()
    stage_cpu_s: tuple[tuple[str, float], ...] = ()
    # what the task cost its worker process (0 and "" when no worker reported: an
    # executor that could not start it, a worker that died): the process's CPU seconds
    # during the task, its peak resident memory (see wearflow.task_meter.TaskMeter), and which
    # worker ran it ("<hostname>:<pid>")
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    worker: str = ""
    data_s: float = 0.0  # seconds of recording a done task processed (hours of data/h)

    @classmethod
    def failed(cls, key: str, started_utc: str, finished_utc: str, message: str, *,
               tag: str = Tag.ERROR.value, transient: bool = False) -> TaskOutcome:
        """A failed task, with its problem tag and a one-line reason."""
        return cls(key, TaskState.FAILED, started_utc, finished_utc, tag=tag,
                   message=one_line(message, 500), transient=transient)


@dataclass(frozen=True)
class TaskEvent:
    """An executor's report: a task started, or finished with its outcome."""

    kind: Literal["started", "finished"]
    key: str
    outcome: TaskOutcome | None = None
