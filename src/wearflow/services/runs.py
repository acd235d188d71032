"""The runs of a study: when each ran and for whom, what its tasks did and what they cost.

:func:`list_runs` sums up every run (``wearflow runs``); :func:`run_detail` gives one
run with every attempt at a task it made, in start order (``wearflow runs STUDY RUN``,
and the input of a run report). Runs made before schema revision 0004 have no attempts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from wearflow.clock import parse_iso
from wearflow.config import Study
from wearflow.errors import StateError
from wearflow.state import State
from wearflow.state.attempts import Attempt, AttemptTotals, Stages
from wearflow.state.runs import RunRecord

__all__ = ["MIN_RUN_ID_PREFIX", "Attempt", "RunDetail", "RunStatus", "RunSummary",
           "list_runs", "run_detail"]

RunStatus = Literal["finished", "running", "unfinished"]
MIN_RUN_ID_PREFIX = 6  # characters of a run id that name it (a full id is 24)
_NO_ATTEMPTS = AttemptTotals(0, 0, 0, 0, 0.0, 0)


@dataclass(frozen=True)
class RunSummary:
    """One run of a study, summed up.

    Attributes
    ----------
    run_id
        The run's id (``<UTC start, to the second>-<8 hex>``).
    status
        ``"finished"``; ``"running"`` (not finished, and its coordinator process is
        alive, or on another host where it cannot be checked); ``"unfinished"`` (not
        finished and its coordinator process on this host is gone: killed, or crashed).
    started_utc, finished_utc
        ISO 8601 UTC; ``finished_utc`` is None unless finished.
    duration_s
        Seconds from start to finish; None unless finished.
    user
        Who ran it (as the audit trail names them).
    host
        The machine of its coordinator.
    counts
        What the run recorded when it finished (empty unless finished): tasks
        ``executed``, and the study's files ``done`` and ``failed`` at its end.
    attempts
        Attempts at tasks the run recorded (retries included).
    tasks_done
        Tasks the run finished done.
    tasks_failed
        Tasks the run failed for good (transient failures with attempts left are
        counted in ``tasks_retried`` instead).
    tasks_retried
        Tasks the run requeued at least once after a transient failure.
    cpu_s
        CPU seconds of the worker processes over all the run's attempts.
    peak_rss_bytes
        The largest peak resident memory of a worker process during any one attempt
        (0 when none was measured).
    data_h
        Hours of recording the run's done attempts processed.
    """

    run_id: str
    status: RunStatus
    started_utc: str
    finished_utc: str | None
    duration_s: float | None
    user: str
    host: str
    counts: Mapping[str, int]
    attempts: int
    tasks_done: int
    tasks_failed: int
    tasks_retried: int
    cpu_s: float
    peak_rss_bytes: int
    data_h: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-ready values."""
        return {"run_id": self.run_id, "status": self.status,
                "started_utc": self.started_utc, "finished_utc": self.finished_utc,
                "duration_s": self.duration_s, "user": self.user, "host": self.host,
                "counts": dict(self.counts), "attempts": self.attempts,
                "tasks_done": self.tasks_done, "tasks_failed": self.tasks_failed,
                "tasks_retried": self.tasks_retried, "cpu_s": self.cpu_s,
                "peak_rss_bytes": self.peak_rss_bytes, "data_h": self.data_h}


