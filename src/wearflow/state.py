"""The state database: files, tasks, participant results, runs and issues.

The only module that talks to the database. SQLite (WAL) by default, or
PostgreSQL (``postgresql+psycopg://...``); the schema is kept by Alembic
migrations (:mod:`wearflow.schema`). Rows are never deleted: a changed file is a new row (a
new version of the same URI), a file that disappeared is marked absent, an
issue whose cause is gone is closed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    case,
    create_engine,
    event,
    func,
    null,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from wearflow._bulk import gc_paused, insert_many
from wearflow.catalog import SensorFile
from wearflow.errors import StateError
from wearflow.provenance import utc_now

TASK_STATES = ("pending", "waiting", "running", "done", "failed", "excluded")


F = TypeVar("F", bound=Callable[..., Any])


def _retry_on_conflict(method: F) -> F:
    """Re-run a write whose rows another coordinator inserted first (unique key) or
    whose database was briefly locked; the method re-reads what is there."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(6):
            try:
                return method(*args, **kwargs)
            except (IntegrityError, OperationalError) as exc:
                if attempt == 5:
                    raise StateError(f"conflicting writes did not settle ({exc.orig})",
                                     subject=method.__name__) from None
                time.sleep(0.05 * 2**attempt)
        return None

    return wrapper  # type: ignore[return-value]


def _chunks(values: Sequence[Any], size: int = 5000) -> list[Sequence[Any]]:
    """Pieces small enough for an SQL IN list on every backend (SQLite and PostgreSQL cap
    bound parameters per statement)."""
    return [values[i:i + size] for i in range(0, len(values), size)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Base(DeclarativeBase):
    pass


class FileRow(Base):
    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("uri", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uri: Mapped[str] = mapped_column(String(2048), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    mtime: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(2048))
    path: Mapped[str] = mapped_column(String(2048))
    kind: Mapped[str] = mapped_column(String(16))
    participant: Mapped[str | None] = mapped_column(String(256), index=True)
    side: Mapped[str | None] = mapped_column(String(8))
    fields_json: Mapped[str] = mapped_column(Text, default="{}")
    parse_error: Mapped[str | None] = mapped_column(Text)
    duplicate_of: Mapped[str | None] = mapped_column(String(2048))
    device_serial: Mapped[str | None] = mapped_column(String(128))
    excluded_reason: Mapped[str | None] = mapped_column(Text)
    first_seen_utc: Mapped[str] = mapped_column(String(32))
    last_seen_utc: Mapped[str] = mapped_column(String(32))
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    present: Mapped[bool] = mapped_column(Boolean, default=True)


class TaskRow(Base):
    __tablename__ = "tasks"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), index=True)
    solution: Mapped[str] = mapped_column(String(256))
    solution_version: Mapped[str] = mapped_column(String(256))
    solution_fingerprint: Mapped[str] = mapped_column(String(64))
    participant: Mapped[str | None] = mapped_column(String(256))
    side: Mapped[str | None] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), index=True)
    current: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    lease_until_utc: Mapped[str | None] = mapped_column(String(32))
    tag: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # a transient failure is retried, not before this time (schema revision 0002)
    retry_after_utc: Mapped[str | None] = mapped_column(String(32))
    run_id: Mapped[str | None] = mapped_column(String(64))
    result_dir: Mapped[str | None] = mapped_column(String(2048))
    provenance_sha256: Mapped[str | None] = mapped_column(String(64))
    inputs_json: Mapped[str] = mapped_column(Text, default="{}")
    flags_json: Mapped[str] = mapped_column(Text, default="[]")
    created_utc: Mapped[str] = mapped_column(String(32))
    started_utc: Mapped[str | None] = mapped_column(String(32))
    finished_utc: Mapped[str | None] = mapped_column(String(32))


