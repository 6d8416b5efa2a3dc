"""key store: the active master version all nodes agree on, and node heartbeats

The active version is not filled in here (the migration cannot read a
keyring): the first node or command that needs it proposes its keyring
file's `active` (`coordination.keystore.KeyStore.active_version`).

Revision ID: k0002
Revises: k0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "k0002"
down_revision: str | None = "k0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "master_key_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("active_version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_master_key_state_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_master_key_state")),
    )
    op.create_table(
        "key_nodes",
        sa.Column("node_id", sa.String(length=255), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.Column("versions", sa.String(length=255), nullable=False),
        sa.Column("active_version", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_key_nodes")),
    )
    with op.batch_alter_table("key_nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_key_nodes_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    op.drop_table("key_nodes")
    op.drop_table("master_key_state")
