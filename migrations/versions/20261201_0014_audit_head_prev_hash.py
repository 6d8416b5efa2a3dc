"""audit head: the hash of the entry before it

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 02:10:00.000000

- `audit_head.prev_hash`: the hash the head's entry follows (`prev_hash` of the
  last entry; null before the first append). On PostgreSQL an append moves the
  head with one UPDATE that computes the new hash from the old one, and reads
  the old one back from this column in the same statement
  (`audit.services.record`). Filled here from the log for an existing chain.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('audit_head', sa.Column('prev_hash', sa.String(length=64), nullable=True))
    op.execute("UPDATE audit_head SET prev_hash = (SELECT audit_log.prev_hash FROM audit_log "
               "WHERE audit_log.seq = audit_head.seq)")


def downgrade() -> None:
    op.drop_column('audit_head', 'prev_hash')
