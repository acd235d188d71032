"""Append-only, hash-chained audit trail (in the spirit of 21 CFR Part 11).

Who did what to which object, when and why, kept in the ``audit_trail`` table
of the study's state database. Entries are numbered ``seq = 1, 2, 3, ...`` and
chained::

    entry_hash(n) = sha256(canonical(seq, entry_utc, actor, action, object,
                                     before_json, after_json, reason, prev_hash(n)))
    prev_hash(n)  = entry_hash(n - 1);   prev_hash(1) = GENESIS_HASH ("0" * 64)

``canonical`` is compact JSON of those nine fields with sorted keys, ASCII only.
Editing any field breaks the entry's own ``entry_hash``; recomputing that hash
breaks the next entry's ``prev_hash``; deleting, inserting or reordering entries
breaks a ``seq`` step or a ``prev_hash`` link. :meth:`AuditTrail.verify` names
the first entry where that happens.

The chain holds no secret: it cannot show that the newest entries were removed,
or that everything from some entry on was rewritten with fresh hashes by someone
with write access. Each run keeps its head ``(seq, entry_hash)`` outside the
database, signed (:mod:`wearflow.anchors`); pass it to ``verify(anchor=)``. The
database refuses ``UPDATE`` and ``DELETE`` on the table (triggers, schema revision
0007); only its owner can drop them.

Appending is safe with concurrent writers (processes sharing one SQLite file,
or PostgreSQL): one transaction reads the last entry and inserts the next
``seq``; ``seq`` is the primary key, so a writer that lost the race gets a
unique-key (or busy / serialization) error and retries on the new last entry.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, astuple, dataclass, fields
from json.encoder import encode_basestring_ascii as _json_str
from pathlib import Path
from typing import IO, Any, Literal

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from wearflow._gc import gc_paused
from wearflow.clock import utc_now
from wearflow.errors import StateError
from wearflow.redact import redact_json, redact_url
from wearflow.state.bulk import insert_many
from wearflow.state.tables import audit_table

GENESIS_HASH = "0" * 64
_RETRY_S = 60.0  # how long an append keeps retrying against concurrent writers


@dataclass(frozen=True)
class AuditEvent:
    """One thing to record: who (``actor``) did ``action`` to ``object``, and why."""

    actor: str
    action: str
    object: str
    before: Any = None
    after: Any = None
    reason: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One stored entry; the fields are the table's columns, in order."""

    seq: int
    entry_utc: str
    actor: str
    action: str
    object: str
    before_json: str | None
    after_json: str | None
    reason: str | None
    prev_hash: str
    entry_hash: str


