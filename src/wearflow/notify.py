"""Publishing new issues: a JSON-lines file in the output, and the study's webhook; and
the study's log in its output.

The state database is the issues queue (``wearflow issues``); this module only tells the
outside world. A local output appends to ``issues.jsonl`` and ``logs/wearflow.log`` at
once; an object store cannot append, so a bucket gets write-once objects instead:
``issues/<UTC time>-<hash>.jsonl`` per batch of new issues and ``logs/<run id>.log`` per
run (:func:`study_log`).

The webhook is an *outbox*: the run marks each new issue as owed to it in the issues
table (with a deadline, :data:`DEADLINE_H`), and :func:`send_pending` starts a sender on
a background thread that never holds the run. The sender claims the owed issues one at a
time, POSTs each with a short timeout (:data:`TIMEOUT_S`) and records how it went; at
the first failure it stops (a receiver that is down or hung costs one timeout, not one
per issue), and what failed or was not tried yet is tried again by the next run's sender
(each ``watch`` cycle is a run). Every failure is logged (``PIPELINE_ISSUE``); an issue
not delivered by its deadline is given up, with a log line. Nothing is lost when a
process ends mid-send: the issue is still owed, and offered again once its claim's lease
(:data:`LEASE_S`) ends.

A post is :func:`wearflow.delivery.post_json` (shared with the alerts), which refuses
redirects (a 302 is a failure, never followed: it would re-send the issue, as a GET, to
any URL). The study file refuses a webhook URL with a user or password in it. A failure
names the URL by its scheme and host only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from wearflow.clock import iso, parse_iso, utc_now
from wearflow.config import Study, local_path
from wearflow.delivery import post_json
from wearflow.errors import DeliveryError, Tag, WearflowError, one_line
from wearflow.filemodes import FILE_MODE, create_file, make_folders
from wearflow.issue import IssueSpec, QueuedIssue
from wearflow.logs import (
    add_file_handler,
    add_spool_handler,
    log_event,
    remove_handler,
    spooled,
)
from wearflow.redact import url_host
from wearflow.storage import Store, sha256_bytes

ISSUES_FILE = "issues.jsonl"
ISSUES_FOLDER = "issues"  # on a bucket: one object per batch of new issues
LOG_FILE = "logs/wearflow.log"
LOGS_FOLDER = "logs"  # on a bucket: one object per run
TIMEOUT_S = 3.0  # per post (connect, and each read): what a hung receiver costs a sender
DEADLINE_H = 24.0  # an issue not delivered this long after it was queued is given up
LEASE_S = 60.0  # a claimed post whose sender died is offered again after this
MAX_PER_PASS = 200  # posts one sender makes at most; the rest go with the next run's

_senders: dict[str, threading.Thread] = {}  # by study state URL: at most one sender each
_lock = threading.Lock()


class Outbox(Protocol):
    """Where the issues owed to the webhook are kept (the state's issues table)."""

    def claim_webhook(self, study: str, now_utc: str, lease_utc: str) -> QueuedIssue | None:
        ...

    def settle_webhook(self, issue_id: int, now_utc: str, error: str | None = None) -> None:
        ...


OutboxOpener = Callable[[], AbstractContextManager[Outbox]]


@dataclass(frozen=True)
class SendReport:
    """What one sender did: posts delivered, failed (at most one: it stops there), and
    issues given up at their deadline."""

    delivered: int = 0
    failed: int = 0
    given_up: int = 0


def issue_record(study: Study, issue: IssueSpec, seen_utc: str | None = None,
                 issue_id: int | None = None) -> dict[str, Any]:
    """An issue as published: the study, when it was seen, the issue's fields (and its id
    in the queue, to the webhook, so a receiver can drop a repeat)."""
    record = {"study": study.study, "seen_utc": seen_utc or utc_now(), **asdict(issue)}
    if issue_id is not None:
        record["issue_id"] = issue_id
    return record


def webhook_deadline(now_utc: str | None = None) -> str:
    """When an issue queued at ``now_utc`` (default: now) is given up."""
    return iso(parse_iso(now_utc or utc_now()) + timedelta(hours=DEADLINE_H))


def publish_issues(study: Study, issues: Sequence[IssueSpec]) -> None:
    """Append new issues to ``<output>/issues.jsonl`` (on a bucket: write them as the
    object ``issues/<UTC time>-<hash>.jsonl``); the webhook is sent from the issues
    table (:func:`send_pending`)."""
    if not issues:
        return
    records = [issue_record(study, i) for i in issues]
    lines = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)
    folder = local_path(study.output)
    if folder is not None:
        path = Path(folder) / ISSUES_FILE
        make_folders(path.parent)
        create_file(path, FILE_MODE)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(lines)
    else:
        data = lines.encode()
        stamp = records[0]["seen_utc"].replace("-", "").replace(":", "").split(".")[0]
        _write_to_output(study, f"{ISSUES_FOLDER}/{stamp}Z-{sha256_bytes(data)[:16]}.jsonl",
                         data)


