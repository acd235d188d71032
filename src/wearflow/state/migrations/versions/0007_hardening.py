"""an append-only audit trail

Triggers that refuse ``UPDATE`` and ``DELETE`` on ``audit_trail`` (on PostgreSQL also
``TRUNCATE``), for every role, its owner included (the owner can drop them: that is what
the signed anchors outside the database are for).

Revision ID: 0007
Revises: 0006
Create Date: 2027-01-06 10:00:00.000000

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSAL = "audit_trail is append-only: entries are never updated or deleted"

_PG_UP = (
    f"""CREATE FUNCTION audit_trail_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
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


def downgrade() -> None:
    """Downgrade schema."""
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _PG_DOWN if postgres else _SQLITE_DOWN:
        op.execute(statement)
