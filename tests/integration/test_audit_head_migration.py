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
from tests.conftest import engine_at

NOW = datetime(2026, 12, 1, 2, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def at_0013(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at revision 0013 whose log holds three entries."""
    engine = engine_at(request, tmp_path, "0013")
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


def former_append(engine: Engine, actor: str) -> None:
    """An append as a node still on the code before 0014 makes it: the head
    locked and read, the hash computed in Python, the entry written and the
    head's seq and hash moved (its `prev_hash` left as it was)."""
    lock = "SELECT seq, hash FROM audit_head WHERE id = 1"
    if engine.dialect.name == "postgresql":
        lock += " FOR UPDATE"
    with engine.begin() as conn:
        seq, prev = conn.execute(text(lock)).one()
        values = [seq + 1, audit_time(NOW), "login", "ok", actor, None, None, None, None,
                  None, None, None, None]
        digest = entry_hash(prev, values)
        conn.execute(text(f"INSERT INTO audit_log ({', '.join(HASHED)}, prev_hash, hash) "  # noqa: S608
                          f"VALUES ({', '.join(':' + n for n in HASHED)}, :prev, :hash)"),
                     {**dict(zip(HASHED, values, strict=True)), "prev": prev, "hash": digest})
        conn.execute(text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1"),
                     {"seq": seq + 1, "hash": digest})


def test_appends_of_nodes_on_the_former_code_keep_one_chain(at_0013: Engine) -> None:
    """During an upgrade, nodes on the code before 0014 and nodes on this one
    append to the upgraded database in turn: each append follows the one
    before it, whichever node made it."""
    engine = at_0013
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    for n in range(3):
        former_append(engine, f"former{n}")
        with sessions() as session:
            entry = audit_log.record(session, Event(action=Action.LOGIN, actor=f"new{n}"),
                                     NOW)
            session.commit()
        assert entry.prev_hash == log_hash(engine, entry.seq - 1)
    result = audit_log.verify(engine)
    assert result.ok and result.entries == 9, result


def log_hash(engine: Engine, seq: int) -> str:
    with engine.connect() as conn:
        found: str = conn.execute(text("SELECT hash FROM audit_log WHERE seq = :seq"),
                                  {"seq": seq}).scalar_one()
    return found
