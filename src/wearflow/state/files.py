"""Cataloged files: versions by checksum, presence, duplicates and exclusions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, case, distinct, func, null, select, update
from sqlalchemy.engine import Connection, Engine

from wearflow._gc import gc_paused
from wearflow.catalog import SensorFile, StoredFile
from wearflow.clock import utc_now
from wearflow.errors import StateError
from wearflow.state.bulk import insert_many
from wearflow.state.engine import chunks, exclusive, retry_on_conflict
from wearflow.state.tables import FileRow

FILE_COLUMNS = tuple(FileRow.__table__.c[name] for name in StoredFile._fields)
_json_sorted = json.JSONEncoder(sort_keys=True).encode  # = json.dumps(..., sort_keys=True)

# (size_bytes, mtime, sha256, device_serial) of the current version of a URI
KnownFile = tuple[int, str, str, str | None]


class NewVersion(NamedTuple):
    """A file version a sync made its URI's current one: new bytes, or earlier bytes
    back; ``before_sha256`` is the version it replaced (None: a URI not seen before)."""

    file: SensorFile
    before_sha256: str | None


class FileRepository:
    """The ``files`` table: one row per version (URI and checksum) of a cataloged file."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @gc_paused()
    def known(self) -> dict[str, KnownFile]:
        """URI -> (size, mtime, sha256, device serial) of its current version."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(FileRow.uri, FileRow.size_bytes, FileRow.mtime,
                                       FileRow.sha256, FileRow.device_serial)
                                .where(FileRow.current)).all()
            return {uri: (size, mtime, sha256, serial)
                    for uri, size, mtime, sha256, serial in rows}

    @retry_on_conflict
    @gc_paused()
    def sync(self, files: Sequence[SensorFile], locations: Iterable[str]) -> list[NewVersion]:
        """Record a catalog scan; return the versions it made current (each once: of two
        coordinators recording the same scan, the second finds the first's rows).

        A new checksum for a known URI adds a version and makes it current; URIs
        under ``locations`` that the scan no longer saw are marked absent. Rows
        that did not change get only their ``last_seen_utc`` stamp. Written in
        bulk (one multi-row INSERT, UPDATEs of only the rows that change): a
        catalog of 100,000 files is one transaction of a few statements, under the
        catalog's lock (:func:`~wearflow.state.engine.exclusive`) from its read on.
        """
        now = utc_now()
        roots = tuple(loc.rstrip("/") + "/" for loc in locations)
        changed: list[NewVersion] = []
        with exclusive(self._engine, "catalog") as conn:
            existing: dict[tuple[str, str], tuple[int, str, bool, bool]] = {}
            # uri -> (id, present, location, sha256) of its current version
            current: dict[str, tuple[int, bool, str, str]] = {}
            for row_id, uri, sha256, mtime, present, is_current, location in conn.execute(
                    select(FileRow.id, FileRow.uri, FileRow.sha256, FileRow.mtime,
                           FileRow.present, FileRow.current, FileRow.location)
                    .order_by(FileRow.id)).all():
                existing[(uri, sha256)] = (row_id, mtime, present, is_current)
                if is_current:
                    current[uri] = (row_id, present, location, sha256)
            new: list[dict[str, Any]] = []
            back: list[dict[str, Any]] = []  # known versions made present and current again
            superseded: list[int] = []  # current versions replaced by another of their URI
            unchanged: list[int] = []
            for f in files:
                row = existing.get((f.uri, f.sha256))
                old = current.get(f.uri)
                if row is None:
                    new.append(_new_row(f, now))
                    if old is not None:
                        superseded.append(old[0])
                    changed.append(NewVersion(f, None if old is None else old[3]))
                elif row[1:] != (f.mtime, True, True):
                    back.append({"b_id": row[0], "b_mtime": f.mtime})
                    if old is not None and old[0] != row[0]:
                        superseded.append(old[0])
                    if old is None or old[0] != row[0]:
                        changed.append(NewVersion(f, None if old is None else old[3]))
                else:
                    unchanged.append(row[0])
            seen = {f.uri for f in files}
            gone = [row_id for uri, (row_id, present, location, _) in current.items()
                    if present and uri not in seen and location.rstrip("/") + "/" in roots]
            insert_many(conn, FileRow, new)
            if back:
                conn.execute(update(FileRow).where(FileRow.id == bindparam("b_id"))
                             .values(mtime=bindparam("b_mtime"), present=True, current=True,
                                     last_seen_utc=now), back)
            _update_files(conn, superseded, current=False)
            _update_files(conn, gone, present=False)
            _update_files(conn, unchanged, last_seen_utc=now)
            if new or back or superseded or gone:
                # Marks change only with the current, present files, and every change
                # of those is made here and marked in the same transaction.
                _mark_duplicates(conn)
        return changed

    @gc_paused()
    def current(self, kind: str = "sensor") -> list[StoredFile]:
        """The present, current version of every file of ``kind``, sorted by URI."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(*FILE_COLUMNS)
                                .where(FileRow.current, FileRow.present, FileRow.kind == kind)
                                .order_by(FileRow.uri)).all()
        return list(map(StoredFile._make, rows))

    def current_counts(self) -> tuple[int, int]:
        """(current present sensor files, participants named by those of them whose name
        parses and that are not excluded), counted in the database."""
        named = ((FileRow.participant.is_not(None)) & (FileRow.participant != "")
                 & (FileRow.parse_error.is_(None) | (FileRow.parse_error == ""))
                 & (FileRow.excluded_reason.is_(None) | (FileRow.excluded_reason == "")))
        with self._engine.connect() as conn:
            files, participants = conn.execute(
                select(func.count(), func.count(distinct(case((named, FileRow.participant)))))
                .where(FileRow.current, FileRow.present, FileRow.kind == "sensor")).one()
        return int(files), int(participants)

    def by_ids(self, ids: Sequence[int]) -> list[StoredFile]:
        """The file versions ``ids``, in that order (unknown ids left out)."""
        if not ids:
            return []
        with self._engine.connect() as conn:
            rows = {r[0]: StoredFile._make(r) for chunk in chunks(ids) for r in conn.execute(
                select(*FILE_COLUMNS).where(FileRow.id.in_(chunk))).all()}
        return [rows[i] for i in ids if i in rows]

    def find_current(self, target: str) -> StoredFile:
        """The current file whose URI, path or name is ``target`` (exactly one)."""
        rows = [f for kind in ("sensor", "metadata") for f in self.current(kind)
                if target in (f.uri, f.path, f.name)]
        if len(rows) != 1:
            raise StateError(f"{len(rows)} current files match; give the full URI",
                             subject=target)
        return rows[0]

    def set_excluded(self, file_id: int, reason: str | None) -> str | None:
        """Exclude (reason) or re-include (None) a file version; returns the previous reason."""
        with self._engine.begin() as conn:
            previous = conn.execute(select(FileRow.excluded_reason)
                                    .where(FileRow.id == file_id)).first()
            if previous is None:
                raise StateError("unknown file", subject=str(file_id))
            conn.execute(update(FileRow).where(FileRow.id == file_id)
                         .values(excluded_reason=reason))
        return previous[0]


def _new_row(f: SensorFile, now: str) -> dict[str, Any]:
    return {"uri": f.uri, "sha256": f.sha256, "size_bytes": f.size_bytes, "mtime": f.mtime,
            "location": f.location, "path": f.path, "kind": f.kind,
            "participant": f.participant, "side": f.side,
            "fields_json": _json_sorted(dict(f.fields)), "parse_error": f.parse_error,
            "device_serial": f.device_serial, "first_seen_utc": now, "last_seen_utc": now,
            "current": True, "present": True, "visit": f.visit,
            "body_location": f.body_location}


def _update_files(conn: Connection, ids: Sequence[int], **values: Any) -> None:
    """Set ``values`` on the file rows ``ids`` (an IN list per chunk)."""
    for chunk in chunks(ids):
        conn.execute(update(FileRow).where(FileRow.id.in_(chunk)).values(**values))


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
