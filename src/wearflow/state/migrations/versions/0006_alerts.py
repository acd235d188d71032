"""alerts

An ``alerts`` table: one row per alert key of a study, its times and the state of its
delivery to each target; an index on ``task_attempts.finished_utc`` (the alert rules
read the latest attempts).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-16 10:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study", sa.String(length=256), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("since_utc", sa.String(length=32), nullable=False),
        sa.Column("first_fired_utc", sa.String(length=32), nullable=False),
        sa.Column("last_evaluated_utc", sa.String(length=32), nullable=False),
        sa.Column("cleared_utc", sa.String(length=32), nullable=True),
        sa.Column("deliveries_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study", "key"),
    )
    with op.batch_alter_table("task_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_attempts_finished_utc"), ["finished_utc"],
                              unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("task_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_attempts_finished_utc"))
    op.drop_table("alerts")
