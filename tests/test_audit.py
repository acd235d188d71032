"""The audit trail: chain, tamper detection (by direct SQL), manual reasons, export, concurrency."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from wearflow.errors import StateError, WearflowError
from wearflow.provenance import current_user, default_actor
from wearflow.state import State
from wearflow.state.audit import (
    FIELDS,
    GENESIS_HASH,
    AuditEntry,
    AuditEvent,
    AuditTrail,
    diff,
    verify_entries,
)

ACTIONS = ("study.loaded", "study.changed", "file.cataloged", "metadata.added", "task.started",
           "task.finished", "task.failed", "result.written", "manual.retry", "manual.exclude",
           "manual.resolve")
N = 50


def independent_hash(row: dict[str, Any]) -> str:
    """The documented canonical form, written out again: pins the format and lets us forge."""
    body = {k: row[k] for k in ("seq", "entry_utc", "actor", "action", "object", "before_json",
                                "after_json", "reason", "prev_hash")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def event(i: int) -> AuditEvent:
    """Entry i: odd entries carry before, after and a reason; even ones after only."""
    action = ACTIONS[i % len(ACTIONS)]
    odd = i % 2 == 1
    return AuditEvent(actor=f"user{i % 3}", action=action, object=f"file:///study/p{i:03d}.cwa",
                      before={"n": i - 1, "b": "x"} if odd else None,
                      after={"n": i, "list": [1, 2.5, None]},
                      reason=f"reason {i}" if odd or action.startswith("manual.") else None)


@pytest.fixture
def db(state_url: str) -> Iterator[str]:
    """A state database (SQLite and PostgreSQL) holding a chain of N entries."""
    path = state_url
    state = State(path)
    trail = AuditTrail(state.engine)
    for i in range(1, N + 1):
        e = event(i)
        trail.record(e.actor, e.action, e.object, before=e.before, after=e.after, reason=e.reason)
    state.close()
    yield path


def verify(path: str, anchor: tuple[int, str] | None = None) -> tuple[int | None, str]:
    state = State(path)
    try:
        report = AuditTrail(state.engine).verify(anchor)
    finally:
        state.close()
    assert report.ok is (report.first_bad_seq is None)
    return report.first_bad_seq, report.reason or ""


def drop_append_only_guard(con: Connection) -> None:
    """What only the database's owner can do: drop the triggers that refuse UPDATE and
    DELETE on the audit trail (schema revision 0007)."""
    if con.dialect.name == "postgresql":
        for name in ("audit_trail_append_only", "audit_trail_no_truncate"):
            con.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON audit_trail")
    else:
        for name in ("audit_trail_no_update", "audit_trail_no_delete"):
            con.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")


def sql(url: str, *statements: str | tuple[str, tuple[Any, ...]], owner: bool = True) -> None:
    """Tamper with the database directly, outside wearflow (raw driver SQL, ``?`` params).
    ``owner``: as its owner, who first drops the append-only triggers."""
    engine = create_engine(url)
    try:
        with engine.begin() as con:
            if owner:
                drop_append_only_guard(con)
            for st in statements:
                query, params = (st, ()) if isinstance(st, str) else st
                if engine.dialect.name == "postgresql":
                    query = query.replace("?", "%s")
                con.exec_driver_sql(query, params)
    finally:
        engine.dispose()


def row(url: str, seq: int) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as con:
            found = con.execute(text("SELECT * FROM audit_trail WHERE seq = :seq"),
                                {"seq": seq}).mappings().one()
    finally:
        engine.dispose()
    return dict(found)


def insert_row(values: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    return (f"INSERT INTO audit_trail ({', '.join(FIELDS)}) VALUES "
            f"({', '.join('?' * len(FIELDS))})", tuple(values[k] for k in FIELDS))


SHIFT_UP_FROM_17 = ("UPDATE audit_trail SET seq = -(seq + 1) WHERE seq >= 17",
                    "UPDATE audit_trail SET seq = -seq WHERE seq < 0")


# -- the chain ---------------------------------------------------------------
def test_chain_of_50_verifies_and_links(db: str) -> None:
    state = State(db)
    trail = AuditTrail(state.engine)
    entries = trail.entries()
    report = trail.verify()
    state.close()
    assert report.ok and report.entries == N and report.first_bad_seq is None
    assert (report.head_seq, report.head_hash) == (N, entries[-1].entry_hash)
    assert [e.seq for e in entries] == list(range(1, N + 1))
    assert entries[0].prev_hash == GENESIS_HASH
    for prev, e in itertools.pairwise(entries):
        assert e.prev_hash == prev.entry_hash
    for e in entries:
        assert e.entry_hash == independent_hash(e.__dict__)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e.entry_utc)
    e17 = entries[16]
    assert (e17.actor, e17.action, e17.object) == ("user2", ACTIONS[17 % 11], "file:///study/p017.cwa")
    assert e17.before_json == '{"b": "x", "n": 16}'  # sorted keys
    assert e17.after_json == '{"list": [1, 2.5, null], "n": 17}'
    assert (e17.reason, entries[17].reason, entries[17].before_json) == ("reason 17", None, None)
    assert verify_entries(entries, (N, entries[-1].entry_hash)).ok


def test_empty_trail_and_a_second_trail_object_continue_the_chain(state_url: str) -> None:
    state = State(state_url)
    ticks = iter(["2024-03-31T00:59:59.999Z", "2024-03-31T01:00:00.000Z"])
    first = AuditTrail(state.engine, clock=lambda: next(ticks))
    assert first.verify() == verify_entries([])
    assert first.verify().ok and first.verify().head_hash == GENESIS_HASH
    assert first.record_many([]) == []
    a = first.record("ann", "study.loaded", "study:demo")
    b = AuditTrail(state.engine, clock=lambda: next(ticks)).record("bob", "task.started", "k1")
    state.close()
    assert (a.seq, b.seq, b.prev_hash) == (1, 2, a.entry_hash)
    assert b.entry_utc == "2024-03-31T01:00:00.000Z"


def test_record_many_is_one_transaction(db: str) -> None:
    state = State(db)
    trail = AuditTrail(state.engine)
    batch = trail.record_many([AuditEvent("ann", "file.cataloged", f"file:///x/{i}") for i in
                               range(5)])
    with pytest.raises(StateError, match=r"manual\.exclude"):  # one bad event: nothing written
        trail.record_many([AuditEvent("ann", "file.cataloged", "file:///y"),
                           AuditEvent("ann", "manual.exclude", "file:///z")])
    entries = trail.entries()
    state.close()
    assert [e.seq for e in batch] == list(range(N + 1, N + 6))
    assert len({e.entry_utc for e in batch}) == 1
    assert entries[-5:] == batch and len(entries) == N + 5
    assert verify_entries(entries).ok


# -- tampering, directly in SQL: verify names the first bad entry --------------
@pytest.mark.parametrize(("column", "value"), [
    ("entry_utc", "2020-01-01T00:00:00.000Z"), ("actor", "mallory"), ("action", "task.finished"),
    ("object", "file:///study/other.cwa"), ("before_json", None), ("after_json", '{"n": 99}'),
    ("reason", "a better reason"), ("reason", None), ("entry_hash", "f" * 64)])
def test_edited_field_is_caught_at_that_entry(db: str, column: str, value: Any) -> None:
    sql(db, (f"UPDATE audit_trail SET {column} = ? WHERE seq = 17", (value,)))
    assert verify(db) == (17, "entry_hash does not match its content")


def test_null_turned_into_a_value_is_caught(db: str) -> None:
    sql(db, "UPDATE audit_trail SET reason = 'added later', before_json = '{}' WHERE seq = 18")
    assert verify(db) == (18, "entry_hash does not match its content")


def test_edited_prev_hash_is_caught_at_that_entry(db: str) -> None:
    sql(db, ("UPDATE audit_trail SET prev_hash = ? WHERE seq = 17", ("a" * 64,)))
    assert verify(db) == (17, "prev_hash does not match entry 16")


def test_edit_with_its_own_hash_recomputed_is_caught_by_the_next_entry(db: str) -> None:
    forged = {**row(db, 17), "after_json": '{"n": -1}', "reason": "nothing to see"}
    forged["entry_hash"] = independent_hash(forged)
    sql(db, ("UPDATE audit_trail SET after_json = ?, reason = ?, entry_hash = ? WHERE seq = 17",
             (forged["after_json"], forged["reason"], forged["entry_hash"])))
    assert verify(db) == (18, "prev_hash does not match entry 17")


def test_deleted_entry_is_a_seq_gap(db: str) -> None:
    sql(db, "DELETE FROM audit_trail WHERE seq = 17")
    assert verify(db) == (18, "seq gap after 16")


def test_deleted_entry_with_renumbering_breaks_the_link(db: str) -> None:
    sql(db, "DELETE FROM audit_trail WHERE seq = 17",
        "UPDATE audit_trail SET seq = -(seq - 1) WHERE seq > 17",
        "UPDATE audit_trail SET seq = -seq WHERE seq < 0")
    assert verify(db) == (17, "prev_hash does not match entry 16")


def test_deleted_first_entry(db: str) -> None:
    sql(db, "DELETE FROM audit_trail WHERE seq = 1")
    assert verify(db) == (2, "seq gap after 0")


def test_forged_insert_with_renumbering_naive_hash(db: str) -> None:
    e16 = row(db, 16)
    forged = {**e16, "seq": 17, "actor": "mallory", "prev_hash": e16["entry_hash"],
              "entry_hash": "0" * 64}
    sql(db, *SHIFT_UP_FROM_17, insert_row(forged))
    assert verify(db) == (17, "entry_hash does not match its content")


def test_forged_insert_with_renumbering_and_valid_hashes(db: str) -> None:
    e16 = row(db, 16)
    forged = {**e16, "seq": 17, "actor": "mallory", "reason": "forged",
              "prev_hash": e16["entry_hash"]}
    forged["entry_hash"] = independent_hash(forged)
    sql(db, *SHIFT_UP_FROM_17, insert_row(forged))
    assert verify(db) == (18, "prev_hash does not match entry 17")


def test_forged_insert_without_renumbering(db: str) -> None:
    e16 = row(db, 16)
    forged = {**e16, "seq": 17, "actor": "mallory", "prev_hash": e16["entry_hash"]}
    forged["entry_hash"] = independent_hash(forged)
    with pytest.raises(IntegrityError):  # seq is unique: no room between 16 and 17
        sql(db, insert_row(forged))
    sql(db, "DELETE FROM audit_trail WHERE seq = 17", insert_row(forged))  # so: replace 17
    assert verify(db) == (18, "prev_hash does not match entry 17")


def test_swapped_entries_are_caught_at_the_first(db: str) -> None:
    sql(db, "UPDATE audit_trail SET seq = -1 WHERE seq = 17",
        "UPDATE audit_trail SET seq = 17 WHERE seq = 18",
        "UPDATE audit_trail SET seq = 18 WHERE seq = -1")
    assert verify(db) == (17, "prev_hash does not match entry 16")


# -- append-only, by the database itself -------------------------------------
@pytest.mark.parametrize("statement", [
    "UPDATE audit_trail SET actor = 'mallory' WHERE seq = 17",
    "UPDATE audit_trail SET seq = seq + 1000",
    "DELETE FROM audit_trail WHERE seq = 50",
    "DELETE FROM audit_trail WHERE seq >= 46",
    "DELETE FROM audit_trail",
])
def test_the_database_refuses_updates_and_deletes(db: str, statement: str) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        sql(db, statement, owner=False)
    assert verify(db) == (None, "")
    assert row(db, N)["seq"] == N and row(db, 17)["actor"] == "user2"


def test_postgresql_refuses_truncate_of_the_audit_trail(pg_url: str) -> None:
    State(pg_url).close()
    with pytest.raises(DBAPIError, match="append-only"):
        sql(pg_url, "TRUNCATE audit_trail", owner=False)


def test_appending_still_works_under_the_guard(db: str) -> None:
    state = State(db)
    entry = AuditTrail(state.engine).record("ann", "task.started", "k")
    state.close()
    assert entry.seq == N + 1 and verify(db) == (None, "")


# -- what the chain alone cannot see, and the anchor that can ------------------
def test_truncation_needs_the_anchor(db: str) -> None:
    anchor = (N, row(db, N)["entry_hash"])
    sql(db, "DELETE FROM audit_trail WHERE seq >= 45")
    assert verify(db) == (None, "")  # undetectable from inside the database
    assert verify(db, anchor) == (45, "entries 45..50 of the anchor missing")


def test_full_rewrite_from_an_entry_needs_the_anchor(db: str) -> None:
    anchor = (N, row(db, N)["entry_hash"])
    prev = row(db, 16)["entry_hash"]
    statements: list[str | tuple[str, tuple[Any, ...]]] = []
    for seq in range(17, N + 1):
        forged = {**row(db, seq), "actor": "mallory", "prev_hash": prev}
        forged["entry_hash"] = prev = independent_hash(forged)
        statements.append(("UPDATE audit_trail SET actor = ?, prev_hash = ?, entry_hash = ? "
                           "WHERE seq = ?", (forged["actor"], forged["prev_hash"], prev, seq)))
    sql(db, *statements)
    assert verify(db) == (None, "")
    assert verify(db, anchor) == (N, "entry_hash does not match the anchor (rewritten)")


def test_head_and_the_entries_since_an_anchor(db: str) -> None:
    """What a run checks before it anchors the trail's new head: only the entries since
    the previous anchor, on SQLite and PostgreSQL."""
    e40, e45 = row(db, 40), row(db, 45)
    state = State(db)
    trail = AuditTrail(state.engine)
    assert trail.head() == (N, row(db, N)["entry_hash"])
    since = trail.verify_since((40, e40["entry_hash"]))
    assert since.ok and since.entries == N - 40 and since.head_seq == N
    assert trail.verify_since((40, "f" * 64)).reason == (
        "entry_hash does not match the anchor (rewritten)")
    assert trail.verify_since((N + 3, "f" * 64)).reason == f"entry {N + 3} of the anchor missing"
    sql(db, ("UPDATE audit_trail SET actor = ? WHERE seq = 45", ("mallory",)))
    broken = trail.verify_since((40, e40["entry_hash"]))
    assert (broken.first_bad_seq, broken.reason) == (45, "entry_hash does not match its content")
    assert not trail.verify_since((45, e45["entry_hash"])).ok
    entries = trail.entries()
    state.close()
    anchors = [(40, e40["entry_hash"]), (45, e45["entry_hash"])]
    assert verify_entries(entries, anchors=anchors).first_bad_seq == 45


# -- manual actions, bad input ------------------------------------------------
@pytest.mark.parametrize("action", ["manual.retry", "manual.exclude", "manual.resolve"])
@pytest.mark.parametrize("reason", [None, "", "  \n"])
def test_manual_action_needs_a_reason(state_url: str, action: str, reason: str | None) -> None:
    state = State(state_url)
    trail = AuditTrail(state.engine)
    with pytest.raises(StateError, match=re.escape(f"manual action '{action}' needs")) as info:
        trail.record("ann", action, "task:abc", reason=reason)
    assert isinstance(info.value, WearflowError) and info.value.subject == "task:abc"
    assert trail.entries() == []
    assert trail.record("ann", action, "task:abc", reason="re-run after fix").reason
    state.close()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"actor": " "}, "non-empty actor"), ({"object": ""}, "non-empty object"),
    ({"after": {"x": object()}}, "not JSON-serialisable"),
    ({"before": {"x": float("nan")}}, "not JSON-serialisable")])
def test_bad_entries_are_refused(tmp_path: Path, state_url: str, kwargs: dict[str, Any],
                                 match: str) -> None:
    state = State(state_url)
    trail = AuditTrail(state.engine)
    args = {"actor": "ann", "action": "study.changed", "object": "study:demo", **kwargs}
    with pytest.raises(StateError, match=match):
        trail.record(args.pop("actor"), args.pop("action"), args.pop("object"), **args)
    fmt: Any = "xml"  # the Literal is checked at run time too
    with pytest.raises(StateError, match="unknown export format"):
        trail.export(tmp_path / "x", fmt)
    state.close()


# -- export ------------------------------------------------------------------
def read_csv(text: str) -> list[AuditEntry]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == FIELDS
    return [AuditEntry(**{**r, "seq": int(r["seq"]),
                          **{k: r[k] or None for k in ("before_json", "after_json", "reason")}})
            for r in reader]


def test_export_round_trips_and_is_byte_identical(db: str, tmp_path: Path) -> None:
    state = State(db)
    trail = AuditTrail(state.engine)
    trail.record("Zoë, \"QA\"", "manual.resolve", "file:///a b/ü.cwa",
                 before={"note": "line1\nline2", "ü": 1}, after={},
                 reason='fixed, "really"\r\nsecond line')
    entries = trail.entries()
    for fmt in ("csv", "json"):
        trail.export(tmp_path / f"a.{fmt}", fmt)
        trail.export(tmp_path / f"b.{fmt}", fmt)
        buf = io.StringIO()
        trail.export(buf, fmt)
        data = (tmp_path / f"a.{fmt}").read_bytes()
        assert data == (tmp_path / f"b.{fmt}").read_bytes() == buf.getvalue().encode()
        text = data.decode("utf-8")
        back = read_csv(text) if fmt == "csv" else [AuditEntry(**r) for r in json.loads(text)]
        assert back == entries
        assert verify_entries(back).ok and verify_entries(back).entries == N + 1
    state.close()
    assert (tmp_path / "a.csv").read_text("utf-8").splitlines()[0] == ",".join(FIELDS)


# -- helpers -----------------------------------------------------------------
def test_diff_names_changed_keys_with_dotted_paths() -> None:
    before = {"name": "demo", "storage": {"location": "/a", "kind": "local"}, "x": [1], "gone": 1}
    after = {"name": "demo", "storage": {"location": "/b", "kind": "local"}, "x": [1, 2], "new": 2}
    assert diff(before, after) == {
        "gone": {"before": 1},
        "new": {"after": 2},
        "storage.location": {"before": "/a", "after": "/b"},
        "x": {"before": [1], "after": [1, 2]},
    }
    assert list(diff(before, after)) == sorted(diff(before, after))
    assert diff(before, before) == {}
    assert diff({"a": {"b": 1}}, {"a": 1}) == {"a": {"before": {"b": 1}, "after": 1}}


def test_default_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    """A declared name (the study's identity, else $WEARFLOW_USER) is a claim: the OS user
    is recorded beside it."""
    monkeypatch.setattr("wearflow.provenance.current_user", lambda: "root")
    monkeypatch.setenv("WEARFLOW_USER", "env-user")
    assert default_actor(" configured ") == "configured (OS user root)"
    assert default_actor(None) == default_actor("") == "env-user (OS user root)"
    assert default_actor("root") == "OS user root"
    monkeypatch.delenv("WEARFLOW_USER")
    assert default_actor(None) == "OS user root"
    monkeypatch.setattr("wearflow.provenance.current_user", lambda: "unknown")
    assert default_actor("ann") == "ann (OS user unknown)"


def test_current_user_is_the_os_user_by_its_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not $USER or $LOGNAME (what getpass reads first): anyone can set those."""
    import pwd

    for var in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, "dr.impostor")
    assert current_user() == pwd.getpwuid(os.geteuid()).pw_name != "dr.impostor"


