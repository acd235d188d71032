"""Alerts: the rules over the state (pure), the alerts table, delivery to a real local HTTP
receiver and a real local SMTP server (once when an alert fires, once when it clears,
retried with backoff when it fails), `watch` evaluating while idle, the study file's
errors, and no credential anywhere it could leak (log, audit trail, state, output).

"Now" is given to every evaluation (hours after the real time the state was written), so
a stall is made by leaving tasks pending, never by waiting."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from study_helpers import write_csv
from wearflow import load_study, run_study
from wearflow.alerts import (
    MAX_DELIVERY_ATTEMPTS,
    Alert,
    AlertFacts,
    IssueFacts,
    RunFacts,
    evaluate,
)
from wearflow.cli import app
from wearflow.clock import iso
from wearflow.config import Study
from wearflow.config_sections import AlertsConfig
from wearflow.delivery import MemoryTarget
from wearflow.errors import ConfigError
from wearflow.executors import InlineExecutor
from wearflow.services import manual
from wearflow.services.alerts import current_alerts, evaluate_alerts
from wearflow.state import State
from wearflow.watch import watch_study

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: ALERTS
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""
T0 = datetime.now(UTC)  # the real time, about when each test writes its state


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def make_study(root: Path, alerts: str, *, good: int = 0, bad: int = 1) -> Study:
    """A study of ``good`` short recordings and ``bad`` files that fail when read."""
    (root / "raw").mkdir(parents=True)
    (root / "study.yaml").write_text(STUDY + alerts)
    for k in range(1, good + 1):
        write_csv(root / f"raw/P{k}_L.csv", seed=k, hours=0.1)
    for k in range(1, bad + 1):
        (root / f"raw/B{k}_R.csv").write_text("not,a\nrecording\n")
    return load_study(root)


def plan_only(study: Study) -> None:
    """Catalog and plan, run nothing: every task stays pending (a stalled study)."""
    stop = threading.Event()
    stop.set()
    report = run_study(study, executor=InlineExecutor(), stop=stop)
    assert report.executed == 0 and report.files_total


class Receiver:
    """A webhook on 127.0.0.1: keeps every POST; answers with ``statuses`` in turn, then
    200."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.posts: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.posts.append({"path": self.path, "status": status,
                                       "headers": dict(self.headers),
                                       "json": json.loads(body)})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[dict[str, Any]]:
        """The JSON of every POST answered 200."""
        return [p["json"] for p in self.posts if p["status"] == 200]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Inbox:
    """An aiosmtpd handler that keeps every mail, and the logins it accepted."""

    def __init__(self, login: str, password: str) -> None:
        self.mails: list[tuple[list[str], bytes]] = []
        self.logins: list[str] = []
        self._expected = (login.encode(), password.encode())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append((list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        ok = (auth_data.login, auth_data.password) == self._expected
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # a refusal answered 535


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox = Inbox("alerts", "s3cret-smtp-pass")
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port,
                            authenticator=inbox.authenticate, auth_require_tls=False)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def rows(study: Study) -> list[dict[str, Any]]:
    engine = create_engine(study.state_url)
    with engine.connect() as db:
        found = [dict(r._mapping) for r in db.execute(text("select * from alerts"))]
    engine.dispose()
    return found


def log_text(root: Path) -> str:
    return (root / "results/logs/wearflow.log").read_text()


# --- the rules, pure -------------------------------------------------------------------

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(minutes_before: float) -> str:
    return iso(NOW - timedelta(minutes=minutes_before))


def keys(rules: AlertsConfig, facts: AlertFacts) -> list[str]:
    return [a.key for a in evaluate(rules, facts, NOW)]


def test_no_rule_no_alert() -> None:
    facts = AlertFacts(latest_run=RunFacts("r", at(9), at(8), "h", True, 3, 3),
                       outstanding_tasks=5, outstanding_since_utc=at(999),
                       window_attempts=2, window_failed=2,
                       open_issues=(IssueFacts("DATA_ISSUE", 1, at(5), "x"),))
    assert evaluate(AlertsConfig(), facts, NOW) == ()


def test_run_failed_fires_on_failed_files_or_tasks_or_a_dead_run() -> None:
    rules = AlertsConfig(run_failed=True)
    clean = RunFacts("r1", at(10), at(5), "h", dead=False, failed_files=0, failed_tasks=0)
    assert keys(rules, AlertFacts(latest_run=clean)) == []
    assert keys(rules, AlertFacts()) == []
    for run in (RunFacts("r1", at(10), at(5), "h", False, 2, 0),
                RunFacts("r1", at(10), at(5), "h", False, 0, 1)):
        (alert,) = evaluate(rules, AlertFacts(latest_run=run), NOW)
        assert alert.key == "run_failed" and "run r1 ended with" in alert.message
        assert alert.since_utc == at(5)
    (dead,) = evaluate(rules, AlertFacts(latest_run=RunFacts("r2", at(10), None, "hostA",
                                                              True, 0, 0)), NOW)
    assert "run r2 died unfinished" in dead.message and "hostA" in dead.message
    assert dead.since_utc == at(10)


def test_stalled_fires_when_nothing_finished_for_the_minutes_while_work_waits() -> None:
    rules = AlertsConfig(stalled_minutes=30)
    # work waiting for 31 minutes, nothing finished since: stalled since it was planned
    (alert,) = evaluate(rules, AlertFacts(outstanding_tasks=4, outstanding_since_utc=at(31),
                                          last_finished_utc=at(500)), NOW)
    assert alert.key == "stalled_minutes" and alert.since_utc == at(31)
    assert "4 tasks are pending or running" in alert.message
    # work planned 29 minutes ago (the last finish long before): not yet a stall
    assert keys(rules, AlertFacts(outstanding_tasks=4, outstanding_since_utc=at(29),
                                  last_finished_utc=at(500))) == []
    # a task finished 10 minutes ago: work moves
    assert keys(rules, AlertFacts(outstanding_tasks=4, outstanding_since_utc=at(500),
                                  last_finished_utc=at(10))) == []
    assert keys(rules, AlertFacts(outstanding_tasks=4, outstanding_since_utc=at(500),
                                  last_finished_utc=at(30))) == ["stalled_minutes"]
    # nothing to do is no stall
    assert keys(rules, AlertFacts(outstanding_tasks=0, last_finished_utc=at(999))) == []


def test_failed_percent_fires_above_the_share_of_the_window() -> None:
    rules = AlertsConfig(failed_percent=50, window_minutes=30)
    assert keys(rules, AlertFacts(window_attempts=4, window_failed=2)) == []  # not above
    (alert,) = evaluate(rules, AlertFacts(window_attempts=4, window_failed=3,
                                          window_first_failed_utc=at(20)), NOW)
    assert alert.key == "failed_percent" and alert.since_utc == at(20)
    assert "3 of 4 task attempts (75%) finished in the last 30 minutes" in alert.message
    assert keys(rules, AlertFacts()) == []  # no attempt: no share


def test_issue_tags_fire_one_alert_per_tag_named() -> None:
    rules = AlertsConfig.model_validate({"issue_tags": ["DATA_ISSUE", "WAITING"]})
    facts = AlertFacts(open_issues=(IssueFacts("ALGORITHM_ISSUE", 3, at(9), "a"),
                                    IssueFacts("DATA_ISSUE", 2, at(8), "P1_L.cwa: bad"),
                                    IssueFacts("WAITING", 1, at(7), "P2_L.cwa: wait")))
    found = evaluate(rules, facts, NOW)
    assert [a.key for a in found] == ["issue_tags:DATA_ISSUE", "issue_tags:WAITING"]
    assert found[0].message == "2 open DATA_ISSUE issues, e.g. P1_L.cwa: bad"


# --- the alerts table ------------------------------------------------------------------

def test_the_table_fires_once_clears_once_and_fires_again(state_url: str) -> None:
    state = State(state_url)
    try:
        a = Alert("stalled_minutes", "stalled_minutes", "stalled", at(40))
        fired, cleared = state.alerts.sync("S", [a], ["email", "webhook"], at(3))
        assert [r.key for r in fired] == ["stalled_minutes"] and cleared == []
        assert [(d.target, d.notice, d.state) for d in fired[0].deliveries] == [
            ("email", "fired", "pending"), ("webhook", "fired", "pending")]
        # still firing, a newer message, the webhook removed: no new notice
        fired, cleared = state.alerts.sync("S", [Alert(a.key, a.rule, "still", at(1))],
                                           ["email"], at(2))
        assert fired == cleared == []
        (record,) = state.alerts.all("S")
        assert (record.message, record.since_utc, record.first_fired_utc) == (
            "still", at(40), at(3))
        assert [d.target for d in record.deliveries] == ["email"]
        # one process claims the delivery; a second one finds it taken
        claimed = state.alerts.claim("S", a.key, "email", at(2), at(1))
        assert claimed is not None and claimed[1].attempts == 1
        assert state.alerts.claim("S", a.key, "email", at(2), at(1)) is None
        settled = state.alerts.settle("S", a.key, "email", "fired", at(2), "refused")
        assert settled is not None and settled.state == "failed"
        assert settled.next_retry_utc == at(1) and settled.last_error == "refused"
        assert state.alerts.claim("S", a.key, "email", at(1.5), at(0)) is None  # too soon
        # it clears: a resolved notice, the fired one no longer sent
        fired, cleared = state.alerts.sync("S", [], ["email"], at(1))
        assert [(d.notice, d.state, d.attempts) for d in cleared[0].deliveries] == [
            ("resolved", "pending", 0)]
        assert state.alerts.settle("S", a.key, "email", "fired", at(1)) is None
        fired, cleared = state.alerts.sync("S", [a], ["email"], at(0))  # fires again
        assert fired[0].first_fired_utc == at(0) and fired[0].cleared_utc is None
        assert state.alerts.all("OTHER") == []
    finally:
        state.close()


# --- delivery to real servers ----------------------------------------------------------

def test_a_stall_is_posted_once_when_it_fires_and_once_when_it_clears(
        tmp_path: Path, receiver: Receiver) -> None:
    study = make_study(tmp_path, f"alerts:\n  stalled_minutes: 30\n  webhook: {receiver.url}\n")
    plan_only(study)
    assert evaluate_alerts(study, hours(0.1)).firing == ()  # planned 6 minutes ago
    first = evaluate_alerts(study, hours(1))
    assert [a.key for a in first.fired] == ["stalled_minutes"]
    assert [(d.target, d.notice) for d in first.delivered] == [("webhook", "fired")]
    for n in (2, 3, 4):
        again = evaluate_alerts(study, hours(n))
        assert [a.key for a in again.firing] == ["stalled_minutes"]
        assert again.fired == () and again.delivered == ()
    (post,) = receiver.delivered()
    assert post["study"] == "ALERTS" and post["key"] == "stalled_minutes"
    assert post["status"] == "firing" and "1 task is pending or running" in post["message"]
    assert "no task has finished for more than 30 minutes" in post["message"]
    run_study(study, executor=InlineExecutor())  # the task runs (and fails): work moved
    cleared = evaluate_alerts(study, hours(5))
    assert [a.key for a in cleared.cleared] == ["stalled_minutes"]
    for n in (6, 7):
        assert evaluate_alerts(study, hours(n)).delivered == ()
    assert [p["status"] for p in receiver.delivered()] == ["firing", "resolved"]
    resolved = receiver.delivered()[1]
    assert resolved["cleared_utc"] == iso(hours(5)) and resolved["key"] == "stalled_minutes"
    (alert,) = current_alerts(study, now=hours(7))
    assert not alert.firing and alert.deliveries[0].state == "delivered"
    assert current_alerts(study, now=hours(5 + 25)) == []  # cleared over a day ago


def test_a_webhook_failing_twice_gets_the_alert_on_the_third_evaluation(
        tmp_path: Path) -> None:
    with Receiver(statuses=(500, 500)) as receiver:
        study = make_study(tmp_path,
                           f"alerts:\n  stalled_minutes: 30\n  webhook: {receiver.url}\n")
        plan_only(study)
        one = evaluate_alerts(study, hours(1))
        (failed,) = one.failed
        assert failed.error is not None and "HTTP 500" in failed.error
        assert failed.attempts == 1 and failed.next_retry_utc is not None
        assert evaluate_alerts(study, hours(1) + timedelta(seconds=5)).failed == ()  # backoff
        assert len(receiver.posts) == 1
        two = evaluate_alerts(study, hours(2))
        assert [d.attempts for d in two.failed] == [2] and two.delivered == ()
        three = evaluate_alerts(study, hours(3))
        assert [(d.attempts, d.notice) for d in three.delivered] == [(3, "fired")]
        for n in (4, 5):
            assert evaluate_alerts(study, hours(n)).delivered == ()
    assert [p["status"] for p in receiver.posts] == [500, 500, 200]
    assert len(receiver.delivered()) == 1
    (alert,) = current_alerts(study, now=hours(5))
    (delivery,) = alert.deliveries
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("delivered", 3, None)
    failures = [line for line in log_text(tmp_path).splitlines() if "not delivered" in line]
    assert len(failures) == 2 and all("[PIPELINE_ISSUE]" in line for line in failures)
    assert "attempt 1 of" in failures[0] and "HTTP 500" in failures[0]


def test_a_delivery_that_keeps_failing_is_given_up_after_its_attempts(
        tmp_path: Path) -> None:
    study = make_study(tmp_path, "alerts:\n  stalled_minutes: 30\n")
    plan_only(study)
    refusing = MemoryTarget(fail_first=10**6)
    for n in range(1, MAX_DELIVERY_ATTEMPTS + 3):
        evaluate_alerts(study, hours(2 * n), targets=[refusing])
    assert refusing.tries == MAX_DELIVERY_ATTEMPTS and refusing.sent == []
    (alert,) = current_alerts(study, now=hours(30))
    (delivery,) = alert.deliveries
    assert (delivery.state, delivery.next_retry_utc) == ("failed", None)
    with State(study.state_url) as state:
        (gave_up,) = [e for e in state.audit.entries() if e.action == "alert.undelivered"]
    assert json.loads(gave_up.after_json or "{}")["attempts"] == MAX_DELIVERY_ATTEMPTS


def test_an_email_alert_reaches_an_smtp_server(
        tmp_path: Path, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, port = smtp
    monkeypatch.setenv("ALERTS_SMTP_PASSWORD", "s3cret-smtp-pass")
    study = make_study(tmp_path, f"""\
alerts:
  stalled_minutes: 30
  email:
    smtp_host: 127.0.0.1
    smtp_port: {port}
    from: wearflow@example.org
    to: [ann@example.org, bob@example.org]
    username: alerts
    password_env: ALERTS_SMTP_PASSWORD
""")
    plan_only(study)
    report = evaluate_alerts(study, hours(1))
    assert [(d.target, d.notice) for d in report.delivered] == [("email", "fired")]
    evaluate_alerts(study, hours(2))
    (rcpt, raw), = inbox.mails
    assert rcpt == ["ann@example.org", "bob@example.org"] and inbox.logins == ["alerts"]
    mail = message_from_bytes(raw)
    assert mail["Subject"].startswith("[wearflow] ALERTS: FIRING stalled_minutes: stalled:")
    assert mail["From"] == "wearflow@example.org"
    assert mail["To"] == "ann@example.org, bob@example.org"
    body = mail.get_payload(decode=True).decode()
    assert "Study: ALERTS" in body and "Alert: stalled_minutes (firing)" in body
    assert "no task has finished for more than 30 minutes" in body
    assert b"s3cret-smtp-pass" not in raw
    # excluding the one file leaves nothing waiting: the stall clears, one more mail
    manual.exclude(study, "B1_R.csv", "not a recording")
    assert [a.key for a in evaluate_alerts(study, hours(3)).cleared] == ["stalled_minutes"]
    evaluate_alerts(study, hours(4))
    assert len(inbox.mails) == 2
    resolved = message_from_bytes(inbox.mails[1][1])
    assert resolved["Subject"].startswith("[wearflow] ALERTS: RESOLVED stalled_minutes")
    assert f"Cleared: {iso(hours(3))}" in resolved.get_payload(decode=True).decode()


# --- the rules over real runs ----------------------------------------------------------

def test_a_failed_file_fires_run_failed_issue_tags_and_failed_percent(tmp_path: Path) -> None:
    study = make_study(tmp_path, """\
alerts:
  run_failed: true
  issue_tags: [DATA_ISSUE, METADATA_ISSUE]
  failed_percent: 40
  window_minutes: 120
""", good=1, bad=1)
    report = run_study(study, executor=InlineExecutor())
    assert (report.done, report.failed) == (1, 1)
    target = MemoryTarget()
    fired = evaluate_alerts(study, hours(0.5), targets=[target])
    by_key = {a.key: a for a in fired.fired}
    assert sorted(by_key) == ["failed_percent", "issue_tags:DATA_ISSUE", "run_failed"]
    assert f"run {report.run_id} ended with 1 failed file" in by_key["run_failed"].message
    assert "1 open DATA_ISSUE issue, e.g. B1_R.csv:" in by_key["issue_tags:DATA_ISSUE"].message
    assert "1 of 2 task attempts (50%)" in by_key["failed_percent"].message
    assert [m.payload["key"] for m in target.sent] == sorted(by_key)
    # the attempts leave the two-hour window; the others fire on, never sent again
    later = evaluate_alerts(study, hours(3), targets=[target])
    assert [a.key for a in later.cleared] == ["failed_percent"]
    assert [a.key for a in later.firing] == ["issue_tags:DATA_ISSUE", "run_failed"]
    assert [m.payload["status"] for m in target.sent] == ["firing"] * 3 + ["resolved"]
    # the bad file excluded, the next run is clean and the issue closes: both clear
    manual.exclude(study, "B1_R.csv", "not a recording")
    assert run_study(study, executor=InlineExecutor()).exit_code == 0
    clean = evaluate_alerts(study, hours(4), targets=[target])
    assert sorted(a.key for a in clean.cleared) == ["issue_tags:DATA_ISSUE", "run_failed"]
    assert clean.firing == () and len(target.sent) == 6
    with State(study.state_url) as state:
        actions = [e.action for e in state.audit.entries() if e.action.startswith("alert.")]
    assert actions.count("alert.fired") == 3 and actions.count("alert.cleared") == 3
    assert actions.count("alert.delivered") == 6


def test_a_run_that_died_unfinished_fires_run_failed(tmp_path: Path) -> None:
    study = make_study(tmp_path, "alerts: {run_failed: true}\n", bad=0)
    (tmp_path / "results").mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with State(study.state_url) as state:
        state.runs.begin("20261201T000000-deadbeef", study.study, "f", "ann", {})
        with state.engine.begin() as db:
            db.execute(text("update runs set pid = :pid"), {"pid": gone.pid})
    (alert,) = evaluate_alerts(study, hours(0.1), targets=[]).fired
    assert alert.key == "run_failed"
    assert "run 20261201T000000-deadbeef died unfinished" in alert.message
    run_study(study, executor=InlineExecutor())  # a run that ends: the latest is fine
    assert [a.key for a in evaluate_alerts(study, hours(0.2), targets=[]).cleared] == [
        "run_failed"]


class NoWorkers:
    """An executor whose workers never start a task (a cluster that went away)."""

    workers = 1

    def run(self, tasks: Any, run_id: str, stop: Any = None, claim: Any = None) -> Any:
        return iter(())

    def close(self) -> None:
        pass


def test_watch_evaluates_alerts_while_idle_and_posts_a_stall_once(
        tmp_path: Path, receiver: Receiver) -> None:
    study = make_study(tmp_path,
                       f"alerts:\n  stalled_minutes: 0.001\n  webhook: {receiver.url}\n")
    stop = threading.Event()
    seen: list[int] = []

    def on_alerts(report: Any) -> None:
        seen.append(len(report.firing))
        if len(receiver.posts) >= 1 and len(seen) >= 6:
            stop.set()

    result: list[Any] = []
    watcher = threading.Thread(target=lambda: result.append(watch_study(
        study, executor=NoWorkers(), stop=stop, poll_s=0.05, settle_s=0.05,
        alerts_every_s=0.0, on_alerts=on_alerts, install_signal_handlers=False)))
    watcher.start()
    watcher.join(timeout=120)
    stop.set()
    watcher.join()
    (report,) = result
    assert report.errors == []
    assert report.cycles == 1  # nothing changed after the first cycle: the rest were idle
    assert report.alert_evaluations == len(seen) >= 6
    assert [p["json"]["status"] for p in receiver.posts] == ["firing"]
    assert seen[-1] == 1


# --- the study file --------------------------------------------------------------------

@pytest.mark.parametrize(("alerts", "expected"), [
    ("alerts: {stalled_minutes: -5}", "alerts.stalled_minutes: Input should be greater than 0"),
    ("alerts: {stalld_minutes: 5}", "alerts.stalld_minutes: unknown key; did you mean "
                                    "stalled_minutes?"),
    ("alerts: {failed_percent: 120}", "alerts.failed_percent: Input should be less than 100"),
    ("alerts: {issue_tags: [DATA_ISSUES]}", "alerts.issue_tags.0: Input should be 'ERROR'"),
    ("alerts: {run_failed: often}", "alerts.run_failed: Input should be a valid boolean"),
    ("alerts: {webhook: 'ftp://h/x?token=tok-in-url'}", "alerts.webhook: must be an http"),
    ("alerts: {email: {smtp_host: h, from: a@b.org, to: [c@d.org], username: u, "
     "password: hunter2-pw}}", "alerts.email.password: unknown key; did you mean password_env?"),
    ("alerts: {email: {smtp_host: h, from: a@b.org, to: [c@d.org], username: u}}",
     "alerts.email: username and password_env go together"),
    ("alerts: {email: {smtp_host: h, form: a@b.org, to: [c@d.org]}}",
     "alerts.email.form: unknown key; did you mean from?"),
    ("alerts: {email: {smtp_host: h, from: a@b.org, to: [nobody]}}",
     "alerts.email.to: not an e-mail address"),
])
def test_a_bad_alert_rule_is_a_one_line_error_naming_its_key(
        tmp_path: Path, alerts: str, expected: str) -> None:
    (tmp_path / "study.yaml").write_text(STUDY + alerts + "\n")
    with pytest.raises(ConfigError) as info:
        load_study(tmp_path)
    message = str(info.value)
    assert expected in message and "\n" not in message
    assert "hunter2-pw" not in message and "tok-in-url" not in message


def test_alerts_leave_the_fingerprint_alone_and_the_dump_holds_no_webhook_secret(
        tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(STUDY)
    plain = load_study(tmp_path)
    (tmp_path / "study.yaml").write_text(STUDY + "alerts:\n  run_failed: true\n  webhook: "
                                         "https://u:pw-x@hooks.example.org/T1/B2/tok-y\n")
    alerting = load_study(tmp_path)
    assert plain.fingerprint() == alerting.fingerprint()
    dump = alerting.public_dump()["alerts"]
    assert dump["webhook"] == "https://hooks.example.org/..." and dump["run_failed"] is True
    assert "pw-x" not in repr(alerting) and "tok-y" not in repr(alerting)


# --- no secret leaks -------------------------------------------------------------------

def test_no_secret_reaches_the_log_the_audit_trail_the_state_or_the_output(
        tmp_path: Path, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, port = smtp
    secrets = ["hook-pass-PLANTED", "path-token-PLANTED", "query-token-PLANTED",
               "smtp-pass-PLANTED"]
    monkeypatch.setenv("WEARFLOW_TEST_SMTP", "smtp-pass-PLANTED")  # not the server's: refused
    cli = CliRunner()
    with Receiver(statuses=(500,)) as receiver:
        url = (f"http://hookuser:hook-pass-PLANTED@127.0.0.1:{receiver.port}"
               "/services/path-token-PLANTED?token=query-token-PLANTED")
        study = make_study(tmp_path, f"""\
alerts:
  run_failed: true
  webhook: {url}
  email: {{smtp_host: 127.0.0.1, smtp_port: {port}, from: w@example.org, to: [a@example.org],
           username: alerts, password_env: WEARFLOW_TEST_SMTP}}
""")
        result = cli.invoke(app, ["run", str(tmp_path), "--executor", "inline"])
        assert result.exit_code == 1, result.output  # the bad file failed
        outputs = [result.output]
        evaluate_alerts(study, hours(1))  # the webhook's retry is due: it gets through
        for args in (["alerts", str(tmp_path)], ["alerts", str(tmp_path), "--json"],
                     ["audit", "export", str(tmp_path), "--format", "json"]):
            result = cli.invoke(app, args)
            assert result.exit_code == 0, result.output
            outputs.append(result.output)
    assert "alert fired: run " in outputs[0]
    assert "fired notice to email not delivered" in outputs[0]
    assert "SMTPAuthenticationError" in outputs[0]
    # the webhook got the credentials as a header, the tokens in its own URL
    assert [p["status"] for p in receiver.posts] == [500, 200]
    post = receiver.posts[1]
    assert post["path"] == "/services/path-token-PLANTED?token=query-token-PLANTED"
    assert post["headers"]["Authorization"] == "Basic " + base64.b64encode(
        b"hookuser:hook-pass-PLANTED").decode()
    assert inbox.mails == []
    (alert,) = json.loads(outputs[2])
    assert {d["target"]: d["state"] for d in alert["deliveries"]} == {
        "email": "failed", "webhook": "delivered"}
    assert "127.0.0.1" in log_text(tmp_path)  # the webhook's host is named, nothing more
    stored = [str(rows(study)), log_text(tmp_path), *outputs]
    state_files = sorted((tmp_path / "results").glob("wearflow.db*"))
    assert state_files
    stored += [f.read_bytes().decode("latin-1") for f in state_files]
    for secret in secrets:
        for where, content in enumerate(stored):
            assert secret not in content, (secret, where)


def test_the_alerts_command_lists_firing_and_cleared_alerts(tmp_path: Path) -> None:
    study = make_study(tmp_path, "alerts: {stalled_minutes: 30}\n")
    cli = CliRunner()
    result = cli.invoke(app, ["alerts", str(tmp_path)])
    assert result.exit_code == 0 and "no alert firing" in result.output
    plan_only(study)
    evaluate_alerts(study, hours(1))
    result = cli.invoke(app, ["alerts", str(tmp_path), "--json"])
    (alert,) = json.loads(result.stdout)
    assert (alert["key"], alert["status"], alert["deliveries"]) == (
        "stalled_minutes", "firing", [])
    result = cli.invoke(app, ["alerts", str(tmp_path)])
    assert result.output.startswith(f"FIRING stalled_minutes since {alert['since_utc']}")
    assert "not sent: the study file's alerts: name no webhook or email" in result.output
    # --evaluate: the real time, a few seconds after planning: not stalled (yet), cleared
    result = cli.invoke(app, ["alerts", str(tmp_path), "--evaluate"])
    assert "alert cleared: stalled" in result.output
    assert "\ncleared 20" in result.output and " stalled_minutes since " in result.output
