"""Opening the state database, and the helpers every repository shares.

SQLite (WAL) by default, or PostgreSQL (``postgresql+psycopg://...``). Opening
brings the schema to the newest migration (:func:`wearflow.state.schema.upgrade`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError

from wearflow.errors import StateError, one_line
from wearflow.extras import require_state_driver
from wearflow.filemodes import DATABASE_MODE, create_file, make_folders, tighten
from wearflow.redact import redact_url
from wearflow.state import schema

F = TypeVar("F", bound=Callable[..., Any])
RETRIES = 6  # attempts of a write that conflicts with another coordinator's


def open_engine(url: str) -> Engine:
    """An engine on ``url`` whose schema is at the newest revision.

    Raises
    ------
    StateError
        The database cannot be opened or migrated (the URL's credentials are masked, an
        unparsable URL is not repeated).
    """
    try:
        parses = "@" not in (make_url(url).host or "")  # else part of a password
    except (ArgumentError, ValueError):
        parses = False
    if not parses:
        raise StateError("the state database URL does not parse (expected "
                         "dialect+driver://<user>:<password>@<host>:<port>/<database>, an @ in the "
                         "user or password written %40)", subject="state")
    where = redact_url(url)
    require_state_driver(url)
    try:
        if url.startswith("sqlite:///") and ":memory:" not in url:
            _private_database(Path(url.removeprefix("sqlite:///")))
        engine = create_engine(url)
        if url.startswith("sqlite"):
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "close", _sqlite_optimize)
        _open_with_retries(engine)
    except (SQLAlchemyError, OSError) as exc:
        raise StateError(one_line(f"cannot open the state database ({exc})"),
                         subject=where) from None
    return engine


def _private_database(path: Path) -> None:
    """Create the SQLite file (and its folder) with the owner's permissions only, before
    SQLite does with the umask's; SQLite gives its write-ahead log and index the
    database's mode. A database an earlier version left readable is tightened."""
    make_folders(path.parent)
    create_file(path, DATABASE_MODE)
    for companion in (path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm"),
                      path.with_name(f"{path.name}-journal")):
        with contextlib.suppress(FileNotFoundError):
            tighten(companion, DATABASE_MODE)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # first: the pragmas below may have to wait
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_optimize(dbapi_conn: Any, _record: Any) -> None:
    """``PRAGMA optimize`` as a connection closes, as SQLite recommends: it analyzes the
    tables whose indexes the connection's queries considered and that have no statistics
    yet (or grew 25-fold since), a few hundredths of a second at 100,000 tasks, usually
    nothing. Without statistics the planner takes every index for a selective one and
    reads the whole tasks table through ``ix_tasks_current`` (which holds one value for
    nearly every row): one lookup per row, twice the time of a plain scan."""
    with contextlib.suppress(Exception):  # a connection closing after an error: they wait
        dbapi_conn.execute("PRAGMA optimize")


def _open_with_retries(engine: Engine) -> None:
    """Migrate the schema, retrying while another process holds the new database.

    Two coordinators opening a brand-new SQLite file at once can both try to turn
    it to WAL mode; SQLite answers one of them "database is locked" at once
    (a lock it cannot wait for), so the busy timeout does not help there.
    """
    for attempt in range(RETRIES):
        try:
            schema.upgrade(engine)
            return
        except OperationalError:
            if attempt == RETRIES - 1:
                raise
            engine.dispose()  # a fresh connection sets its pragmas again
            time.sleep(0.05 * 2**attempt)


def retry_on_conflict(method: F) -> F:
    """Re-run a write whose rows another coordinator inserted first (unique key) or
    whose database was briefly locked; the method re-reads what is there."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(RETRIES):
            try:
                return method(*args, **kwargs)
            except (IntegrityError, OperationalError) as exc:
                if attempt == RETRIES - 1:
                    raise StateError(f"conflicting writes did not settle ({exc.orig})",
                                     subject=method.__name__) from None
                time.sleep(0.05 * 2**attempt)
        return None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[Connection]:
    """A transaction that holds the database-wide lock ``name`` from its start to its
    end: of two coordinators doing the same work (cataloging one scan), the second starts
    only once the first has committed, and reads what it wrote.

    SQLite: ``BEGIN IMMEDIATE`` (the database's one write lock, waited for up to the
    busy timeout); PostgreSQL: ``pg_advisory_xact_lock`` on a key derived from ``name``
    (row locks and other writers are not held up).
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            # the driver has not begun a transaction yet (it does so before the first
            # write); this one takes the write lock at once
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(lock_key(name))))
        yield conn


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for the lock ``name`` (PostgreSQL's advisory locks)."""
    return int.from_bytes(hashlib.sha256(f"wearflow:{name}".encode()).digest()[:8], "big",
                          signed=True)


def chunks(values: Sequence[Any], size: int = 5000) -> list[Sequence[Any]]:
    """Pieces small enough for an SQL IN list on every backend (SQLite and PostgreSQL cap
    bound parameters per statement)."""
    return [values[i:i + size] for i in range(0, len(values), size)]