FIELDS = tuple(f.name for f in fields(AuditEntry))


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of re-computing the chain.

    ``first_bad_seq`` and ``reason`` name the first broken entry (None when ok);
    ``head_seq`` and ``head_hash`` are the last stored entry: the anchor to keep.
    """

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_seq: int = 0
    head_hash: str = GENESIS_HASH


def compute_hash(entry: AuditEntry) -> str:
    """The sha256 (hex) of the canonical form of every field but ``entry_hash``."""
    body = {name: getattr(entry, name) for name in FIELDS if name != "entry_hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def verify_entries(entries: Iterable[AuditEntry],
                   anchor: tuple[int, str] | None = None, *,
                   anchors: Iterable[tuple[int, str]] = (),
                   after: tuple[int, str] = (0, GENESIS_HASH)) -> VerifyReport:
    """Check a chain given in seq order (from the database or an export).

    Parameters
    ----------
    entries
        The entries, sorted by seq.
    anchor
        ``(seq, entry_hash)`` kept outside the database; the chain must reach it.
    anchors
        More anchors, each checked as ``anchor`` is (the older anchors of a study).
    after
        ``(seq, entry_hash)`` of the entry the first one follows (default: the start of
        the trail), to check only the entries appended since an anchor.
    """
    expected: dict[int, set[str]] = {}
    for seq, entry_hash in [*([anchor] if anchor is not None else []), *anchors]:
        expected.setdefault(seq, set()).add(entry_hash)
    prev_seq, prev_hash = after
    count, why = 0, ""
    bad_seq: int | None = None
    for e in entries:
        count += 1
        if bad_seq is None:
            if e.seq != prev_seq + 1:
                why = f"seq {'gap' if e.seq > prev_seq else 'not increasing'} after {prev_seq}"
            elif e.prev_hash != prev_hash:
                why = f"prev_hash does not match entry {prev_seq}"  # entry 0: the genesis value
            elif compute_hash(e) != e.entry_hash:
                why = "entry_hash does not match its content"
            elif e.seq in expected and expected[e.seq] != {e.entry_hash}:
                why = "entry_hash does not match the anchor (rewritten)"
            bad_seq = e.seq if why else None
        prev_seq, prev_hash = e.seq, e.entry_hash
    last_anchored = max(expected, default=0)
    if bad_seq is None and last_anchored > prev_seq:
        bad_seq = prev_seq + 1
        why = f"entries {bad_seq}..{last_anchored} of the anchor missing"
    return VerifyReport(ok=bad_seq is None, entries=count, first_bad_seq=bad_seq,
                        reason=why or None, head_seq=prev_seq, head_hash=prev_hash)


class AuditTrail:
    """The audit trail in the database behind ``engine`` (its table created if missing).

    Parameters
    ----------
    engine
        The state database's engine (``State(url).audit`` is the trail of a study).
    clock
        Returns the current UTC time as ISO 8601 with ``Z`` (injectable for tests).
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], str] = utc_now) -> None:
        self._engine, self._clock = engine, clock
        self._where = redact_url(engine.url.render_as_string(hide_password=False))

    def record(self, actor: str, action: str, object: str, *, before: Any = None,
               after: Any = None, reason: str | None = None) -> AuditEntry:
        """Append one entry in its own transaction and return it.

        ``before`` and ``after`` must be JSON-serialisable (stored with sorted keys).
        Actions starting with ``manual.`` need a non-empty ``reason``.
        """
        return self.record_many([AuditEvent(actor, action, object, before, after, reason)])[0]

    @gc_paused()
    def record_many(self, events: Iterable[AuditEvent]) -> list[AuditEntry]:
        """Append ``events`` in the order given, in one transaction (all or none)."""
        drafts = [_draft(e) for e in events]
        if not drafts:
            return []
        deadline, attempt = time.monotonic() + _RETRY_S, 0
        while True:
            try:
                with self._engine.begin() as conn:
                    last = conn.execute(select(audit_table.c.seq, audit_table.c.entry_hash)
                                        .order_by(audit_table.c.seq.desc()).limit(1)).first()
                    seq, prev = (last[0], last[1]) if last is not None else (0, GENESIS_HASH)
                    out, rows = _chain(drafts, seq + 1, self._clock(), prev)
                    insert_many(conn, audit_table, rows)
                return out
            # IntegrityError: another writer took this seq. OperationalError: SQLite busy
            # (a read upgraded to a write) or a PostgreSQL serialization failure. Both: retry.
            except (IntegrityError, OperationalError) as exc:
                if time.monotonic() > deadline:
                    raise StateError(f"cannot append to the audit trail within {_RETRY_S:.0f} s "
                                     f"({exc})", subject=self._where) from None
                attempt += 1
                time.sleep(min(0.001 * attempt, 0.05))
            except SQLAlchemyError as exc:
                raise StateError(f"cannot append to the audit trail ({exc})",
                                 subject=self._where) from None

    def entries(self) -> list[AuditEntry]:
        """Every entry, in seq order."""
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(select(audit_table).order_by(audit_table.c.seq)).all()
        except SQLAlchemyError as exc:
            raise StateError(f"cannot read the audit trail ({exc})", subject=self._where) from None
        return [AuditEntry(**row._asdict()) for row in rows]

    def verify(self, anchor: tuple[int, str] | None = None, *,
               anchors: Iterable[tuple[int, str]] = ()) -> VerifyReport:
        """Re-compute the chain; see :func:`verify_entries`."""
        return verify_entries(self.entries(), anchor, anchors=anchors)

    def head(self) -> tuple[int, str]:
        """``(seq, entry_hash)`` of the newest entry; ``(0, GENESIS_HASH)`` when empty."""
        try:
            with self._engine.connect() as conn:
                last = conn.execute(select(audit_table.c.seq, audit_table.c.entry_hash)
                                    .order_by(audit_table.c.seq.desc()).limit(1)).first()
        except SQLAlchemyError as exc:
            raise StateError(f"cannot read the audit trail ({exc})", subject=self._where) from None
        return (int(last[0]), str(last[1])) if last is not None else (0, GENESIS_HASH)

    def verify_since(self, anchor: tuple[int, str]) -> VerifyReport:
        """Check the entries appended since ``anchor`` (its entry included): that the trail
        still holds the anchored entry, unchanged, and extends it link by link. Reads only
        those entries (the whole chain was checked when the anchor was written)."""
        seq, entry_hash = anchor
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(select(audit_table).where(audit_table.c.seq >= seq)
                                    .order_by(audit_table.c.seq)).all()
        except SQLAlchemyError as exc:
            raise StateError(f"cannot read the audit trail ({exc})", subject=self._where) from None
        found = [AuditEntry(**row._asdict()) for row in rows]
        if seq == 0:
            return verify_entries(found)
        if not found or found[0].seq != seq:
            return VerifyReport(ok=False, entries=len(found), first_bad_seq=seq,
                                reason=f"entry {seq} of the anchor missing")
        first = found[0]
        if compute_hash(first) != first.entry_hash or first.entry_hash != entry_hash:
            return VerifyReport(ok=False, entries=len(found), first_bad_seq=seq,
                                reason="entry_hash does not match the anchor (rewritten)")
        return verify_entries(found[1:], after=anchor)

    def export(self, dest: str | os.PathLike[str] | IO[str], fmt: Literal["csv", "json"]) -> None:
        """Write every entry, every column, in seq order, as CSV or JSON (UTF-8).

        The same trail always gives the same bytes. In CSV, NULL is an empty cell.
        Rebuild the entries (``AuditEntry(**row)``) to run :func:`verify_entries`
        on an export away from the database.

        A credential in an entry's before or after (a configuration recorded whole before
        wearflow masked credentials) is masked (:func:`wearflow.redact.redact_json`); such
        an entry no longer matches its ``entry_hash`` in the export (it does in the
        database, where ``audit verify`` checks it). No entry recorded since holds one.
        """
        entries = [_masked(e) for e in self.entries()]
        if fmt == "json":
            text = json.dumps([asdict(e) for e in entries], indent=2, ensure_ascii=False) + "\n"
        elif fmt == "csv":
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([FIELDS, *map(astuple, entries)])
            text = buf.getvalue()
        else:
            raise StateError(f"unknown export format {fmt!r} (use csv or json)", subject=str(dest))
        if isinstance(dest, str | os.PathLike):
            Path(dest).write_text(text, encoding="utf-8", newline="")
        else:
            dest.write(text)


