"""`wearflow validate`: check a study and say what a run would do, without doing it.

A dry run: the study file, its solutions and its storage are checked as a run
checks them; then every file in the input locations is listed and accounted
for: which are sensor files and what their names parse into, which solutions
would run on each, what would wait (and for what), what is held (and why),
what is already done, and what is not cataloged at all. Nothing is written: no
state database is created, no result, no audit entry (an existing state
database is read to know what is done and to skip hashing unchanged files).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wearflow import catalog
from wearflow.catalog import NameParser, SensorFile, StoredFile
from wearflow.config import Study
from wearflow.errors import StorageError, WearflowError
from wearflow.metadata import MetaCell, read_metadata_file
from wearflow.plan import Plan, make_plan
from wearflow.solutions import Solution, load_study_solutions
from wearflow.stages.environments import stored_locks
from wearflow.state import State
from wearflow.storage import Store, input_stores
from wearflow.task import TaskRecord, TaskState


@dataclass(frozen=True)
class LocationCount:
    uri: str
    sensor: int
    metadata: int
    ignored: int


@dataclass(frozen=True)
class SolutionUse:
    name: str
    version: str
    applies_to: str
    requires: tuple[str, ...]
    files: int  # files it would run on (a combined recording counts each of its files)


@dataclass(frozen=True)
class FileVerdict:
    """What a run would do with one file."""

    uri: str
    kind: str  # sensor or metadata
    what: str  # runs, waits, done, failed, held, metadata, unreadable
    reason: str = ""
    participant: str | None = None
    side: str | None = None
    visit: str | None = None
    location: str | None = None
    solutions: tuple[str, ...] = ()
    combined_with: tuple[str, ...] = ()  # the other recordings one task combines with it

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ValidateReport:
    """A study checked, and what a run would do with each file."""

    study: str
    source: str
    locations: tuple[LocationCount, ...]
    solutions: tuple[SolutionUse, ...]
    files: tuple[FileVerdict, ...]
    ignored: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (uri, why)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.what] = out.get(f.what, 0) + 1
        return dict(sorted(out.items()))

    @property
    def sensor_files(self) -> int:
        return sum(1 for f in self.files if f.kind == "sensor")

    def to_json(self) -> dict[str, Any]:
        return {"study": self.study, "source": self.source, "valid": True,
                "sensor_files": self.sensor_files, "counts": self.counts(),
                "locations": [asdict(x) for x in self.locations],
                "solutions": [asdict(x) for x in self.solutions],
                "files": [asdict(x) for x in self.files],
                "ignored": [{"uri": u, "reason": r} for u, r in self.ignored]}


def validate_study(study: Study) -> ValidateReport:
    """Check ``study`` and plan it without running anything.

    Raises
    ------
    WearflowError
        What would stop a run: a solution that cannot be loaded, an unreachable
        location, an unusable state database.
    """
    solutions = list(load_study_solutions(study, stored_locks(study)))
    stores = input_stores(study.input, study.storage_options, study.source)
    known, states = _existing_state(study)
    unreadable: list[StorageError] = []
    scanned = catalog.scan(stores, study.files, known=known, unreadable=unreadable)
    locations, ignored = _listing(stores, NameParser(study.files))
    sensor = _as_stored([f for f in scanned if f.kind == "sensor"])
    metadata, listed, meta_verdicts = _read_metadata(study, [f for f in scanned
                                                             if f.kind == "metadata"])
    plan = make_plan(study, sensor, solutions, states, metadata, {}, listed)
    verdicts = [*_sensor_verdicts(sensor, plan), *meta_verdicts,
                *(FileVerdict(str(p.subject), "sensor", "unreadable", p.message)
                  for p in unreadable)]
    return ValidateReport(
        study.study, study.source, tuple(locations),
        tuple(_solution_uses(study, solutions, verdicts)),
        tuple(sorted(verdicts, key=lambda v: v.uri)), tuple(ignored))


def _existing_state(study: Study) -> tuple[dict[str, tuple[int, str, str, str | None]],
                                           dict[str, str]]:
    """Known files and task states of the study's state database, when it exists
    (a SQLite file that is not there is not created)."""
    if not study.has_state():
        return {}, {}
    with State(study.state_url) as state:
        return state.files.known(), state.tasks.states()


def _listing(stores: Sequence[Store], parser: NameParser
             ) -> tuple[list[LocationCount], list[tuple[str, str]]]:
    locations: list[LocationCount] = []
    ignored: list[tuple[str, str]] = []
    for store in stores:
        sensor = meta = skipped = 0
        for entry in store.walk():
            if parser.is_metadata(entry.path):
                meta += 1
            elif parser.is_sensor_like(entry.path):
                sensor += 1
            else:
                skipped += 1
                ignored.append((store.uri(entry.path), _why_ignored(entry.path)))
        locations.append(LocationCount(store.root_uri, sensor, meta, skipped))
    return locations, ignored


def _why_ignored(path: str) -> str:
    suffix = "".join(Path(path).suffixes[-2:]) or "no extension"
    return (f"extension {suffix} is in no sensor pattern of the study, and the name matches "
            "no metadata pattern")


def _as_stored(files: Sequence[SensorFile]) -> list[StoredFile]:
    """The scan as the state would store it: ids in URI order, copies marked."""
    first_of: dict[str, str] = {}
    out = []
    for n, f in enumerate(sorted(files, key=lambda x: x.uri), start=1):
        first = first_of.setdefault(f.sha256, f.uri)
        out.append(StoredFile(
            n, f.uri, f.sha256, f.size_bytes, f.mtime, f.location, f.path, f.kind,
            f.participant, f.side, "{}" if not f.fields else _fields_json(f.fields),
            f.parse_error, None if first == f.uri else first, f.device_serial, None, "", "",
            True, True, f.visit, f.body_location))
    return out


def _fields_json(fields: Mapping[str, str]) -> str:
    return json.dumps(dict(fields), sort_keys=True)


def _read_metadata(study: Study, files: Sequence[SensorFile]
                   ) -> tuple[dict[str, dict[str, MetaCell]], set[str], list[FileVerdict]]:
    values: dict[str, dict[str, MetaCell]] = {}
    listed: set[str] = set()
    verdicts = []
    for f in files:
        try:
            parsed = read_metadata_file(Store(f.location, study.storage_options), f.path,
                                        f.uri, f.size_bytes, study.metadata.columns)
        except WearflowError as exc:
            verdicts.append(FileVerdict(f.uri, "metadata", "metadata", exc.message))
            continue
        problems = sorted({v.problem for v in parsed if v.problem})
        for v in parsed:
            listed.add(v.participant)
            if v.value is not None:
                values.setdefault(v.participant, {})[v.field] = MetaCell(v.value, f.uri, v.row,
                                                                         "")
        participants = len({v.participant for v in parsed})
        reason = f"{participants} participants" + (f"; problems: {'; '.join(problems)}"
                                                   if problems else "")
        verdicts.append(FileVerdict(f.uri, "metadata", "metadata", reason))
    return values, listed, verdicts


def _sensor_verdicts(files: Sequence[StoredFile], plan: Plan) -> list[FileVerdict]:
    by_file: dict[int, list[TaskRecord]] = {}
    for record in plan.records:
        for file_id in (record.file_id, *record.parts):
            by_file.setdefault(file_id, []).append(record)
    held = {h.uri: h for h in plan.held}
    uri_of = {f.id: f.uri for f in files}
    verdicts = []
    for f in files:
        records = by_file.get(f.id, [])
        hold = held.get(f.uri)
        states = {r.state for r in records}
        what = ("held" if not records else
                next(s for s in (TaskState.FAILED, TaskState.WAITING, TaskState.PENDING,
                                 TaskState.DONE) if s in states))
        label = {"pending": "runs", "waiting": "waits"}.get(str(what), str(what))
        combined = tuple(sorted({uri_of[i] for r in records for i in (r.file_id, *r.parts)
                                 if i != f.id}))
        verdicts.append(FileVerdict(
            f.uri, "sensor", label, hold.message if hold is not None else "",
            f.participant, f.side, f.visit, f.body_location,
            tuple(sorted({r.solution for r in records})), combined))
    return verdicts


def _solution_uses(study: Study, solutions: Sequence[Solution],
                   verdicts: Sequence[FileVerdict]) -> list[SolutionUse]:
    configs = {c.name: c for c in study.solutions}
    return [SolutionUse(s.name, s.version, configs[s.name].applies_to.describe(),
                        tuple(s.requires), sum(1 for v in verdicts if s.name in v.solutions))
            for s in solutions]
