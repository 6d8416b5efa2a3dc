"""contact workers: a reference to a staff member of the agency, no free text; the old text leaves the files

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 23:40:00.000000

`involvements.contact_worker` was free text. It becomes `contact_worker_id`,
a reference to a staff member of the same agency. A text that is the
username of an active staff member of that agency becomes a reference to
them; any other becomes none, and how many is printed.

Dropping a column does not take its old values out of the files, so the
table is rewritten afterwards, outside a transaction: on SQLite with
`secure_delete` (freed content is zeroed), `VACUUM` and a truncating WAL
checkpoint; on PostgreSQL with `VACUUM FULL` of the table (a new file holding only live
rows, dropped columns nulled; the old one is truncated at once) and of the
planner's statistics, which held common values of the column (this needs a
superuser; otherwise a line says so). Copies made
before (backups, PostgreSQL's WAL archive) keep the old text until they age
out.

Run it with the servers stopped, as every `onestory init` after an upgrade.
If it is interrupted after the conversion, running it again only rewrites.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from coordination.errors import Conflict


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        op.execute("PRAGMA secure_delete = ON")
    columns = {c["name"] for c in sa.inspect(bind).get_columns("involvements")}
    if "contact_worker" in columns:
        _convert(sqlite)
    _rewrite(sqlite)


def _convert(sqlite: bool) -> None:
    bind = op.get_bind()
    # A composite foreign key needs a unique key on its target; this one
    # holds a contact worker to the involvement's own agency.
    op.create_index('uq_staff_agency_id_id', 'staff', ['agency_id', 'id'], unique=True)
    with op.batch_alter_table('involvements') as batch_op:
        batch_op.add_column(sa.Column('contact_worker_id', sa.Integer(), nullable=True))
    op.execute(
        "UPDATE involvements SET contact_worker_id = ("
        " SELECT staff.id FROM staff WHERE staff.username = involvements.contact_worker"
        " AND staff.agency_id = involvements.agency_id AND staff.active)"
        " WHERE contact_worker IS NOT NULL"
    )
    converted, cleared = bind.execute(sa.text(
        "SELECT count(contact_worker_id), count(*) - count(contact_worker_id)"
        " FROM involvements WHERE contact_worker IS NOT NULL")).one()
    if converted or cleared:
        print(f"0004: {converted} contact workers now refer to staff members; {cleared} named "
              "no active staff member of their agency and are now none", flush=True)
    # On SQLite the table is built anew (the old one dropped, its pages zeroed).
    with op.batch_alter_table('involvements', recreate='always' if sqlite else 'auto') \
            as batch_op:
        batch_op.create_foreign_key('fk_involvements_agency_id_staff', 'staff',
                                    ['agency_id', 'contact_worker_id'], ['agency_id', 'id'])
        batch_op.drop_column('contact_worker')


def _rewrite(sqlite: bool) -> None:
    """Rewrite the files so no copy of the dropped text is left in them."""
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        if not sqlite:
            bind.exec_driver_sql("VACUUM FULL involvements")
            bind.exec_driver_sql("ANALYZE involvements")
            # The planner's statistics kept common values of the dropped
            # column; their dead rows stay in pg_statistic's file until it is
            # rewritten, which only its owner (a superuser) may do.
            if bind.exec_driver_sql(
                    "SELECT r.rolsuper OR c.relowner = r.oid FROM pg_class c, pg_roles r"
                    " WHERE c.oid = 'pg_statistic'::regclass"
                    " AND r.rolname = current_user").scalar():
                bind.exec_driver_sql("VACUUM FULL pg_statistic")
            else:
                print("0004: old contact-worker text may remain in the planner's statistics "
                      "(pg_statistic): have a superuser run `VACUUM FULL pg_statistic` in this "
                      "database", flush=True)
            return
        bind.exec_driver_sql("VACUUM")
        busy = bind.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0]
        if busy:
            # Stamped only once the files are clean: running it again rewrites.
            raise Conflict("the write-ahead log is in use by another connection, so the old "
                           "contact-worker text may remain in it; stop the servers and run "
                           "`onestory init` again")


def downgrade() -> None:
    with op.batch_alter_table('involvements') as batch_op:
        batch_op.add_column(sa.Column('contact_worker', sa.String(length=200), nullable=True))
    op.execute(
        "UPDATE involvements SET contact_worker = ("
        " SELECT staff.username FROM staff WHERE staff.id = involvements.contact_worker_id)"
    )
    with op.batch_alter_table('involvements') as batch_op:
        batch_op.drop_constraint('fk_involvements_agency_id_staff', type_='foreignkey')
        batch_op.drop_column('contact_worker_id')
    op.drop_index('uq_staff_agency_id_id', table_name='staff')