def _masked(entry: AuditEntry) -> AuditEntry:
    before, after = (None if text is None else redact_json(text)
                     for text in (entry.before_json, entry.after_json))
    if (before, after) == (entry.before_json, entry.after_json):
        return entry
    return dataclasses.replace(entry, before_json=before, after_json=after)


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Changed keys as ``{key: {"before": old, "after": new}}``, sorted by key.

    Nested mappings are compared key by key under dotted names (``storage.location``);
    an added key has no ``"before"``, a removed one no ``"after"``.
    """
    out: dict[str, dict[str, Any]] = {}
    missing = object()

    def walk(b: Mapping[str, Any], a: Mapping[str, Any], prefix: str) -> None:
        for key in sorted(set(b) | set(a), key=str):
            old, new = b.get(key, missing), a.get(key, missing)
            if isinstance(old, Mapping) and isinstance(new, Mapping):
                walk(old, new, f"{prefix}{key}.")
            elif old != new:
                out[f"{prefix}{key}"] = {side: value for side, value in
                                         (("before", old), ("after", new)) if value is not missing}

    walk(before, after, "")
    return out


# The encoders of compute_hash and _draft, built once (json.dumps builds one per call).
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode
_value_json = json.JSONEncoder(sort_keys=True, ensure_ascii=False, allow_nan=False).encode
_TEXT_FIELDS = ("action", "actor", "after_json", "before_json", "entry_utc", "object",
                "prev_hash", "reason")  # sorted: the canonical key order; "seq" comes last
_CANONICAL_FORMAT = "{" + ",".join(f'"{name}":%s' for name in _TEXT_FIELDS) + ',"seq":%d}'


def _canonical_text(row: Mapping[str, Any]) -> str:
    """``_canonical(row)``, compute_hash's form, written directly (the keys are fixed, the
    values strings or None and ``seq`` an int); a value of another type goes through
    the encoder."""
    if type(row["seq"]) is int:
        try:
            return _CANONICAL_FORMAT % (*["null" if row[name] is None else _json_str(row[name])
                                          for name in _TEXT_FIELDS], row["seq"])
        except TypeError:
            pass
    return _canonical(row)


def _chain(drafts: Iterable[dict[str, Any]], seq: int, entry_utc: str,
           prev_hash: str) -> tuple[list[AuditEntry], list[dict[str, Any]]]:
    """Number, time-stamp and hash ``drafts`` (see :func:`_draft`) to follow the entry
    whose hash is ``prev_hash``: the entries, and their rows for one executemany INSERT.
    The hashes are :func:`compute_hash`'s (its canonical form, checked by ``verify``)."""
    entries, rows = [], []
    for n, draft in enumerate(drafts, start=seq):
        row = dict(draft, seq=n, entry_utc=entry_utc, prev_hash=prev_hash)
        entry_hash = hashlib.sha256(_canonical_text(row).encode("ascii")).hexdigest()
        row["entry_hash"] = entry_hash
        entries.append(AuditEntry(n, entry_utc, row["actor"], row["action"], row["object"],
                                  row["before_json"], row["after_json"], row["reason"],
                                  prev_hash, entry_hash))
        rows.append(row)
        prev_hash = entry_hash
    return entries, rows


def _draft(event: AuditEvent) -> dict[str, Any]:
    """Validate one event: the columns of its entry but seq, time and hashes."""
    for name in ("actor", "action", "object"):
        if not str(getattr(event, name) or "").strip():
            raise StateError(f"audit entry needs a non-empty {name}",
                             subject=event.object or event.action)
    reason = event.reason if event.reason and event.reason.strip() else None
    if event.action.startswith("manual.") and reason is None:
        raise StateError(f"manual action {event.action!r} needs a non-empty reason",
                         subject=event.object)
    try:
        before = None if event.before is None else _value_json(event.before)
        after = None if event.after is None else _value_json(event.after)
    except (TypeError, ValueError) as exc:
        raise StateError(f"{event.action}: before/after is not JSON-serialisable ({exc})",
                         subject=event.object) from None
    return {"actor": event.actor, "action": event.action, "object": event.object,
            "before_json": before, "after_json": after, "reason": reason}