@contextmanager
def study_log(study: Study, name: str) -> Iterator[None]:
    """The study's log while the block runs, tagged lines from INFO on: appended to
    ``<output>/logs/wearflow.log`` on a local disk; on an object store collected and
    written when the block ends (however it ends) as the object ``logs/<name>.log``
    (nothing when nothing was logged). Warnings reach stderr either way."""
    folder = local_path(study.output)
    if folder is not None:
        handler = add_file_handler(Path(folder) / LOG_FILE)
        try:
            yield
        finally:
            remove_handler(handler)
        return
    spool = add_spool_handler()
    try:
        yield
    finally:
        remove_handler(spool)
        data = spooled(spool)
        if data:
            _write_to_output(study, f"{LOGS_FOLDER}/{name}.log", data)


def _write_to_output(study: Study, path: str, data: bytes) -> None:
    """Write one log or issues object to a bucket output; a failure is said on stderr
    (tagged) and never fails the run that logged."""
    try:
        Store(study.output, study.storage_options).write_once(path, data)
    except WearflowError as exc:
        log_event(exc.tag.value, f"not written to the output: {exc.message}",
                  level=logging.WARNING, study=study.study, uri=exc.subject)


def deliver_pending(study: Study, outbox: Outbox,
                    clock: Callable[[], str] = utc_now) -> SendReport:
    """Post the issues of ``study`` owed to its webhook, oldest first, here and now:
    at most :data:`MAX_PER_PASS`, stopping at the first failure."""
    url = study.webhook
    delivered = given_up = 0
    if not url:
        return SendReport()
    for _ in range(MAX_PER_PASS):
        now = clock()
        item = outbox.claim_webhook(study.study, now,
                                    iso(parse_iso(now) + timedelta(seconds=LEASE_S)))
        if item is None:
            break
        if item.expired:
            given_up += 1
            log_event(Tag.PIPELINE_ISSUE.value,
                      f"issue not posted to the webhook {url_host(url)} by its deadline "
                      f"{item.deadline_utc}; given up after {item.attempts} attempts"
                      + (f" (last: {item.last_error})" if item.last_error else ""),
                      level=logging.ERROR, study=study.study, uri=item.spec.uri)
            continue
        try:
            post_json(url, issue_record(study, item.spec, item.queued_utc, item.id),
                      timeout_s=TIMEOUT_S)
        except DeliveryError as exc:  # names the URL by its scheme and host only
            error = one_line(str(exc))
            outbox.settle_webhook(item.id, clock(), error)
            log_event(Tag.PIPELINE_ISSUE.value,
                      f"issue not posted to the webhook (attempt {item.attempts}; tried again "
                      f"at the next run, until {item.deadline_utc}): {error}",
                      level=logging.WARNING, study=study.study, uri=item.spec.uri)
            return SendReport(delivered, 1, given_up)
        outbox.settle_webhook(item.id, clock(), None)
        delivered += 1
    return SendReport(delivered, 0, given_up)


def send_pending(study: Study, open_outbox: OutboxOpener) -> threading.Thread | None:
    """Start a sender for ``study`` on a background thread (:func:`deliver_pending` on
    the outbox ``open_outbox`` opens), unless one is still at work; never waits for it.
    :func:`flush` waits, a bounded time."""
    if not study.webhook:
        return None

    def work() -> None:
        handler = _log_to_output(study)
        try:
            with open_outbox() as outbox:
                deliver_pending(study, outbox)
        except Exception as exc:  # the state briefly unusable: the next run's sender retries
            log_event(Tag.PIPELINE_ISSUE.value, "issues not posted to the webhook now "
                      f"({type(exc).__name__}: {one_line(str(exc), 200)}); tried again at "
                      "the next run", level=logging.WARNING, study=study.study)
        finally:
            if handler is not None:
                remove_handler(handler)

    with _lock:
        running = _senders.get(study.state_url)
        if running is not None and running.is_alive():
            return running
        thread = threading.Thread(target=work, name=f"wearflow-webhook-{study.study}",
                                  daemon=True)
        _senders[study.state_url] = thread
        thread.start()
    return thread


def flush(timeout_s: float = TIMEOUT_S) -> bool:
    """Wait up to ``timeout_s`` for the senders at work; True when none is left. What a
    sender had not done stays owed, for the next run's sender."""
    deadline = time.monotonic() + timeout_s
    with _lock:
        threads = list(_senders.values())
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


def _log_to_output(study: Study) -> logging.Handler | None:
    """The study's log file, for this sender thread's lines only (the run that started
    it has removed its own handler, or soon will; other threads log elsewhere)."""
    folder = local_path(study.output)
    if folder is None:
        return None
    handler = add_file_handler(Path(folder) / LOG_FILE)
    me = threading.get_ident()
    handler.addFilter(lambda record: record.thread == me)
    return handler
