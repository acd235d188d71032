"""What the dashboard (``wearflow serve``) shows, as JSON-ready data: the pages and the
JSON API read the same functions.

Read-only towards the science: nothing here changes a result. The costly figure (files
by state, which walks every current file) is cached per study and recomputed only when
the state changed (the audit trail's head moved) and not more often than every
:data:`FILES_REFRESH_S` seconds; the rest are aggregates the database computes.
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from wearflow.clock import iso_utc, parse_iso, utc_now
from wearflow.config import Study
from wearflow.errors import StateError
from wearflow.results import REPORTS
from wearflow.services.alerts import current_alerts
from wearflow.services.runs import list_runs, run_detail
from wearflow.services.status import study_status
from wearflow.state import State
from wearflow.storage import Store

FILES_REFRESH_S = 10.0
RECENT_RUNS = 10
WORKER_WINDOW = timedelta(minutes=10)
ISSUE_DAYS = 30

_cache: dict[str, tuple[int, float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def _files_by_state(study: Study, state: State) -> dict[str, Any]:
    marker = state.dashboard.change_marker()
    with _cache_lock:
        hit = _cache.get(study.state_url)
    if hit is not None and (hit[0] == marker or time.monotonic() - hit[1] < FILES_REFRESH_S):
        return hit[2]
    status = study_status(study)
    value = {"files": status["files"], "participant_visits": status["participant_visits"],
             "participants": status["participants"]}
    with _cache_lock:
        _cache[study.state_url] = (marker, time.monotonic(), value)
    return value


def overview(study: Study) -> dict[str, Any]:
    """The study at a glance: files, tasks, participants, problems, runs, workers."""
    now = utc_now()
    since_workers = iso_utc(parse_iso(now).timestamp() - WORKER_WINDOW.total_seconds())
    since_hour = iso_utc(parse_iso(now).timestamp() - 3600)
    since_days = iso_utc(parse_iso(now).timestamp() - ISSUE_DAYS * 86400)
    with State(study.state_url) as state:
        files = _files_by_state(study, state)
        tasks = state.dashboard.task_states()
        running = state.dashboard.running()
        workers = state.dashboard.workers_since(since_workers)
        last_hour = state.dashboard.finished_since(since_hour)
        issue_counts = state.dashboard.issue_counts(study.study)
        over_time = state.dashboard.issues_by_day(study.study, since_days)
        latest = state.dashboard.issues(study.study, limit=8)
    for issue in latest:  # where the problem is: its file's name, or the participant
        issue["where"] = (issue["uri"] or "").rstrip("/").rsplit("/", 1)[-1] or (
            issue["participant"] or "")
    runs = [r.to_json() for r in list_runs(study)[:RECENT_RUNS]]
    for run in runs:
        run["files_per_h"] = _per_hour(run["tasks_done"], run, now)
        run["data_h_per_h"] = _per_hour(run["data_h"], run, now)
    finished_ok = [r for r in runs if r["status"] == "finished" and not r["tasks_failed"]]
    return {
        "study": study.study, "now_utc": now,
        **files,
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
        file_issues = [i for i in state.dashboard.issues(study.study, open_=None, limit=500)
                       if i["uri"] == f["uri"]]
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