class MetadataRow(Base):
    """One cleaned value from one version of one metadata file (never updated)."""

    __tablename__ = "metadata_values"
    __table_args__ = (UniqueConstraint("file_id", "participant", "field", "row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), index=True)
    participant: Mapped[str | None] = mapped_column(String(256), index=True)
    field: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text, default="")
    row: Mapped[int] = mapped_column(Integer, default=0)
    problem: Mapped[str | None] = mapped_column(Text)
    added_utc: Mapped[str] = mapped_column(String(32))


# (participant, field, value, raw, row, problem) of one metadata value
MetadataTuple = tuple[str | None, str, str | None, str, int, str | None]


@dataclass(frozen=True)
class MetaCell:
    """The value in force for one participant and field, and where it came from."""

    value: str
    source_uri: str
    row: int
    added_utc: str


class ParticipantResultRow(Base):
    __tablename__ = "participant_results"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    solution: Mapped[str] = mapped_column(String(256))
    participant: Mapped[str] = mapped_column(String(256), index=True)
    task_keys_json: Mapped[str] = mapped_column(Text)
    result_dir: Mapped[str] = mapped_column(String(2048))
    provenance_sha256: Mapped[str] = mapped_column(String(64), default="")
    flags_json: Mapped[str] = mapped_column(Text, default="[]")
    run_id: Mapped[str] = mapped_column(String(64))
    created_utc: Mapped[str] = mapped_column(String(32))


class SummaryRow(Base):
    __tablename__ = "study_summaries"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    solution: Mapped[str] = mapped_column(String(256))
    result_dir: Mapped[str] = mapped_column(String(2048))
    provenance_sha256: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64))
    created_utc: Mapped[str] = mapped_column(String(32))


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    study: Mapped[str] = mapped_column(String(256))
    study_fingerprint: Mapped[str] = mapped_column(String(64))
    config_json: Mapped[str] = mapped_column(Text, default="{}")
    host: Mapped[str] = mapped_column(String(256), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    user: Mapped[str] = mapped_column(String(256))
    started_utc: Mapped[str] = mapped_column(String(32))
    finished_utc: Mapped[str | None] = mapped_column(String(32))
    counts_json: Mapped[str] = mapped_column(Text, default="{}")


class IssueRow(Base):
    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    tag: Mapped[str] = mapped_column(String(32), index=True)
    study: Mapped[str] = mapped_column(String(256))
    participant: Mapped[str | None] = mapped_column(String(256))
    uri: Mapped[str | None] = mapped_column(String(2048))
    message: Mapped[str] = mapped_column(Text)
    resolution: Mapped[str] = mapped_column(Text, default="")
    first_seen_utc: Mapped[str] = mapped_column(String(32))
    last_seen_utc: Mapped[str] = mapped_column(String(32))
    open: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    resolved_reason: Mapped[str | None] = mapped_column(Text)  # closed by hand, and why


@dataclass(frozen=True)
class IssueSpec:
    """An issue as the runner sees it this run."""

    tag: str
    message: str
    uri: str | None = None
    participant: str | None = None
    resolution: str = ""

    def dedupe_key(self, study: str) -> str:
        text = "\x1f".join((study, self.tag, self.uri or "", self.participant or "", self.message))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class TaskRecord:
    key: str
    file_id: int
    solution: str
    solution_version: str
    solution_fingerprint: str
    participant: str | None
    side: str | None
    state: str
    tag: str | None = None
    message: str | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ResultTask:
    """What re-running one per-wrist result needs."""

    key: str
    file_id: int
    uri: str
    location: str
    path: str
    sha256: str
    size_bytes: int
    participant: str
    side: str
    solution: str
    solution_version: str
    solution_fingerprint: str
    inputs: dict[str, str]


@dataclass(frozen=True)
class DoneTask:
    key: str
    solution: str
    participant: str
    side: str
    uri: str
    sha256: str
    size_bytes: int
    result_dir: str
    finished_utc: str


class StoredFile(NamedTuple):
    """One file version as stored: the columns of :class:`FileRow`, read without the ORM.

    What the planner, the runner and ``status`` read, up to 100,000 at a time; an ORM
    object per row cost more than the query.
    """

    id: int
    uri: str
    sha256: str
    size_bytes: int
    mtime: str
    location: str
    path: str
    kind: str
    participant: str | None
    side: str | None
    fields_json: str
    parse_error: str | None
    duplicate_of: str | None
    device_serial: str | None
    excluded_reason: str | None
    first_seen_utc: str
    last_seen_utc: str
    current: bool
    present: bool


class StoredTask(NamedTuple):
    """One task as stored: the columns of :class:`TaskRow`, read without the ORM."""

    key: str
    file_id: int
    solution: str
    solution_version: str
    solution_fingerprint: str
    participant: str | None
    side: str | None
    state: str
    current: bool
    lease_until_utc: str | None
    tag: str | None
    message: str | None
    attempts: int
    retry_after_utc: str | None
    run_id: str | None
    result_dir: str | None
    provenance_sha256: str | None
    inputs_json: str
    flags_json: str
    created_utc: str
    started_utc: str | None
    finished_utc: str | None


_FILE_COLUMNS = tuple(FileRow.__table__.c[name] for name in StoredFile._fields)
_TASK_COLUMNS = tuple(TaskRow.__table__.c[name] for name in StoredTask._fields)
_FINAL_TASK_STATES = ("done", "failed", "running")  # record_plan leaves their state alone
_json_sorted = json.JSONEncoder(sort_keys=True).encode  # = json.dumps(..., sort_keys=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # first: the pragmas below may have to wait
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _open_with_retries(engine: Engine, upgrade: Callable[[Engine], None]) -> None:
    """Migrate the schema, retrying while another process holds the new database.

    Two coordinators opening a brand-new SQLite file at once can both try to turn
    it to WAL mode; SQLite answers one of them "database is locked" at once
    (a lock it cannot wait for), so the busy timeout does not help there.
    """
    for attempt in range(6):
        try:
            upgrade(engine)
            return
        except OperationalError:
            if attempt == 5:
                raise
            engine.dispose()  # a fresh connection sets its pragmas again
            time.sleep(0.05 * 2**attempt)


class State:
    """Queries and updates of one study's state database."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite:///") and ":memory:" not in url:
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url)
            if url.startswith("sqlite"):
                event.listen(self.engine, "connect", _sqlite_pragmas)
            from wearflow import schema  # imports this module's tables

            _open_with_retries(self.engine, schema.upgrade)
        except (SQLAlchemyError, OSError) as exc:
            raise StateError(f"cannot open the state database ({exc})", subject=url) from None

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- files -------------------------------------------------------------
    @gc_paused()
    def known_files(self) -> dict[str, tuple[int, str, str, str | None]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(FileRow.uri, FileRow.size_bytes, FileRow.mtime,
                                       FileRow.sha256, FileRow.device_serial)
                                .where(FileRow.current)).all()
            return {uri: (size, mtime, sha256, serial)
                    for uri, size, mtime, sha256, serial in rows}

    @_retry_on_conflict
    @gc_paused()
    def sync_files(self, files: Sequence[SensorFile], locations: Iterable[str]) -> None:
        """Record a catalog scan.

        A new checksum for a known URI adds a version and makes it current; URIs
        under ``locations`` that the scan no longer saw are marked absent. Rows
        that did not change get only their ``last_seen_utc`` stamp. Written in
        bulk (one multi-row INSERT, UPDATEs of only the rows that change): a
        catalog of 100,000 files is one transaction of a few statements.
        """
        now = utc_now()
        roots = tuple(loc.rstrip("/") + "/" for loc in locations)
        with self.engine.begin() as conn:
            existing: dict[tuple[str, str], tuple[int, str, bool, bool]] = {}
            current: dict[str, tuple[int, bool, str]] = {}  # uri -> (id, present, location)
            for row_id, uri, sha256, mtime, present, is_current, location in conn.execute(
                    select(FileRow.id, FileRow.uri, FileRow.sha256, FileRow.mtime,
                           FileRow.present, FileRow.current, FileRow.location)
                    .order_by(FileRow.id)).all():
                existing[(uri, sha256)] = (row_id, mtime, present, is_current)
                if is_current:
                    current[uri] = (row_id, present, location)
            new: list[dict[str, Any]] = []
            back: list[dict[str, Any]] = []  # known versions made present and current again
            superseded: list[int] = []  # current versions replaced by another of their URI
            unchanged: list[int] = []
            for f in files:
                row = existing.get((f.uri, f.sha256))
                old = current.get(f.uri)
                if row is None:
                    new.append({
                        "uri": f.uri, "sha256": f.sha256, "size_bytes": f.size_bytes,
                        "mtime": f.mtime, "location": f.location, "path": f.path,
                        "kind": f.kind, "participant": f.participant, "side": f.side,
                        "fields_json": _json_sorted(dict(f.fields)),
                        "parse_error": f.parse_error, "device_serial": f.device_serial,
                        "first_seen_utc": now, "last_seen_utc": now, "current": True,
                        "present": True})
                    if old is not None:
                        superseded.append(old[0])
                elif row[1:] != (f.mtime, True, True):
                    back.append({"b_id": row[0], "b_mtime": f.mtime})
                    if old is not None and old[0] != row[0]:
                        superseded.append(old[0])
                else:
                    unchanged.append(row[0])
            seen = {f.uri for f in files}
            gone = [row_id for uri, (row_id, present, location) in current.items()
                    if present and uri not in seen and location.rstrip("/") + "/" in roots]
            insert_many(conn, FileRow, new)
            if back:
                conn.execute(update(FileRow).where(FileRow.id == bindparam("b_id"))
                             .values(mtime=bindparam("b_mtime"), present=True, current=True,
                                     last_seen_utc=now), back)
            self._update_files(conn, superseded, current=False)
            self._update_files(conn, gone, present=False)
            self._update_files(conn, unchanged, last_seen_utc=now)
            if new or back or superseded or gone:
                # Marks change only with the current, present files, and every change
                # of those is made here and marked in the same transaction.
                self._mark_duplicates(conn)

    @staticmethod
    def _update_files(conn: Connection, ids: Sequence[int], **values: Any) -> None:
        """Set ``values`` on the file rows ``ids`` (an IN list per chunk)."""
        for chunk in _chunks(ids):
            conn.execute(update(FileRow).where(FileRow.id.in_(chunk)).values(**values))

    @staticmethod
    def _mark_duplicates(conn: Connection) -> None:
        """Identical bytes under several names: the first URI is processed, the rest held.

        One query ranks the current sensor files by URI (the database's order) within
        each checksum and returns only the rows whose mark must change.
        """
        ranked = (select(FileRow.id, FileRow.uri, FileRow.duplicate_of,
                         func.first_value(FileRow.uri).over(partition_by=FileRow.sha256,
                                                            order_by=FileRow.uri)
                         .label("first"))
                  .where(FileRow.current, FileRow.present, FileRow.kind == "sensor")
                  .subquery())
        mark = case((ranked.c.first == ranked.c.uri, null()), else_=ranked.c.first)
        changed = conn.execute(select(ranked.c.id, mark)
                               .where(ranked.c.duplicate_of.is_distinct_from(mark))).all()
        if changed:
            conn.execute(update(FileRow).where(FileRow.id == bindparam("b_id"))
                         .values(duplicate_of=bindparam("b_duplicate_of")),
                         [{"b_id": row_id, "b_duplicate_of": uri} for row_id, uri in changed])

    @gc_paused()
    def current_files(self, kind: str = "sensor") -> list[StoredFile]:
        """The present, current version of every file of ``kind``, sorted by URI."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_FILE_COLUMNS)
                                .where(FileRow.current, FileRow.present, FileRow.kind == kind)
                                .order_by(FileRow.uri)).all()
        return list(map(StoredFile._make, rows))

    # -- tasks -------------------------------------------------------------
    @gc_paused()
    def task_states(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(TaskRow.key, TaskRow.state)).all())

    @gc_paused()
    def task_created(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(TaskRow.key, TaskRow.created_utc)).all())

    # -- metadata ------------------------------------------------------------
    def parsed_metadata_file_ids(self) -> set[int]:
        with self._session() as s:
            return set(s.scalars(select(MetadataRow.file_id).distinct()))

    @_retry_on_conflict
    def add_metadata(self, file_id: int, values: Sequence[MetadataTuple]) -> None:
        """Record one metadata file version's values: (participant, field, value, raw, row,
        problem). A file that could not be read is one row with field ``__file__``."""
        now = utc_now()
        with self._session() as s, s.begin():
            if s.scalars(select(MetadataRow.id).where(MetadataRow.file_id == file_id)
                         .limit(1)).first() is not None:
                return  # another coordinator parsed this file version first
            for participant, name, value, raw, row, problem in values:
                s.add(MetadataRow(file_id=file_id, participant=participant, field=name,
                                  value=value, raw=raw, row=row, problem=problem,
                                  added_utc=now))

    def current_metadata(self) -> dict[str, dict[str, MetaCell]]:
        """Per participant and field, the latest valid value ever recorded (history kept)."""
        with self._session() as s:
            rows = s.execute(select(MetadataRow, FileRow.uri)
                             .join(FileRow, MetadataRow.file_id == FileRow.id)
                             .where(MetadataRow.value.is_not(None))
                             .order_by(MetadataRow.id)).all()
        out: dict[str, dict[str, MetaCell]] = {}
        for row, uri in rows:
            if row.participant:
                out.setdefault(row.participant, {})[row.field] = MetaCell(
                    row.value or "", uri, row.row, row.added_utc)
        return out

    def metadata_participants(self) -> set[str]:
        """Every participant id any metadata file version has listed, valid values or not."""
        with self._session() as s:
            return {p for p in s.scalars(select(MetadataRow.participant).distinct()) if p}

    def metadata_problems(self) -> list[tuple[str, str | None, str]]:
        """(file URI, participant, problem) for the current version of each metadata file."""
        with self._session() as s:
            rows = s.execute(select(FileRow.uri, MetadataRow.participant, MetadataRow.problem)
                             .join(FileRow, MetadataRow.file_id == FileRow.id)
                             .where(FileRow.current, FileRow.present,
                                    MetadataRow.problem.is_not(None))
                             .order_by(FileRow.uri, MetadataRow.row)).all()
        return [(r[0], r[1], r[2] or "") for r in rows]

    @_retry_on_conflict
    @gc_paused()
    def record_plan(self, tasks: Sequence[TaskRecord]) -> None:
        """Make ``tasks`` the current task of their (file, solution).

        New keys are inserted; ``waiting`` and ``pending`` are (re)set on keys
        that are not finished; any other task of the same file and solution
        stops being current (its results stay, listed in its row). Written in
        bulk: one multi-row INSERT, UPDATEs of only the rows that change.
        """
        now = utc_now()
        planned = {(t.file_id, t.solution): t.key for t in tasks}
        file_ids = {t.file_id for t in tasks}
        with self.engine.begin() as conn:
            stored: dict[str, tuple[str, str | None, str | None]] = {}
            flips: dict[bool, list[str]] = {True: [], False: []}  # new current flag: keys
            # The tasks of the planned files: one range scan of the file_id index, not
            # an IN list of 100,000 ids; rows of other files in the range are skipped.
            rows = conn.execute(
                select(TaskRow.key, TaskRow.file_id, TaskRow.solution, TaskRow.state,
                       TaskRow.tag, TaskRow.message, TaskRow.current)
                .where(TaskRow.file_id.between(min(file_ids), max(file_ids)))
            ).all() if file_ids else []
            for key, file_id, solution, state, tag, message, is_current in rows:
                if file_id not in file_ids:
                    continue
                stored[key] = (state, tag, message)
                keep = planned.get((file_id, solution))
                if (keep is None or keep == key) != is_current:
                    flips[not is_current].append(key)
            new: list[dict[str, Any]] = []
            restated: list[dict[str, Any]] = []
            inputs_json: dict[tuple[tuple[str, str], ...], str] = {}  # most tasks share inputs
            for t in tasks:
                old = stored.get(t.key)
                if old is None:
                    items = tuple(t.inputs.items())
                    text = inputs_json.get(items)
                    if text is None:
                        text = inputs_json[items] = _json_sorted(dict(t.inputs))
                    new.append({
                        "key": t.key, "file_id": t.file_id, "solution": t.solution,
                        "solution_version": t.solution_version,
                        "solution_fingerprint": t.solution_fingerprint,
                        "participant": t.participant, "side": t.side, "state": t.state,
                        "tag": t.tag, "message": t.message, "current": True, "attempts": 0,
                        "inputs_json": text, "flags_json": "[]", "created_utc": now})
                elif old[0] not in _FINAL_TASK_STATES and old != (t.state, t.tag, t.message):
                    restated.append({"b_key": t.key, "b_state": t.state, "b_tag": t.tag,
                                     "b_message": t.message})
            for flag, keys in flips.items():
                for chunk in _chunks(keys):
                    conn.execute(update(TaskRow).where(TaskRow.key.in_(chunk))
                                 .values(current=flag))
            if restated:
                # A running task belongs to whoever claimed it (see claim), also one
                # claimed since the read above.
                conn.execute(update(TaskRow)
                             .where(TaskRow.key == bindparam("b_key"),
                                    *(TaskRow.state != final for final in _FINAL_TASK_STATES))
                             .values(state=bindparam("b_state"), tag=bindparam("b_tag"),
                                     message=bindparam("b_message")), restated)
            # A key already stored under another file row: the same bytes under a new name
            # (a renamed or moved file, or a copy left after its original went). The
            # result is the same: the task moves to the new file instead of running again.
            moved: dict[str, str] = {
                key: state for chunk in _chunks([r["key"] for r in new])
                for key, state in conn.execute(select(TaskRow.key, TaskRow.state)
                                               .where(TaskRow.key.in_(chunk)))}
            if moved:
                conn.execute(update(TaskRow).where(TaskRow.key == bindparam("b_key")).values(
                    file_id=bindparam("b_file_id"), participant=bindparam("b_participant"),
                    side=bindparam("b_side"), current=True),
                    [{"b_key": r["key"], "b_file_id": r["file_id"],
                      "b_participant": r["participant"], "b_side": r["side"]}
                     for r in new if r["key"] in moved])
                unfinished = [{"b_key": r["key"], "b_state": r["state"], "b_tag": r["tag"],
                               "b_message": r["message"]} for r in new
                              if moved.get(r["key"], "done") not in _FINAL_TASK_STATES]
                if unfinished:
                    conn.execute(update(TaskRow).where(TaskRow.key == bindparam("b_key"))
                                 .values(state=bindparam("b_state"), tag=bindparam("b_tag"),
                                         message=bindparam("b_message")), unfinished)
                new = [r for r in new if r["key"] not in moved]
            # in key order: the primary-key index grows at its end, not at random pages
            insert_many(conn, TaskRow, sorted(new, key=itemgetter("key")))

    def dead_runs(self) -> set[str]:
        """Unfinished runs whose coordinator process on this host no longer exists."""
        host = socket.gethostname()
        with self._session() as s:
            rows = s.execute(select(RunRow.id, RunRow.pid).where(
                RunRow.finished_utc.is_(None), RunRow.host == host)).all()
        return {run for run, pid in rows if pid and not _alive(pid)}

    def claim(self, key: str, run_id: str, lease_s: float,
              dead_runs: Iterable[str] = ()) -> bool:
        """Take a task for this run: True when it was pending (and its retry time, if
        any, has come), or running under an expired lease or for a run whose process
        died. One conditional UPDATE: on PostgreSQL the row lock makes a second
        coordinator's UPDATE wait and then find the task taken; SQLite serialises
        writers. Either way two coordinators never both get it."""
        now = datetime.now(UTC)
        stamp = _iso(now)
        with self._session() as s, s.begin():
            result = s.execute(
                update(TaskRow)
                .where(TaskRow.key == key,
                       ((TaskRow.state == "pending")
                        & (TaskRow.retry_after_utc.is_(None)
                           | (TaskRow.retry_after_utc <= stamp)))
                       | ((TaskRow.state == "running")
                          & (TaskRow.lease_until_utc.is_(None)
                             | (TaskRow.lease_until_utc < stamp)
                             | TaskRow.run_id.in_(list(dead_runs)))))
                .values(state="running", run_id=run_id, started_utc=stamp,
                        attempts=TaskRow.attempts + 1,
                        lease_until_utc=_iso(now + timedelta(seconds=lease_s))))
        return bool(getattr(result, "rowcount", 0) == 1)

    def renew_leases(self, run_id: str, lease_s: float) -> None:
        """Extend the leases of every task this run is running."""
        until = _iso(datetime.now(UTC) + timedelta(seconds=lease_s))
        with self._session() as s, s.begin():
            s.execute(update(TaskRow).where(TaskRow.run_id == run_id,
                                            TaskRow.state == "running")
                      .values(lease_until_utc=until))

    def finish_task(self, key: str, *, state: str, tag: str | None = None,
                    message: str | None = None, result_dir: str | None = None,
                    provenance_sha256: str | None = None,
                    flags: Sequence[str] = (), started_utc: str | None = None,
                    finished_utc: str | None = None) -> None:
        with self._session() as s, s.begin():
            row = s.get(TaskRow, key)
            if row is None:
                raise StateError("unknown task", subject=key)
            row.state, row.tag, row.message, row.result_dir = state, tag, message, result_dir
            row.provenance_sha256 = provenance_sha256
            row.flags_json = json.dumps(list(flags))
            row.started_utc = started_utc or row.started_utc
            row.finished_utc = finished_utc or utc_now()

    def attempts(self, key: str) -> int:
        with self._session() as s:
            return int(s.scalar(select(TaskRow.attempts).where(TaskRow.key == key)) or 0)

    def requeue(self, key: str, *, retry_after_utc: str, tag: str | None,
                message: str) -> None:
        """A transient failure: back to pending, to be claimed again after
        ``retry_after_utc`` (the attempt count stays; the next claim adds one)."""
        with self._session() as s, s.begin():
            s.execute(update(TaskRow).where(TaskRow.key == key).values(
                state="pending", tag=tag, message=message, retry_after_utc=retry_after_utc,
                lease_until_utc=None))

    @gc_paused()
    def tasks_for_current_files(self) -> list[tuple[StoredTask, StoredFile]]:
        n_task = len(_TASK_COLUMNS)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*_TASK_COLUMNS, *_FILE_COLUMNS)
                .join_from(TaskRow, FileRow, TaskRow.file_id == FileRow.id)
                .where(FileRow.current, FileRow.present, TaskRow.current,
                       FileRow.excluded_reason.is_(None))
                .order_by(FileRow.uri, TaskRow.solution)).all()
        return [(StoredTask._make(r[:n_task]), StoredFile._make(r[n_task:])) for r in rows]

    def done_tasks(self) -> list[DoneTask]:
        return [
            DoneTask(key=t.key, solution=t.solution, participant=f.participant or "",
                     side=f.side or "", uri=f.uri, sha256=f.sha256, size_bytes=f.size_bytes,
                     result_dir=t.result_dir or "", finished_utc=t.finished_utc or "")
            for t, f in self.tasks_for_current_files()
            if t.state == "done" and f.participant and f.side
        ]

    # -- participant results -------------------------------------------------
    def participant_result_keys(self) -> set[str]:
        with self._session() as s:
            return set(s.scalars(select(ParticipantResultRow.key)))

    @_retry_on_conflict
    def add_participant_result(self, *, key: str, solution: str, participant: str,
                               task_keys: Sequence[str], result_dir: str,
                               provenance_sha256: str, flags: Sequence[str],
                               run_id: str) -> None:
        with self._session() as s, s.begin():
            if s.get(ParticipantResultRow, key) is None:
                s.add(ParticipantResultRow(
                    key=key, solution=solution, participant=participant,
                    task_keys_json=json.dumps(sorted(task_keys)), result_dir=result_dir,
                    provenance_sha256=provenance_sha256,
                    flags_json=json.dumps(list(flags)), run_id=run_id, created_utc=utc_now()))

    def latest_participant_results(self) -> list[ParticipantResultRow]:
        """Per (solution, participant): the result made from exactly the current done
        tasks when there is one (several coordinators may each have written one),
        else the newest."""
        current: dict[tuple[str, str], set[str]] = {}
        for task in self.done_tasks():
            current.setdefault((task.solution, task.participant), set()).add(task.key)
        with self._session() as s:
            rows = list(s.scalars(select(ParticipantResultRow)
                                  .order_by(ParticipantResultRow.created_utc,
                                            ParticipantResultRow.key)))
        chosen: dict[tuple[str, str], ParticipantResultRow] = {}
        for row in rows:
            group = (row.solution, row.participant)
            matches = set(json.loads(row.task_keys_json)) == current.get(group)
            previous = chosen.get(group)
            previous_matches = previous is not None and set(
                json.loads(previous.task_keys_json)) == current.get(group)
            if matches or not previous_matches:
                chosen[group] = row
        return [chosen[k] for k in sorted(chosen)]

    @_retry_on_conflict
    def add_summary(self, *, key: str, solution: str, result_dir: str,
                    provenance_sha256: str, run_id: str) -> None:
        with self._session() as s, s.begin():
            if s.get(SummaryRow, key) is None:
                s.add(SummaryRow(key=key, solution=solution, result_dir=result_dir,
                                 provenance_sha256=provenance_sha256, run_id=run_id,
                                 created_utc=utc_now()))

    def provenance_hashes(self) -> dict[str, str]:
        """Every result folder ever written, with the sha256 of its provenance.json."""
        with self._session() as s:
            rows = [*s.execute(select(TaskRow.result_dir, TaskRow.provenance_sha256)
                               .where(TaskRow.state == "done")).all(),
                    *s.execute(select(ParticipantResultRow.result_dir,
                                      ParticipantResultRow.provenance_sha256)).all(),
                    *s.execute(select(SummaryRow.result_dir,
                                      SummaryRow.provenance_sha256)).all()]
        return {d: h for d, h in rows if d and h}

    def task_for_result(self, result: str) -> tuple[ResultTask, str]:
        """The done task whose key starts with ``result`` or whose folder is ``result``."""
        folder = result.rstrip("/")
        with self._session() as s:
            rows = s.execute(
                select(TaskRow, FileRow).join(FileRow, TaskRow.file_id == FileRow.id)
                .where(TaskRow.state == "done")
                .where(TaskRow.key.startswith(result) | (TaskRow.result_dir == folder)
                       | (TaskRow.result_dir == folder.split("/", 1)[-1]))
            ).all()
        if len(rows) != 1:
            raise StateError("no single done task matches (give a task key or a per-wrist "
                             f"result folder); {len(rows)} match", subject=result)
        t, f = rows[0]
        return ResultTask(t.key, f.id, f.uri, f.location, f.path, f.sha256, f.size_bytes,
                          f.participant or "", f.side or "", t.solution, t.solution_version,
                          t.solution_fingerprint, json.loads(t.inputs_json)), t.result_dir or ""

    # -- runs ----------------------------------------------------------------
    @_retry_on_conflict
    def begin_run(self, run_id: str, study: str, fingerprint: str, user: str,
                  config: Mapping[str, object]) -> dict[str, object] | None:
        """Record a run; return the configuration of the previous run (None if first)."""
        with self._session() as s, s.begin():
            last = s.scalars(select(RunRow).where(RunRow.study == study)
                             .order_by(RunRow.started_utc.desc(), RunRow.id.desc())
                             .limit(1)).first()
            s.add(RunRow(id=run_id, study=study, study_fingerprint=fingerprint, user=user,
                         config_json=json.dumps(config, sort_keys=True),
                         host=socket.gethostname(), pid=os.getpid(), started_utc=utc_now()))
        return None if last is None else dict(json.loads(last.config_json))

    def finish_run(self, run_id: str, counts: dict[str, int]) -> None:
        with self._session() as s, s.begin():
            row = s.get(RunRow, run_id)
            if row is not None:
                row.finished_utc = utc_now()
                row.counts_json = json.dumps(counts, sort_keys=True)

    # -- issues --------------------------------------------------------------
    @_retry_on_conflict
    def sync_issues(self, study: str, issues: Sequence[IssueSpec],
                    close_missing: bool = True) -> list[IssueSpec]:
        """Open or refresh ``issues``; close open ones not listed. Returns the new ones."""
        now = utc_now()
        new: list[IssueSpec] = []
        with self._session() as s, s.begin():
            rows = {r.dedupe_key: r for r in s.scalars(select(IssueRow)
                                                       .where(IssueRow.study == study))}
            keys = set()
            for spec in issues:
                key = spec.dedupe_key(study)
                keys.add(key)
                row = rows.get(key)
                if row is None:
                    s.add(IssueRow(dedupe_key=key, tag=spec.tag, study=study,
                                   participant=spec.participant, uri=spec.uri,
                                   message=spec.message, resolution=spec.resolution,
                                   first_seen_utc=now, last_seen_utc=now, open=True))
                    new.append(spec)
                elif row.resolved_reason is None:  # a hand-resolved issue stays closed
                    if not row.open:
                        new.append(spec)
                    row.open, row.last_seen_utc = True, now
            if close_missing:
                for key, row in rows.items():
                    if row.open and key not in keys:
                        row.open = False
        return new

    def open_issues(self, study: str, tag: str | None = None) -> list[IssueRow]:
        with self._session() as s:
            q = select(IssueRow).where(IssueRow.open, IssueRow.study == study)
            if tag:
                q = q.where(IssueRow.tag == tag)
            return list(s.scalars(q.order_by(IssueRow.tag, IssueRow.uri, IssueRow.id)))

    # -- manual actions --------------------------------------------------------
    def find_current_file(self, target: str) -> FileRow:
        """The current file whose URI, path or name is ``target`` (exactly one)."""
        with self._session() as s:
            rows = [r for r in s.scalars(select(FileRow).where(FileRow.current,
                                                               FileRow.present))
                    if target in (r.uri, r.path, r.path.rsplit("/", 1)[-1])]
        if len(rows) != 1:
            raise StateError(f"{len(rows)} current files match; give the full URI",
                             subject=target)
        return rows[0]

    def retry_file(self, file_id: int) -> list[str]:
        """Failed current tasks of a file back to pending; returns their keys."""
        with self._session() as s, s.begin():
            rows = list(s.scalars(select(TaskRow).where(TaskRow.file_id == file_id,
                                                        TaskRow.current,
                                                        TaskRow.state == "failed")))
            for row in rows:
                row.state, row.tag, row.message = "pending", None, None
                row.attempts, row.retry_after_utc = 0, None  # a fresh set of attempts
        return [r.key for r in rows]

    def set_excluded(self, file_id: int, reason: str | None) -> str | None:
        """Exclude (reason) or re-include (None) a file version; returns the previous reason."""
        with self._session() as s, s.begin():
            row = s.get(FileRow, file_id)
            if row is None:
                raise StateError("unknown file", subject=str(file_id))
            previous, row.excluded_reason = row.excluded_reason, reason
        return previous

    def resolve_issue(self, issue_id: int, reason: str) -> IssueRow:
        with self._session() as s, s.begin():
            row = s.get(IssueRow, issue_id)
            if row is None:
                raise StateError("no such issue", subject=f"issue {issue_id}")
            row.open, row.resolved_reason = False, reason
            return row

    # -- status --------------------------------------------------------------
    def file_state_counts(self) -> Counter[str]:
        """One state per current file: failed > waiting > running > pending > done."""
        order = {"failed": 0, "waiting": 1, "running": 2, "pending": 3, "done": 4}
        per_file: dict[int, str] = {}
        for task, f in self.tasks_for_current_files():
            prev = per_file.get(f.id)
            if prev is None or order.get(task.state, 0) < order[prev]:
                per_file[f.id] = task.state
        counts: Counter[str] = Counter()
        for f in self.current_files():
            held = f.parse_error or f.duplicate_of
            if f.excluded_reason:
                counts["excluded"] += 1
                continue
            counts[per_file.get(f.id, "failed" if held else "pending")] += 1
        return counts
