"""users, and the data an attempt processed

A ``users`` table: the study's users, their role and the sha256 of their token; and
``task_attempts.data_s``: the seconds of recording a done attempt processed (hours of
data per hour on the dashboard).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09 10:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_utc", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("disabled_utc", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_sha256"),
    )
    with op.batch_alter_table("task_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_s", sa.Float(), nullable=False,
                                      server_default="0"))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("task_attempts", schema=None) as batch_op:
        batch_op.drop_column("data_s")
    op.drop_table("users")
