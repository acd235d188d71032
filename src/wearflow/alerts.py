"""Alerts, pure: what the state database says about a study -> the alerts that fire.

The rules are the study file's ``alerts:`` section (:class:`wearflow.config.AlertsConfig`);
the facts (:class:`AlertFacts`) are read from the state by the alerts service. Each
firing alert has a stable key, so that the alerts table
(:mod:`wearflow.state.alerts`) sees the same alert firing across evaluations and tells
people once when it fires and once when it clears:

===================  ==========================  ==============================================
rule                 key                         fires while
===================  ==========================  ==============================================
``run_failed``       ``run_failed``              the latest run that is not running ended with
                                                 failed files or tasks, or died unfinished
``stalled_minutes``  ``stalled_minutes``         tasks are pending or running and none has
                                                 finished for that long
``failed_percent``   ``failed_percent``          more than that share of the attempts finished
                                                 in the last ``window_minutes`` failed
``issue_tags``       ``issue_tags:<TAG>``        an issue with the tag is open (one per tag)
===================  ==========================  ==============================================

Deliveries (one per alert and target) follow :data:`MAX_DELIVERY_ATTEMPTS` and
:func:`retry_delay_s`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from wearflow.clock import iso, parse_iso
from wearflow.config_sections import AlertsConfig
from wearflow.delivery import Message
from wearflow.errors import one_line

Rule = Literal["run_failed", "stalled_minutes", "failed_percent", "issue_tags"]
NoticeKind = Literal["fired", "resolved"]  # what a delivery tells: it fired, or it cleared
DeliveryState = Literal["pending", "delivered", "failed"]

# a delivery that failed is tried again at the next evaluation after retry_delay_s, at
# most this many times in all (per notice: the resolved notice has its own attempts)
MAX_DELIVERY_ATTEMPTS = 8
_FIRST_RETRY_S, _LONGEST_RETRY_S = 60.0, 3600.0


def retry_delay_s(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed try: 1, 2, 4, ... minutes, at most
    an hour."""
    return min(_LONGEST_RETRY_S, _FIRST_RETRY_S * 2.0 ** max(0, attempts - 1))


@dataclass(frozen=True)
class Alert:
    """One firing alert, as a rule sees it now.

    Attributes
    ----------
    key
        Stable across evaluations while the same problem lasts (see the module's table).
    rule
        The study-file key of the rule that fired.
    message
        One line saying what is wrong.
    since_utc
        When the problem began, as far as the state tells (ISO 8601 UTC).
    """

    key: str
    rule: Rule
    message: str
    since_utc: str


@dataclass(frozen=True)
class RunFacts:
    """The latest run that is not running: finished, or dead (its coordinator gone)."""

    run_id: str
    started_utc: str
    finished_utc: str | None
    host: str
    dead: bool
    failed_files: int  # files failed (or held) at its end, from its counts
    failed_tasks: int  # tasks it failed for good, from its attempts


@dataclass(frozen=True)
class IssueFacts:
    """The open issues of one tag."""

    tag: str
    count: int
    first_seen_utc: str
    example: str  # one of them, in one line


@dataclass(frozen=True)
class AlertFacts:
    """What the rules read, gathered from the state database at one moment.

    ``outstanding_tasks`` are the current tasks (of current, present, included files) that
    are pending or running; ``outstanding_since_utc`` is when the oldest of them was
    planned; ``last_finished_utc`` is when the last task finished (done, or failed for
    good). ``window_*`` count the attempts finished in the rule's window (transient
    failures included).
    """

    latest_run: RunFacts | None = None
    outstanding_tasks: int = 0
    outstanding_since_utc: str | None = None
    last_finished_utc: str | None = None
    window_attempts: int = 0
    window_failed: int = 0
    window_first_failed_utc: str | None = None
    open_issues: tuple[IssueFacts, ...] = ()


def evaluate(rules: AlertsConfig, facts: AlertFacts, now: datetime) -> tuple[Alert, ...]:
    """The alerts that fire at ``now`` (aware, UTC), sorted by key."""
    found = [*_run_failed(rules, facts), *_stalled(rules, facts, now),
             *_failed_percent(rules, facts, now), *_issues(rules, facts)]
    return tuple(sorted(found, key=lambda a: a.key))


def _run_failed(rules: AlertsConfig, facts: AlertFacts) -> list[Alert]:
    run = facts.latest_run
    if not rules.run_failed or run is None:
        return []
    if run.dead:
        return [Alert("run_failed", "run_failed", one_line(
            f"run {run.run_id} died unfinished: its coordinator process on {run.host} is "
            f"gone (started {run.started_utc})"), run.started_utc)]
    if run.failed_files or run.failed_tasks:
        return [Alert("run_failed", "run_failed", one_line(
            f"run {run.run_id} ended with {_n(run.failed_files, 'failed file')} "
            f"({_n(run.failed_tasks, 'task')} failed in this run); see `wearflow status`"),
            run.finished_utc or run.started_utc)]
    return []


def _stalled(rules: AlertsConfig, facts: AlertFacts, now: datetime) -> list[Alert]:
    if rules.stalled_minutes is None or not facts.outstanding_tasks:
        return []
    marks = [t for t in (facts.last_finished_utc, facts.outstanding_since_utc) if t]
    if not marks:
        return []
    since = max(marks, key=parse_iso)  # the work was there and nothing finished since
    if now - parse_iso(since) < timedelta(minutes=rules.stalled_minutes):
        return []
    last = facts.last_finished_utc or "never"
    return [Alert("stalled_minutes", "stalled_minutes", one_line(
        f"stalled: no task has finished for more than {rules.stalled_minutes:g} minutes "
        f"while {_n(facts.outstanding_tasks, 'task')} "
        f"{'is' if facts.outstanding_tasks == 1 else 'are'} pending or running (last "
        f"finished: {last})"), since)]


