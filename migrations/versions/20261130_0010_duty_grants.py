"""duty grants: cells an agency sees because the law requires it

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('duty_grants',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('agency_id', sa.String(length=64), nullable=False),
    sa.Column('fields', sa.Text(), nullable=False),
    sa.Column('legal_basis', sa.String(length=32), nullable=False),
    sa.Column('justification', sa.LargeBinary(), nullable=False),
    sa.Column('until', sa.Date(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('proposed_by', sa.String(length=64), nullable=False),
    sa.Column('proposer_agency', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decider_agency', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_duty_grants_agency_id_agencies')),
    sa.ForeignKeyConstraint(['proposer_agency'], ['agencies.id'], name=op.f('fk_duty_grants_proposer_agency_agencies')),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_duty_grants_family_id_families'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_duty_grants'))
    )
    with op.batch_alter_table('duty_grants', schema=None) as batch_op:
        batch_op.create_index('ix_duty_grants_family_agency', ['family_id', 'agency_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('duty_grants', schema=None) as batch_op:
        batch_op.drop_index('ix_duty_grants_family_agency')
    op.drop_table('duty_grants')
