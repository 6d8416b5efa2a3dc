"""Appends to the audit log, on both databases: each entry as written, and
many at once.

On PostgreSQL an append is one statement and the database computes the
entry's hash: for awkward values it must be `entry_hash`'s, byte for byte.
Many threads and several processes append at once, each append in its own
transaction, some rolled back; the chain's head row serialises them (on
PostgreSQL the append's UPDATE of the head waits for its lock and then works
on the head as the transaction before it committed it; on SQLite, the
append's first statement is a write, which takes the database's write lock: a
transaction that has read nothing before it waits for the lock rather than
failing). Afterwards the log must hold every committed entry exactly once,
numbered 1..N without a gap, each entry following the one before it (no
fork), and verify.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

import audit.services as audit_log
from audit.chain import GENESIS, HASHED, entry_hash
from audit.model import Action, Outcome
from audit.services import Event
from coordination.db import make_engine, make_session_factory
from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
TIME_LIMIT = 30.0  # seconds, for each test's concurrent part

# Appends `count` entries as actor `name`, one transaction each, after a start signal.
CHILD = """
import json, os, sys, time
from datetime import UTC, datetime

from audit.model import Action
from audit.services import Event, record
from coordination.db import make_engine, make_session_factory

name, count, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
engine = make_engine(os.environ["ONESTORY_TEST_AUDIT_URL"])
sessions = make_session_factory(engine)
with engine.connect():
    pass  # connected before the start
print("ready", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no start signal")
    time.sleep(0.002)
for i in range(count):
    with sessions() as session:
        record(session, Event(action=Action.RECORD_READ, actor=name, agency_id="proc",
                              detail={"i": i}), datetime.now(UTC))
        session.commit()
engine.dispose()
print("done", flush=True)
"""


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def append(sessions: sessionmaker[Session], name: str, i: int) -> None:
    with sessions() as session:
        audit_log.record(session, Event(action=Action.RECORD_READ, actor=name,
                                        agency_id="thread", detail={"i": i}),
                         datetime.now(UTC))
        session.commit()


def in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run work(0..count-1) in `count` threads released together; re-raise
    the first failure here (not as an unhandled thread exception)."""
    barrier = threading.Barrier(count)

    def run(n: int) -> None:
        barrier.wait(timeout=TIME_LIMIT)
        work(n)

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(run, n) for n in range(count)]
        for future in futures:
            future.result(timeout=TIME_LIMIT * 2)


