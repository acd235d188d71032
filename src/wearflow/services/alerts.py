"""Alerts about run-time problems of a study: evaluate them, tell people, list them.

:func:`evaluate_alerts` reads the facts the study file's ``alerts:`` rules need from
the state database, evaluates the rules (pure, :func:`wearflow.alerts.evaluate`),
records what fired and cleared in the ``alerts`` table and the audit trail, and sends
every notice that is due: each alert once to each target when it fires and once when it
clears; a failed send is logged (``PIPELINE_ISSUE``) and tried again at a later
evaluation, with backoff, a bounded number of times. ``wearflow run``, ``demo`` and
every ``watch`` cycle call it, and ``watch`` also while idle (a stall is exactly when
nothing runs).

:func:`current_alerts` lists the firing and recently cleared alerts with the state of
their deliveries (``wearflow alerts``, the dashboard).

No credential is logged, recorded or returned: targets are named (``webhook``,
``email``) and described by the webhook's scheme and host only; the SMTP password is
read from the environment variable the study file names, when a mail is sent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from wearflow.alerts import (
    MAX_DELIVERY_ATTEMPTS,
    AlertFacts,
    AlertRecord,
    Delivery,
    IssueFacts,
    NoticeKind,
    RunFacts,
    compose,
    evaluate,
    retry_delay_s,
    window_start,
)
from wearflow.clock import iso
from wearflow.config import Study
from wearflow.delivery import EmailTarget, Target, WebhookTarget
from wearflow.errors import DeliveryError, StateError, Tag, one_line
from wearflow.logs import log_event
from wearflow.notify import study_log
from wearflow.provenance import default_actor
from wearflow.stages.anchor import anchor_trail
from wearflow.state import State
from wearflow.state.audit import AuditEvent

__all__ = ["RECENT_H", "AlertRecord", "AlertsReport", "Delivery", "DeliveryOutcome",
           "alert_targets", "current_alerts", "evaluate_alerts"]

RECENT_H = 24.0  # how long current_alerts lists an alert after it cleared
_RUNS_LOOKED_AT = 20  # the newest runs searched for the latest one that is not running


@dataclass(frozen=True)
class DeliveryOutcome:
    """One try at telling a target about an alert, in one evaluation.

    Attributes
    ----------
    key
        The alert's key.
    target
        ``"webhook"`` or ``"email"`` (the name of the target).
    notice
        ``"fired"`` or ``"resolved"``.
    delivered
        Whether the target took it.
    attempts
        Tries of this notice so far, this one included.
    error
        Why it failed, in one line (no credential); None when delivered.
    next_retry_utc
        When it is tried again; None when delivered or when its attempts are used up.
    """

    key: str
    target: str
    notice: NoticeKind
    delivered: bool
    attempts: int
    error: str | None
    next_retry_utc: str | None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "target": self.target, "notice": self.notice,
                "delivered": self.delivered, "attempts": self.attempts, "error": self.error,
                "next_retry_utc": self.next_retry_utc}


@dataclass(frozen=True)
class AlertsReport:
    """What one evaluation of a study's alerts found and did.

    Attributes
    ----------
    evaluated_utc
        The moment evaluated (``now``).
    firing
        Every alert firing after the evaluation, by key.
    fired
        The alerts that began to fire in this evaluation.
    cleared
        The alerts that cleared in this evaluation.
    delivered
        The notices delivered in this evaluation.
    failed
        The notices that could not be delivered in this evaluation.
    """

    evaluated_utc: str
    firing: tuple[AlertRecord, ...] = ()
    fired: tuple[AlertRecord, ...] = ()
    cleared: tuple[AlertRecord, ...] = ()
    delivered: tuple[DeliveryOutcome, ...] = ()
    failed: tuple[DeliveryOutcome, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"evaluated_utc": self.evaluated_utc,
                "firing": [a.to_json() for a in self.firing],
                "fired": [a.to_json() for a in self.fired],
                "cleared": [a.to_json() for a in self.cleared],
                "delivered": [d.to_json() for d in self.delivered],
                "failed": [d.to_json() for d in self.failed]}


def alert_targets(study: Study) -> list[Target]:
    """The targets the study file's ``alerts:`` names (webhook, e-mail)."""
    config = study.alerts
    targets: list[Target] = []
    if config.webhook:
        targets.append(WebhookTarget(config.webhook))
    if config.email:
        env = config.email.password_env
        targets.append(EmailTarget(config.email, os.environ.get(env) if env else None))
    return targets


