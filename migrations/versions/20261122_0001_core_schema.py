"""core schema: agencies, staff, tokens, families, entries, consent forms

Revision ID: 0001
Revises:
Create Date: 2026-11-22 19:41:46.881803
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('agencies',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('minimal_data', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agencies'))
    )
    op.create_table('erasures',
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('requested_at', sa.DateTime(), nullable=False),
    sa.Column('key_destroyed_at', sa.DateTime(), nullable=True),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('family_id', name=op.f('pk_erasures'))
    )
    op.create_table('fields',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fields'))
    )
    op.create_table('families',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('display_name', sa.LargeBinary(), nullable=False),
    sa.Column('name_index', sa.String(length=128), nullable=False),
    sa.Column('birth_date_index', sa.String(length=128), nullable=True),
    sa.Column('birth_date', sa.LargeBinary(), nullable=True),
    sa.Column('address', sa.LargeBinary(), nullable=True),
    sa.Column('national_id', sa.LargeBinary(), nullable=True),
    sa.Column('languages', sa.LargeBinary(), nullable=True),
    sa.Column('recorded_by_agency', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['recorded_by_agency'], ['agencies.id'], name=op.f('fk_families_recorded_by_agency_agencies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_families'))
    )
    with op.batch_alter_table('families', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_families_name_index'), ['name_index'], unique=False)

    op.create_table('staff',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('agency_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_staff_agency_id_agencies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff')),
    sa.UniqueConstraint('username', name=op.f('uq_staff_username'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('family_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_api_tokens_family_id_families'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_api_tokens_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('consent_forms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('signed_by', sa.LargeBinary(), nullable=False),
    sa.Column('signed_on', sa.Date(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('witness', sa.String(length=64), nullable=True),
    sa.Column('interpreter_language', sa.String(length=16), nullable=True),
    sa.Column('purpose', sa.LargeBinary(), nullable=False),
    sa.Column('legal_basis', sa.String(length=64), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=False),
    sa.Column('change', sa.String(length=200), nullable=False),
    sa.Column('changed_by', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_consent_forms_family_id_families'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_forms')),
    sa.UniqueConstraint('family_id', 'version', name=op.f('uq_consent_forms_family_id_version'))
    )
    op.create_table('consent_receipts',
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('pin_hash', sa.String(length=255), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', sa.DateTime(), nullable=True),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_consent_receipts_family_id_families'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('family_id', name=op.f('pk_consent_receipts')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_consent_receipts_code_hash'))
    )
    op.create_table('entries',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('field_id', sa.String(length=64), nullable=False),
    sa.Column('agency_id', sa.String(length=64), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('written_at', sa.DateTime(), nullable=False),
    sa.Column('value', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_entries_agency_id_agencies')),
    sa.ForeignKeyConstraint(['author_id'], ['staff.id'], name=op.f('fk_entries_author_id_staff')),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_entries_family_id_families'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['field_id'], ['fields.id'], name=op.f('fk_entries_field_id_fields')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entries'))
    )
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.create_index('ix_entries_family_written', ['family_id', 'written_at'], unique=False)

    op.create_table('family_members',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.LargeBinary(), nullable=False),
    sa.Column('relation', sa.LargeBinary(), nullable=False),
    sa.Column('birth_date', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_family_members_family_id_families'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_family_members'))
    )
    with op.batch_alter_table('family_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_family_members_family_id'), ['family_id'], unique=False)

    op.create_table('involvements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('agency_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('since', sa.Date(), nullable=False),
    sa.Column('contact_worker', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_involvements_agency_id_agencies')),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_involvements_family_id_families'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_involvements')),
    sa.UniqueConstraint('family_id', 'agency_id', name=op.f('uq_involvements_family_id_agency_id'))
    )
    with op.batch_alter_table('involvements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_involvements_family_id'), ['family_id'], unique=False)

    op.create_table('consent_cells',
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('agency_id', sa.String(length=64), nullable=False),
    sa.Column('field_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_consent_cells_agency_id_agencies')),
    sa.ForeignKeyConstraint(['field_id'], ['fields.id'], name=op.f('fk_consent_cells_field_id_fields')),
    sa.ForeignKeyConstraint(['form_id'], ['consent_forms.id'], name=op.f('fk_consent_cells_form_id_consent_forms'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('form_id', 'agency_id', 'field_id', name=op.f('pk_consent_cells'))
    )
    fields = sa.table(
        "fields",
        sa.column("id", sa.String),
        sa.column("label", sa.String),
        sa.column("description", sa.Text),
        sa.column("position", sa.Integer),
    )
    op.bulk_insert(fields, [
        {"id": "involvement", "label": "Involvement", "position": 1,
         "description": "Which agencies are involved with the family and who the contact "
                        "worker is."},
        {"id": "contact", "label": "Contact details", "position": 2,
         "description": "How to reach the family: address, phone, a relative's number."},
        {"id": "household", "label": "Household", "position": 3,
         "description": "Who the family are: members, birth dates, languages."},
        {"id": "story", "label": "The family's story", "position": 4,
         "description": "The family's own account of its situation, told once."},
        {"id": "health", "label": "Health", "position": 5,
         "description": "Health notes from the health centre, nurse or physiotherapist."},
        {"id": "education", "label": "Education and care", "position": 6,
         "description": "Notes from early childhood education and care or school."},
        {"id": "social", "label": "Social", "position": 7,
         "description": "Notes from social work: income, housing, support."},
        {"id": "protection", "label": "Child protection", "position": 8,
         "description": "Notes from child protective services."},
    ])


def downgrade() -> None:
    op.drop_table('consent_cells')
    with op.batch_alter_table('involvements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_involvements_family_id'))

    op.drop_table('involvements')
    with op.batch_alter_table('family_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_family_members_family_id'))

    op.drop_table('family_members')
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.drop_index('ix_entries_family_written')

    op.drop_table('entries')
    op.drop_table('consent_receipts')
    op.drop_table('consent_forms')
    op.drop_table('api_tokens')
    op.drop_table('staff')
    with op.batch_alter_table('families', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_families_name_index'))

    op.drop_table('families')
    op.drop_table('fields')
    op.drop_table('erasures')
    op.drop_table('agencies')