@dataclass(frozen=True)
class RunDetail:
    """One run: its summary, what it ran with, and every attempt at a task it made.

    Attributes
    ----------
    run
        The run summed up, as :func:`list_runs` gives it.
    study
        The study's name (``study:`` of the study file).
    study_fingerprint
        The fingerprint of the study's configuration the run used.
    pid
        The process id of its coordinator on ``run.host``.
    config
        The study's configuration the run used (the study file, resolved).
    attempts
        Every attempt at a task the run recorded, by start time and task key.
    """

    run: RunSummary
    study: str
    study_fingerprint: str
    pid: int
    config: Mapping[str, Any]
    attempts: tuple[Attempt, ...]

    @property
    def workers(self) -> tuple[str, ...]:
        """The worker processes that reported an attempt (``"<hostname>:<pid>"``), sorted."""
        return tuple(sorted({a.worker for a in self.attempts if a.worker}))

    @property
    def stage_s(self) -> dict[str, float]:
        """Wall seconds per stage, summed over the attempts, in the order stages ran."""
        return _stage_totals(a.stage_s for a in self.attempts)

    @property
    def stage_cpu_s(self) -> dict[str, float]:
        """CPU seconds (of the threads that ran the tasks) per stage, summed likewise."""
        return _stage_totals(a.stage_cpu_s for a in self.attempts)

    def to_json(self) -> dict[str, Any]:
        """The detail as JSON-ready values."""
        return {"run": self.run.to_json(), "study": self.study,
                "study_fingerprint": self.study_fingerprint, "pid": self.pid,
                "config": dict(self.config), "workers": list(self.workers),
                "stage_s": self.stage_s, "stage_cpu_s": self.stage_cpu_s,
                "attempts": [a.to_json() for a in self.attempts]}


def list_runs(study: Study, limit: int | None = None) -> list[RunSummary]:
    """Every run of ``study`` (or the newest ``limit``), newest first."""
    with State(study.state_url) as state:
        records = state.runs.for_study(study.study)[:limit]
        # summing every attempt of every run reads them all; a few runs, only theirs
        totals = (state.attempts.totals() if limit is None else
                  {run: t for r in records for run, t in state.attempts.totals(r.id).items()})
        dead = state.runs.dead()
    return [_summary(r, totals.get(r.id, _NO_ATTEMPTS), dead) for r in records]


def run_detail(study: Study, run_id: str) -> RunDetail:
    """One run of ``study`` and its attempts; ``run_id`` may be the first
    :data:`MIN_RUN_ID_PREFIX` or more characters of the id.

    Raises
    ------
    StateError
        No run of the study has that id (or prefix), the prefix is shorter than
        :data:`MIN_RUN_ID_PREFIX` characters, or it names several runs.
    """
    wanted = run_id.strip()
    if len(wanted) < MIN_RUN_ID_PREFIX:
        raise StateError(f"too short for a run id of study {study.study}: give at least "
                         f"{MIN_RUN_ID_PREFIX} characters (`wearflow runs` lists the runs)",
                         subject=wanted)
    with State(study.state_url) as state:
        matches = state.runs.starting_with(study.study, wanted)
        if not matches:
            raise StateError(f"no run of study {study.study} has this id "
                             "(`wearflow runs` lists the runs)", subject=wanted)
        exact = [r for r in matches if r.id == wanted]
        if len(matches) > 1 and not exact:
            shown = ", ".join(r.id for r in matches[:3]) + (", ..." if len(matches) > 3 else "")
            raise StateError(f"names {len(matches)} runs of study {study.study} ({shown}); "
                             "give more characters of the run id", subject=wanted)
        record = (exact or matches)[0]
        attempts = state.attempts.for_run(record.id)
        totals = state.attempts.totals(record.id).get(record.id, _NO_ATTEMPTS)
        dead = state.runs.dead()
    return RunDetail(run=_summary(record, totals, dead), study=record.study,
                     study_fingerprint=record.study_fingerprint, pid=record.pid,
                     config=record.config, attempts=tuple(attempts))


def _summary(record: RunRecord, totals: AttemptTotals, dead: set[str]) -> RunSummary:
    finished = record.finished_utc
    status: RunStatus = ("finished" if finished is not None
                         else "unfinished" if record.id in dead else "running")
    return RunSummary(
        run_id=record.id, status=status, started_utc=record.started_utc,
        finished_utc=finished,
        duration_s=None if finished is None else (
            parse_iso(finished) - parse_iso(record.started_utc)).total_seconds(),
        user=record.user, host=record.host, counts=record.counts,
        attempts=totals.attempts, tasks_done=totals.done, tasks_failed=totals.failed,
        tasks_retried=totals.retried, cpu_s=totals.cpu_s,
        peak_rss_bytes=totals.peak_rss_bytes, data_h=round(totals.data_s / 3600.0, 6))


def _stage_totals(per_attempt: Iterable[Stages]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for stages in per_attempt:
        for stage, seconds in stages:
            totals[stage] = totals.get(stage, 0.0) + seconds
    return totals
