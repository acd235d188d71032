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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from wearflow._bulk import gc_paused
from wearflow.audit import default_actor
from wearflow.config import SolutionConfig, Study
from wearflow.errors import Tag
from wearflow.memory import estimate_peak_bytes
from wearflow.solutions import Solution
from wearflow.state import MetaCell, StoredFile, TaskRecord

Metadata = Mapping[str, Mapping[str, MetaCell]]


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
class TaskSpec:
    """Everything a worker needs for one task; small and picklable."""

    key: str
    file_id: int
    uri: str
    location: str
    path: str
    sha256: str
    size_bytes: int
    participant: str
    side: str
    solution: SolutionConfig
    solution_version: str
    solution_fingerprint: str
    study: str
    study_fingerprint: str
    output: str
    device_time_zone: str
    user: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    memory_bytes: int = 0  # estimated peak memory (see wearflow.memory)
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Held:
    """A file or task that cannot run now, and why."""

    uri: str
    tag: str
    message: str
    participant: str | None = None
    resolution: str = ""


@dataclass(frozen=True)
class Plan:
    to_run: tuple[TaskSpec, ...]
    records: tuple[TaskRecord, ...]  # every task of every current file, with its state
    held: tuple[Held, ...]  # files held before any task, and waiting tasks


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
    created = task_created_utc or {}
    now = now or datetime.now(UTC)
    to_run: list[TaskSpec] = []
    records: list[TaskRecord] = []
    held: list[Held] = []
    configs = {c.name: c for c in study.solutions}
    study_fingerprint = study.fingerprint()
    user = default_actor(study.identity)
    window = {k: str(v) for k, v in (("study_start", study.qc.study_start),
                                     ("study_end", study.qc.study_end)) if v is not None}
    serials = _serial_owners(metadata)
    listed = set(metadata) if listed is None else listed
    min_wear_hours = f"{study.qc.min_wear_hours:g}"
    device_time_zone = study.clock_time_zone
    no_meta: Mapping[str, MetaCell] = {}
    # A task's inputs depend on its participant's metadata and the solution only: built
    # once per (participant, or None for all without metadata; solution) and shared,
    # read-only, by the tasks of every file of the participant.
    per_meta: dict[tuple[str | None, int], tuple[dict[str, str], list[str], str]] = {}
    for f in files:
        if f.excluded_reason:
            continue  # excluded by hand (audited): no task, no issue
        hold = _logistics(study, f, metadata, serials, listed)
        if hold is not None and (f.parse_error or not f.participant or f.duplicate_of):
            held.append(hold)  # no task at all: there is nothing to run it under
            continue
        participant = f.participant or ""
        meta = metadata.get(participant, no_meta)
        owner = participant if participant in metadata else None
        for n_sol, sol in enumerate(solutions):
            shared = per_meta.get((owner, n_sol))
            if shared is None:
                inputs = {"time_zone": meta["time_zone"].value if "time_zone" in meta
                          else study.time_zone, "min_wear_hours": min_wear_hours, **window}
                inputs.update({r: meta[r].value for r in sol.requires if r in meta})
                missing = [r for r in sol.requires if r not in meta]
                shared = per_meta[(owner, n_sol)] = (inputs, missing, _inputs_text(inputs))
            inputs, missing, inputs_text = shared
            key = _task_key(f.sha256, sol.fingerprint, inputs_text)
            waiting = hold if hold is not None or not missing else _waiting(
                study, f, sol.name, missing, created.get(key), now)
            state = task_states.get(key)
            if state in ("done", "failed"):
                records.append(TaskRecord(key, f.id, sol.name, sol.version, sol.fingerprint,
                                          f.participant, f.side, state, inputs=inputs))
            elif waiting is not None:
                records.append(TaskRecord(key, f.id, sol.name, sol.version, sol.fingerprint,
                                          f.participant, f.side, "waiting", waiting.tag,
                                          waiting.message, inputs))
                held.append(waiting)
            else:
                records.append(TaskRecord(key, f.id, sol.name, sol.version, sol.fingerprint,
                                          f.participant, f.side, "pending", inputs=inputs))
                to_run.append(TaskSpec(
                    key=key, file_id=f.id, uri=f.uri, location=f.location, path=f.path,
                    sha256=f.sha256, size_bytes=f.size_bytes, participant=participant,
                    side=f.side or "", solution=configs[sol.name],
                    solution_version=sol.version, solution_fingerprint=sol.fingerprint,
                    study=study.study, study_fingerprint=study_fingerprint,
                    output=study.output, device_time_zone=device_time_zone, user=user,
                    metadata=inputs, storage_options=study.storage_options,
                    memory_bytes=estimate_peak_bytes(f.path, f.size_bytes,
                                                     configs[sol.name].bytes_per_sample)))
    return Plan(tuple(to_run), tuple(records), tuple(held))


