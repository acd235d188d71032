"""mask the credentials that runs recorded before wearflow masked them

Runs recorded by a wearflow older than revision 0007 kept the study's configuration in
``runs.config_json`` as written, a PostgreSQL password in ``state:`` and a webhook's
token included. This data migration rewrites each such row with its credentials masked
(:func:`wearflow.redact.redact_config`, what every newer run stores), so the password
is gone from the database, not only from what wearflow prints. Rows without a
credential are left byte for byte. The audit trail's older entries are not rewritten
(it is append-only and hash-chained): wearflow masks them whenever it reads or exports
them.

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-08 10:00:00.000000

"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from wearflow.redact import redact_json

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUNS = sa.table("runs", sa.column("id", sa.String), sa.column("config_json", sa.Text))


def masked_config(text: str) -> str:
    """``text`` (a run's configuration as JSON) with its credentials masked, in the form a
    run stores it (sorted keys); ``text`` itself when it holds none."""
    masked = redact_json(text)
    if masked == text:
        return text
    return json.dumps(json.loads(masked), sort_keys=True)


def upgrade() -> None:
    """Upgrade data: mask the credentials in every run's recorded configuration."""
    bind = op.get_bind()
    rows = bind.execute(sa.select(_RUNS.c.id, _RUNS.c.config_json)).all()
    for run_id, text in rows:
        masked = masked_config(text or "{}")
        if masked != (text or "{}"):
            bind.execute(sa.update(_RUNS).where(_RUNS.c.id == run_id)
                         .values(config_json=masked))


def downgrade() -> None:
    """Downgrade: nothing (a masked credential cannot be put back)."""
