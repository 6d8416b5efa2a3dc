"""Migration 0004 on SQLite and PostgreSQL: free-text contact workers become
references to active staff of the same agency (the rest none, counted), and
the old text leaves the database's files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from coordination import migrate
from coordination.db import make_session_factory
from coordination.model import Involvement
from tests.conftest import engine_at
from tests.functional.test_encryption import pg_dump, sqlite_bytes

NOW = datetime(2026, 11, 22, 10)  # naive UTC, as stored
# Free text someone typed as a contact worker: a name and a phone number.
MARKER = "CW-MARKER-7F3A Kari Quokkason 400 12 345"
STAFF = [  # id, username, agency, active
    (1, "nurse1", "hc", True),
    (2, "gone1", "hc", False),
    (3, "physio1", "physio", True),
]
# family, agency, contact worker as typed -> the staff member it becomes
INVOLVEMENTS = [
    ("fam_1", "hc", "nurse1", "nurse1"),
    ("fam_2", "hc", "gone1", None),  # no longer active
    ("fam_3", "hc", "physio1", None),  # staff of another agency
    ("fam_4", "physio", MARKER, None),  # not a username at all
    ("fam_5", "physio", MARKER, None),
    ("fam_6", "hc", None, None),  # none named: nothing to count
]


@pytest.fixture(params=["sqlite", "postgresql"])
def at_0003(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A database at revision 0003 holding free-text contact workers."""
    engine = engine_at(request, tmp_path, "0003")
    with engine.begin() as conn:
        for slug in ("hc", "physio"):
            conn.execute(text("INSERT INTO agencies (id, name, kind, minimal_data, created_at)"
                              " VALUES (:id, :id, 'health', false, :now)"),
                         {"id": slug, "now": NOW})
        for staff_id, username, agency, active in STAFF:
            conn.execute(text("INSERT INTO staff (id, username, agency_id, role, active,"
                              " created_at) VALUES (:id, :u, :a, 'coordinator', :active, :now)"),
                         {"id": staff_id, "u": username, "a": agency, "active": active,
                          "now": NOW})
        for family, agency, worker, _ in INVOLVEMENTS:
            conn.execute(text("INSERT INTO families (id, display_name, name_index,"
                              " recorded_by_agency, created_at)"
                              " VALUES (:id, :name, :ix, :a, :now)"),
                         {"id": family, "name": b"\x01sealed", "ix": family, "a": agency,
                          "now": NOW})
            conn.execute(text("INSERT INTO involvements (family_id, agency_id, status, since,"
                              " contact_worker, created_at, updated_at)"
                              " VALUES (:f, :a, 'active', :since, :w, :now, :now)"),
                         {"f": family, "a": agency, "since": NOW.date(), "w": worker,
                          "now": NOW})
    if request.param == "postgresql":
        with engine.connect() as conn:
            # Statistics keep common values of a column: the marker is one.
            conn.execute(text("ANALYZE involvements"))
            conn.commit()
    yield engine.url.render_as_string(hide_password=False), engine
    engine.dispose()


def test_contact_workers_become_references_and_the_rest_are_counted(
        at_0003: tuple[str, Engine], capsys: pytest.CaptureFixture[str]) -> None:
    url, engine = at_0003
    capsys.readouterr()
    migrate.upgrade(engine)
    out = capsys.readouterr().out
    assert "0004: 1 contact workers now refer to staff members; 4 named no active staff " \
           "member of their agency and are now none" in out
    assert migrate.is_current(engine)
    assert "contact_worker" not in {c["name"] for c in inspect(engine).get_columns(
        "involvements")}
    with make_session_factory(engine)() as session:
        found = {i.family_id: i.contact_worker.username if i.contact_worker else None
                 for i in session.scalars(select(Involvement))}
    assert found == {family: becomes for family, _, _, becomes in INVOLVEMENTS}
    # The database itself holds a contact worker to the involvement's agency.
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE involvements SET contact_worker_id = 3"
                          " WHERE family_id = 'fam_1'"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE involvements SET contact_worker_id = 3"
                          " WHERE family_id = 'fam_4'"))  # physio1 for physio: fine


def test_downgrade_gives_the_usernames_back(at_0003: tuple[str, Engine]) -> None:
    _, engine = at_0003
    migrate.upgrade(engine)
    from alembic import command

    config = migrate.alembic_config()
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT family_id, contact_worker FROM involvements")
                                 ).tuples().all())
    assert rows == {family: becomes for family, _, _, becomes in INVOLVEMENTS}


# --- the old text leaves the files ------------------------------------------------------


def pg_files(engine: Engine) -> bytes:
    """The raw data files of the database (tables, indexes, catalogues),
    after a checkpoint has written every change to them."""
    with engine.connect() as conn:
        conn.execute(text("CHECKPOINT"))
        data = conn.execute(text("SHOW data_directory")).scalar_one()
        oid = conn.execute(text("SELECT oid FROM pg_database"
                                " WHERE datname = current_database()")).scalar_one()
        conn.commit()
    folder = Path(data) / "base" / str(oid)
    return b"".join(path.read_bytes() for path in sorted(folder.iterdir())
                    if re.fullmatch(r"[0-9]+(_[a-z]+)?(\.[0-9]+)?", path.name))


def stored(url: str, engine: Engine) -> list[tuple[str, bytes]]:
    if url.startswith("sqlite"):
        return [("sqlite files", sqlite_bytes(url))]
    return [("pg_dump", pg_dump(url)), ("data files", pg_files(engine))]


def test_the_old_text_leaves_the_files(at_0003: tuple[str, Engine]) -> None:
    url, engine = at_0003
    before = stored(url, engine)
    for place, data in before:
        assert MARKER.encode() in data, f"the scan does not see the marker in the {place}"
    # Scanned with the connection still open: closing the last one would
    # checkpoint and remove SQLite's write-ahead log, hiding what it held.
    migrate.upgrade(engine)
    for place, data in stored(url, engine):
        assert b"fam_4" in data, place  # the scan sees the rows
        assert MARKER.encode() not in data, f"the old contact-worker text is in the {place}"
