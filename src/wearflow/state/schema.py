"""The state database's schema, brought to the current revision by Alembic migrations.

Every coordinator and command upgrades the database it opens (SQLite or
PostgreSQL) to the newest revision in ``wearflow/state/migrations/versions``. Two
processes opening one new database at once are serialised: an advisory lock
on PostgreSQL, a lock file beside the database on SQLite. A database made by
wearflow before migrations existed (tables, no ``alembic_version``) is stamped
as the first revision and upgraded from there.

A developer changing a table adds a revision::

    alembic -c <ini with script_location = src/wearflow/state/migrations> \\
        revision --autogenerate -m "what changed"
"""

from __future__ import annotations

import fcntl
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

from wearflow.errors import StateError
from wearflow.filemodes import DATABASE_MODE, create_file
from wearflow.state.tables import Base

FIRST_REVISION = "0001"
_PG_LOCK_ID = 0x77656172  # "wear": one advisory lock id for schema changes


@functools.cache
def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return cfg


@functools.cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise StateError("the package's schema migrations are missing", subject="migrations")
    return head


def target_metadata() -> MetaData:
    """Every table wearflow declares (state and audit trail), for autogenerate and checks."""
    return Base.metadata


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema revision (a no-op when it is there)."""
    with engine.connect() as conn:
        if current_revision(conn) == head_revision():
            return
    with _exclusive(engine), engine.begin() as conn:
        revision = current_revision(conn)
        if revision == head_revision():
            return  # another process migrated it while we waited
        cfg = _config()
        cfg.attributes["connection"] = conn
        if revision is None and inspect(conn).has_table("files"):
            command.stamp(cfg, FIRST_REVISION)  # made by create_all before migrations
        command.upgrade(cfg, "head")


@contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    create_file(f"{database}.migrate-lock", DATABASE_MODE)
    with open(f"{database}.migrate-lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
