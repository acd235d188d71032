"""Catalog + state + solutions -> what to run, what is done, what cannot run (and why)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from wearflow.config import SolutionConfig, Study
from wearflow.solutions import Solution
from wearflow.state import FileRow


def task_key(input_sha256: str, solution_fingerprint: str) -> str:
    """A task is one input's bytes under one solution fingerprint."""
    return hashlib.sha256(f"{input_sha256}|{solution_fingerprint}".encode()).hexdigest()


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
    time_zone: str
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Unparsable:
    """A file held before any task: its name does not parse, or it duplicates another."""

    uri: str
    reason: str


@dataclass(frozen=True)
class Plan:
    to_run: tuple[TaskSpec, ...]
    done: tuple[str, ...]
    failed: tuple[str, ...]
    unparsable: tuple[Unparsable, ...]


def make_plan(
    study: Study,
    files: Sequence[FileRow],
    solutions: Sequence[Solution],
    task_states: Mapping[str, str],
) -> Plan:
    """Decide, per current file and solution, whether its task runs now.

    A task whose key is already ``done`` or ``failed`` is not run again (a
    changed input or solution has a new key). Tasks left ``pending`` or
    ``running`` by an interrupted run are run again.
    """
    to_run: list[TaskSpec] = []
    done: list[str] = []
    failed: list[str] = []
    unparsable: list[Unparsable] = []
    configs = {c.name: c for c in study.solutions}
    study_fingerprint = study.fingerprint()
    for f in files:
        if f.parse_error or not f.participant:
            unparsable.append(Unparsable(f.uri, "file name does not parse: "
                                         + (f.parse_error or "no participant in the name")))
            continue
        if f.duplicate_of:
            unparsable.append(Unparsable(f.uri, f"same bytes as {f.duplicate_of}; processed "
                                         "once under that name, this copy is held"))
            continue
        for sol in solutions:
            key = task_key(f.sha256, sol.fingerprint)
            state = task_states.get(key)
            if state == "done":
                done.append(key)
            elif state == "failed":
                failed.append(key)
            else:
                to_run.append(TaskSpec(
                    key=key, file_id=f.id, uri=f.uri, location=f.location, path=f.path,
                    sha256=f.sha256, size_bytes=f.size_bytes, participant=f.participant,
                    side=f.side or "", solution=configs[sol.name],
                    solution_version=sol.version, solution_fingerprint=sol.fingerprint,
                    study=study.study, study_fingerprint=study_fingerprint,
                    output=study.output, device_time_zone=study.clock_time_zone,
                    time_zone=study.time_zone, fields=json.loads(f.fields_json),
                ))
    return Plan(tuple(to_run), tuple(done), tuple(failed), tuple(unparsable))