# -- concurrency -------------------------------------------------------------
def _append(url: str, actor: str, count: int, barrier: Any) -> None:
    state = State(url)
    trail = AuditTrail(state.engine)
    barrier.wait()
    for i in range(count):
        trail.record(actor, "task.started", f"task-{i}", after={"i": i})
    state.close()


def test_two_processes_append_to_one_database(state_url: str) -> None:
    path = state_url
    state = State(path)
    trail = AuditTrail(state.engine)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_append, args=(str(path), actor, 100, barrier))
             for actor in ("proc-a", "proc-b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    report, entries = trail.verify(), trail.entries()
    state.close()
    assert report.ok and report.entries == 200
    for actor in ("proc-a", "proc-b"):  # each writer's entries in its own order
        mine = [json.loads(e.after_json or "")["i"] for e in entries if e.actor == actor]
        assert mine == list(range(100))


def test_an_append_that_loses_the_race_retries_then_gives_up(
        state_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    state = State(state_url)
    other = AuditTrail(state.engine)
    sneaks = 1

    def clock() -> str:  # runs after the last entry was read: another writer gets in first
        nonlocal sneaks
        if sneaks:
            sneaks -= 1
            other.record("bob", "task.started", "sneaked in")
        return "2024-01-01T00:00:00.000Z"

    trail = AuditTrail(state.engine, clock=clock)
    assert trail.record("ann", "task.finished", "mine").seq == 2
    assert [e.actor for e in trail.entries()] == ["bob", "ann"] and trail.verify().ok
    monkeypatch.setattr("wearflow.state.audit._RETRY_S", 0.05)
    sneaks = 10**6
    with pytest.raises(StateError, match="cannot append to the audit trail within"):
        trail.record("ann", "task.finished", "never")
    assert "never" not in {e.object for e in trail.entries()} and trail.verify().ok
    state.close()
