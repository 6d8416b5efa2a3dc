"""evidence of need and impact: typed entries, areas, counting consent

Revision ID: 0013
Revises: 0011
Create Date: 2026-11-30 20:00:00.000000

- `fields.kinds`: the kinds of entry a field takes (comma-separated; `text`
  is free text).
- `entries.kind`: the kind of an entry (`text` for every entry written before);
  the entry's data stays sealed in `entries.value` (JSON for a typed kind).
- `agency_areas`: the areas (district code and name) an agency may give a family.
- `families.area`: the family's one area code, sealed with the family's key.
- `consent_forms.statistics`: whether the family may be counted in anonymous
  reports; every form recorded before this change says no.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = {
    "story": "text,needs",
    "social": "text,needs",
    "health": "text,attendance",
    "education": "text,attendance",
}


def upgrade() -> None:
    with op.batch_alter_table('fields', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kinds', sa.String(length=200), nullable=False,
                                      server_default='text'))
    fields = sa.table('fields', sa.column('id', sa.String), sa.column('kinds', sa.String))
    for field_id, kinds in KINDS.items():
        op.execute(fields.update().where(fields.c.id == field_id).values(kinds=kinds))
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=32), nullable=False,
                                      server_default='text'))
        batch_op.create_index('ix_entries_kind_written', ['kind', 'written_at'], unique=False)
    op.create_table('agency_areas',
    sa.Column('agency_id', sa.String(length=64), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_agency_areas_agency_id_agencies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('agency_id', 'code', name=op.f('pk_agency_areas'))
    )
    with op.batch_alter_table('families', schema=None) as batch_op:
        batch_op.add_column(sa.Column('area', sa.LargeBinary(), nullable=True))
    with op.batch_alter_table('consent_forms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('statistics', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    # Plain column drops (SQLite: ALTER TABLE ... DROP COLUMN), never a batch
    # copy: recreating `families` would cascade-delete every row that refers
    # to it (foreign keys are on).
    op.drop_column('consent_forms', 'statistics')
    op.drop_column('families', 'area')
    op.drop_table('agency_areas')
    op.drop_index('ix_entries_kind_written', table_name='entries')
    op.drop_column('entries', 'kind')
    op.drop_column('fields', 'kinds')
