"""The issues webhook as an outbox: recorded by the run in the issues table, posted by a
bounded sender that never holds the run, retried at the next run, given up at a deadline
with a log line; redirects and credentials in the URL refused. Real HTTP receivers on
127.0.0.1: one that hangs, one that answers 302, one that fails then succeeds."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wearflow import load_study, notify, run_study
from wearflow.delivery import post_json
from wearflow.errors import ConfigError, DeliveryError
from wearflow.executors import InlineExecutor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: HOOKED
input: raw/
output: results/
webhook: {url}
files:
  sensor: ["{{participant}}_{{side}}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


@dataclass
class Receiver:
    """What a local receiver does with each POST, in turn: an HTTP status, ``"hang"``
    (hold the request until ``release`` is set, then take it), ``"stall"`` (hold it, then
    drop it), or ``("redirect", url)``; then 204."""

    url: str = ""
    script: list[Any] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def _serve(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.requests += 1
            step = receiver.script.pop(0) if receiver.script else 204
            if step in ("hang", "stall"):
                receiver.holding.set()
                receiver.release.wait(60)
                if step == "stall":
                    return  # no answer: the connection closes
                step = 204
            if isinstance(step, tuple):
                self.send_response(302)
                self.send_header("Location", step[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if step == 204:
                receiver.received.append(json.loads(body))
            self.send_response(int(step))
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = _any

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_port}/hook/secret-token"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture()
def receivers() -> Iterator[list[Receiver]]:
    """Two receivers: the webhook, and elsewhere (where a redirect would lead)."""
    made = [Receiver(), Receiver()]
    servers = [_serve(r) for r in made]
    yield made
    for r in made:
        r.release.set()
    notify.flush(30)
    for s in servers:
        s.shutdown()


def make(root: Path, url: str, bad_files: int = 1) -> Path:
    (root / "raw").mkdir(parents=True, exist_ok=True)
    (root / "study.yaml").write_text(STUDY.format(url=url))
    for n in range(1, bad_files + 1):  # unreadable files: an issue each, quickly
        (root / f"raw/P{n}_L.csv").write_bytes(np.random.default_rng(n).bytes(300))
    return root


def run(root: Path) -> None:
    run_study(load_study(root), executor=InlineExecutor())


def outbox(root: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(root / "results/wearflow.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(
            "select id, uri, webhook_pending, webhook_attempts, webhook_delivered_utc, "
            "webhook_error from issues where webhook_queued_utc is not null order by id")]


def test_a_hung_receiver_never_holds_the_run(tmp_path: Path, receivers: list[Receiver],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    hook, _ = receivers
    monkeypatch.setattr(notify, "TIMEOUT_S", 60.0)  # the post would wait a minute: the run not
    hook.script = ["hang"]
    root = make(tmp_path, hook.url)
    run(root)  # returns with the post still in flight, or not yet made
    (row,) = outbox(root)
    assert row["webhook_delivered_utc"] is None and row["webhook_error"] is None
    assert not hook.release.is_set()
    assert hook.holding.wait(30)  # the sender is waiting on the receiver, not the run
    hook.release.set()
    assert notify.flush(30)
    (row,) = outbox(root)
    assert row["webhook_delivered_utc"] is not None and not row["webhook_pending"]
    (posted,) = hook.received
    assert posted["uri"].endswith("P1_L.csv") and posted["study"] == "HOOKED"


def test_a_receiver_that_times_out_is_retried_at_the_next_run(
        tmp_path: Path, receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    hook, _ = receivers
    monkeypatch.setattr(notify, "TIMEOUT_S", 0.2)
    hook.script = ["stall"]
    root = make(tmp_path, hook.url)
    run(root)
    assert notify.flush(30)
    (row,) = outbox(root)
    assert row["webhook_pending"] and row["webhook_attempts"] == 1
    assert "timed out" in row["webhook_error"]
    assert "[PIPELINE_ISSUE]" in (root / "results/logs/wearflow.log").read_text()
    assert "issue not posted to the webhook" in caplog.text
    hook.release.set()
    run(root)
    assert notify.flush(30)
    (row,) = outbox(root)
    assert row["webhook_delivered_utc"] is not None and row["webhook_attempts"] == 2
    assert len(hook.received) == 1


def test_a_redirect_is_refused_never_followed(tmp_path: Path,
                                              receivers: list[Receiver]) -> None:
    hook, elsewhere = receivers
    hook.script = [("redirect", elsewhere.url)]
    root = make(tmp_path, hook.url)
    run(root)
    assert notify.flush(30)
    (row,) = outbox(root)
    assert elsewhere.requests == 0  # neither POSTed nor GOT there
    assert row["webhook_pending"] and "302" in row["webhook_error"]
    assert "redirect" in row["webhook_error"] and "secret-token" not in row["webhook_error"]


def test_a_receiver_that_fails_then_succeeds_gets_each_issue_once(
        tmp_path: Path, receivers: list[Receiver]) -> None:
    hook, _ = receivers
    hook.script = [503]
    root = make(tmp_path, hook.url, bad_files=3)
    run(root)
    assert notify.flush(30)
    rows = outbox(root)
    assert len(rows) == 3 and all(r["webhook_pending"] for r in rows)
    # the sender stops at the first failure: the others wait, untried, for the next run
    assert sorted(r["webhook_attempts"] for r in rows) == [0, 0, 1]
    assert hook.requests == 1
    run(root)  # the same issues: not new, but still owed to the webhook
    assert notify.flush(30)
    assert all(r["webhook_delivered_utc"] for r in outbox(root))
    assert sorted(p["uri"].rsplit("/", 1)[-1] for p in hook.received) == [
        "P1_L.csv", "P2_L.csv", "P3_L.csv"]
    run(root)
    assert notify.flush(30)
    assert len(hook.received) == 3 and hook.requests == 4


def test_an_issue_not_delivered_by_its_deadline_is_given_up_with_a_log_line(
        tmp_path: Path, receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    hook, _ = receivers
    monkeypatch.setattr(notify, "DEADLINE_H", 0.0)
    root = make(tmp_path, hook.url)
    run(root)
    assert notify.flush(30)
    (row,) = outbox(root)
    assert not row["webhook_pending"] and row["webhook_delivered_utc"] is None
    assert "given up" in row["webhook_error"]
    assert "given up" in caplog.text and hook.requests == 0


def test_a_webhook_url_with_credentials_is_refused(tmp_path: Path) -> None:
    root = make(tmp_path, "http://hookuser:hook-pass@127.0.0.1:9/hook")
    with pytest.raises(ConfigError, match="webhook") as caught:
        load_study(root)
    assert "hook-pass" not in str(caught.value)


def test_the_outbox_in_the_issues_table(state_url: str) -> None:
    """Claims, leases, settling and the deadline, on SQLite and PostgreSQL: a post claimed
    by a sender that died is offered again once its lease ends, never before."""
    from wearflow.issue import IssueSpec
    from wearflow.state import State

    t = "2027-01-01T00:00:{:02d}.000Z".format
    with State(state_url) as state:
        issues = state.issues
        issues.sync("S", [IssueSpec("DATA_ISSUE", "a", uri="u1"),
                          IssueSpec("DATA_ISSUE", "b", uri="u2")], webhook_deadline_utc=t(50))
        issues.sync("S", [IssueSpec("DATA_ISSUE", "quiet")], close_missing=False)  # not owed
        first = issues.claim_webhook("S", t(0), lease_utc=t(30))
        second = issues.claim_webhook("S", t(0), lease_utc=t(30))
        assert first is not None and second is not None
        assert (first.spec.uri, first.attempts, second.spec.uri) == ("u1", 1, "u2")
        assert issues.claim_webhook("S", t(10), lease_utc=t(40)) is None  # both leased
        issues.settle_webhook(second.id, t(11), None)  # delivered
        again = issues.claim_webhook("S", t(31), lease_utc=t(45))  # u1's sender died
        assert again is not None and (again.id, again.attempts) == (first.id, 2)
        issues.settle_webhook(again.id, t(32), "HTTP 503")
        assert issues.claim_webhook("S", t(33), lease_utc=t(48)) is not None  # due at once
        expired = issues.claim_webhook("S", t(55), lease_utc=t(59))
        assert expired is not None and expired.expired and expired.last_error == "HTTP 503"
        assert issues.claim_webhook("S", t(56), lease_utc=t(59)) is None
        rows = {r.uri: r for r in issues.open("S")}
    assert rows["u2"].webhook_delivered_utc == t(11) and not rows["u2"].webhook_pending
    assert not rows["u1"].webhook_pending and "given up" in (rows["u1"].webhook_error or "")
    assert rows[None].webhook_queued_utc is None


def test_post_json_never_follows_a_redirect_with_the_credentials(
        receivers: list[Receiver]) -> None:
    """Shared with the alerts, whose webhook may carry user:password (sent as a Basic
    Authorization header): a redirect would re-send it wherever the receiver points."""
    hook, elsewhere = receivers
    hook.script = [("redirect", elsewhere.url)]
    url = hook.url.replace("http://", "http://hookuser:hook-pass@")
    with pytest.raises(DeliveryError, match="302") as caught:
        post_json(url, {"a": 1})
    assert elsewhere.requests == 0 and "hook-pass" not in str(caught.value)