def assert_one_chain(engine: Engine, total: int, per_actor: dict[str, int]) -> None:
    """Every append exactly once, numbered 1..total, no fork, verified."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT seq, actor, detail, prev_hash, hash FROM audit_log ORDER BY seq")).all()
        head = conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
    assert len(rows) == total
    assert [r.seq for r in rows] == list(range(1, total + 1))
    # No fork: each entry follows the one before it, and no two share a predecessor.
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    assert len({r.prev_hash for r in rows}) == total
    assert len({r.hash for r in rows}) == total
    assert (head.seq, head.hash) == (total, rows[-1].hash)
    # Each writer's appends are all there, in the order it made them.
    seen: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        seen[r.actor].append(r.detail)
    assert {name: len(details) for name, details in seen.items()} == per_actor
    for name, details in seen.items():
        assert details == [f'{{"i":{i}}}' for i in range(per_actor[name])], name
    result = audit_log.verify(engine)
    assert result.ok, result
    assert result.entries == total
    assert result.head_seq == total
    assert result.head == rows[-1].hash


def start_processes(db_url: str, tmp_path: Path, count: int, appends: int
                    ) -> tuple[list[subprocess.Popen[str]], Path]:
    go = tmp_path / "go"
    env = {**os.environ, "ONESTORY_TEST_AUDIT_URL": db_url}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, f"proc{n}", str(appends), str(go)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for n in range(count)]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            for other in procs:
                other.kill()
                other.wait()
            _, err = proc.communicate()
            pytest.fail(f"a child did not start: {line!r} {err[-2000:]}")
    return procs, go


def finish_processes(procs: list[subprocess.Popen[str]]) -> None:
    failures = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=TIME_LIMIT * 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0 or out.strip() != "done":
            failures.append(f"exit {proc.returncode}: {out!r} {err[-2000:]}")
    assert not failures, failures


# --- tests -------------------------------------------------------------------------


def test_appends_from_many_threads_form_one_chain(engine: Engine,
                                                  sessions: sessionmaker[Session]) -> None:
    """Every fifth transaction appends and then rolls back (as an act that
    fails after its append does), releasing the head to the others."""
    threads, appends = 8, 50
    refused: list[str] = []
    event.listen(engine, "handle_error", lambda context: refused.append(context.statement))
    started = time.monotonic()

    def work(n: int) -> None:
        for i in range(appends):
            if i % 5 == 2:
                with sessions() as session:
                    audit_log.record(session, Event(action=Action.RECORD_READ,
                                                    actor=f"ghost{n}", detail={"i": i}),
                                     datetime.now(UTC))
                    session.rollback()
            append(sessions, f"thread{n}", i)

    in_threads(threads, work)
    assert time.monotonic() - started < TIME_LIMIT
    assert refused == []  # each append waited its turn; none had to run again
    assert_one_chain(engine, threads * appends,
                     {f"thread{n}": appends for n in range(threads)})


def test_appends_from_several_processes_form_one_chain(db_url: str, engine: Engine,
                                                       tmp_path: Path) -> None:
    count, appends = 3, 50
    procs, go = start_processes(db_url, tmp_path, count, appends)
    started = time.monotonic()
    go.touch()
    finish_processes(procs)
    assert time.monotonic() - started < TIME_LIMIT
    assert_one_chain(engine, count * appends, {f"proc{n}": appends for n in range(count)})


def test_appends_from_processes_and_threads_at_once_form_one_chain(
        db_url: str, engine: Engine, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    count, threads, appends = 3, 4, 50
    procs, go = start_processes(db_url, tmp_path, count, appends)
    started = time.monotonic()

    def work(n: int) -> None:
        if n == 0:
            go.touch()  # the processes start with the threads
        for i in range(appends):
            append(sessions, f"thread{n}", i)

    try:
        in_threads(threads, work)
    finally:
        go.touch()
        finish_processes(procs)
    assert time.monotonic() - started < TIME_LIMIT
    expected = {f"proc{n}": appends for n in range(count)}
    expected.update({f"thread{n}": appends for n in range(threads)})
    assert_one_chain(engine, (count + threads) * appends, expected)


def test_a_failed_transaction_leaves_no_entry_and_no_gap(engine: Engine,
                                                         sessions: sessionmaker[Session]
                                                         ) -> None:
    """An append rolled back with its act, while others commit around it."""
    append(sessions, "a", 0)
    with sessions() as session:
        audit_log.record(session, Event(action=Action.RECORD_READ, actor="ghost"),
                         datetime.now(UTC))
        session.rollback()
    append(sessions, "a", 1)
    assert_one_chain(engine, 2, {"a": 2})


def test_concurrent_api_requests_each_append_once(app: Flask, api: Api) -> None:
    """Reads through separate test clients from many threads at once: every
    request is one entry, and the chain stays whole."""
    family = api.new_family("nurse1", display_name="Aylin Demir")
    api.write(family, "health", "check-up fine")
    api.sign(family, {"physio": ["health"]})
    rt = app.extensions["onestory"]
    with rt.engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()

    threads, requests = 6, 15
    calls: list[tuple[str, str, dict[str, Any]]] = [
        (f"/api/v1/families/{family}", "physio1", {}),
        (f"/api/v1/families/{family}", "nurse1", {}),
        ("/api/v1/families", "nurse1", {"query_string": {"name": "Aylin Demir"}}),
        ("/api/v1/audit", "auditor1", {"query_string": {"limit": "5"}}),
    ]
    statuses: list[int] = []
    lock = threading.Lock()
    started = time.monotonic()

    def work(n: int) -> None:
        client = Api(app.test_client(), api.tokens)
        for i in range(requests):
            path, who, kwargs = calls[(n + i) % len(calls)]
            response = client.get(path, who, **kwargs)
            with lock:
                statuses.append(response.status_code)

    in_threads(threads, work)
    assert time.monotonic() - started < TIME_LIMIT
    assert statuses == [200] * (threads * requests)

    total = before + threads * requests
    with rt.engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, action FROM audit_log ORDER BY seq")).all()
    assert [r.seq for r in rows] == list(range(1, total + 1))
    late = [r.action for r in rows[before:]]
    assert sorted(set(late)) == ["audit.read", "family.search", "record.read"]
    result = audit_log.verify(rt.engine)
    assert result.ok, result
    assert result.entries == total


# --- each entry as written -----------------------------------------------------------

AWKWARD = [  # events whose canonical form is easy to get wrong
    Event(action=Action.LOGIN),  # every optional value none
    Event(action=Action.RECORD_READ, outcome=Outcome.DENIED, actor="", agency_id="",
          role="", family_id="", reason="", shown=[], withheld=[], request_id=""),
    Event(action=Action.RECORD_READ, actor="ayşe.çelik", agency_id="ağ-merkez",
          role="practitioner", family_id="fam_ü", reason="غير_مرئي",  # RTL
          shown=["health", "שדה"], withheld=["\u200fprotection\u200e"],
          request_id="req-𝔘𝔫𝔦-😀"),  # outside the BMP
    Event(action=Action.ENTRY_WRITE, actor="tab\tnew\nline",
          reason="unit\x1fsep\x1erecord",  # the separators themselves, unescaped
          detail={"text": "nul\x00 bell\x07 unit\x1f esc\x1b", "rtl": "مرحبا",
                  "emoji": "👩‍👧", "quote": '"\\'}),  # JSON escapes these
    Event(action=Action.AUDIT_EXPORT, actor="auditor1",
          detail={"ids": [f"fam_{i:020d}" for i in range(2_000)]}),  # 50 kB
]


def statements_of(engine: Engine, work: Callable[[], Any]) -> list[str]:
    """The statements `work` sends on `engine`, BEGIN and COMMIT left out."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.strip().upper() not in {"BEGIN", "COMMIT", "ROLLBACK"}:
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return sent


