"""emergency access: which agencies may break the glass, and each use

Revision ID: 0011
Revises: 0012
Create Date: 2026-11-30 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('agencies', sa.Column('emergency_access', sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.create_table('emergency_accesses',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('family_id', sa.String(length=40), nullable=True),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('agency_id', sa.String(length=64), nullable=False),
    sa.Column('legal_basis', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.LargeBinary(), nullable=True),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(), nullable=True),
    sa.Column('reviewed_by', sa.String(length=64), nullable=True),
    sa.Column('verdict', sa.String(length=16), nullable=True),
    sa.Column('review_note', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_emergency_accesses_family_id_families'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_emergency_accesses_staff_id_staff')),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_emergency_accesses_agency_id_agencies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_emergency_accesses'))
    )
    with op.batch_alter_table('emergency_accesses', schema=None) as batch_op:
        batch_op.create_index('ix_emergency_accesses_staff_opened', ['staff_id', 'opened_at'], unique=False)
        batch_op.create_index('ix_emergency_accesses_family_opened', ['family_id', 'opened_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('emergency_accesses', schema=None) as batch_op:
        batch_op.drop_index('ix_emergency_accesses_family_opened')
        batch_op.drop_index('ix_emergency_accesses_staff_opened')
    op.drop_table('emergency_accesses')
    op.drop_column('agencies', 'emergency_access')
