"""Catalog + state + metadata + solutions -> what runs, what waits (and why), what is done.

Before a task runs its requirements are checked:

* logistics, always: the name parses into participant and side; the bytes are
  not a copy of another file; when the study says metadata are required, the
  participant is known to them; when the metadata assign device serials to
  wrists, the file header's serial agrees with the name's participant and side
  (a contradiction holds the file as mislabeled, a ``DATA_ISSUE``);
* processing: every field the solution ``requires`` (``height_m``, ...) is
  known for the participant.

A task whose requirements are missing is ``waiting`` with a message naming
what is missing, for whom and which file; it runs by itself once the missing
piece arrives. The metadata a solution uses (the participant's time zone and
required fields) are part of the task key, so a corrected value re-runs it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from wearflow._gc import gc_paused
from wearflow.catalog import StoredFile
from wearflow.clock import parse_iso
from wearflow.config import SolutionConfig, Study
from wearflow.errors import Tag
from wearflow.issue import IssueSpec
from wearflow.memory import (
    GB,
    WORKER_BASE_BYTES,
    estimate_peak_bytes,
    streamed_task_bytes,
)
from wearflow.metadata import DIARY, PROTOCOL_FIELDS, MetaCell, Metadata
from wearflow.provenance import default_actor
from wearflow.solutions import Solution
from wearflow.solutions.stream import STREAM_PIPELINE
from wearflow.streamed import STREAMED_ENDINGS
from wearflow.task import InputFile, TaskRecord, TaskSpec, TaskState


def task_key(input_sha256: str, solution_fingerprint: str,
             inputs: Mapping[str, str] | None = None) -> str:
    """A task is one input's bytes under one solution fingerprint and its metadata inputs."""
    return _task_key(input_sha256, solution_fingerprint, _inputs_text(inputs))


def _inputs_text(inputs: Mapping[str, str] | None) -> str:
    """The metadata inputs' part of a task key."""
    return json.dumps(dict(sorted(inputs.items())), sort_keys=True) if inputs else ""


def _task_key(input_sha256: str, solution_fingerprint: str, inputs_text: str) -> str:
    text = f"{input_sha256}|{solution_fingerprint}{inputs_text}"
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Plan:
    """What runs now, every task of every current file with its state, and what is held
    (files held before any task, and waiting tasks) with why."""

    to_run: tuple[TaskSpec, ...]
    records: tuple[TaskRecord, ...]
    held: tuple[IssueSpec, ...]
    unassigned: tuple[str, ...] = ()  # URIs of files no solution applies to


@gc_paused()
def make_plan(
    study: Study,
    files: Sequence[StoredFile],
    solutions: Sequence[Solution],
    task_states: Mapping[str, str],
    metadata: Metadata | None = None,
    task_created_utc: Mapping[str, str] | None = None,
    listed: set[str] | None = None,
    now: datetime | None = None,
) -> Plan:
    """Decide, per current file and solution, whether its task runs now.

    A task whose key is already ``done`` or ``failed`` is not run again (a
    changed input, solution or metadata input has a new key). Tasks left
    ``pending`` or ``running`` by an interrupted run are run again.
    """
    metadata = metadata or {}
    planner = _Planner(study, solutions, task_states, metadata, task_created_utc or {},
                       set(metadata) if listed is None else listed, now or datetime.now(UTC))
    for group in recording_groups(files):
        planner.add(group)
    return Plan(tuple(planner.to_run), tuple(planner.records), tuple(planner.held),
                tuple(planner.unassigned))


def recording_groups(files: Sequence[StoredFile]) -> list[tuple[StoredFile, ...]]:
    """The files to plan, as groups whose recordings one task combines.

    Several recordings of one participant's wrist (or other body location) in one
    visit (a device restart, a battery swap, a second download) are one group, in
    URI order; every other file is a group of its own. Files excluded by hand are left
    out (no task, no issue); files whose name gave no participant, or whose bytes copy
    another file's, stay alone (they are held, see :func:`_logistics`).
    """
    groups: dict[tuple[str, str | None, str | None, str | None], list[StoredFile]] = {}
    alone: list[tuple[StoredFile, ...]] = []
    for f in files:
        if f.excluded_reason:
            continue
        if f.parse_error or not f.participant or f.duplicate_of:
            alone.append((f,))
            continue
        groups.setdefault((f.participant, f.visit, f.body_location, f.side), []).append(f)
    every = [*alone, *(tuple(g) for g in groups.values())]
    return sorted(every, key=lambda g: g[0].uri)