def test_each_entry_is_hashed_as_entry_hash_whoever_computes_it(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    """Awkward values through 105 appends (the seq crosses 9 and 99), several
    per transaction: every stored hash is `entry_hash` of the stored values
    and the entry before; `record` returns each entry as written. On
    PostgreSQL each append is one statement (the hash computed there); on
    SQLite the head locked, the entry written and the head moved."""
    returned = []
    per_append = 1 if engine.dialect.name == "postgresql" else 3
    for batch in range(21):
        with sessions() as session:
            for n in range(5):
                awkward = AWKWARD[(batch + n) % len(AWKWARD)]
                sent = statements_of(engine, lambda s=session, e=awkward: returned.append(
                    audit_log.record(s, e, datetime.now(UTC))))
                assert len(sent) == per_append, sent
            session.commit()
    columns = ", ".join((*HASHED, "prev_hash", "hash"))
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {columns} FROM audit_log ORDER BY seq")).all()  # noqa: S608
        head = conn.execute(text("SELECT seq, hash, prev_hash FROM audit_head")).one()
    assert [r.seq for r in rows] == list(range(1, 106))
    for written, row in zip(returned, rows, strict=True):
        values = [getattr(row, name) for name in HASHED]
        assert row.hash == entry_hash(row.prev_hash, values), row.seq
        assert ({c: getattr(written, c) for c in (*HASHED, "prev_hash", "hash")}
                == row._asdict())
    assert {r.reason for r in rows} >= {"غير_مرئي", "unit\x1fsep\x1erecord", "", None}
    assert any(r.detail and len(r.detail) > 50_000 for r in rows)
    assert tuple(head) == (105, rows[-1].hash, rows[-1].prev_hash)
    assert audit_log.verify(engine).ok


def test_an_append_that_waited_follows_the_one_committed_meanwhile(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    """One transaction appends and holds the head; another's append is sent
    and waits for it. The first commits (then, on a second round, rolls back):
    the waiting append follows the head as it is after that, not as it was
    when its statement began."""
    append(sessions, "first", 0)
    for ending in ("commit", "rollback"):
        sent = threading.Event()
        holder = sessions()
        held = audit_log.record(holder, Event(action=Action.RECORD_READ, actor=ending),
                                datetime.now(UTC))
        with engine.connect() as conn:
            before = conn.execute(text("SELECT seq, hash FROM audit_head")).one()

        def waiter(sent: threading.Event = sent) -> Any:
            with sessions() as session:
                event.listen(session.connection(), "before_cursor_execute",
                             lambda *_args: sent.set())
                entry = audit_log.record(session, Event(action=Action.RECORD_READ,
                                                        actor="waiter"), datetime.now(UTC))
                session.commit()
                return entry

        with ThreadPoolExecutor(max_workers=1) as pool:
            waiting = pool.submit(waiter)
            assert sent.wait(TIME_LIMIT)
            if engine.dialect.name == "postgresql":  # it waits for the head's row lock
                deadline = time.monotonic() + TIME_LIMIT
                with engine.connect() as conn:
                    while not conn.execute(text(
                            "SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one():
                        assert time.monotonic() < deadline
                        time.sleep(0.01)
            else:  # it waits for the write lock (busy timeout)
                time.sleep(0.2)
            assert not waiting.done()
            if ending == "commit":
                holder.commit()
                expected_prev, expected_seq = held.hash, held.seq + 1
            else:
                holder.rollback()
                expected_prev, expected_seq = before.hash, before.seq + 1
            holder.close()
            entry = waiting.result(TIME_LIMIT)
        assert (entry.seq, entry.prev_hash) == (expected_seq, expected_prev)
    result = audit_log.verify(engine)
    assert result.ok and result.entries == 4, result


ODD_SETTINGS = {  # every session setting that could change how a value is written or read
    "standard_conforming_strings": "off", "bytea_output": "escape",
    "TimeZone": "America/St_Johns", "DateStyle": "SQL, DMY", "IntervalStyle": "sql_standard",
    "extra_float_digits": "-15", "lc_numeric": "C", "client_encoding": "UTF8",
}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite hashes in Python
@pytest.mark.parametrize("encoding", ["UTF8", "SQL_ASCII"])
def test_the_servers_settings_and_encoding_change_no_hash(
        db_url: str, encoding: str, request: pytest.FixtureRequest) -> None:
    """On PostgreSQL the database hashes the entry: in a database of another
    encoding, with sessions whose string escaping, bytea output, time zone,
    date and number styles are not the defaults, every awkward entry is still
    hashed as `entry_hash` of its stored values, and the log verifies."""
    import psycopg

    from coordination import migrate
    from tests.pg import create_database

    admin = request.getfixturevalue("pg_admin_url")
    url = create_database(admin)
    name = url.rsplit("/", 1)[1]
    plain = admin.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:  # made again, in `encoding`
        conn.execute(f'DROP DATABASE "{name}"')
        conn.execute(f"CREATE DATABASE \"{name}\" ENCODING '{encoding}' LC_COLLATE 'C' "
                     "LC_CTYPE 'C' TEMPLATE template0")
    odd = make_engine(url + "?client_encoding=utf8")  # the driver's strings in UTF-8

    @event.listens_for(odd, "connect")
    def _odd(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            for setting, value in ODD_SETTINGS.items():
                cursor.execute(f"SET {setting} = '{value}'")
        dbapi_connection.commit()

    try:
        migrate.upgrade(odd)
        sessions = make_session_factory(odd)
        with sessions() as session:
            assert session.scalar(text("SHOW bytea_output")) == "escape"
            assert session.scalar(text("SHOW server_encoding")) == encoding
            for awkward in AWKWARD:
                audit_log.record(session, awkward, datetime.now(UTC))
            session.commit()
        columns = ", ".join((*HASHED, "prev_hash", "hash"))
        with odd.connect() as conn:
            rows = conn.execute(text(f"SELECT {columns} FROM audit_log ORDER BY seq")).all()  # noqa: S608
        assert len(rows) == len(AWKWARD)
        for row in rows:
            assert row.hash == entry_hash(row.prev_hash, [getattr(row, n) for n in HASHED])
        result = audit_log.verify(odd)
        assert result.ok and result.entries == len(AWKWARD), result
    finally:
        odd.dispose()
