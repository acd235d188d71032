"""The issues queue: problems people read, opened, refreshed and closed by each run.

Also the outbox of the study's webhook: :meth:`IssueRepository.sync` marks each new issue
as owed to it (in the same transaction that opens it), a sender claims one at a time
(:meth:`~IssueRepository.claim_webhook`: its attempt counted, a lease taken so that no
other sender posts it meanwhile) and settles it (:meth:`~IssueRepository.settle_webhook`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from wearflow.clock import utc_now
from wearflow.errors import StateError
from wearflow.issue import IssueSpec, QueuedIssue
from wearflow.state.engine import retry_on_conflict
from wearflow.state.tables import IssueRow


class IssueRepository:
    """The ``issues`` table: one row per distinct problem (its dedupe key)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @retry_on_conflict
    def sync(self, study: str, issues: Sequence[IssueSpec], close_missing: bool = True,
             webhook_deadline_utc: str | None = None) -> list[IssueSpec]:
        """Open or refresh ``issues``; close open ones not listed. Returns the new ones.

        ``webhook_deadline_utc``: when given (the study has a webhook), each new (or
        reopened) issue is owed to it until then.
        """
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
                    row = IssueRow(dedupe_key=key, tag=spec.tag, study=study,
                                   participant=spec.participant, uri=spec.uri,
                                   message=spec.message, resolution=spec.resolution,
                                   first_seen_utc=now, last_seen_utc=now, open=True)
                    s.add(row)
                    new.append(spec)
                    _owe_webhook(row, now, webhook_deadline_utc)
                elif row.resolved_reason is None:  # a hand-resolved issue stays closed
                    if not row.open:
                        new.append(spec)
                        _owe_webhook(row, now, webhook_deadline_utc)
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

    @retry_on_conflict
    def claim_webhook(self, study: str, now_utc: str, lease_utc: str) -> QueuedIssue | None:
        """The oldest issue of ``study`` owed to the webhook and due at ``now_utc``, taken
        for one try: its attempt counted, not offered again before ``lease_utc`` (should
        its sender die). One past its deadline is given up instead (``expired``). None
        when nothing is due."""
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = s.scalars(
                select(IssueRow).where(IssueRow.study == study, IssueRow.webhook_pending,
                                       or_(IssueRow.webhook_next_utc.is_(None),
                                           IssueRow.webhook_next_utc <= now_utc))
                .order_by(IssueRow.id).limit(1).with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            deadline = row.webhook_deadline_utc or now_utc
            expired = deadline <= now_utc
            last_error = row.webhook_error
            if expired:
                row.webhook_pending = False
                row.webhook_error = (f"given up: not delivered by {deadline} after "
                                     f"{row.webhook_attempts} attempts"
                                     + (f" (last: {last_error})" if last_error else ""))
            else:
                row.webhook_attempts += 1
                row.webhook_next_utc = lease_utc
            return QueuedIssue(
                id=row.id, study=row.study,
                spec=IssueSpec(row.tag, row.message, row.uri, row.participant, row.resolution),
                queued_utc=row.webhook_queued_utc or row.first_seen_utc,
                attempts=row.webhook_attempts, deadline_utc=deadline, expired=expired,
                last_error=last_error)

    @retry_on_conflict
    def settle_webhook(self, issue_id: int, now_utc: str, error: str | None = None) -> None:
        """Record how a claimed try went: delivered (``error`` None), or failed with
        ``error`` (owed still: tried again by the next sender, at the next run)."""
        with Session(self._engine) as s, s.begin():
            row = s.get(IssueRow, issue_id, with_for_update=True)
            if row is None or not row.webhook_pending:
                return
            row.webhook_next_utc = None
            if error is None:
                row.webhook_pending, row.webhook_delivered_utc = False, now_utc
                row.webhook_error = None
            else:
                row.webhook_error = error

    def resolve(self, issue_id: int, reason: str) -> IssueRow:
        """Close an issue by hand; it stays closed while its cause persists."""
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = s.get(IssueRow, issue_id)
            if row is None:
                raise StateError("no such issue", subject=f"issue {issue_id}")
            row.open, row.resolved_reason = False, reason
            return row


def _owe_webhook(row: IssueRow, now_utc: str, deadline_utc: str | None) -> None:
    if deadline_utc is None:
        return
    row.webhook_pending, row.webhook_queued_utc = True, now_utc
    row.webhook_attempts, row.webhook_next_utc = 0, None
    row.webhook_deadline_utc, row.webhook_delivered_utc = deadline_utc, None
    row.webhook_error = None
