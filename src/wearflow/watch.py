"""`wearflow watch`: process a study whenever new or changed files land, until stopped.

Triggers: every input location is listed every ``poll_s`` seconds (works for
local folders and object stores alike); local folders also wake the loop at
once through filesystem events (watchdog, the ``watch`` extra), and buckets
through S3 event notifications delivered to an SQS queue
(``notifications: sqs_queue_url``; boto3, the ``s3`` extra).
A change starts a processing cycle (one :func:`~wearflow.runner.run_study`)
once the listing has been quiet for ``settle_s`` seconds, so files still being
uploaded are not read (temporary names such as ``*.part`` are never cataloged
at all); a steady stream of uploads still gets a cycle at least every
``max_delay_s``. A file read while it was still growing is not lost: its final
bytes are a new version, processed in the next cycle, and the truncated
version's issue closes itself. Duplicate notifications only wake the loop:
what runs is decided by the listing and the task keys, so nothing runs twice.

The study's alerts (``alerts:``) are evaluated at the start, after each cycle and
at least every ``alerts_every_s`` while idle.

Stopping (SIGINT, SIGTERM, or ``stop`` set by the caller): no new task starts,
running tasks finish and are recorded, and the loop returns. A restart resumes
from the state database: finished tasks are never redone and files that
arrived meanwhile are picked up by the first listing.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import unquote_plus

from wearflow.catalog import NameParser
from wearflow.config import Study, local_path
from wearflow.errors import Tag, WearflowError, one_line
from wearflow.executors import Executor
from wearflow.extras import require
from wearflow.logs import log_event
from wearflow.runner import RunReport, run_study
from wearflow.services.alerts import AlertsReport, evaluate_alerts
from wearflow.storage import Store


@dataclass
class WatchReport:
    cycles: int = 0
    executed: int = 0
    alert_evaluations: int = 0
    errors: list[str] = field(default_factory=list)


Listing = tuple[tuple[str, int, str], ...]


def listing_signature(stores: list[Store], parser: NameParser) -> Listing:
    """What the locations hold now: (URI, size, stamp) of every sensor and metadata file."""
    out: list[tuple[str, int, str]] = []
    for store in stores:
        out.extend((store.uri(e.path), e.size_bytes, e.mtime) for e in store.walk()
                   if parser.is_sensor_like(e.path) or parser.is_metadata(e.path))
    return tuple(sorted(out))


def _start_fs_events(study: Study, wake: threading.Event) -> Any:
    local = [folder for folder in map(local_path, study.input) if folder is not None]
    if not local:
        return None
    require("watchdog", "watch", "`wearflow watch` on a local folder", subject=local[0])
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    class _Wake(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            wake.set()

    observer = Observer()
    for folder in local:
        if Path(folder).is_dir():
            observer.schedule(_Wake(), folder, recursive=True)
    observer.daemon = True
    observer.start()
    return observer


def parse_s3_event(body: str) -> list[str]:
    """S3 event notification JSON -> object URIs (keys are URL-encoded in events)."""
    try:
        records = json.loads(body).get("Records", [])
    except (ValueError, AttributeError):
        return []
    uris = []
    for record in records if isinstance(records, list) else []:
        s3 = record.get("s3", {}) if isinstance(record, dict) else {}
        bucket = s3.get("bucket", {}).get("name")
        key = s3.get("object", {}).get("key")
        if bucket and key:
            uris.append(f"s3://{bucket}/{unquote_plus(key)}")
    return uris


def _start_sqs(study: Study, wake: threading.Event, stop: threading.Event,
               on_notification: Callable[[str], None] | None) -> threading.Thread | None:
    """Long-poll the study's SQS queue; any message wakes the loop (the listing decides
    what to do, so duplicate notifications are harmless)."""
    config = study.notifications
    if not config.sqs_queue_url:
        return None
    require("boto3", "s3", "SQS notifications", subject=config.sqs_queue_url)
    import boto3

    client = boto3.client("sqs", endpoint_url=config.endpoint_url)
    url = config.sqs_queue_url

    def poll() -> None:
        while not stop.is_set():
            try:
                reply = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1)
            except Exception as exc:  # botocore raises many types; keep watching
                log_event("PIPELINE_ISSUE", f"notification queue unreachable ({exc})",
                          study=study.study)
                stop.wait(5.0)
                continue
            for message in reply.get("Messages", []):
                for uri in parse_s3_event(message.get("Body", "")):
                    if on_notification:
                        on_notification(uri)
                client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                wake.set()

    thread = threading.Thread(target=poll, name="wearflow-sqs", daemon=True)
    thread.start()
    return thread


def watch_study(
    study: Study,
    *,
    executor: Executor,
    stop: threading.Event | None = None,
    poll_s: float = 5.0,
    settle_s: float = 2.0,
    max_delay_s: float = 60.0,
    idle_cycle_s: float = 300.0,
    on_cycle: Callable[[RunReport], None] | None = None,
    on_notification: Callable[[str], None] | None = None,
    install_signal_handlers: bool = True,
    alerts_every_s: float = 60.0,
    on_alerts: Callable[[AlertsReport], None] | None = None,
) -> WatchReport:
    """Run processing cycles whenever the study's locations change, until ``stop``.

    With no change, a cycle still runs every ``idle_cycle_s`` so that time-based
    rules apply: a lone wrist's grace period ending, a metadata wait deadline.

    The study's alerts are evaluated when the watch starts (a previous run may have
    died), after every cycle, and at least every ``alerts_every_s`` while idle (a stall
    is exactly when nothing runs); ``on_alerts`` gets each evaluation.

    An error in a cycle, whatever it is (a storage hiccup, a bug met on one file), is
    logged and kept in the report's ``errors``; the watcher goes on with the next cycle.
    """
    stop = stop or threading.Event()
    wake = threading.Event()
    if install_signal_handlers:
        def _handle(signum: int, _frame: FrameType | None) -> None:
            log_event("INFO", f"signal {signum}: finishing running tasks, then stopping",
                      study=study.study)
            stop.set()
            wake.set()

        signal.signal(signal.SIGINT, _handle)
        signal.signal(signal.SIGTERM, _handle)
    report = WatchReport()
    processed: Listing | None = None
    last_cycle = last_alerts = 0.0
    observer: Any = None

    def evaluate() -> None:
        nonlocal last_alerts
        last_alerts = time.monotonic()
        try:
            result = evaluate_alerts(study)
            report.alert_evaluations += 1
            if on_alerts:
                on_alerts(result)
        except Exception as exc:  # the state briefly unusable: the next one retries
            _cycle_failed(study, report, "alerts", exc)

    try:  # a location or trigger that cannot start (a missing extra) still closes the executor
        stores = [Store(loc, study.storage_options) for loc in study.input]
        parser = NameParser(study.files)
        observer = _start_fs_events(study, wake)
        _start_sqs(study, wake, stop, on_notification)
        evaluate()
        while not stop.is_set():
            current = _quiet_listing(stores, parser, stop, settle_s, max_delay_s)
            if stop.is_set():
                break
            ran = current != processed or time.monotonic() - last_cycle >= idle_cycle_s
            if ran:
                last_cycle = time.monotonic()
                try:
                    cycle = run_study(study, executor=executor, stop=stop)
                except Exception as exc:  # e.g. storage briefly unreachable: retry later
                    _cycle_failed(study, report, "processing cycle", exc)
                    cycle = None
                if cycle is not None:
                    report.cycles += 1
                    report.executed += cycle.executed
                    processed = current
                    if on_cycle:
                        try:
                            on_cycle(cycle)
                        except Exception as exc:  # e.g. a report that cannot be written
                            _cycle_failed(study, report, "after the cycle", exc)
            if not stop.is_set() and (ran or time.monotonic() - last_alerts >= alerts_every_s):
                evaluate()
            wake.wait(poll_s)
            wake.clear()
    finally:
        if observer is not None:
            observer.stop()
        executor.close()  # the worker processes kept warm between cycles
    return report


def _cycle_failed(study: Study, report: WatchReport, what: str, exc: Exception) -> None:
    """One cycle's error, whatever it is, logged and kept in the report: the watcher
    goes on with the next cycle (a bad upload, a bug met on one file, a state briefly
    unusable never stop it)."""
    if isinstance(exc, WearflowError):
        text, tag = str(exc), exc.tag.value
    else:
        text, tag = f"{type(exc).__name__}: {exc}", Tag.PIPELINE_ISSUE.value
    text = one_line(f"{what}: {text}" if what != "processing cycle" else text, 500)
    report.errors.append(text)
    log_event(tag, f"{what} failed, the watcher goes on: {text}", level=logging.ERROR,
              study=study.study)


def _quiet_listing(stores: list[Store], parser: NameParser, stop: threading.Event,
                   settle_s: float, max_delay_s: float) -> Listing:
    """List until two listings ``settle_s`` apart agree (or ``max_delay_s`` passed).

    An unreachable location gives an empty listing: the cycle then reports it.
    """
    started = time.monotonic()
    try:
        previous = listing_signature(stores, parser)
        while not stop.is_set() and time.monotonic() - started < max_delay_s:
            stop.wait(settle_s)
            current = listing_signature(stores, parser)
            if current == previous:
                return current
            previous = current
    except Exception:  # unreachable, or a listing that fails: the cycle then reports it
        return ()
    return previous
