"""visits, body locations and several recordings per task

Files get ``visit`` and ``body_location`` columns (the ``{visit}`` and ``{location}``
fields of their names) (filled here for the files already cataloged), tasks a ``parts_json`` list
of the other files combined with the task's own (several recordings of one
wrist in one visit), participant results a ``visit``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:10:00.000000

"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("visit", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("body_location", sa.String(length=256), nullable=True))
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parts_json", sa.Text(), nullable=True))
    with op.batch_alter_table("participant_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("visit", sa.String(length=256), nullable=False,
                                      server_default=""))
    files = sa.table("files", sa.column("id", sa.Integer), sa.column("fields_json", sa.Text),
                     sa.column("visit", sa.String), sa.column("body_location", sa.String))
    conn = op.get_bind()
    rows = conn.execute(sa.select(files.c.id, files.c.fields_json)).all()
    updates = []
    for row_id, fields_json in rows:
        fields = json.loads(fields_json or "{}")
        if fields.get("visit") is not None or fields.get("location") is not None:
            updates.append({"b_id": row_id, "b_visit": fields.get("visit"),
                            "b_location": fields.get("location")})
    if updates:
        conn.execute(sa.update(files).where(files.c.id == sa.bindparam("b_id"))
                     .values(visit=sa.bindparam("b_visit"),
                             body_location=sa.bindparam("b_location")), updates)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("participant_results", schema=None) as batch_op:
        batch_op.drop_column("visit")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("parts_json")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_column("body_location")
        batch_op.drop_column("visit")