def _serial_owners(metadata: Metadata) -> dict[str, tuple[str, str]]:
    owners: dict[str, tuple[str, str]] = {}
    for participant, cells in sorted(metadata.items()):
        for side in ("left", "right"):
            cell = cells.get(f"device_{side}")
            if cell is not None:
                owners[cell.value] = (participant, side)
    return owners


def _logistics(study: Study, f: StoredFile, metadata: Metadata,
               serials: Mapping[str, tuple[str, str]], listed: set[str]) -> Held | None:
    if f.parse_error or not f.participant:
        return Held(f.uri, Tag.DATA_ISSUE.value, "file name does not parse: "
                    + (f.parse_error or "no participant in the name"),
                    resolution="rename the file to match a sensor pattern of the study")
    if f.duplicate_of:
        return Held(f.uri, Tag.DATA_ISSUE.value, f"same bytes as {f.duplicate_of}; processed "
                    "once under that name, this copy is held", participant=f.participant,
                    resolution="remove the copy, or replace it with the right recording")
    if study.metadata.required and f.participant not in listed:
        return Held(f.uri, Tag.WAITING.value, f"participant {f.participant} is not in the "
                    "metadata (the study requires it)", participant=f.participant,
                    resolution=f"upload metadata listing participant {f.participant}")
    expected = metadata.get(f.participant, {}).get(f"device_{f.side}")
    if f.device_serial and (expected is not None or f.device_serial in serials):
        owner = serials.get(f.device_serial)
        if owner is not None and owner != (f.participant, f.side):
            return Held(f.uri, Tag.DATA_ISSUE.value,
                        f"mislabeled: header serial {f.device_serial} is the {owner[1]}-wrist "
                        f"device of participant {owner[0]} per metadata, but the name says "
                        f"{f.participant} {f.side}", participant=f.participant,
                        resolution="rename the file or correct the device assignment")
        if owner is None and expected is not None:
            return Held(f.uri, Tag.DATA_ISSUE.value,
                        f"mislabeled: header serial {f.device_serial} is not the device "
                        f"{expected.value} that metadata assign to {f.participant} {f.side}",
                        participant=f.participant,
                        resolution="rename the file or correct the device assignment")
    return None


def _waiting(study: Study, f: StoredFile, solution: str, missing: Sequence[str],
             created_utc: str | None, now: datetime) -> Held | None:
    if not missing:
        return None
    tag = Tag.WAITING.value
    deadline = study.metadata.wait_deadline_h
    since = ""
    if deadline is not None and created_utc:
        started = datetime.fromisoformat(created_utc.replace("Z", "+00:00"))
        if now - started > timedelta(hours=deadline):
            tag = Tag.METADATA_ISSUE.value
            since = f" for more than {deadline:g} h"
    return Held(f.uri, tag, f"waiting{since} for {', '.join(missing)} of participant "
                f"{f.participant} (solution {solution})", participant=f.participant,
                resolution=f"upload metadata with {', '.join(missing)} for {f.participant}")
