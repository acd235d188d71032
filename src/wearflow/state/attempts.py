"""Task attempts: every try at a task, where and when it ran, how it ended, what it cost."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import case, distinct, func, insert, not_, select
from sqlalchemy.engine import Engine

from wearflow.clock import parse_iso, utc_now
from wearflow.state.tables import AttemptRow, TaskRow
from wearflow.task import TaskOutcome, TaskSpec, TaskState

Stages = tuple[tuple[str, float], ...]  # (stage, seconds), in the order the stages ran


@dataclass(frozen=True)
class Attempt:
    """One attempt at one task, as the run that made it recorded it.

    Attributes
    ----------
    id
        The row's id (attempts recorded later have larger ids).
    run_id
        The run that made the attempt.
    task_key
        The task tried.
    attempt
        Which claim of the task it was: 1 for its first, n for its n-th (counted across
        runs; 0 for a task an executor failed without ever claiming it).
    uri
        The task's own file (a task combining several recordings: the one named first).
    solution, participant, visit
        The task's solution, and the participant and visit of its file (visit: ``""``
        when the names give none).
    worker
        The worker process that ran it, ``"<hostname>:<pid>"``; ``""`` when no worker
        reported (an executor could not start the task, or its worker died).
    started_utc, finished_utc
        ISO 8601 UTC.
    state
        ``TaskState.DONE`` or ``TaskState.FAILED``.
    transient
        True when it failed transiently and the task was requeued for another attempt
        (a transient failure whose attempts were used up is a failure for good: False).
    tag, message
        A failure's problem tag and one-line reason; None for a done attempt.
    cpu_s
        CPU seconds of the worker process during the attempt (0 when no worker reported).
    peak_rss_bytes
        Peak resident memory of the worker process during the attempt (see
        :class:`wearflow.task_meter.TaskMeter`; 0 when no worker reported).
    stage_s, stage_cpu_s
        Wall and CPU seconds per stage (fetch, decode, verify, solution, qc, write), in
        the order the stages ran; a failed attempt has the stages it reached.
    """

    id: int
    run_id: str
    task_key: str
    attempt: int
    uri: str
    solution: str
    participant: str
    visit: str
    worker: str
    started_utc: str
    finished_utc: str
    state: TaskState
    transient: bool
    tag: str | None
    message: str | None
    cpu_s: float
    peak_rss_bytes: int
    stage_s: Stages
    stage_cpu_s: Stages

    @property
    def wall_s(self) -> float:
        """Seconds from start to finish, as the coordinator saw them reported."""
        return (parse_iso(self.finished_utc) - parse_iso(self.started_utc)).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """The attempt as JSON-ready values (stage seconds as objects)."""
        return {"id": self.id, "run_id": self.run_id, "task_key": self.task_key,
                "attempt": self.attempt, "uri": self.uri, "solution": self.solution,
                "participant": self.participant, "visit": self.visit, "worker": self.worker,
                "started_utc": self.started_utc, "finished_utc": self.finished_utc,
                "state": self.state.value, "transient": self.transient, "tag": self.tag,
                "message": self.message, "cpu_s": self.cpu_s,
                "peak_rss_bytes": self.peak_rss_bytes, "stage_s": dict(self.stage_s),
                "stage_cpu_s": dict(self.stage_cpu_s)}


class AttemptTotals(NamedTuple):
    """One run's attempts, summed."""

    attempts: int  # every attempt recorded
    done: int  # attempts that ended done
    failed: int  # attempts that failed for good (not requeued)
    retried: int  # tasks requeued at least once for another attempt
    cpu_s: float  # CPU seconds of all attempts
    peak_rss_bytes: int  # the largest peak of any attempt
    data_s: float = 0.0  # seconds of recording the done attempts processed


