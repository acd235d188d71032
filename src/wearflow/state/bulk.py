"""Helpers for reading and writing rows by the hundred thousand (state and audit trail).

* :func:`insert_many`: SQLAlchemy Core's executemany processes every row's
  parameters in Python and the driver then runs one INSERT per row (on SQLite, 1.5 to
  1.8 s of CPU for 100,000 rows of the files table); this sends the rows as
  SQLAlchemy's own multi-row ``INSERT ... VALUES (...), (...)``, compiled for the
  connection's dialect, straight to the driver's executemany (0.7 s). The SQL is
  SQLAlchemy's; errors, events and the transaction are the connection's, as with
  ``conn.execute``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.engine import Connection, Dialect

MAX_PARAMETERS = 999  # per statement: SQLite's historical cap, the lowest of the databases
MIN_ROWS = 1000  # fewer go through conn.execute, whose compiled statements are cached


def insert_many(conn: Connection, table: Table | type[Any],
                rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` into ``table`` (a Table or a mapped class).

    Every row has the same keys; the values are ones the driver takes natively (str,
    int, float, bool, None), as SQLAlchemy's per-row processing is skipped. Rows go
    through ``conn.execute`` instead when they are few, when the dialect's parameters
    are named (its Core executemany batches rows itself, e.g. PostgreSQL's), or when
    the statement needs that processing (a column default not in the rows, escaped
    parameter names).
    """
    if not rows:
        return
    keys = tuple(rows[0])
    single = _compiled(table, keys, 1, conn.dialect) if len(rows) >= MIN_ROWS else None
    if single is None:
        conn.execute(insert(table), list(rows))
        return
    per = max(1, MAX_PARAMETERS // len(keys))  # rows per statement
    batched = _compiled(table, keys, per, conn.dialect) if per > 1 else None
    done = 0
    if batched is not None:
        sql, order = batched
        row_values = itemgetter(*order)
        done = len(rows) - len(rows) % per
        conn.exec_driver_sql(sql, [tuple(chain.from_iterable(map(row_values, rows[i:i + per])))
                                   for i in range(0, done, per)])
    if done < len(rows):
        sql, order = single
        conn.exec_driver_sql(sql, [tuple(row[key] for key in order) for row in rows[done:]])


def _compiled(table: Table | type[Any], keys: tuple[str, ...], n_rows: int,
              dialect: Dialect) -> tuple[str, tuple[str, ...]] | None:
    """The INSERT of ``n_rows`` rows of ``keys`` when the dialect's parameters are
    positional: (SQL, the keys in the order of one row's parameters), else None; also
    None when the statement has parameters beyond the rows' (column defaults)."""
    if n_rows == 1:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
        params = list(compiled.positiontup or ())
        order = params
    else:
        names = [{key: f"r{i}_{key}" for key in keys} for i in range(n_rows)]
        compiled = insert(table).values(
            [{key: bindparam(name) for key, name in row.items()} for row in names]
        ).compile(dialect=dialect)
        params = list(compiled.positiontup or ())
        order = [name.split("_", 1)[1] for name in params[:len(keys)]]
        if params != [names[i][key] for i in range(n_rows) for key in order]:
            return None
    if not compiled.positional or compiled.escaped_bind_names or sorted(order) != sorted(keys):
        return None
    return compiled.string, tuple(order)
