"""environment locks

An ``environment_locks`` table: the lock (with hashes) each solution environment of the
study was first resolved to, reused by every later run and worker.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 04:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "environment_locks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("requirements", sa.Text(), nullable=False),
        sa.Column("lock_text", sa.Text(), nullable=False),
        sa.Column("lock_sha256", sa.String(length=64), nullable=False),
        sa.Column("resolved_utc", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("environment_locks")
