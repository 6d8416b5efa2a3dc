"""Migration 0014 on SQLite and PostgreSQL: the chain's head learns the hash
its entry follows (`audit_head.prev_hash`), filled from the log, and gives it
back on downgrade without touching the chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

import audit.services as audit_log
from audit.chain import GENESIS, HASHED, audit_time, entry_hash
from audit.model import Action
from audit.services import Event
from coordination import migrate
from coordination.db import make_engine, make_session_factory
from tests.pg import create_database

NOW = datetime(2026, 12, 1, 2, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def at_0013(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at revision 0013 whose log holds three entries."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/old.db"
    else:
        url = create_database(request.getfixturevalue("pg_admin_url"))
    engine = make_engine(url)
    migrate.upgrade(engine, "0013")
    prev = GENESIS
    with engine.begin() as conn:
        for seq in (1, 2, 3):
            values = [seq, audit_time(NOW), "login", "ok", f"user{seq}", None, None, None,
                      None, None, None, None, f"req-{seq}"]
            digest = entry_hash(prev, values)
            conn.execute(text(f"INSERT INTO audit_log ({', '.join(HASHED)}, prev_hash, hash) "  # noqa: S608
                              f"VALUES ({', '.join(':' + n for n in HASHED)}, :prev, :hash)"),
                         {**dict(zip(HASHED, values, strict=True)), "prev": prev,
                          "hash": digest})
            prev = digest
        conn.execute(text("UPDATE audit_head SET seq = 3, hash = :hash"), {"hash": prev})
    yield engine
    engine.dispose()


def head(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT * FROM audit_head")).one())


def log_prev_hash(engine: Engine, seq: int) -> str:
    with engine.connect() as conn:
        found: str = conn.execute(text("SELECT prev_hash FROM audit_log WHERE seq = :seq"),
                                  {"seq": seq}).scalar_one()
    return found


def test_upgrade_fills_the_heads_prev_hash_and_appends_follow_it(at_0013: Engine) -> None:
    engine = at_0013
    migrate.upgrade(engine)
    assert migrate.is_current(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT seq, hash, prev_hash FROM audit_head")).one()
        last = conn.execute(text("SELECT hash, prev_hash FROM audit_log WHERE seq = 3")).one()
    assert tuple(row) == (3, last.hash, last.prev_hash)
    with make_session_factory(engine)() as session:
        entry = audit_log.record(session, Event(action=Action.LOGIN, actor="after"), NOW)
        session.commit()
    assert (entry.seq, entry.prev_hash) == (4, last.hash)
    with engine.connect() as conn:
        moved = conn.execute(text("SELECT seq, hash, prev_hash FROM audit_head")).one()
    assert tuple(moved) == (4, entry.hash, last.hash)
    result = audit_log.verify(engine)
    assert result.ok and result.entries == 4, result


def test_downgrade_drops_the_column_and_leaves_the_chain(at_0013: Engine) -> None:
    engine = at_0013
    before = head(engine)
    migrate.upgrade(engine)
    config = migrate.alembic_config()
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0013")
    assert "prev_hash" not in {c["name"] for c in inspect(engine).get_columns("audit_head")}
    assert head(engine) == before
    assert audit_log.verify(engine).ok
    migrate.upgrade(engine)  # and up again
    assert head(engine) == (*before, log_prev_hash(engine, 3))


def test_a_new_chain_has_no_prev_hash_until_its_first_append(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/new.db")
    try:
        migrate.upgrade(engine)
        assert head(engine) == (1, 0, GENESIS, None)
    finally:
        engine.dispose()