class _Planner:
    """Plans the files of one study, one recording group at a time (see :func:`make_plan`)."""

    def __init__(self, study: Study, solutions: Sequence[Solution],
                 task_states: Mapping[str, str], metadata: Metadata,
                 created: Mapping[str, str], listed: set[str], now: datetime) -> None:
        self.study, self.solutions, self.task_states = study, solutions, task_states
        self.metadata, self.created, self.listed, self.now = metadata, created, listed, now
        self.serials = _serial_owners(metadata)
        self.fingerprint = study.fingerprint()
        self.user = default_actor(study.identity)
        self.scopes = {c.name: c.applies_to for c in study.solutions}
        # the device field is read from the stored name fields only when a scope uses it
        self.by_device = any(scope.device is not None for scope in self.scopes.values())
        self.to_run: list[TaskSpec] = []
        self.records: list[TaskRecord] = []
        self.held: list[IssueSpec] = []
        self.unassigned: list[str] = []
        # A task's inputs depend on its participant's metadata and the solution only:
        # built once per (participant, or None for all without metadata; solution) and
        # shared, read-only, by the tasks of every file of the participant.
        self._inputs: dict[tuple[str | None, int], tuple[dict[str, str], list[str], str]] = {}

    def add(self, group: tuple[StoredFile, ...]) -> None:
        f = group[0]
        holds = [h for h in (_logistics(self.study, m, self.metadata, self.serials,
                                        self.listed) for m in group) if h is not None]
        hold = holds[0] if holds else None
        if hold is not None and (f.parse_error or not f.participant or f.duplicate_of):
            self.held.append(hold)  # no task at all: there is nothing to run it under
            return
        if len(group) > 1:
            self.held.extend(_devices_differ(group))
        fields = {"side": f.side, "visit": f.visit, "location": f.body_location,
                  "device": _field(f, "device") if self.by_device else None}
        applicable = [(n, sol) for n, sol in enumerate(self.solutions)
                      if self.scopes[sol.name].accepts(fields)]
        if not applicable:
            self.unassigned.extend(m.uri for m in group)
            self.held.append(_unassigned(f, fields))
            return
        sha256 = group_sha256(group)
        parts_json = json.dumps([m.id for m in group[1:]]) if len(group) > 1 else None
        for n_sol, sol in applicable:
            inputs, missing, inputs_text = self._task_inputs(f.participant or "", n_sol)
            key = _task_key(sha256, sol.fingerprint, inputs_text)
            waiting = hold if hold is not None or not missing else _waiting(
                self.study, f, sol.name, missing, self.created.get(key), self.now)
            record = TaskRecord(key, f.id, sol.name, sol.version, sol.fingerprint,
                                f.participant, f.side, TaskState.PENDING,
                                inputs_json=inputs_text, parts_json=parts_json)
            state = self.task_states.get(key)
            if state in (TaskState.DONE, TaskState.FAILED):
                self.records.append(record._replace(state=state))
            elif waiting is not None:
                self.records.append(record._replace(state=TaskState.WAITING, tag=waiting.tag,
                                                    message=waiting.message))
                self.held.append(waiting)
            else:
                self.records.append(record)
                self.to_run.append(task_spec(self.study, group, record, inputs,
                                             study_fingerprint=self.fingerprint,
                                             user=self.user,
                                             environment_lock=sol.environment_lock))

    def _task_inputs(self, participant: str, n_sol: int
                     ) -> tuple[dict[str, str], list[str], str]:
        """(inputs, missing required fields, inputs' part of the key) of one task."""
        owner = participant if participant in self.metadata else None
        shared = self._inputs.get((owner, n_sol))
        if shared is None:
            study, sol = self.study, self.solutions[n_sol]
            meta: Mapping[str, MetaCell] = self.metadata.get(participant, {})
            inputs = {"time_zone": meta["time_zone"].value if "time_zone" in meta
                      else study.time_zone, "min_wear_hours": f"{study.qc.min_wear_hours:g}",
                      **{k: str(v) for k, v in (("study_start", study.qc.study_start),
                                                ("study_end", study.qc.study_end))
                         if v is not None}}
            inputs.update({r: meta[r].value for r in (*sol.requires, *PROTOCOL_FIELDS, DIARY)
                           if r in meta})
            missing = [r for r in sol.requires if r not in meta]
            shared = self._inputs[(owner, n_sol)] = (inputs, missing, _inputs_text(inputs))
        return shared


