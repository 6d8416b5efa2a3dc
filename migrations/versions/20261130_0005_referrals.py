"""referrals and the history of their states

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 15:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('referrals',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('from_agency', sa.String(length=64), nullable=False),
    sa.Column('to_agency', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('urgency', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('respond_by', sa.Date(), nullable=False),
    sa.Column('interpreter_language', sa.String(length=35), nullable=True),
    sa.Column('accompany', sa.Boolean(), nullable=False),
    sa.Column('fields', sa.Text(), nullable=False),
    sa.Column('reason', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_referrals_family_id_families'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['from_agency'], ['agencies.id'], name=op.f('fk_referrals_from_agency_agencies')),
    sa.ForeignKeyConstraint(['to_agency'], ['agencies.id'], name=op.f('fk_referrals_to_agency_agencies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referrals'))
    )
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.create_index('ix_referrals_family', ['family_id'], unique=False)
        batch_op.create_index('ix_referrals_from_created', ['from_agency', 'created_at'], unique=False)
        batch_op.create_index('ix_referrals_to_created', ['to_agency', 'created_at'], unique=False)

    op.create_table('referral_events',
    sa.Column('referral_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('by', sa.String(length=64), nullable=False),
    sa.Column('agency_id', sa.String(length=64), nullable=True),
    sa.Column('note', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'], name=op.f('fk_referral_events_referral_id_referrals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('referral_id', 'seq', name=op.f('pk_referral_events'))
    )


def downgrade() -> None:
    op.drop_table('referral_events')
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_index('ix_referrals_to_created')
        batch_op.drop_index('ix_referrals_from_created')
        batch_op.drop_index('ix_referrals_family')
    op.drop_table('referrals')