def _failed_percent(rules: AlertsConfig, facts: AlertFacts, now: datetime) -> list[Alert]:
    if rules.failed_percent is None or not facts.window_attempts:
        return []
    percent = 100.0 * facts.window_failed / facts.window_attempts
    if percent <= rules.failed_percent:
        return []
    return [Alert("failed_percent", "failed_percent", one_line(
        f"{facts.window_failed} of {_n(facts.window_attempts, 'task attempt')} "
        f"({percent:.0f}%) finished in the last {rules.window_minutes:g} minutes failed "
        f"(alert above {rules.failed_percent:g}%)"),
        facts.window_first_failed_utc or iso(now))]


def _issues(rules: AlertsConfig, facts: AlertFacts) -> list[Alert]:
    wanted = {tag.value for tag in rules.issue_tags}
    return [Alert(f"issue_tags:{i.tag}", "issue_tags", one_line(
        f"{_n(i.count, f'open {i.tag} issue')}, e.g. {i.example}"), i.first_seen_utc)
        for i in facts.open_issues if i.tag in wanted and i.count]


def _n(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Delivery:
    """Telling one target about one alert: its notice (fired or resolved) and how that went.

    Attributes
    ----------
    target
        ``"webhook"`` or ``"email"`` (never the URL or an address list).
    notice
        ``"fired"`` until the alert clears, then ``"resolved"``.
    state
        ``"pending"`` (not tried yet, or being tried), ``"delivered"``, or ``"failed"``
        (the last try failed; tried again at ``next_retry_utc``, or never when that is
        None: the attempts are used up).
    attempts
        Tries of this notice so far.
    next_retry_utc
        When a pending or failed notice may be tried (again); None: at once (pending), or
        never (failed).
    last_error
        Why the last try failed, in one line, credentials cut.
    delivered_utc
        When it was delivered.
    """

    target: str
    notice: NoticeKind
    state: DeliveryState = "pending"
    attempts: int = 0
    next_retry_utc: str | None = None
    last_error: str | None = None
    delivered_utc: str | None = None

    def due(self, now_utc: str) -> bool:
        """Whether to try it at ``now_utc`` (ISO 8601 UTC, as :func:`wearflow.clock.iso`)."""
        if self.state == "delivered" or self.attempts >= MAX_DELIVERY_ATTEMPTS:
            return False
        return self.next_retry_utc is None or self.next_retry_utc <= now_utc

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "notice": self.notice, "state": self.state,
                "attempts": self.attempts, "next_retry_utc": self.next_retry_utc,
                "last_error": self.last_error, "delivered_utc": self.delivered_utc}


@dataclass(frozen=True)
class AlertRecord:
    """One alert as the alerts table keeps it (one row per key).

    Attributes
    ----------
    key, rule, message, since_utc
        As :class:`Alert`; ``message`` and ``since_utc`` as last seen firing.
    first_fired_utc
        When it (last) began to fire.
    last_evaluated_utc
        The last evaluation of the study's alerts.
    cleared_utc
        When it cleared; None while it fires.
    deliveries
        One per target, sorted by target.
    """

    key: str
    rule: str
    message: str
    since_utc: str
    first_fired_utc: str
    last_evaluated_utc: str
    cleared_utc: str | None
    deliveries: tuple[Delivery, ...]

    @property
    def firing(self) -> bool:
        return self.cleared_utc is None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "rule": self.rule, "message": self.message,
                "status": "firing" if self.firing else "cleared",
                "since_utc": self.since_utc, "first_fired_utc": self.first_fired_utc,
                "last_evaluated_utc": self.last_evaluated_utc,
                "cleared_utc": self.cleared_utc,
                "deliveries": [d.to_json() for d in self.deliveries]}


def compose(study: str, record: AlertRecord, notice: NoticeKind) -> Message:
    """The message telling that ``record`` fired or was resolved: an e-mail subject and
    text, and the webhook's JSON."""
    word = "FIRING" if notice == "fired" else "RESOLVED"
    subject = one_line(f"[wearflow] {study}: {word} {record.rule}: {record.message}", 200)
    lines = [f"Study: {study}", f"Alert: {record.key} ({word.lower()})",
             f"What: {record.message}", f"Since: {record.since_utc}",
             f"Fired: {record.first_fired_utc}"]
    if notice == "resolved":
        lines.append(f"Cleared: {record.cleared_utc}")
    lines.append("")
    lines.append("`wearflow alerts` lists the study's alerts; `wearflow status` and "
                 "`wearflow issues` say more.")
    payload = {"study": study, "key": record.key, "rule": record.rule,
               "status": "firing" if notice == "fired" else "resolved",
               "message": record.message, "since_utc": record.since_utc,
               "fired_utc": record.first_fired_utc, "cleared_utc": record.cleared_utc}
    return Message(subject=subject, text="\n".join(lines) + "\n", payload=payload)


def window_start(rules: AlertsConfig, now: datetime) -> str:
    """The start of the ``failed_percent`` window ending at ``now``."""
    return iso(now - timedelta(minutes=rules.window_minutes))
