"""Check outputs on storage against what was recorded, and re-run a result to compare bytes.

``verify_outputs``: every file under ``single-wrist-processed/`` and
``processed/`` must be listed, with its sha256, in the provenance.json of its
folder, and every provenance.json must have the sha256 the state database and the
audit trail (``result.written``) recorded when it was written; the audit trail is
checked against its anchors. Reports altered, missing, unrecorded and unaudited
files, and a broken audit trail.

``reproduce``: re-run one per-wrist result's task from its provenance into a
scratch location and compare every output file byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from wearflow.catalog import StoredFile
from wearflow.config import Study, local_path
from wearflow.errors import StateError, WearflowError
from wearflow.plan import task_spec
from wearflow.results import PROCESSED, SINGLE_WRIST
from wearflow.services.audit import check_audit
from wearflow.solutions import load_solution
from wearflow.solutions.environments import lock_key
from wearflow.state import State
from wearflow.state.audit import AuditEntry
from wearflow.storage import Store, sha256_bytes
from wearflow.task import TaskRecord, TaskState
from wearflow.worker import execute

# altered: bytes differ from the sha256 recorded; missing: recorded, not on storage;
# unrecorded: on storage, recorded nowhere; unaudited: recorded in the state, but no run's
# result.written entry in the audit trail names it; audit: the audit trail itself is broken
Problem = Literal["altered", "missing", "unrecorded", "unaudited", "audit"]


@dataclass(frozen=True)
class OutputProblem:
    kind: Problem
    path: str
    detail: str


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[OutputProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked,
                "problems": [dataclasses.asdict(p) for p in self.problems]}


def verify_outputs(study: Study) -> VerifyReport:
    """Compare every result file on storage with its recorded sha256.

    Recorded twice: in the state database (the result's row) and in the audit trail (the
    run's ``result.written`` entry), which is itself checked against its latest anchor
    outside the database. A provenance.json must match both: editing a result, its
    provenance.json and the state's row together still shows.
    """
    out = Store(study.output, study.storage_options)
    with State(study.state_url) as state:
        expected_prov = state.results.provenance_hashes()
        entries = state.audit.entries()
    report = VerifyReport()
    trail = check_audit(study, entries)
    if not trail.ok:
        report.problems.append(OutputProblem("audit", "audit trail",
                                             f"{trail.problem()}; {trail.anchor_text()}"))
    audited = _audited_results(entries)
    on_storage = {e.path: e for e in out.walk()
                  if e.path.startswith((SINGLE_WRIST + "/", PROCESSED + "/"))}
    recorded: set[str] = set()
    for folder in sorted(set(expected_prov) | set(audited)):
        prov_path = f"{folder}/provenance.json"
        recorded.add(prov_path)
        state_sha, audit_shas = expected_prov.get(folder), audited.get(folder, set())
        if state_sha is None:
            report.problems.append(OutputProblem(
                "altered", prov_path, "written by a run (audit trail) but its record is gone "
                                      "from the state database"))
        elif not audit_shas:
            report.problems.append(OutputProblem(
                "unaudited", prov_path, "recorded in the state database, but no run wrote it "
                                        "(no result.written entry in the audit trail)"))
        if prov_path not in on_storage:
            report.problems.append(OutputProblem("missing", prov_path, "provenance.json is gone"))
            continue
        data = out.read_bytes(prov_path)
        report.checked += 1
        actual = sha256_bytes(data)
        if state_sha is not None and actual != state_sha:
            report.problems.append(OutputProblem(
                "altered", prov_path, "provenance.json differs from the one written"))
        elif audit_shas and actual not in audit_shas:
            report.problems.append(OutputProblem(
                "altered", prov_path, f"sha256 {actual[:12]}... matches the state database, "
                f"but the audit trail recorded {sorted(audit_shas)[0][:12]}... when it was "
                "written: the result and its records were changed together"))
        try:
            outputs = json.loads(data)["outputs"]
        except (ValueError, KeyError, TypeError):
            continue
        for item in outputs:
            path, digest = str(item["path"]), str(item["sha256"])
            recorded.add(path)
            if path not in on_storage:
                report.problems.append(OutputProblem("missing", path, "listed in provenance"))
                continue
            report.checked += 1
            actual = sha256_bytes(out.read_bytes(path))
            if actual != digest:
                report.problems.append(OutputProblem(
                    "altered", path, f"sha256 {actual[:12]}..., recorded {digest[:12]}..."))
    for path in sorted(set(on_storage) - recorded):
        report.problems.append(OutputProblem("unrecorded", path,
                                             "in a result tree but in no provenance"))
    return report


def _audited_results(entries: Sequence[AuditEntry]) -> dict[str, set[str]]:
    """Result folder -> the provenance.json sha256 each ``result.written`` entry recorded."""
    found: dict[str, set[str]] = {}
    for e in entries:
        if e.action != "result.written" or not e.after_json:
            continue
        try:
            digest = json.loads(e.after_json).get("provenance_sha256")
        except (ValueError, AttributeError):
            continue
        if isinstance(digest, str) and digest:
            found.setdefault(e.object, set()).add(digest)
    return found


@dataclass(frozen=True)
class FileComparison:
    path: str
    identical: bool


@dataclass(frozen=True)
class ReproduceReport:
    task_key: str
    result_dir: str
    files: tuple[FileComparison, ...]

    @property
    def identical(self) -> bool:
        return all(f.identical for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {"task_key": self.task_key, "result_dir": self.result_dir,
                "identical": self.identical,
                "files": [dataclasses.asdict(f) for f in self.files]}


def reproduce(study: Study, result: str, scratch: Path | None = None) -> ReproduceReport:
    """Re-run the task behind ``result`` and compare every output byte for byte.

    ``result`` is any name a user sees for one per-wrist result: its folder (absolute,
    relative to the working directory or to the study's output), the input-file folder
    above it when that holds one result, or the task key (or a prefix of it).

    Raises
    ------
    WearflowError
        The result is unknown or ambiguous, its solution changed, or its input no
        longer has the recorded bytes.
    """
    configs = {c.name: c for c in study.solutions}
    with State(study.state_url) as state:
        record, f = find_result(state, study, result)
        group = (f, *state.files.by_ids(record.parts))
        config = configs.get(record.solution)
        # a solution with its own environment: built from the lock the study stored
        stored = state.locks.get(lock_key(config.environment)) if config and \
            config.environment else None
    if config is None:
        raise WearflowError("its solution is no longer in the study file", subject=result)
    lock_text = stored.lock_text if stored is not None else None
    current = load_solution(config, lock_text)
    if current.fingerprint != record.solution_fingerprint:
        raise WearflowError(f"solution {record.solution} is now {current.version}; the result "
                            f"was made by {record.solution_version}", subject=result)
    folder = record.result_dir or ""
    out = Store(study.output, study.storage_options)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        task = dataclasses.replace(task_spec(study, group, record,
                                             environment_lock=current.environment_lock),
                                   output=tmp)
        outcome = execute(task, run_id="reproduce")
        if outcome.state != TaskState.DONE or outcome.result_dir is None:
            raise WearflowError(f"re-run failed: {outcome.message}", subject=result)
        fresh = Store(tmp)
        names = sorted(set(out.listdir(folder)) | set(fresh.listdir(folder)))
        files = tuple(
            FileComparison(f"{folder}/{name}",
                           out.exists(f"{folder}/{name}") and fresh.exists(f"{folder}/{name}")
                           and out.read_bytes(f"{folder}/{name}")
                           == fresh.read_bytes(f"{folder}/{name}"))
            for name in names if name != "provenance.json"  # it holds run times
        )
    return ReproduceReport(record.key, folder, files)


def find_result(state: State, study: Study, result: str) -> tuple[TaskRecord, StoredFile]:
    """The one done per-wrist task ``result`` names (see :func:`reproduce`)."""
    folders = _output_relative(study, result)
    key_prefix = result.strip() if all(c in "0123456789abcdef" for c in result.strip()) else ""
    matches = state.results.done_tasks_under(folders, key_prefix)
    if len({t.key for t, _ in matches}) != 1:
        raise StateError("no single done task matches (give a task key or a per-wrist "
                         f"result folder); {len(matches)} match", subject=result)
    return matches[0]


def _output_relative(study: Study, result: str) -> list[str]:
    """The output-relative folders ``result`` may name: as given, and, for a local path
    under the study's output (absolute or relative to the working directory), its part
    below the output root."""
    text = result.strip().rstrip("/")
    candidates = [text, text.split("/", 1)[-1]]  # also without a leading output folder name
    root = local_path(study.output)
    if root is not None and text:
        resolved = Path(os.path.abspath(Path(text).expanduser()))
        for base in {Path(os.path.abspath(root)), Path(root).resolve()}:
            for path in (resolved, resolved.resolve()):
                if path.is_relative_to(base) and path != base:
                    candidates.append(path.relative_to(base).as_posix())
    return list(dict.fromkeys(candidates))
