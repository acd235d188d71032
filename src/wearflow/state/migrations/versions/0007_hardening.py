"""an append-only audit trail; the issues' webhook outbox

Triggers that refuse ``UPDATE`` and ``DELETE`` on ``audit_trail`` (on PostgreSQL also
``TRUNCATE``), for every role, its owner included (the owner can drop them: that is what
the signed anchors outside the database are for). On ``issues``, the state of posting
each new issue to the study's webhook: pending, when queued, attempts, not before, the
deadline after which it is given up, when delivered, the last error.

Revision ID: 0007
Revises: 0006
Create Date: 2027-01-06 10:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSAL = "audit_trail is append-only: entries are never updated or deleted"

_PG_UP = (
    f"""CREATE OR REPLACE FUNCTION audit_trail_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{_REFUSAL} (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$""",
    "CREATE TRIGGER audit_trail_append_only BEFORE UPDATE OR DELETE ON audit_trail "
    "FOR EACH ROW EXECUTE FUNCTION audit_trail_refuse_change()",
    "CREATE TRIGGER audit_trail_no_truncate BEFORE TRUNCATE ON audit_trail "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_trail_refuse_change()",
)
_PG_DOWN = (
    "DROP TRIGGER IF EXISTS audit_trail_no_truncate ON audit_trail",
    "DROP TRIGGER IF EXISTS audit_trail_append_only ON audit_trail",
    "DROP FUNCTION IF EXISTS audit_trail_refuse_change()",
)
_SQLITE_UP = tuple(
    f"CREATE TRIGGER audit_trail_no_{what.lower()} BEFORE {what} ON audit_trail "
    f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL} ({what} refused)'); END"
    for what in ("UPDATE", "DELETE"))
_SQLITE_DOWN = ("DROP TRIGGER IF EXISTS audit_trail_no_update",
                "DROP TRIGGER IF EXISTS audit_trail_no_delete")


def upgrade() -> None:
    """Upgrade schema."""
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _PG_UP if postgres else _SQLITE_UP:
        op.execute(statement)
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_pending", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("webhook_queued_utc", sa.String(length=32),
                                      nullable=True))
        batch_op.add_column(sa.Column("webhook_attempts", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("webhook_next_utc", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("webhook_deadline_utc", sa.String(length=32),
                                      nullable=True))
        batch_op.add_column(sa.Column("webhook_delivered_utc", sa.String(length=32),
                                      nullable=True))
        batch_op.add_column(sa.Column("webhook_error", sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f("ix_issues_webhook_pending"), ["webhook_pending"],
                              unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issues_webhook_pending"))
        for column in ("webhook_error", "webhook_delivered_utc", "webhook_deadline_utc",
                       "webhook_next_utc", "webhook_attempts", "webhook_queued_utc",
                       "webhook_pending"):
            batch_op.drop_column(column)
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _PG_DOWN if postgres else _SQLITE_DOWN:
        op.execute(statement)
