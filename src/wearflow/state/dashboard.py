"""Read-only queries for the dashboard (``wearflow serve``): small answers over big tables.

Each query aggregates in the database (GROUP BY, LIMIT), so a page over a study
of 100,000 files reads tens of rows, not 100,000.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import desc, distinct, func, select
from sqlalchemy.engine import Engine

from wearflow.state.tables import (
    AttemptRow,
    FileRow,
    IssueRow,
    ParticipantResultRow,
    TaskRow,
    audit_table,
)


class DashboardQueries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def change_marker(self) -> int:
        """The audit trail's head: every change of the state appends an entry, so an
        unchanged marker means unchanged answers (the dashboard caches on it)."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.max(audit_table.c.seq))).scalar() or 0)

    def task_states(self) -> dict[str, int]:
        """Current tasks of current files, by state."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(TaskRow.state, func.count())
                .join_from(TaskRow, FileRow, TaskRow.file_id == FileRow.id)
                .where(TaskRow.current, FileRow.current, FileRow.present)
                .group_by(TaskRow.state)).all()
        return {str(s): int(n) for s, n in rows}

    def running(self, limit: int = 50) -> list[dict[str, Any]]:
        """Tasks claimed by a run right now: file, solution, run, since when."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(TaskRow.key, FileRow.id, FileRow.uri, TaskRow.solution, TaskRow.run_id,
                       TaskRow.started_utc)
                .join_from(TaskRow, FileRow, TaskRow.file_id == FileRow.id)
                .where(TaskRow.current, TaskRow.state == "running")
                .order_by(TaskRow.started_utc).limit(limit)).all()
        return [{"task": k, "file_id": fid, "uri": uri, "solution": sol, "run_id": run,
                 "started_utc": started} for k, fid, uri, sol, run, started in rows]

    def workers_since(self, since_utc: str) -> list[dict[str, Any]]:
        """Worker processes that finished an attempt since ``since_utc``, with counts."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(AttemptRow.worker, func.count(), func.max(AttemptRow.finished_utc))
                .where(AttemptRow.finished_utc >= since_utc, AttemptRow.worker != "")
                .group_by(AttemptRow.worker).order_by(AttemptRow.worker)).all()
        return [{"worker": w, "attempts": int(n), "last_finished_utc": last}
                for w, n, last in rows]

    def finished_since(self, since_utc: str) -> dict[str, int]:
        """Attempts finished since ``since_utc``, by state (done, failed)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(AttemptRow.state, func.count())
                                .where(AttemptRow.finished_utc >= since_utc)
                                .group_by(AttemptRow.state)).all()
        return {str(s): int(n) for s, n in rows}

    def attempt_counts(self) -> list[tuple[str, str, int]]:
        """Every attempt ever recorded, by state and tag: (state, tag or "", count)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(AttemptRow.state, AttemptRow.tag, func.count())
                                .group_by(AttemptRow.state, AttemptRow.tag)).all()
        return [(str(s), str(t or ""), int(n)) for s, t, n in rows]

    def attempt_spans(self, after_id: int = 0) -> tuple[int, list[tuple[int, str, str]]]:
        """(attempts with an id up to ``after_id``, then (id, started_utc, finished_utc) of
        every attempt after it), for a histogram of task seconds: attempts are appended
        and never changed, so a histogram adds the new ones to what it has counted."""
        with self._engine.connect() as conn:
            before = conn.execute(select(func.count()).select_from(AttemptRow)
                                  .where(AttemptRow.id <= after_id)).scalar() or 0
            rows = conn.execute(select(AttemptRow.id, AttemptRow.started_utc,
                                       AttemptRow.finished_utc)
                                .where(AttemptRow.id > after_id)
                                .order_by(AttemptRow.id)).all()
        return int(before), [(int(i), a, b) for i, a, b in rows]

    def participants(self) -> tuple[int, int]:
        """(participants with a current file, participants with a participant result)."""
        with self._engine.connect() as conn:
            total = conn.execute(select(func.count(distinct(FileRow.participant))).where(
                FileRow.current, FileRow.present, FileRow.kind == "sensor",
                FileRow.participant.is_not(None))).scalar() or 0
            done = conn.execute(select(func.count(distinct(ParticipantResultRow.participant)))
                                ).scalar() or 0
        return int(total), int(done)

    def issue_counts(self, study: str) -> dict[str, int]:
        """Open issues by tag."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(IssueRow.tag, func.count())
                                .where(IssueRow.study == study, IssueRow.open)
                                .group_by(IssueRow.tag)).all()
        return {str(t): int(n) for t, n in sorted(rows)}

    def issues_by_day(self, study: str, since_utc: str) -> list[dict[str, Any]]:
        """Issues first seen per UTC day and tag since ``since_utc`` (problems over time)."""
        day = func.substr(IssueRow.first_seen_utc, 1, 10)
        with self._engine.connect() as conn:
            rows = conn.execute(select(day, IssueRow.tag, func.count())
                                .where(IssueRow.study == study,
                                       IssueRow.first_seen_utc >= since_utc)
                                .group_by(day, IssueRow.tag).order_by(day, IssueRow.tag)).all()
        return [{"day": d, "tag": t, "count": int(n)} for d, t, n in rows]

    def issues(self, study: str, *, tag: str | None = None, participant: str | None = None,
               open_: bool | None = True, uri: str | None = None, limit: int = 200
               ) -> list[dict[str, Any]]:
        """Issues newest first (last seen), filtered."""
        q = (select(IssueRow, FileRow.id.label("file_id"))
             .outerjoin(FileRow, (FileRow.uri == IssueRow.uri) & FileRow.current)
             .where(IssueRow.study == study))
        if uri:
            q = q.where(IssueRow.uri == uri)
        if tag:
            q = q.where(IssueRow.tag == tag)
        if participant:
            q = q.where(IssueRow.participant == participant)
        if open_ is not None:
            q = q.where(IssueRow.open == open_)
        q = q.order_by(desc(IssueRow.last_seen_utc), desc(IssueRow.id)).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [{k: r[k] for k in ("id", "tag", "participant", "uri", "message", "resolution",
                                   "first_seen_utc", "last_seen_utc", "open",
                                   "resolved_reason", "file_id")} for r in rows]

    def file(self, file_id: int) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(FileRow).where(FileRow.id == file_id)).mappings().first()
        return None if row is None else dict(row)

    def versions(self, uri: str) -> list[dict[str, Any]]:
        """Every cataloged version of a file (URI), newest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(FileRow.id, FileRow.sha256, FileRow.size_bytes,
                                       FileRow.first_seen_utc, FileRow.current, FileRow.present)
                                .where(FileRow.uri == uri).order_by(desc(FileRow.id))).all()
        return [dict(r._mapping) for r in rows]

    def tasks_of_file(self, file_id: int) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(TaskRow).where(TaskRow.file_id == file_id)
                                .order_by(desc(TaskRow.current), TaskRow.solution)
                                ).mappings().all()
        keep = ("key", "solution", "solution_version", "state", "current", "tag", "message",
                "attempts", "run_id", "result_dir", "created_utc", "started_utc",
                "finished_utc", "flags_json")
        return [{k: r[k] for k in keep} for r in rows]

    def attempts_of(self, task_keys: Sequence[str]) -> list[dict[str, Any]]:
        if not task_keys:
            return []
        with self._engine.connect() as conn:
            rows = conn.execute(select(AttemptRow).where(AttemptRow.task_key.in_(task_keys))
                                .order_by(AttemptRow.id)).mappings().all()
        return [{**{k: r[k] for k in ("run_id", "task_key", "attempt", "worker", "started_utc",
                                       "finished_utc", "state", "transient", "tag",
                                       "message", "cpu_s", "peak_rss_bytes")},
                 "stage_s": json.loads(r["stage_json"] or "{}").get("wall", {})}
                for r in rows]

    def audit_of(self, objects: Sequence[str], limit: int = 50) -> list[dict[str, Any]]:
        """The latest audit entries about these objects (a file's URI, its results)."""
        if not objects:
            return []
        t = audit_table.c
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.seq, t.entry_utc, t.actor, t.action, t.object,
                                       t.reason).where(t.object.in_(objects))
                                .order_by(desc(t.seq)).limit(limit)).all()
        return [dict(r._mapping) for r in rows]

    def participant_files(self, participant: str) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(FileRow.id, FileRow.uri, FileRow.side, FileRow.visit,
                                       FileRow.excluded_reason, FileRow.parse_error)
                                .where(FileRow.participant == participant, FileRow.current,
                                       FileRow.present).order_by(FileRow.uri)).all()
        return [dict(r._mapping) for r in rows]

    def participant_results(self, participant: str) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(ParticipantResultRow)
                                .where(ParticipantResultRow.participant == participant)
                                .order_by(desc(ParticipantResultRow.created_utc))
                                ).mappings().all()
        return [{k: r[k] for k in ("solution", "visit", "result_dir", "run_id",
                                   "created_utc", "flags_json")} for r in rows]
