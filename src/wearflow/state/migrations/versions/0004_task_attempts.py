"""task attempts

A ``task_attempts`` table: one row per attempt at a task (retried ones included), with
the run, the worker, its times, how it ended, its CPU seconds, peak memory and stage
seconds. Runs before this revision have no attempts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 10:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "task_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("task_key", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("solution", sa.String(length=256), nullable=False),
        sa.Column("participant", sa.String(length=256), nullable=False),
        sa.Column("visit", sa.String(length=256), nullable=False),
        sa.Column("worker", sa.String(length=256), nullable=False),
        sa.Column("started_utc", sa.String(length=32), nullable=False),
        sa.Column("finished_utc", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("transient", sa.Boolean(), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("cpu_s", sa.Float(), nullable=False),
        sa.Column("peak_rss_bytes", sa.BigInteger(), nullable=False),
        sa.Column("stage_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("task_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_attempts_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("task_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_attempts_run_id"))

    op.drop_table("task_attempts")