def evaluate_alerts(study: Study, now: datetime | None = None, *,
                    targets: Sequence[Target] | None = None) -> AlertsReport:
    """Evaluate the study's alert rules at ``now`` (default: the current time; a naive
    datetime is taken as UTC), record what fired and cleared, and send the notices due.

    ``targets`` replaces the study file's targets (for tests: a
    :class:`~wearflow.delivery.MemoryTarget`). A study without a state database yet has
    nothing to evaluate. A failed delivery never raises: it is in the report's
    ``failed``, the log and the alerts table.

    Raises
    ------
    StateError
        The state database cannot be used.
    """
    moment = _utc(now)
    stamp = iso(moment)
    if not study.has_state():
        return AlertsReport(stamp)
    chosen = list(alert_targets(study) if targets is None else targets)
    by_name = {t.name: t for t in chosen}
    actor = default_actor(study.identity)
    try:
        with study_log(study, f"alerts-{stamp.replace('-', '').replace(':', '')}"), \
                State(study.state_url) as state:
            rules = study.alerts
            facts = _facts(study, state, moment) if rules.has_rules else AlertFacts()
            fired, cleared = state.alerts.sync(study.study, evaluate(rules, facts, moment),
                                               sorted(by_name), stamp)
            _record_changes(study, state, actor, fired, cleared)
            outcomes = _deliver(study, state, actor, by_name, moment)
            anchor_trail(study, state, f"alerts-{stamp}")  # when it recorded anything
            now_known = {a.key: a for a in state.alerts.all(study.study)}
    except SQLAlchemyError as exc:  # e.g. a database briefly locked: the next one retries
        raise StateError(f"cannot evaluate the alerts ({type(exc).__name__}: "
                         f"{one_line(str(getattr(exc, 'orig', None) or exc), 200)})",
                         subject=study.source) from None
    return AlertsReport(  # the alerts as they are after the deliveries
        stamp, firing=tuple(a for a in now_known.values() if a.firing),
        fired=tuple(now_known.get(a.key, a) for a in fired),
        cleared=tuple(now_known.get(a.key, a) for a in cleared),
        delivered=tuple(o for o in outcomes if o.delivered),
        failed=tuple(o for o in outcomes if not o.delivered))


def current_alerts(study: Study, *, now: datetime | None = None,
                   recent_h: float = RECENT_H) -> list[AlertRecord]:
    """The firing alerts (oldest first) and those cleared in the last ``recent_h`` hours
    (newest first), with the state of their deliveries."""
    if not study.has_state():
        return []
    since = iso(_utc(now) - timedelta(hours=recent_h))
    with State(study.state_url) as state:
        records = state.alerts.all(study.study)
    firing = sorted((a for a in records if a.firing), key=lambda a: (a.first_fired_utc, a.key))
    recent = sorted((a for a in records if a.cleared_utc and a.cleared_utc >= since),
                    key=lambda a: (a.cleared_utc or "", a.key), reverse=True)
    return [*firing, *recent]


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _facts(study: Study, state: State, now: datetime) -> AlertFacts:
    """What the study's rules read, from the state (only what a rule in use needs)."""
    rules = study.alerts
    latest = None
    if rules.run_failed:
        dead = state.runs.dead()
        for run in state.runs.newest(study.study, _RUNS_LOOKED_AT):
            if run.finished_utc is None and run.id not in dead:
                continue  # still running (or on another host, where it cannot be checked)
            totals = state.attempts.totals(run.id).get(run.id)
            latest = RunFacts(run.id, run.started_utc, run.finished_utc, run.host,
                              dead=run.finished_utc is None,
                              failed_files=run.counts.get("failed", 0),
                              failed_tasks=totals.failed if totals else 0)
            break
    outstanding, oldest, last = 0, None, None
    if rules.stalled_minutes is not None:
        outstanding, oldest = state.tasks.outstanding()
        last = state.attempts.last_finished()
    attempts, failed, first_failed = 0, 0, None
    if rules.failed_percent is not None:
        attempts, failed, first_failed = state.attempts.finished_between(
            window_start(rules, now), iso(now))
    issues = tuple(IssueFacts(*row) for row in state.issues.open_summary(
        study.study, [tag.value for tag in rules.issue_tags]))
    return AlertFacts(latest_run=latest, outstanding_tasks=outstanding,
                      outstanding_since_utc=oldest, last_finished_utc=last,
                      window_attempts=attempts, window_failed=failed,
                      window_first_failed_utc=first_failed, open_issues=issues)


