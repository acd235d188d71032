"""What the dashboard (``wearflow serve``) shows, as JSON-ready data: the pages and the
JSON API read the same functions.

Read-only towards the science: nothing here changes a result. The costly figures (files
by state, participants and participant-visits processed, tasks by state: each reads
every current task, about a second at 100,000 files) are kept per study and computed
off the request: a page gets the last answer at once, and when the state changed (the
audit trail's head moved) and the answer is :data:`FILES_REFRESH_S` seconds old, one
background thread computes the next. Only a study's first request waits for them (the
server starts computing them when it starts: :func:`warm_up`). The rest are aggregates
the database computes, per request.
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from wearflow.clock import iso_utc, parse_iso, utc_now
from wearflow.config import Study
from wearflow.errors import StateError
from wearflow.results import REPORTS
from wearflow.services.alerts import current_alerts
from wearflow.services.runs import list_runs, run_detail
from wearflow.services.status import study_counts
from wearflow.state import State
from wearflow.storage import Store

FILES_REFRESH_S = 10.0
RECENT_RUNS = 10
WORKER_WINDOW = timedelta(minutes=10)
ISSUE_DAYS = 30


@dataclass
class _Counts:
    """One study's costly figures: the last answer, and the thread computing the next."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    value: dict[str, Any] | None = None
    marker: int = -1  # the audit trail's head the value was computed at
    at: float = 0.0  # time.monotonic() when it was computed
    refreshing: threading.Thread | None = None


_counts: dict[str, _Counts] = {}
_counts_lock = threading.Lock()


def _compute(study: Study) -> tuple[int, dict[str, Any]]:
    """(the change marker, the costly figures) read now; the marker first, so that a
    change made during the reads makes the next request compute them again."""
    with State(study.state_url) as state:
        marker = state.dashboard.change_marker()
        value = study_counts(state)
        value["tasks_by_state"] = state.dashboard.task_states()
    return marker, value


def _refresh(study: Study, entry: _Counts) -> None:
    try:
        marker, value = _compute(study)
    except Exception:  # kept for the request: it computes again and reports the error
        with entry.lock:
            entry.refreshing = None
        return
    with entry.lock:
        entry.value, entry.marker, entry.at = value, marker, time.monotonic()
        entry.refreshing = None


def _start_refresh(study: Study, entry: _Counts) -> threading.Thread:
    """Start computing ``study``'s figures in the background (caller holds entry.lock)."""
    thread = threading.Thread(target=_refresh, args=(study, entry), daemon=True,
                              name=f"wearflow-dashboard-{study.study}")
    entry.refreshing = thread
    thread.start()
    return thread


def _entry(study: Study) -> _Counts:
    with _counts_lock:
        return _counts.setdefault(study.state_url, _Counts())


def warm_up(studies: Sequence[Study]) -> None:
    """Start computing each study's costly figures in the background (at server start)."""
    for study in studies:
        entry = _entry(study)
        with entry.lock:
            if entry.value is None and entry.refreshing is None:
                _start_refresh(study, entry)


def forget(study: Study) -> None:
    """Drop a study's figures: the next request computes them (tests, benchmarks)."""
    with _counts_lock:
        _counts.pop(study.state_url, None)


def _costly(study: Study, state: State) -> dict[str, Any]:
    """The study's costly figures: the last answer (refreshed in the background when the
    state changed), or, before the first answer exists, computed (or awaited) now."""
    entry = _entry(study)
    marker = state.dashboard.change_marker()
    with entry.lock:
        value, running = entry.value, entry.refreshing
        if value is not None:
            if (running is None and marker != entry.marker
                    and time.monotonic() - entry.at >= FILES_REFRESH_S):
                _start_refresh(study, entry)
            return value
        if running is None:
            running = _start_refresh(study, entry)
    running.join()
    with entry.lock:
        value = entry.value
    if value is None:  # the computation failed: again here, where its error is reported
        marker, value = _compute(study)
        with entry.lock:
            entry.value, entry.marker, entry.at = value, marker, time.monotonic()
    return value


def overview(study: Study) -> dict[str, Any]:
    """The study at a glance: files, tasks, participants, problems, runs, workers."""
    now = utc_now()
    since_workers = iso_utc(parse_iso(now).timestamp() - WORKER_WINDOW.total_seconds())
    since_hour = iso_utc(parse_iso(now).timestamp() - 3600)
    since_days = iso_utc(parse_iso(now).timestamp() - ISSUE_DAYS * 86400)
    with State(study.state_url) as state:
        costly = _costly(study, state)
        tasks = costly["tasks_by_state"]
        running = state.dashboard.running()
        workers = state.dashboard.workers_since(since_workers)
        last_hour = state.dashboard.finished_since(since_hour)
        issue_counts = state.dashboard.issue_counts(study.study)
        over_time = state.dashboard.issues_by_day(study.study, since_days)
        latest = state.dashboard.issues(study.study, limit=8)
    for issue in latest:  # where the problem is: its file's name, or the participant
        issue["where"] = (issue["uri"] or "").rstrip("/").rsplit("/", 1)[-1] or (
            issue["participant"] or "")
    runs = [r.to_json() for r in list_runs(study, limit=RECENT_RUNS)]
    for run in runs:
        run["files_per_h"] = _per_hour(run["tasks_done"], run, now)
        run["data_h_per_h"] = _per_hour(run["data_h"], run, now)
    finished_ok = [r for r in runs if r["status"] == "finished" and not r["tasks_failed"]]
    return {
        "study": study.study, "now_utc": now,
        "files": costly["files"], "participants": costly["participants"],
        "participant_visits": costly["participant_visits"],
        "tasks_by_state": tasks,
        "queue": tasks.get("pending", 0) + tasks.get("waiting", 0),
        "running": running, "workers": workers,
        "last_hour": {"done": last_hour.get("done", 0), "failed": last_hour.get("failed", 0)},
        "issues_by_tag": issue_counts,
        "issue_tags": [{"tag": t, "count": n} for t, n in issue_counts.items()],
        "issues_over_time": over_time,
        "latest_issues": latest, "runs": runs,
        "last_successful_run_utc": finished_ok[0]["finished_utc"] if finished_ok else None,
        "alerts": _alerts(study),
    }


