"""Schema migrations (Alembic) on SQLite and PostgreSQL: upgrade in place, no drift,
concurrent first opens."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import DBAPIError, OperationalError

from wearflow.errors import StateError
from wearflow.state import State, schema


def test_a_new_database_is_at_the_newest_revision_and_matches_the_tables(
        state_url: str) -> None:
    State(state_url).close()
    engine = create_engine(state_url)
    with engine.connect() as conn:
        assert schema.current_revision(conn) == schema.head_revision() == "0009"
        # the tables the code declares are exactly what the migrations built
        assert compare_metadata(MigrationContext.configure(conn), schema.target_metadata()) == []
    engine.dispose()


def test_a_database_from_before_migrations_is_upgraded_keeping_its_rows(
        state_url: str) -> None:
    engine = create_engine(state_url)
    cfg = schema._config()
    with engine.begin() as conn:  # the schema wearflow made with create_all, no version
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text(
            "INSERT INTO runs (id, study, study_fingerprint, config_json, host, pid, \"user\", "
            "started_utc, counts_json) VALUES ('old-run', 'S', 'f', '{}', 'h', 1, 'ann', "
            "'2026-01-01T00:00:00.000Z', '{}')"))
    assert "retry_after_utc" not in {c["name"] for c in inspect(engine).get_columns("tasks")}
    state = State(state_url)
    assert state.runs.begin("new-run", "S", "f", "bob", {}) == ("f", {})  # the old run
    state.close()
    with engine.connect() as conn:
        assert schema.current_revision(conn) == schema.head_revision()
        assert conn.execute(text("SELECT count(*) FROM runs")).scalar() == 2
    assert "retry_after_utc" in {c["name"] for c in inspect(engine).get_columns("tasks")}
    engine.dispose()


def _open(url: str, barrier: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    State(url).close()


def test_four_processes_opening_a_new_database_at_once(state_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_open, args=(state_url, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    engine = create_engine(state_url)
    with engine.connect() as conn:
        assert schema.current_revision(conn) == schema.head_revision()
    engine.dispose()


def test_a_database_briefly_locked_at_first_open_is_opened_after_a_retry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two coordinators creating one SQLite file at once: SQLite can answer one of them
    'database is locked' without waiting; the open retries instead of failing the run."""
    real, calls = schema.upgrade, [0]

    def locked_twice(engine: Engine) -> None:
        calls[0] += 1
        if calls[0] <= 2:
            raise OperationalError("PRAGMA journal_mode=WAL", {}, Exception("database is locked"))
        real(engine)

    monkeypatch.setattr(schema, "upgrade", locked_twice)
    url = f"sqlite:///{tmp_path}/state.sqlite"
    State(url).close()
    assert calls[0] == 3

    def always_locked(engine: Engine) -> None:
        raise OperationalError("PRAGMA journal_mode=WAL", {}, Exception("database is locked"))

    monkeypatch.setattr(schema, "upgrade", always_locked)
    with pytest.raises(StateError, match="cannot open the state database"):
        State(f"sqlite:///{tmp_path}/other.sqlite")


def test_revision_0003_fills_the_visit_of_files_already_cataloged(state_url: str) -> None:
    engine = create_engine(state_url)
    cfg = schema._config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        conn.execute(text(
            "INSERT INTO files (uri, sha256, size_bytes, mtime, location, path, kind, "
            "participant, side, fields_json, first_seen_utc, last_seen_utc, current, present) "
            "VALUES ('file:///raw/P1_V2_L.csv', 'a', 1, '0', 'file:///raw', 'P1_V2_L.csv', "
            "'sensor', 'P1', 'left', :fields, 't', 't', :yes, :yes)"),
            {"fields": '{"participant": "P1", "side": "left", "visit": "V2", '
                       '"location": "wrist"}', "yes": True})
    with State(state_url) as state:
        (f,) = state.files.current()
    assert (f.visit, f.body_location, f.participant) == ("V2", "wrist", "P1")
    engine.dispose()


def test_revision_0007_makes_the_audit_trail_append_only_and_its_downgrade_undoes_it(
        state_url: str) -> None:
    engine = create_engine(state_url)
    cfg = schema._config()
    row = ("INSERT INTO audit_trail (seq, entry_utc, actor, action, object, prev_hash, "
           "entry_hash) VALUES (1, 't', 'ann', 'study.loaded', 's', 'p', 'h')")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        conn.execute(text(row))
    State(state_url).close()  # to the newest revision
    for statement in ("UPDATE audit_trail SET actor = 'mallory'", "DELETE FROM audit_trail"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
        conn.execute(text("DELETE FROM audit_trail"))
        assert conn.execute(text("SELECT count(*) FROM audit_trail")).scalar() == 0
    engine.dispose()


def test_revision_0008_masks_the_credentials_older_runs_recorded(state_url: str) -> None:
    engine = create_engine(state_url)
    cfg = schema._config()
    secret = {"state": "postgresql+psycopg://ann:hunter2@db.example.org/trial",
              "webhook": "https://hooks.example.org/in?token=s3cr3t-t0ken",
              "storage_options": {"key": "AKIAEXAMPLE", "secret": "wJalrXUtnFEMI"}}
    clean = {"study": "S", "input": "data/", "workers": 2}
    insert = ("INSERT INTO runs (id, study, study_fingerprint, config_json, host, pid, "
              "\"user\", started_utc, counts_json) "
              "VALUES (:id, 'S', 'f', :config, 'h', 1, 'ann', :started, '{}')")
    clean_text = json.dumps(clean)  # not sorted, as an older run may have written it
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0007")
        conn.execute(text(insert), {"id": "r1", "config": json.dumps(secret),
                                    "started": "2026-01-01T00:00:00Z"})
        conn.execute(text(insert), {"id": "r2", "config": clean_text,
                                    "started": "2026-01-02T00:00:00Z"})
    State(state_url).close()  # to the newest revision
    with engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT id, config_json FROM runs")).all())
    for planted in ("hunter2", "s3cr3t-t0ken", "AKIAEXAMPLE", "wJalrXUtnFEMI"):
        assert planted not in stored["r1"]
    masked = json.loads(stored["r1"])
    assert masked["state"] == "postgresql+psycopg://ann:***@db.example.org/trial"
    assert stored["r2"] == clean_text  # a row without a credential is left byte for byte
    engine.dispose()
