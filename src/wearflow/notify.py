"""Publishing new issues: a JSON-lines file in the output, and an optional webhook.

The state database is the issues queue (``wearflow issues``); this module
only tells the outside world. Webhook posts go through a background thread
with retries and exponential backoff, so a slow or dead endpoint never blocks
processing; :func:`flush` waits a bounded time for the queue to drain. A post is
:func:`wearflow.delivery.post_json` (shared with the alerts): credentials in the URL
become an ``Authorization`` header and a failure names the URL by its scheme and host.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from wearflow.clock import utc_now
from wearflow.config import Study, local_path
from wearflow.delivery import post_json
from wearflow.errors import DeliveryError
from wearflow.issue import IssueSpec
from wearflow.logs import log_event

ISSUES_FILE = "issues.jsonl"
RETRIES = 4
BACKOFF_S = 0.5
TIMEOUT_S = 5.0

_queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
_worker: threading.Thread | None = None
_lock = threading.Lock()


def issue_record(study: Study, issue: IssueSpec) -> dict[str, Any]:
    return {"study": study.study, "seen_utc": utc_now(), **asdict(issue)}


def publish_issues(study: Study, issues: Sequence[IssueSpec]) -> None:
    """Append new issues to ``<output>/issues.jsonl`` and queue them for the webhook."""
    if not issues:
        return
    records = [issue_record(study, i) for i in issues]
    folder = local_path(study.output)
    if folder is not None:
        path = Path(folder) / ISSUES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, sort_keys=True) + "\n")
    if study.webhook:
        for record in records:
            _queue.put((study.webhook, record))
        _ensure_worker()


def _ensure_worker() -> None:
    global _worker
    with _lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_drain, name="wearflow-webhook", daemon=True)
            _worker.start()


def _drain() -> None:
    while True:
        url, record = _queue.get()
        try:
            _post(url, record)
        finally:
            _queue.task_done()


def _post(url: str, record: dict[str, Any]) -> None:
    reason = ""
    for attempt in range(RETRIES + 1):
        try:
            post_json(url, record, timeout_s=TIMEOUT_S)
            return
        except DeliveryError as exc:  # names the URL by its scheme and host only
            reason = str(exc)
        if attempt < RETRIES:
            time.sleep(BACKOFF_S * 2**attempt)
    log_event("PIPELINE_ISSUE", f"webhook gave up after {RETRIES + 1} attempts ({reason})",
              study=record.get("study"), uri=record.get("uri"))


def flush(timeout_s: float = 15.0) -> bool:
    """Wait up to ``timeout_s`` for queued webhook posts; True when all were handled."""
    deadline = time.monotonic() + timeout_s
    while _queue.unfinished_tasks:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
