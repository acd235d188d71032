"""The state's bulk catalog and plan writes: versions, absence, duplicates, current tasks,
and conflicting writers, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from wearflow.catalog import SensorFile, StoredFile
from wearflow.state import State
from wearflow.state.audit import (
    AuditEntry,
    AuditEvent,
    AuditTrail,
    _canonical,
    _canonical_text,
    compute_hash,
)
from wearflow.state.bulk import insert_many
from wearflow.state.tables import FileRow, TaskRow
from wearflow.task import TaskOutcome, TaskRecord, TaskState

ROOT, OTHER = "file:///study/raw", "file:///elsewhere"


@pytest.fixture
def url(state_url: str) -> str:
    """A fresh state database: SQLite, then PostgreSQL (tests/conftest.py)."""
    return state_url


@pytest.fixture
def state(url: str) -> Iterator[State]:
    s = State(url)
    try:
        yield s
    finally:
        s.close()


def sensor(name: str, sha256: str, mtime: str = "m1", root: str = ROOT) -> SensorFile:
    participant, side = name.split(".")[0].split("_")
    return SensorFile(uri=f"{root}/{name}", location=root, path=name, size_bytes=100,
                      mtime=mtime, sha256=sha256,
                      fields={"participant": participant, "side": side})


def task(key: str, file_id: int, state: str = "pending", tag: str | None = None,
         message: str | None = None) -> TaskRecord:
    return TaskRecord(key, file_id, "wrist", "1", "fp", "P1", "left", state, tag=tag,
                      message=message, inputs_json='{"time_zone": "UTC"}')


def all_files(s: State) -> list[tuple[str, str, bool, bool]]:
    with s.engine.connect() as conn:
        rows = conn.execute(select(FileRow.uri, FileRow.sha256, FileRow.current,
                                   FileRow.present).order_by(FileRow.id)).all()
    return [(u.rsplit("/", 1)[-1], h, bool(c), bool(p)) for u, h, c, p in rows]


def current_tasks(s: State) -> dict[str, tuple[str, str | None]]:
    return {t.key: (t.state, t.tag) for t, _f in s.tasks.for_current_files()}


def test_light_rows_have_every_column() -> None:
    """current_files and tasks_for_current_files return every column, as the ORM rows did."""
    assert StoredFile._fields == tuple(c.name for c in FileRow.__table__.columns)
    assert TaskRecord._fields == tuple(c.name for c in TaskRow.__table__.columns)


def test_sync_keeps_versions_and_marks_absence(state: State) -> None:
    state.files.sync([sensor("P1_L.cwa", "a1"), sensor("P1_R.cwa", "b1")], [ROOT])
    first = {f.path: f for f in state.files.current()}
    assert [f.sha256 for f in first.values()] == ["a1", "b1"]
    assert all(f.current and f.present and f.first_seen_utc == f.last_seen_utc
               for f in first.values())
    assert first["P1_L.cwa"].fields_json == '{"participant": "P1", "side": "L"}'

    # new bytes for L: a new current version; a new mtime for R: the same row updated
    state.files.sync([sensor("P1_L.cwa", "a2"), sensor("P1_R.cwa", "b1", mtime="m2")], [ROOT])
    second = {f.path: f for f in state.files.current()}
    assert second["P1_L.cwa"].sha256 == "a2" and second["P1_L.cwa"].id != first["P1_L.cwa"].id
    assert (second["P1_R.cwa"].id, second["P1_R.cwa"].mtime) == (first["P1_R.cwa"].id, "m2")

    # L back to its first bytes: that row is current again; R gone from ROOT: absent
    state.files.sync([sensor("P1_L.cwa", "a1")], [ROOT])
    assert all_files(state) == [("P1_L.cwa", "a1", True, True), ("P1_R.cwa", "b1", True, False),
                                ("P1_L.cwa", "a2", False, True)]
    assert [f.id for f in state.files.current()] == [first["P1_L.cwa"].id]
    assert set(state.files.known()) == {f"{ROOT}/P1_L.cwa", f"{ROOT}/P1_R.cwa"}

    # a scan of another location leaves ROOT's files alone; R seen again is present again
    state.files.sync([sensor("P2_L.cwa", "c1", root=OTHER)], [OTHER])
    state.files.sync([sensor("P1_L.cwa", "a1"), sensor("P1_R.cwa", "b1", mtime="m2")], [ROOT])
    assert [f.uri for f in state.files.current()] == [
        f"{OTHER}/P2_L.cwa", f"{ROOT}/P1_L.cwa", f"{ROOT}/P1_R.cwa"]


def test_sync_refreshes_last_seen_of_unchanged_files(state: State) -> None:
    files = [sensor(f"P{k}_L.cwa", f"h{k}") for k in range(12)]
    state.files.sync(files, [ROOT])
    with state.engine.begin() as conn:
        conn.execute(FileRow.__table__.update().values(last_seen_utc="earlier"))
    state.files.sync(files, [ROOT])
    assert {f.last_seen_utc for f in state.files.current()} != {"earlier"}
    assert all(f.first_seen_utc <= f.last_seen_utc for f in state.files.current())


def test_duplicates_follow_the_first_uri(state: State) -> None:
    a, b, c = sensor("P1_L.cwa", "same"), sensor("P2_L.cwa", "same"), sensor("P3_L.cwa", "other")
    state.files.sync([a, b, c], [ROOT])
    assert [f.duplicate_of for f in state.files.current()] == [None, a.uri, None]
    state.files.sync([b, c], [ROOT])  # the first copy is gone: the other one is processed
    assert [f.duplicate_of for f in state.files.current()] == [None, None]
    state.files.sync([a, b, c], [ROOT])
    assert [f.duplicate_of for f in state.files.current()] == [None, a.uri, None]


def test_record_plan_sets_current_tasks_and_states(state: State) -> None:
    state.files.sync([sensor("P1_L.cwa", "a"), sensor("P1_R.cwa", "b")], [ROOT])
    left, right = (f.id for f in state.files.current())
    state.tasks.record_plan([task("k1", left), task("k2", right, "waiting", "WAITING", "why")])
    assert current_tasks(state) == {"k1": ("pending", None), "k2": ("waiting", "WAITING")}
    created = state.tasks.created()
    assert set(created) == {"k1", "k2"}

    state.tasks.finish(TaskOutcome("k1", TaskState.DONE, "", ""))
    state.tasks.record_plan([task("k1", left), task("k2", right)])  # k1 stays done, k2 may run
    assert current_tasks(state) == {"k1": ("done", None), "k2": ("pending", None)}

    # new metadata inputs for R: a new key replaces k2 as R's task; and back again
    state.tasks.record_plan([task("k1", left, "done"), task("k3", right)])
    assert current_tasks(state) == {"k1": ("done", None), "k3": ("pending", None)}
    assert state.tasks.states() == {"k1": "done", "k2": "pending", "k3": "pending"}
    state.tasks.record_plan([task("k1", left, "done"), task("k2", right)])
    assert current_tasks(state) == {"k1": ("done", None), "k2": ("pending", None)}
    assert state.tasks.created() == {**created, "k3": state.tasks.created()["k3"]}
    row = next(t for t, _f in state.tasks.for_current_files() if t.key == "k2")
    assert (row.inputs_json, row.flags_json, row.attempts) == ('{"time_zone": "UTC"}', "[]", 0)


def test_record_plan_never_restates_a_running_task(state: State) -> None:
    state.files.sync([sensor("P1_L.cwa", "a")], [ROOT])
    (f,) = state.files.current()
    state.tasks.record_plan([task("k1", f.id)])
    assert state.tasks.claim("k1", "run-1", lease_s=60)
    state.tasks.record_plan([task("k1", f.id, "waiting", "WAITING", "why")])
    assert current_tasks(state) == {"k1": ("running", None)}


def _before_first(s: State, sql_start: str, action: Callable[[], object]) -> list[str]:
    """Run ``action`` once, just before ``s`` first sends a statement starting with
    ``sql_start``: another coordinator writing between this one's read and its write.
    Returns what happened: "ran", then the class of every database error ``s`` saw."""
    seen: list[str] = []

    def hook(*args: Any) -> None:
        if not seen and args[2].lstrip().upper().startswith(sql_start):
            seen.append("ran")
            action()

    event.listen(s.engine, "before_cursor_execute", hook)
    event.listen(s.engine, "handle_error",
                 lambda ctx: seen.append(type(ctx.sqlalchemy_exception).__name__))
    return seen


def test_a_sync_waits_for_anothers_and_a_plan_that_loses_the_race_is_retried(
        url: str) -> None:
    first, second = State(url), State(url)
    try:
        files = [sensor(f"P{k}_L.cwa", f"h{k}") for k in range(20)]
        # A sync holds the catalog's lock from its read on: another one started meanwhile
        # waits, then finds the rows written and says it made no version current.
        other: list[Any] = []
        waiting = threading.Thread(target=lambda: other.append(first.files.sync(files,
                                                                                [ROOT])))
        seen = _before_first(second, "INSERT INTO FILES", waiting.start)
        mine = second.files.sync(files, [ROOT])
        waiting.join(timeout=120)
        assert seen == ["ran"]
        assert [(f.uri, before) for f, before in mine] == [(f.uri, None) for f in files]
        assert other == [[]]
        assert [(name, sha) for name, sha, *_ in all_files(second)] == [
            (f.path, f.sha256) for f in files]
        f0 = second.files.current()[0]

        records = [task(f"k{f.id}", f.id) for f in second.files.current()]
        seen = _before_first(second, "INSERT INTO TASKS", lambda: first.tasks.record_plan(records))
        second.tasks.record_plan(records)
        assert seen == ["ran", "IntegrityError"]
        assert sorted(second.tasks.states()) == sorted(t.key for t in records)
        assert f"k{f0.id}" in current_tasks(second)
    finally:
        first.close()
        second.close()


def test_a_task_claimed_while_planning_stays_with_its_claimer(url: str) -> None:
    first, second = State(url), State(url)
    try:
        second.files.sync([sensor("P1_L.cwa", "a")], [ROOT])
        (f,) = second.files.current()
        second.tasks.record_plan([task("k1", f.id, "waiting", "WAITING", "why")])
        with second.engine.begin() as conn:
            conn.execute(TaskRow.__table__.update().values(state="pending", tag=None))
        # second plans k1 as waiting again; first claims it between second's read and write
        seen = _before_first(second, "UPDATE TASKS SET STATE",
                             lambda: first.tasks.claim("k1", "run-1", lease_s=60))
        second.tasks.record_plan([task("k1", f.id, "waiting", "WAITING", "why")])
        assert seen == ["ran"]
        assert current_tasks(second) == {"k1": ("running", None)}
    finally:
        first.close()
        second.close()


def test_many_files_in_chunks(state: State) -> None:
    """More rows than one IN list holds (5,000), on every write path."""
    files = [sensor(f"P{k:05d}_L.cwa", f"h{k}") for k in range(12_001)]
    state.files.sync(files, [ROOT])
    current = state.files.current()
    state.tasks.record_plan([task(f"k{f.id}", f.id) for f in current])
    state.tasks.record_plan([task(f"n{f.id}", f.id) for f in current])
    assert len(state.tasks.for_current_files()) == len(files)
    assert {t.key[0] for t, _f in state.tasks.for_current_files()} == {"n"}
    state.files.sync(files[:1], [ROOT])  # every other file gone
    assert [f.path for f in state.files.current()] == [files[0].path]


def _file_rows(n: int) -> list[dict[str, Any]]:
    return [{"uri": f"{ROOT}/P{k:05d}_L.cwa", "sha256": f"h{k}", "size_bytes": k,
             "mtime": f"m{k}", "location": ROOT, "path": f"P{k:05d}_L.cwa", "kind": "sensor",
             "participant": f"P{k:05d}", "side": "L", "parse_error": None if k % 3 else "e",
             "device_serial": None, "first_seen_utc": "t", "last_seen_utc": "t"}
            for k in range(n)]


def test_insert_many_round_trips(state: State) -> None:
    """Many rows: multi-row INSERTs (62 rows each on SQLite) and the rest one by one."""
    rows = [{**row, "fields_json": f'{{"k": {k}}}', "current": bool(k % 2), "present": True}
            for k, row in enumerate(_file_rows(1_500))]
    with state.engine.begin() as conn:
        insert_many(conn, FileRow, rows)
        stored = conn.execute(select(*(FileRow.__table__.c[k] for k in rows[0]))
                              .order_by(FileRow.id)).all()
    assert [dict(row._mapping) for row in stored] == rows


def test_insert_many_leaves_column_defaults_to_sqlalchemy(state: State) -> None:
    """Rows without a column that has a Python-side default go through Core, which fills it."""
    rows = _file_rows(1_200)  # no fields_json, current, present: their defaults apply
    with state.engine.begin() as conn:
        insert_many(conn, FileRow, rows)
        insert_many(conn, FileRow, [])
    assert {(f.fields_json, f.current, f.present) for f in state.files.current()} == {
        ("{}", True, True)}
    assert len(state.files.current()) == len(rows)


def test_audit_entries_in_bulk_verify(state: State) -> None:
    trail = AuditTrail(state.engine)
    trail.record("me", "study.loaded", "study.yaml", after={"n": 1})
    entries = trail.record_many(
        AuditEvent("me", "file.cataloged", f"{ROOT}/P{k}_L.cwa", before=None if k % 2 else
                   {"sha256": "x"}, after={"sha256": f"h{k}", "name": "é \u2028 \"q\""},
                   reason="ü" if k % 3 else None) for k in range(300))
    assert [e.seq for e in entries] == list(range(2, 302))
    assert trail.entries()[1:] == entries
    report = trail.verify()
    assert report.ok and report.entries == 301


text = st.one_of(st.none(), st.text(max_size=40))


@settings(max_examples=300, deadline=None)
@given(actor=st.text(min_size=1, max_size=20), action=st.text(min_size=1, max_size=20),
       obj=st.text(min_size=1, max_size=40), before=text, after=text, reason=text,
       seq=st.integers(min_value=1, max_value=2**62))
def test_bulk_canonical_form_is_compute_hashs(actor: str, action: str, obj: str,
                                             before: str | None, after: str | None,
                                             reason: str | None, seq: int) -> None:
    entry = AuditEntry(seq, "2026-01-01T00:00:00.000Z", actor, action, obj, before, after,
                       reason, "0" * 64, "")
    row = {name: getattr(entry, name) for name in AuditEntry.__dataclass_fields__
           if name != "entry_hash"}
    assert _canonical_text(row) == _canonical(row)
    assert compute_hash(entry) == hashlib.sha256(_canonical_text(row).encode()).hexdigest()
