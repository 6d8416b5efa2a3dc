"""search by whole words of any name and by any birth date: keyed terms

The terms are HMACs of words and dates under the index key, which a
migration does not hold: families recorded before this revision are indexed
by `onestory search reindex` (see the README). Until then they are found by
their whole name and the family's birth date, as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('search_terms',
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=40), nullable=False),
    sa.Column('term', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_search_terms_family_id_families'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('family_id', 'owner', 'term', name=op.f('pk_search_terms'))
    )
    with op.batch_alter_table('search_terms', schema=None) as batch_op:
        batch_op.create_index('ix_search_terms_term', ['term', 'family_id', 'owner'], unique=False)

    # A birth date alone is now a search: families not yet reindexed are
    # found by their own birth date through this.
    with op.batch_alter_table('families', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_families_birth_date_index'), ['birth_date_index'], unique=False)

    op.create_table('search_indexed',
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('scheme', sa.String(length=64), nullable=False),
    sa.Column('indexed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_search_indexed_family_id_families'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('family_id', name=op.f('pk_search_indexed'))
    )


def downgrade() -> None:
    op.drop_table('search_indexed')
    with op.batch_alter_table('families', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_families_birth_date_index'))
    with op.batch_alter_table('search_terms', schema=None) as batch_op:
        batch_op.drop_index('ix_search_terms_term')
    op.drop_table('search_terms')
