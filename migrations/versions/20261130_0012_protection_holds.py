"""protection holds: agencies allowed to place them, the holds and their history

Revision ID: 0012
Revises: 0010
Create Date: 2026-11-30 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('agencies', sa.Column('protection_holds', sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.create_table('protection_holds',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('agency_id', sa.String(length=64), nullable=False),
    sa.Column('conceal', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.LargeBinary(), nullable=False),
    sa.Column('review_on', sa.Date(), nullable=False),
    sa.Column('set_at', sa.DateTime(), nullable=False),
    sa.Column('set_by', sa.String(length=64), nullable=False),
    sa.Column('renewed_at', sa.DateTime(), nullable=True),
    sa.Column('renewed_by', sa.String(length=64), nullable=True),
    sa.Column('lifted_at', sa.DateTime(), nullable=True),
    sa.Column('lifted_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_protection_holds_agency_id_agencies')),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_protection_holds_family_id_families'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_protection_holds'))
    )
    op.create_index('ix_protection_holds_family', 'protection_holds', ['family_id'], unique=False)
    op.create_table('protection_hold_events',
    sa.Column('hold_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('act', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('by', sa.String(length=64), nullable=False),
    sa.Column('review_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['hold_id'], ['protection_holds.id'], name=op.f('fk_protection_hold_events_hold_id_protection_holds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('hold_id', 'seq', name=op.f('pk_protection_hold_events'))
    )


def downgrade() -> None:
    op.drop_table('protection_hold_events')
    op.drop_index('ix_protection_holds_family', table_name='protection_holds')
    op.drop_table('protection_holds')
    op.drop_column('agencies', 'protection_holds')
