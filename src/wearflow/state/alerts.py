"""Alerts: one row per alert key of a study, and how telling each target about it went.

:meth:`AlertRepository.sync` records an evaluation (what fires now; what stopped
firing clears, and gets a resolved notice per target). A delivery is claimed before it is
sent (:meth:`~AlertRepository.claim`: its attempt counted, its next try pushed back), so
that two processes evaluating at once never both send it, and settled after
(:meth:`~AlertRepository.settle`). Rows are read and written under a row lock
(PostgreSQL) or SQLite's one writer, and the writes retried on a conflict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from wearflow.alerts import (
    MAX_DELIVERY_ATTEMPTS,
    Alert,
    AlertRecord,
    Delivery,
    NoticeKind,
)
from wearflow.state.engine import retry_on_conflict
from wearflow.state.tables import AlertRow

Claimed = tuple[AlertRecord, Delivery]  # the alert, and its delivery as claimed


def _deliveries(row: AlertRow) -> tuple[Delivery, ...]:
    return tuple(sorted((Delivery(**d) for d in json.loads(row.deliveries_json or "[]")),
                        key=lambda d: d.target))


def _store(row: AlertRow, deliveries: Sequence[Delivery]) -> None:
    row.deliveries_json = json.dumps([d.to_json() for d in
                                      sorted(deliveries, key=lambda d: d.target)],
                                     sort_keys=True)


def _record(row: AlertRow) -> AlertRecord:
    return AlertRecord(key=row.key, rule=row.rule, message=row.message,
                       since_utc=row.since_utc, first_fired_utc=row.first_fired_utc,
                       last_evaluated_utc=row.last_evaluated_utc,
                       cleared_utc=row.cleared_utc, deliveries=_deliveries(row))


class AlertRepository:
    """The ``alerts`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @retry_on_conflict
    def sync(self, study: str, firing: Sequence[Alert], targets: Sequence[str],
             now_utc: str) -> tuple[list[AlertRecord], list[AlertRecord]]:
        """Record one evaluation: ``firing`` are the alerts that fire at ``now_utc``,
        ``targets`` the names of the targets configured. Returns the alerts that began to
        fire and those that cleared.

        A new (or re-firing) alert gets a pending ``fired`` notice per target; one that
        stops firing is cleared with a pending ``resolved`` notice per target. A firing
        alert keeps its first ``since_utc`` and takes the latest message; a target added
        while it fires gets its ``fired`` notice, a target removed loses its delivery.
        """
        fired: list[AlertRow] = []
        cleared: list[AlertRow] = []
        names = sorted(set(targets))
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            rows = {r.key: r for r in s.scalars(
                select(AlertRow).where(AlertRow.study == study).with_for_update())}
            for alert in firing:
                row = rows.get(alert.key)
                if row is None or row.cleared_utc is not None:
                    if row is None:
                        row = rows[alert.key] = AlertRow(study=study, key=alert.key)
                        s.add(row)
                    row.rule, row.since_utc = alert.rule, alert.since_utc
                    row.first_fired_utc, row.cleared_utc = now_utc, None
                    _store(row, [Delivery(t, "fired") for t in names])
                    fired.append(row)
                else:
                    kept = {d.target: d for d in _deliveries(row)}
                    _store(row, [kept.get(t) or Delivery(t, "fired") for t in names])
                row.message = alert.message
            keys = {a.key for a in firing}
            for key, row in rows.items():
                if key not in keys and row.cleared_utc is None:
                    row.cleared_utc = now_utc
                    _store(row, [Delivery(t, "resolved") for t in names])
                    cleared.append(row)
                row.last_evaluated_utc = now_utc
        return [_record(r) for r in fired], [_record(r) for r in cleared]

    def all(self, study: str) -> list[AlertRecord]:
        """Every alert of ``study``, by key."""
        with Session(self._engine) as s:
            return [_record(r) for r in s.scalars(
                select(AlertRow).where(AlertRow.study == study).order_by(AlertRow.key))]

    @retry_on_conflict
    def claim(self, study: str, key: str, target: str, now_utc: str,
              retry_utc: str) -> Claimed | None:
        """Take the delivery of alert ``key`` to ``target`` for one try, when it is due at
        ``now_utc``: its attempt is counted and its next try set to ``retry_utc`` (should
        this process die while sending). None when it is not due (delivered, tried by
        another process, or its attempts used up)."""
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = s.scalars(select(AlertRow).where(AlertRow.study == study,
                                                   AlertRow.key == key)
                            .with_for_update()).first()
            if row is None:
                return None
            deliveries = {d.target: d for d in _deliveries(row)}
            current = deliveries.get(target)
            if current is None or not current.due(now_utc):
                return None
            deliveries[target] = taken = replace(current, attempts=current.attempts + 1,
                                                 next_retry_utc=retry_utc)
            _store(row, list(deliveries.values()))
            return _record(row), taken

    @retry_on_conflict
    def settle(self, study: str, key: str, target: str, notice: NoticeKind, now_utc: str,
               error: str | None = None) -> Delivery | None:
        """Record how a claimed try went: delivered (``error`` None), or failed with
        ``error`` (tried again at the time the claim set, unless its attempts are used
        up). None when the alert moved on meanwhile (it cleared, or fired again)."""
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = s.scalars(select(AlertRow).where(AlertRow.study == study,
                                                   AlertRow.key == key)
                            .with_for_update()).first()
            if row is None:
                return None
            deliveries = {d.target: d for d in _deliveries(row)}
            current = deliveries.get(target)
            if current is None or current.notice != notice or current.state == "delivered":
                return None
            if error is None:
                done = replace(current, state="delivered", next_retry_utc=None,
                               last_error=None, delivered_utc=now_utc)
            else:
                done = replace(current, state="failed", last_error=error,
                               next_retry_utc=(current.next_retry_utc
                                               if current.attempts < MAX_DELIVERY_ATTEMPTS
                                               else None))
            deliveries[target] = done
            _store(row, list(deliveries.values()))
            return done