def task_spec(study: Study, group: Sequence[StoredFile], record: TaskRecord,
              inputs: Mapping[str, str] | None = None, *, study_fingerprint: str | None = None,
              user: str | None = None, environment_lock: str = "") -> TaskSpec:
    """What a worker needs to run ``record`` on the files of ``group`` (its own file
    first, then the other recordings it combines) of ``study``.

    ``inputs`` (default: the record's), ``study_fingerprint`` and ``user`` are given by
    a caller that builds many specs and has them at hand. ``environment_lock``: the lock
    of the solution's own environment (:attr:`Solution.environment_lock`), which the
    worker builds exactly.
    """
    f = group[0]
    config = next(c for c in study.solutions if c.name == record.solution)
    parts = tuple(InputFile(m.id, m.uri, m.location, m.path, m.sha256, m.size_bytes)
                  for m in group[1:])
    return TaskSpec(
        key=record.key, file_id=f.id, uri=f.uri, location=f.location, path=f.path,
        sha256=f.sha256, size_bytes=f.size_bytes, participant=f.participant or "",
        side=f.side or "", solution=config, solution_version=record.solution_version,
        solution_fingerprint=record.solution_fingerprint, study=study.study,
        study_fingerprint=study_fingerprint or study.fingerprint(), output=study.output,
        device_time_zone=study.clock_time_zone,
        user=default_actor(study.identity) if user is None else user,
        metadata=record.inputs if inputs is None else inputs,
        storage_options=study.storage_options,
        memory_bytes=task_memory_bytes(config, [(m.path, m.size_bytes) for m in group]),
        visit=f.visit or "", parts=parts, timeout_s=study.task_timeout_s,
        memory_limit_bytes=None if study.task_memory_limit_gb is None
        else int(study.task_memory_limit_gb * GB), environment_lock=environment_lock)


def task_memory_bytes(config: SolutionConfig, files: Sequence[tuple[str, int]]) -> int:
    """A task's estimated peak memory: its files' samples at the solution's bytes per
    sample (several recordings of one wrist are combined in one worker); a streaming
    solution on one file of a format that streams holds one chunk at a time and its
    per-second features (:func:`~wearflow.memory.streamed_task_bytes`), or less than a
    whole-file read of it for a short file."""
    if (config.pipeline == STREAM_PIPELINE and len(files) == 1
            and files[0][0].lower().endswith(STREAMED_ENDINGS)):
        path, size = files[0]
        return min(streamed_task_bytes(path, size),
                   estimate_peak_bytes(path, size, config.bytes_per_sample))
    return (sum(estimate_peak_bytes(path, size, config.bytes_per_sample)
                for path, size in files) - WORKER_BASE_BYTES * (len(files) - 1))


def group_sha256(group: Sequence[StoredFile]) -> str:
    """What a task's key takes from its input: the file's sha256, or for several
    recordings combined, the sha256 of their sorted sha256s."""
    if len(group) == 1:
        return group[0].sha256
    return hashlib.sha256("+".join(sorted(m.sha256 for m in group)).encode()).hexdigest()


def _field(f: StoredFile, name: str) -> str | None:
    """One of the fields the file's name parsed into (stored as JSON)."""
    value = json.loads(f.fields_json or "{}").get(name)
    return None if value is None else str(value)


def _devices_differ(group: Sequence[StoredFile]) -> list[IssueSpec]:
    """Recordings of one wrist in one visit from two devices: combined (a device swapped
    mid-period), and said, since a mislabeled file looks the same."""
    serials = sorted({m.device_serial for m in group if m.device_serial})
    if len(serials) < 2:
        return []
    f = group[0]
    where = _where(f)
    return [IssueSpec(Tag.DATA_ISSUE.value,
                      f"the {len(group)} recordings of {where} come from {len(serials)} devices "
                      f"({', '.join(serials)}): combined in time order as one wrist; check "
                      "that none belongs to another participant "
                      f"({', '.join(m.name for m in group)})",
                      uri=f.uri, participant=f.participant,
                      resolution="exclude or rename a file that is not this participant's")]


