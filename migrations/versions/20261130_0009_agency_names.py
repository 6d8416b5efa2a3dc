"""agency names per language, staff display names, since when a contact worker is one

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('agency_names',
    sa.Column('agency_id', sa.String(length=64), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_agency_names_agency_id_agencies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('agency_id', 'language', name=op.f('pk_agency_names'))
    )
    # Plain ALTER TABLE on both backends (SQLite 3.35+ drops a column in
    # place): a batch copy of `staff` would break the tables that refer to it.
    op.add_column('staff', sa.Column('display_name', sa.String(length=200), nullable=True))
    op.add_column('involvements', sa.Column('contact_since', sa.Date(), nullable=True))


def downgrade() -> None:
    op.drop_column('involvements', 'contact_since')
    op.drop_column('staff', 'display_name')
    op.drop_table('agency_names')