class AttemptRepository:
    """The ``task_attempts`` table: appended to, one row per outcome a run records."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, run_id: str, task: TaskSpec, outcome: TaskOutcome, *,
               requeued: bool = False) -> None:
        """Record one attempt at ``task``: its ``outcome`` (as the run records it), and
        whether the task was requeued for another attempt. The attempt number is the
        task's claim count, read in the same INSERT."""
        finished = outcome.finished_utc or utc_now()
        claims = select(TaskRow.attempts).where(TaskRow.key == outcome.key).scalar_subquery()
        with self._engine.begin() as conn:
            conn.execute(insert(AttemptRow).values(
                run_id=run_id, task_key=outcome.key, attempt=func.coalesce(claims, 0),
                uri=task.uri, solution=task.solution.name, participant=task.participant,
                visit=task.visit, worker=outcome.worker,
                started_utc=outcome.started_utc or finished, finished_utc=finished,
                state=TaskState(outcome.state).value, transient=requeued, tag=outcome.tag,
                message=outcome.message, cpu_s=outcome.cpu_s,
                peak_rss_bytes=outcome.peak_rss_bytes, data_s=outcome.data_s,
                stage_json=json.dumps({"wall": dict(outcome.stage_s),
                                       "cpu": dict(outcome.stage_cpu_s)})))

    def for_run(self, run_id: str) -> list[Attempt]:
        """The attempts of one run, by start time and task key."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(*AttemptRow.__table__.c)
                                .where(AttemptRow.run_id == run_id)
                                .order_by(AttemptRow.started_utc, AttemptRow.task_key,
                                          AttemptRow.attempt, AttemptRow.id)).all()
        return [_attempt(row) for row in rows]

    def last_finished(self) -> str | None:
        """When the last task finished (done, or failed for good: not requeued)."""
        with self._engine.connect() as conn:
            return conn.scalar(select(func.max(AttemptRow.finished_utc))
                               .where(not_(AttemptRow.transient)))

    def finished_between(self, start_utc: str, end_utc: str) -> tuple[int, int, str | None]:
        """The attempts finished from ``start_utc`` to ``end_utc``: how many, how many
        failed (transient failures included), and when the first failed one finished."""
        failed = AttemptRow.state == TaskState.FAILED.value
        with self._engine.connect() as conn:
            n, n_failed, first = conn.execute(
                select(func.count(), func.sum(case((failed, 1), else_=0)),
                       func.min(case((failed, AttemptRow.finished_utc))))
                .where(AttemptRow.finished_utc >= start_utc,
                       AttemptRow.finished_utc <= end_utc)).one()
        return int(n), int(n_failed or 0), first

    def totals(self, run_id: str | None = None) -> dict[str, AttemptTotals]:
        """Run id -> its attempts summed, for every run that recorded one (or only
        ``run_id``)."""
        failed_for_good = (AttemptRow.state == TaskState.FAILED.value) & not_(
            AttemptRow.transient)
        query = select(
            AttemptRow.run_id, func.count(),
            func.sum(case((AttemptRow.state == TaskState.DONE.value, 1), else_=0)),
            func.sum(case((failed_for_good, 1), else_=0)),
            func.count(distinct(case((AttemptRow.transient, AttemptRow.task_key)))),
            func.sum(AttemptRow.cpu_s), func.max(AttemptRow.peak_rss_bytes),
            func.sum(AttemptRow.data_s),
        ).group_by(AttemptRow.run_id)
        if run_id is not None:
            query = query.where(AttemptRow.run_id == run_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return {run: AttemptTotals(int(n), int(done or 0), int(failed or 0),
                                   int(retried or 0), float(cpu or 0.0), int(peak or 0),
                                   float(data or 0.0))
                for run, n, done, failed, retried, cpu, peak, data in rows}


def _attempt(row: Any) -> Attempt:
    stages = json.loads(row.stage_json or "{}")
    return Attempt(
        id=row.id, run_id=row.run_id, task_key=row.task_key, attempt=row.attempt,
        uri=row.uri, solution=row.solution, participant=row.participant,
        visit=row.visit, worker=row.worker, started_utc=row.started_utc,
        finished_utc=row.finished_utc, state=TaskState(row.state),
        transient=bool(row.transient), tag=row.tag, message=row.message,
        cpu_s=float(row.cpu_s), peak_rss_bytes=int(row.peak_rss_bytes),
        stage_s=tuple((k, float(v)) for k, v in stages.get("wall", {}).items()),
        stage_cpu_s=tuple((k, float(v)) for k, v in stages.get("cpu", {}).items()))