def _unassigned(f: StoredFile, fields: Mapping[str, str | None]) -> IssueSpec:
    shown = ", ".join(f"{k} {v}" for k, v in fields.items() if v is not None) or "no fields"
    return IssueSpec(Tag.DATA_ISSUE.value,
                     f"no solution of the study applies to this file of {_where(f)} ({shown}); "
                     "it is not processed", uri=f.uri, participant=f.participant,
                     resolution="rename the file, or widen a solution's applies_to")


def _where(f: StoredFile) -> str:
    """``participant P1 visit V1 left wrist`` for messages."""
    parts = [f"participant {f.participant}"]
    if f.visit:
        parts.append(f"visit {f.visit}")
    if f.side:
        parts.append(f"{f.side} {f.body_location or 'wrist'}")
    elif f.body_location:
        parts.append(f.body_location)
    return " ".join(parts)


def _serial_owners(metadata: Metadata) -> dict[str, tuple[str, str]]:
    owners: dict[str, tuple[str, str]] = {}
    for participant, cells in sorted(metadata.items()):
        for side in ("left", "right"):
            cell = cells.get(f"device_{side}")
            if cell is not None:
                owners[cell.value] = (participant, side)
    return owners


def _logistics(study: Study, f: StoredFile, metadata: Metadata,
               serials: Mapping[str, tuple[str, str]], listed: set[str]) -> IssueSpec | None:
    """Why ``f`` cannot run whatever its solution needs (None: it can)."""
    if f.parse_error or not f.participant:
        return IssueSpec(Tag.DATA_ISSUE.value, "file name does not parse: "
                         + (f.parse_error or "no participant in the name"), uri=f.uri,
                         resolution="rename the file to match a sensor pattern of the study")
    if f.duplicate_of:
        return IssueSpec(Tag.DATA_ISSUE.value, f"same bytes as {f.duplicate_of}; processed "
                         "once under that name, this copy is held", uri=f.uri,
                         participant=f.participant,
                         resolution="remove the copy, or replace it with the right recording")
    if study.metadata.required and f.participant not in listed:
        return IssueSpec(Tag.WAITING.value, f"participant {f.participant} is not in the "
                         "metadata (the study requires it)", uri=f.uri,
                         participant=f.participant,
                         resolution=f"upload metadata listing participant {f.participant}")
    return _mislabeled(f, metadata, serials)


def _mislabeled(f: StoredFile, metadata: Metadata,
                serials: Mapping[str, tuple[str, str]]) -> IssueSpec | None:
    """A header serial that contradicts the device assignment of the metadata."""
    expected = metadata.get(f.participant or "", {}).get(f"device_{f.side}")
    if not f.device_serial or (expected is None and f.device_serial not in serials):
        return None
    owner = serials.get(f.device_serial)
    if owner is not None and owner != (f.participant, f.side):
        message = (f"mislabeled: header serial {f.device_serial} is the {owner[1]}-wrist "
                   f"device of participant {owner[0]} per metadata, but the name says "
                   f"{f.participant} {f.side}")
    elif owner is None and expected is not None:
        message = (f"mislabeled: header serial {f.device_serial} is not the device "
                   f"{expected.value} that metadata assign to {f.participant} {f.side}")
    else:
        return None
    return IssueSpec(Tag.DATA_ISSUE.value, message, uri=f.uri, participant=f.participant,
                     resolution="rename the file or correct the device assignment")


def _waiting(study: Study, f: StoredFile, solution: str, missing: Sequence[str],
             created_utc: str | None, now: datetime) -> IssueSpec | None:
    """A task waiting for ``missing`` metadata; past the study's deadline a METADATA_ISSUE."""
    if not missing:
        return None
    tag = Tag.WAITING.value
    deadline = study.metadata.wait_deadline_h
    since = ""
    if deadline is not None and created_utc and (
            now - parse_iso(created_utc) > timedelta(hours=deadline)):
        tag = Tag.METADATA_ISSUE.value
        since = f" for more than {deadline:g} h"
    return IssueSpec(tag, f"waiting{since} for {', '.join(missing)} of participant "
                     f"{f.participant} (solution {solution})", uri=f.uri,
                     participant=f.participant,
                     resolution=f"upload metadata with {', '.join(missing)} for {f.participant}")
