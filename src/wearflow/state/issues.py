"""The issues queue: problems people read, opened, refreshed and closed by each run."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from wearflow.clock import utc_now
from wearflow.errors import StateError
from wearflow.issue import IssueSpec
from wearflow.state.engine import retry_on_conflict
from wearflow.state.tables import IssueRow


class IssueRepository:
    """The ``issues`` table: one row per distinct problem (its dedupe key)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @retry_on_conflict
    def sync(self, study: str, issues: Sequence[IssueSpec],
             close_missing: bool = True) -> list[IssueSpec]:
        """Open or refresh ``issues``; close open ones not listed. Returns the new ones."""
        now = utc_now()
        new: list[IssueSpec] = []
        with Session(self._engine) as s, s.begin():
            rows = {r.dedupe_key: r for r in s.scalars(select(IssueRow)
                                                       .where(IssueRow.study == study))}
            keys = set()
            for spec in issues:
                key = spec.dedupe_key(study)
                if key in keys:
                    continue  # the same problem seen twice in one run is one issue
                keys.add(key)
                row = rows.get(key)
                if row is None:
                    s.add(IssueRow(dedupe_key=key, tag=spec.tag, study=study,
                                   participant=spec.participant, uri=spec.uri,
                                   message=spec.message, resolution=spec.resolution,
                                   first_seen_utc=now, last_seen_utc=now, open=True))
                    new.append(spec)
                elif row.resolved_reason is None:  # a hand-resolved issue stays closed
                    if not row.open:
                        new.append(spec)
                    row.open, row.last_seen_utc = True, now
            if close_missing:
                for key, row in rows.items():
                    if row.open and key not in keys:
                        row.open = False
        return new

    def open(self, study: str, tag: str | None = None) -> list[IssueRow]:
        """The open issues of ``study`` (of one ``tag``), by tag, file and id."""
        with Session(self._engine, expire_on_commit=False) as s:
            q = select(IssueRow).where(IssueRow.open, IssueRow.study == study)
            if tag:
                q = q.where(IssueRow.tag == tag)
            return list(s.scalars(q.order_by(IssueRow.tag, IssueRow.uri, IssueRow.id)))

    def open_summary(self, study: str, tags: Iterable[str]) -> list[tuple[str, int, str, str]]:
        """Per tag of ``tags`` with open issues: (tag, how many, when the first of them was
        first seen, the oldest one as ``file: message``), by tag."""
        out = []
        with Session(self._engine) as s:
            for tag in sorted(set(tags)):
                n, first = s.execute(select(func.count(), func.min(IssueRow.first_seen_utc))
                                     .where(IssueRow.open, IssueRow.study == study,
                                            IssueRow.tag == tag)).one()
                if not n:
                    continue
                uri, message = s.execute(select(IssueRow.uri, IssueRow.message).where(
                    IssueRow.open, IssueRow.study == study, IssueRow.tag == tag)
                    .order_by(IssueRow.id).limit(1)).one()
                name = (uri or "").rsplit("/", 1)[-1]
                out.append((tag, int(n), str(first), f"{name}: {message}" if name else message))
        return out

    def resolve(self, issue_id: int, reason: str) -> IssueRow:
        """Close an issue by hand; it stays closed while its cause persists."""
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = s.get(IssueRow, issue_id)
            if row is None:
                raise StateError("no such issue", subject=f"issue {issue_id}")
            row.open, row.resolved_reason = False, reason
            return row