def _record_changes(study: Study, state: State, actor: str, fired: Sequence[AlertRecord],
                    cleared: Sequence[AlertRecord]) -> None:
    events = [AuditEvent(actor, "alert.fired", f"alert {a.key}",
                         after={"rule": a.rule, "message": a.message,
                                "since_utc": a.since_utc})
              for a in fired]
    events += [AuditEvent(actor, "alert.cleared", f"alert {a.key}",
                          before={"message": a.message, "since_utc": a.since_utc,
                                  "first_fired_utc": a.first_fired_utc},
                          after={"cleared_utc": a.cleared_utc})
               for a in cleared]
    state.audit.record_many(events)
    for a in fired:
        log_event("INFO", f"alert fired: {a.message}", level=logging.WARNING,
                  study=study.study, alert=a.key)
    for a in cleared:
        log_event("INFO", f"alert cleared: {a.message}", study=study.study, alert=a.key)


def _deliver(study: Study, state: State, actor: str, targets: dict[str, Target],
             now: datetime) -> list[DeliveryOutcome]:
    """Send every notice that is due at ``now``; record how each went."""
    stamp = iso(now)
    outcomes: list[DeliveryOutcome] = []
    for record in state.alerts.all(study.study):
        for due in record.deliveries:
            target = targets.get(due.target)
            if target is None or not due.due(stamp):
                continue
            retry_at = iso(now + timedelta(seconds=retry_delay_s(due.attempts + 1)))
            claimed = state.alerts.claim(study.study, record.key, due.target, stamp, retry_at)
            if claimed is None:
                continue  # another process took it
            alert, taken = claimed
            error = None
            try:
                target.send(compose(study.study, alert, taken.notice))
            except DeliveryError as exc:
                error = one_line(str(exc))
            settled = state.alerts.settle(study.study, alert.key, due.target, taken.notice,
                                          stamp, error)
            if settled is None:
                continue  # the alert moved on while it was being sent
            outcome = DeliveryOutcome(alert.key, due.target, taken.notice, error is None,
                                      settled.attempts, error, settled.next_retry_utc)
            outcomes.append(outcome)
            _record_delivery(study, state, actor, target, outcome)
    return outcomes


def _record_delivery(study: Study, state: State, actor: str, target: Target,
                     outcome: DeliveryOutcome) -> None:
    what = f"alert {outcome.key}"
    if outcome.delivered:
        state.audit.record(actor, "alert.delivered", what, after={
            "target": outcome.target, "notice": outcome.notice,
            "attempts": outcome.attempts})
        log_event("INFO", f"{outcome.notice} notice delivered to {target.describe()}",
                  study=study.study, alert=outcome.key)
        return
    later = (f"tried again at {outcome.next_retry_utc}" if outcome.next_retry_utc
             else "given up")
    log_event(Tag.PIPELINE_ISSUE.value,
              f"{outcome.notice} notice not delivered (attempt {outcome.attempts} of "
              f"{MAX_DELIVERY_ATTEMPTS}; {later}): {outcome.error}",
              level=logging.WARNING, study=study.study, alert=outcome.key)
    if outcome.next_retry_utc is None:
        state.audit.record(actor, "alert.undelivered", what, after={
            "target": outcome.target, "notice": outcome.notice,
            "attempts": outcome.attempts, "error": outcome.error})
