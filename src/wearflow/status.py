"""Read-only summaries of a study's state for `wearflow status`."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict
from typing import Any

from wearflow.config import Study
from wearflow.qc import QC_TABLE, qc_rows
from wearflow.results import read_tables
from wearflow.state import TASK_STATES, State
from wearflow.storage import Store


def study_metadata(study: Study) -> dict[str, dict[str, dict[str, Any]]]:
    """Per participant and field: the value in force, its source file, row and time."""
    state = State(study.state_url)
    try:
        return {p: {name: asdict(cell) for name, cell in sorted(cells.items())}
                for p, cells in sorted(state.current_metadata().items())}
    finally:
        state.close()


def study_status(study: Study, tag: str | None = None) -> dict[str, Any]:
    """One JSON-ready object: files by state, participants processed, open issues."""
    state = State(study.state_url)
    try:
        counts = state.file_state_counts()
        files = state.current_files()
        participants = {f.participant for f in files if f.participant and not f.parse_error}
        done: dict[tuple[str, str], set[str]] = defaultdict(set)
        for task in state.done_tasks():
            done[(task.solution, task.participant)].add(task.key)
        aggregated = {
            (r.solution, r.participant)
            for r in state.latest_participant_results()
            if set(json.loads(r.task_keys_json)) == done.get((r.solution, r.participant))
        }
        solutions = [s.name for s in study.solutions]
        processed = sorted(p for p in participants
                           if all((s, p) in aggregated for s in solutions))
        issues = [
            {"id": i.id, "tag": i.tag, "uri": i.uri, "participant": i.participant,
             "message": i.message,
             "resolution": i.resolution, "first_seen_utc": i.first_seen_utc,
             "last_seen_utc": i.last_seen_utc}
            for i in state.open_issues(study.study, tag)
        ]
    finally:
        state.close()
    return {
        "study": study.study,
        "files": {"total": len(files), "by_state": {s: counts.get(s, 0) for s in TASK_STATES}},
        "participants": {"total": len(participants), "processed": len(processed)},
        "issues": issues,
        "output": study.output,
    }


def study_qc(study: Study) -> list[dict[str, Any]]:
    """Per current file and per day: valid or not, and why (failed files: their reason)."""
    state = State(study.state_url)
    try:
        tasks = state.tasks_for_current_files()
        held = [f for f in state.current_files()
                if f.parse_error or f.duplicate_of or f.excluded_reason]
    finally:
        state.close()
    out = Store(study.output, study.storage_options)
    rows: list[dict[str, Any]] = []
    for task, f in tasks:
        qc = days = None
        if task.state == "done" and task.result_dir:
            qc = json.loads(out.read_bytes(f"{task.result_dir}/qc.json"))
            days = read_tables(out, task.result_dir).get(QC_TABLE)
        for row in qc_rows(f.uri, task.state, task.tag, task.message, qc, days):
            rows.append({"solution": task.solution, "participant": f.participant,
                         "side": f.side, **row})
    for f in held:
        reason = (f"excluded by hand: {f.excluded_reason}" if f.excluded_reason
                  else f"file name does not parse: {f.parse_error}" if f.parse_error
                  else f"same bytes as {f.duplicate_of}; held")
        rows.append({"solution": None, "participant": f.participant, "side": f.side,
                     "uri": f.uri, "state": "excluded" if f.excluded_reason else "failed",
                     "flags": "", "date": None, "wear_hours": None, "valid_day": 0,
                     "reason": reason})
    return sorted(rows, key=lambda r: (r["uri"], r["solution"] or "", r["date"] or ""))
