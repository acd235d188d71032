"""Read-only summaries of a study's state: ``status``, ``issues``, ``metadata``, ``qc``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from wearflow.config import Study
from wearflow.qc import QC_TABLE, qc_rows
from wearflow.results import read_tables, write_qc_table
from wearflow.state import State
from wearflow.state.tables import ParticipantResultRow
from wearflow.storage import Store
from wearflow.task import TASK_STATES, TaskState

QC_COLUMNS = ("solution", "participant", "side", "uri", "state", "date", "wear_hours",
              "valid_day", "reason", "flags")


def study_metadata(study: Study) -> dict[str, dict[str, dict[str, Any]]]:
    """Per participant and field: the value in force, its source file, row and time."""
    with State(study.state_url) as state:
        return {p: {name: asdict(cell) for name, cell in sorted(cells.items())}
                for p, cells in sorted(state.metadata.current().items())}


def study_status(study: Study, tag: str | None = None) -> dict[str, Any]:
    """One JSON-ready object: files by state, participants processed, open issues."""
    with State(study.state_url) as state:
        counts = study_counts(state)
        current, _stale = current_participant_results(state)
        summaries = state.results.latest_summaries()
        issues = [
            {"id": i.id, "tag": i.tag, "uri": i.uri, "participant": i.participant,
             "message": i.message, "resolution": i.resolution,
             "first_seen_utc": i.first_seen_utc, "last_seen_utc": i.last_seen_utc}
            for i in state.issues.open(study.study, tag)
        ]
    return {
        "study": study.study,
        **counts,
        # where the current results are (output-relative folders): older versions stay
        # beside them, write-once
        "current": {
            "participant_results": [{"solution": r.solution, "participant": r.participant,
                                     "visit": r.visit or "", "folder": r.result_dir}
                                    for r in current],
            "summaries": dict(sorted(summaries.items()))},
        "issues": issues,
        "output": study.output,
    }


def study_counts(state: State) -> dict[str, Any]:
    """Files by state, participants and participant-visits processed (the counts of
    :func:`study_status`, which the dashboard shows too): counted in the database, and
    in Python only the task keys of the participant results are compared."""
    by_state = state.tasks.file_state_counts()
    n_files, n_participants = state.files.current_counts()
    visits = _participant_visits(state)
    return {
        "files": {"total": n_files, "by_state": {s: by_state.get(s, 0) for s in TASK_STATES}},
        "participants": {"total": n_participants,
                         "processed": len({p for (p, _v), done in visits.items() if done}
                                          - {p for (p, _v), done in visits.items()
                                             if not done})},
        "participant_visits": {"total": len(visits), "processed": sum(visits.values())},
    }


Group = tuple[str, str, str]  # solution, participant, visit ("" when the names give none)


def _done_task_keys(state: State) -> dict[Group, set[str]]:
    """Every (solution, participant, visit) with a task for a current file, and the keys
    of its done tasks (empty when none is done yet)."""
    return state.tasks.done_keys_by_group()


def _made_from(row: ParticipantResultRow, expected: dict[Group, set[str]]) -> bool:
    """Whether ``row`` was made from exactly its group's current done tasks."""
    return set(json.loads(row.task_keys_json)) == expected.get(
        (row.solution, row.participant, row.visit or ""))


def current_participant_results(state: State
                                ) -> tuple[list[ParticipantResultRow], list[ParticipantResultRow]]:
    """The latest participant result of each (solution, participant, visit), split into
    the current ones (made from exactly the group's current done tasks: what ``status``
    counts as processed) and the stale ones (made from files that have since changed,
    gone, been excluded or not been processed yet); each sorted by group."""
    expected = _done_task_keys(state)
    current: list[ParticipantResultRow] = []
    stale: list[ParticipantResultRow] = []
    for row in state.results.latest_participants():
        (current if _made_from(row, expected) else stale).append(row)
    return current, stale


def _participant_visits(state: State) -> dict[tuple[str, str], bool]:
    """Every (participant, visit) with a task, and whether each of its solutions has a
    participant result made from exactly its current done tasks (a failed wrist does
    not keep the other from being the participant's result).

    The latest result of a group is chosen as :meth:`ResultRepository.latest_participants`
    chooses it (one made from the current done tasks if any, else the newest), from the
    results' task keys alone."""
    expected = _done_task_keys(state)
    latest: dict[Group, set[str]] = {}
    for solution, participant, visit, keys_json in state.results.task_keys():
        group = (solution, participant, visit)
        keys = set(json.loads(keys_json))
        done = expected.get(group) or None
        if keys == done or latest.get(group, ()) != done:
            latest[group] = keys
    visits: dict[tuple[str, str], bool] = {}
    for group, done_keys in expected.items():
        pv = (group[1], group[2])
        visits[pv] = visits.get(pv, True) and latest.get(group) == done_keys
    return visits


def study_qc(study: Study) -> list[dict[str, Any]]:
    """Per current file and per day: valid or not, and why (failed files: their reason)."""
    with State(study.state_url) as state:
        tasks = state.tasks.for_current_files()
        held = [f for f in state.files.current()
                if f.parse_error or f.duplicate_of or f.excluded_reason]
    out = Store(study.output, study.storage_options)
    rows: list[dict[str, Any]] = []
    for task, f in tasks:
        qc = days = None
        if task.state == TaskState.DONE and task.result_dir:
            qc = json.loads(out.read_bytes(f"{task.result_dir}/qc.json"))
            days = read_tables(out, task.result_dir, {QC_TABLE: None}).get(QC_TABLE)
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


@dataclass(frozen=True)
class QcExport:
    """The study's per-day QC rows, and where their CSV was written (output-relative)."""

    rows: list[dict[str, Any]]
    path: str
    output: str

    def to_json(self) -> list[dict[str, Any]]:
        """The rows, with each row's flags as a list (the CSV joins them with ';')."""
        return [{**r, "flags": [f for f in str(r.get("flags") or "").split(";") if f]}
                for r in self.rows]


def export_qc(study: Study) -> QcExport:
    """:func:`study_qc`, also written (write-once, named by content) under ``qc/``."""
    rows = study_qc(study)
    table = pd.DataFrame(rows, columns=list(QC_COLUMNS))
    path = write_qc_table(Store(study.output, study.storage_options), table)
    return QcExport(rows, path, study.output)
