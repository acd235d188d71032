"""Alembic environment: wearflow runs migrations itself (``wearflow.state.schema.upgrade``)
on the connection it passes in ``config.attributes["connection"]``; with a
``sqlalchemy.url`` option instead (the ``alembic`` command line) it connects itself."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from wearflow.state.schema import target_metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata(),
                          render_as_batch=True)  # SQLite alters tables by copying them
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata(),
                          render_as_batch=True)
        context.run_migrations()
    engine.dispose()


run()