def _alerts(study: Study) -> list[dict[str, Any]]:
    """The study's firing and recently cleared alerts (empty until alerts are set up)."""
    return [a.to_json() for a in current_alerts(study)]


def _per_hour(count: float, run: Mapping[str, Any], now: str) -> float | None:
    end = run.get("finished_utc") or now
    hours = (parse_iso(end) - parse_iso(run["started_utc"])).total_seconds() / 3600.0
    return round(count / hours, 1) if hours > 0 else None


def issues(study: Study, *, tag: str | None = None, participant: str | None = None,
           state: str = "open") -> list[dict[str, Any]]:
    """The issues queue, filtered by tag, participant and state (open, closed, all)."""
    open_ = {"open": True, "closed": False, "all": None}.get(state)
    if state not in ("open", "closed", "all"):
        raise StateError("state must be open, closed or all", subject=state)
    with State(study.state_url) as db:
        return db.dashboard.issues(study.study, tag=tag or None,
                                   participant=participant or None, open_=open_)


def file_detail(study: Study, file_id: int) -> dict[str, Any]:
    """A file: its versions, tasks, attempts, QC, provenance, issues and audit entries."""
    with State(study.state_url) as state:
        f = state.dashboard.file(file_id)
        if f is None:
            raise StateError(f"no file {file_id} in study {study.study}", subject=str(file_id))
        tasks = state.dashboard.tasks_of_file(file_id)
        attempts = state.dashboard.attempts_of([t["key"] for t in tasks])
        versions = state.dashboard.versions(f["uri"])
        file_issues = state.dashboard.issues(study.study, open_=None, uri=f["uri"])
        audit = state.dashboard.audit_of([f["uri"], *[t["key"] for t in tasks],
                                          *[t["result_dir"] for t in tasks if t["result_dir"]]])
    out = Store(study.output, study.storage_options)
    for t in tasks:
        t["flags"] = json.loads(t.pop("flags_json") or "[]")
        t["qc"] = _json_or_none(out, f"{t['result_dir']}/qc.json") if t["result_dir"] else None
        t["provenance"] = (_json_or_none(out, f"{t['result_dir']}/provenance.json")
                           if t["result_dir"] else None)
    keep = ("id", "uri", "sha256", "size_bytes", "participant", "side", "visit", "kind",
            "parse_error", "duplicate_of", "device_serial", "excluded_reason",
            "first_seen_utc", "last_seen_utc", "current", "present")
    return {"file": {k: f[k] for k in keep}, "versions": versions, "tasks": tasks,
            "attempts": attempts, "issues": file_issues, "audit": audit}


def participant_detail(study: Study, participant: str) -> dict[str, Any]:
    """A participant: files, results and the latest report of each result."""
    with State(study.state_url) as state:
        files = state.dashboard.participant_files(participant)
        results = state.dashboard.participant_results(participant)
        found = state.dashboard.issues(study.study, participant=participant)
    if not files and not results:
        raise StateError(f"no participant {participant!r} in study {study.study}",
                         subject=participant)
    out = Store(study.output, study.storage_options)
    for r in results:
        r["flags"] = json.loads(r.pop("flags_json") or "[]")
        r["report"] = _report_of(out, r["result_dir"], r["solution"], participant, r["visit"])
    return {"participant": participant, "files": files, "results": results, "issues": found}


def run_page(study: Study, run_id: str) -> dict[str, Any]:
    """A run: its detail (not the configuration it used) and its report, when written."""
    detail = run_detail(study, run_id).to_json()
    detail.pop("config", None)  # may hold credentials
    out = Store(study.output, study.storage_options)
    folder = f"{REPORTS}/runs/{detail['run']['run_id']}"
    pages = sorted(out.listdir(folder)) if out.exists(folder) else []
    detail["report"] = _newest_page(out, [f"{folder}/{p}" for p in pages])
    return detail


def _json_or_none(out: Store, path: str) -> Any:
    try:
        return json.loads(out.read_bytes(path)) if out.exists(path) else None
    except ValueError:
        return None


def _report_of(out: Store, result_dir: str, solution: str, participant: str,
               visit: str) -> str | None:
    """The newest participant report drawn from ``result_dir`` (output-relative path)."""
    parts = [REPORTS, "participants", solution, participant] + ([visit] if visit else [])
    folder = posixpath.join(*parts)
    if not out.exists(folder):
        return None
    candidates = []
    for name in out.listdir(folder):
        prov = _json_or_none(out, f"{folder}/{name}/provenance.json")
        if prov and any(s.get("path") == result_dir for s in prov.get("sources", [])):
            candidates.append(f"{folder}/{name}")
    return _newest_page(out, candidates)


def _newest_page(out: Store, folders: list[str]) -> str | None:
    """Of report folders, the page of the one whose provenance is newest."""
    best: tuple[str, str] | None = None
    for folder in folders:
        prov = _json_or_none(out, f"{folder}/provenance.json") or {}
        created = str(prov.get("created_utc", ""))
        if best is None or created > best[0]:
            best = (created, f"{folder}/report.html")
    return None if best is None else best[1]
