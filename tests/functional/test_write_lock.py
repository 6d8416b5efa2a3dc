"""When a request takes the database's write lock, and what it does when
other writers get in its way.

On SQLite a transaction reads without any lock and takes the database's
write lock at its first write, the audit append; if something was committed
since its reads began, that write is refused and the whole view runs again.
On PostgreSQL the append locks only the chain's head row. Either way no
request holds a database-wide lock from its start, a conflict is never a
500, and every request leaves exactly one entry in a chain that verifies.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, event, select, text

import audit.services as audit_log
from audit.model import Action
from audit.services import Event
from consent.tables import ConsentReceipt
from coordination import accounts
from coordination.casework import consent_forms
from coordination.db import make_engine, make_session_factory
from coordination.model import Entry, Involvement
from coordination.runtime import Runtime
from tests.cli import assert_one_line_failure, run
from tests.conftest import Api

SQLITE_BUSY_SNAPSHOT = 517  # SQLITE_BUSY | (2 << 8)


def runtime_of(app: Flask) -> Runtime:
    rt: Runtime = app.extensions["onestory"]
    return rt


def is_head_lock(statement: str) -> bool:
    """The append's first statement: the one that locks the chain's head."""
    return "audit_head" in statement and ("RETURNING" in statement or "FOR UPDATE" in statement)


def kind_of(statement: str) -> str:
    return statement.lstrip().split(None, 1)[0].upper()


@dataclass
class Seen:
    """What one thread sent to the database: statements, with whether the
    other connection held the write lock at the time, and refusals."""

    statements: list[tuple[str, bool]] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)


@contextmanager
def watching(engine: Engine, thread: Callable[[], int | None],
             held: threading.Event | None = None,
             before: Callable[[str], None] | None = None) -> Iterator[Seen]:
    seen = Seen()

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.get_ident() != thread():
            return
        seen.statements.append((statement, held is not None and held.is_set()))
        if before is not None:
            before(statement)

    def on_error(context: Any) -> None:
        if threading.get_ident() != thread():
            return
        code = getattr(context.original_exception, "sqlite_errorcode", None)
        seen.refused.append((context.statement or "", code if code is not None else -1))

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "handle_error", on_error)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "handle_error", on_error)


def entries_since(engine: Engine, seq: int) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT seq, action, actor, family_id, reason FROM audit_log WHERE seq > :seq "
            "ORDER BY seq"),
            {"seq": seq}))


def last_seq(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(seq), 0) FROM audit_log")).scalar_one())


def assert_verifies(engine: Engine) -> None:
    result = audit_log.verify(engine)
    assert result.ok, result


def readable_family(api: Api) -> str:
    family = api.new_family("nurse1", display_name="Aylin Demir")
    api.write(family, "health", "check-up fine")
    api.sign(family, {"physio": ["involvement", "health"]})
    return family


# SQLite's database-wide write lock: these run on SQLite only (not skipped elsewhere).
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def sqlite_path(app: Flask) -> str:
    url = runtime_of(app).settings.database_url
    assert url.startswith("sqlite:///"), url
    return url.removeprefix("sqlite:///")


@contextmanager
def write_lock_held(path: str) -> Iterator[threading.Event]:
    """Another connection holds SQLite's write lock (BEGIN IMMEDIATE) until
    the block ends or the event it yields is cleared and the lock let go."""
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    holder.execute("BEGIN IMMEDIATE")
    held = threading.Event()
    held.set()
    try:
        yield held
    finally:
        held.clear()
        holder.execute("ROLLBACK")
        holder.close()


class InThread:
    """One request made from a thread of its own."""

    def __init__(self, api: Api, request: Callable[[Api], Any]) -> None:
        self.ident: int | None = None
        self.response: Any = None
        self.error: BaseException | None = None
        client = Api(api.client.application.test_client(), api.tokens)

        def run() -> None:
            self.ident = threading.get_ident()
            try:
                self.response = request(client)
            except BaseException as exc:  # noqa: BLE001 - re-raised in join()
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)

    def start(self) -> InThread:
        self.thread.start()
        return self

    def join(self, timeout: float) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the request did not finish"
        if self.error is not None:
            raise self.error
        return self.response


# --- SQLite: the write lock is taken at the append, not before --------------------------


@SQLITE_ONLY
def test_a_read_takes_the_write_lock_only_at_its_append(app: Flask, api: Api) -> None:
    """While another connection holds SQLite's write lock, a shared-record
    read runs all its queries and waits only where it appends to the log; let
    go, it completes with exactly one entry. (With BEGIN IMMEDIATE it waited
    at its very first statement, before reading anything.)"""
    path = sqlite_path(app)
    family = readable_family(api)
    engine = runtime_of(app).engine
    before = last_seq(engine)
    at_append = threading.Event()
    request = InThread(api, lambda client: client.get(f"/api/v1/families/{family}", "physio1"))

    def note(statement: str) -> None:
        if is_head_lock(statement):
            at_append.set()

    with write_lock_held(path) as held, \
            watching(engine, lambda: request.ident, held, note) as seen:
        request.start()
        assert at_append.wait(10), f"never reached its append: {seen.statements}"
        time.sleep(0.3)
        assert request.thread.is_alive()  # still waiting for the lock, at its append
        assert entries_since(engine, before) == []
        held.clear()
    response = request.join(30)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["fields"]["health"][0]["value"] == "check-up fine"

    while_held = [s for s, h in seen.statements if h]
    first_attempt = while_held[:next(i for i, s in enumerate(while_held) if is_head_lock(s))]
    # The whole read ran under the other's lock: the token, the family (with its
    # form, involvements and grants), the catalogue with its entries and members.
    assert sum(kind_of(s) == "SELECT" for s in first_attempt) >= 3, first_attempt
    # Nothing but reads, transaction ends and the attempt to lock the head.
    assert {kind_of(s) for s in while_held if not is_head_lock(s)} <= {
        "SELECT", "BEGIN", "ROLLBACK"}, while_held
    assert any(is_head_lock(s) for s in while_held)
    # Each refusal was at the append, and was SQLite's "busy".
    assert seen.refused, "the append should have been refused while the lock was held"
    assert all(is_head_lock(s) and code & 0xFF == sqlite3.SQLITE_BUSY
               for s, code in seen.refused), seen.refused

    new = entries_since(engine, before)
    assert [(r.action, r.actor, r.family_id) for r in new] == [
        ("record.read", "physio1", family)]
    assert_verifies(engine)


def test_a_stale_read_runs_again_and_is_recorded_once(app: Flask, api: Api,
                                                      db_url: str) -> None:
    """Another connection commits between a read's queries and its append.
    On SQLite the append is refused (its snapshot is stale) and the view runs
    again; on PostgreSQL the head row's lock simply waits. One entry either way."""
    family = readable_family(api)
    engine = runtime_of(app).engine
    before = last_seq(engine)
    other = make_engine(db_url)  # a connection of another process, as it were
    fired = threading.Event()
    request = InThread(api, lambda client: client.get(f"/api/v1/families/{family}", "physio1"))

    def commit_elsewhere(statement: str) -> None:
        if not is_head_lock(statement) or fired.is_set():
            return
        fired.set()
        with make_session_factory(other)() as session:
            audit_log.record(session, Event(action=Action.AUDIT_READ, actor="elsewhere"),
                             datetime.now(UTC))
            session.commit()

    try:
        with watching(engine, lambda: request.ident, before=commit_elsewhere) as seen:
            response = request.start().join(30)
    finally:
        other.dispose()
    assert response.status_code == 200, response.get_json()
    attempts = [s for s, _ in seen.statements if is_head_lock(s)]
    if db_url.startswith("sqlite"):
        assert [code for _, code in seen.refused] == [SQLITE_BUSY_SNAPSHOT]
        assert len(attempts) == 2
    else:
        assert seen.refused == []
        assert len(attempts) == 1
    new = entries_since(engine, before)
    assert [(r.action, r.actor) for r in new] == [("audit.read", "elsewhere"),
                                                 ("record.read", "physio1")]
    assert_verifies(engine)


@SQLITE_ONLY
def test_a_referral_runs_again_on_the_grid_a_revocation_left(app: Flask, api: Api) -> None:
    """SQLite takes no lock for consent-dependent writes: a revocation that
    commits between a referral's reads and its writes makes the referral run
    again, and it then finds physiotherapy no longer agreed (409), writes no
    involvement and records no referral, only its refusal."""
    sqlite_path(app)
    rt = runtime_of(app)
    family = readable_family(api)
    before = last_seq(rt.engine)
    fired = threading.Event()
    request = InThread(api, lambda client: client.post(
        f"/api/v1/families/{family}/involvements", "coord1", json={"agency": "physio"}))

    def revoke(statement: str) -> None:
        if not is_head_lock(statement) or fired.is_set():
            return
        fired.set()
        with rt.sessions() as session:
            coordinator = accounts.authenticate(session, api.tokens["coord1"], rt.now())
            consent_forms.revoke_consent(session, rt.vault, coordinator, family, "physio", None,
                                         rt.now())

    with watching(rt.engine, lambda: request.ident, before=revoke) as seen:
        response = request.start().join(30)
    assert response.status_code == 409, response.get_json()
    assert [code for _, code in seen.refused] == [SQLITE_BUSY_SNAPSHOT]
    with rt.sessions() as session:
        assert session.scalars(select(Involvement).where(
            Involvement.family_id == family, Involvement.agency_id == "physio")).all() == []
    assert [(r.action, r.reason) for r in entries_since(rt.engine, before)] == [
        ("consent.revoke", None), ("request.denied", "not_agreed")]
    assert_verifies(rt.engine)


@SQLITE_ONLY
def test_acts_that_write_first_wait_for_the_lock(app: Flask, api: Api) -> None:
    """A family's sign-in (its first statement claims the attempt) and the
    record of a refused request (written after the act is rolled back) read
    nothing before they write: they wait for the lock instead of being
    refused, and go through once it is free."""
    path = sqlite_path(app)
    rt = runtime_of(app)
    family = readable_family(api)
    receipt = api.sign(family, {"physio": ["involvement", "health"]},
                       reissue_pin=True)["receipt"]
    before = last_seq(rt.engine)
    sign_in = InThread(api, lambda client: client.post(
        "/api/v1/family/session", json={"receipt_code": receipt["code"], "pin": receipt["pin"]}))
    refused = InThread(api, lambda client: client.get(f"/api/v1/families/{family}", "ecec1"))
    with write_lock_held(path), \
            watching(rt.engine, lambda: sign_in.ident) as signing, \
            watching(rt.engine, lambda: refused.ident) as refusing:
        sign_in.start()
        refused.start()
        time.sleep(0.5)
        assert sign_in.thread.is_alive() and refused.thread.is_alive()
    assert sign_in.join(30).status_code == 201
    assert refused.join(30).status_code == 404
    assert signing.refused == [] and refusing.refused == []
    assert sorted((r.action, r.actor) for r in entries_since(rt.engine, before)) == [
        ("login", "family"), ("request.denied", "ecec1")]
    assert_verifies(rt.engine)


# --- many requests at once ----------------------------------------------------------------


def test_parallel_readers_and_writers_each_append_once(app: Flask, api: Api) -> None:
    """Reads and writes from many threads at once, on both databases: every
    request succeeds, every request is one entry, the chain stays whole."""
    rt = runtime_of(app)
    family = readable_family(api)
    api.post(f"/api/v1/families/{family}/involvements", "coord1", json={"agency": "physio"})
    before = last_seq(rt.engine)
    with rt.sessions() as session:
        entries_before = len(session.scalars(select(Entry.id)).all())

    calls: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("GET", f"/api/v1/families/{family}", "physio1", {}, 200),
        ("POST", f"/api/v1/families/{family}/entries", "nurse1",
         {"json": {"field": "health", "value": "weighed"}}, 201),
        ("GET", "/api/v1/families", "nurse1", {"query_string": {"name": "Aylin Demir"}}, 200),
        ("POST", f"/api/v1/families/{family}/entries", "physio1",
         {"json": {"field": "health", "value": "exercises"}}, 201),
        ("GET", f"/api/v1/families/{family}/consent", "coord1", {}, 200),
        ("GET", f"/api/v1/families/{family}", "nurse1", {}, 200),
    ]
    threads, per_thread = 6, 12
    outcomes: list[tuple[str, int, int]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        client = Api(app.test_client(), api.tokens)
        barrier.wait(timeout=30)
        for i in range(per_thread):
            method, path, who, kwargs, expected = calls[(n + i) % len(calls)]
            response = client.call(method, path, who, **kwargs)
            with lock:
                outcomes.append((f"{method} {path}", expected, response.status_code))

    started = time.monotonic()
    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in pool)
    assert time.monotonic() - started < 30
    assert len(outcomes) == threads * per_thread
    assert [o for o in outcomes if o[1] != o[2]] == []

    new = entries_since(rt.engine, before)
    assert [r.seq for r in new] == list(range(before + 1, before + 1 + threads * per_thread))
    writes = sum(1 for o in outcomes if o[0].startswith("POST"))
    assert sum(1 for r in new if r.action == "entry.write") == writes
    with rt.sessions() as session:
        assert len(session.scalars(select(Entry.id)).all()) == entries_before + writes
    assert_verifies(rt.engine)


# --- giving up ----------------------------------------------------------------------------


@pytest.fixture
def impatient(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries give up after half a second, and a transaction that has read
    nothing waits a fifth of one for the lock (the product: 30 s each)."""
    monkeypatch.setattr("coordination.db.GIVE_UP_AFTER", 0.5)
    engine = runtime_of(app).engine
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _short_wait(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout = 200")

        engine.dispose()


@SQLITE_ONLY
def test_a_request_that_cannot_get_the_lock_is_told_to_try_again(
        app: Flask, api: Api, impatient: None, caplog: pytest.LogCaptureFixture) -> None:
    """503 "busy" with Retry-After, never a 500, and nothing of the request kept:
    a read, a write, and a family's sign-in (whose first statement is a write)."""
    path = sqlite_path(app)
    rt = runtime_of(app)
    family = readable_family(api)
    receipt = api.sign(family, {"physio": ["involvement", "health"]},
                       reissue_pin=True)["receipt"]
    before = last_seq(rt.engine)
    caplog.set_level(logging.WARNING, logger="onestory")
    requests: list[Callable[[], Any]] = [
        lambda: api.get(f"/api/v1/families/{family}", "physio1"),
        lambda: api.post(f"/api/v1/families/{family}/entries", "nurse1",
                         json={"field": "health", "value": "weighed"}),
        lambda: api.post("/api/v1/family/session",
                         json={"receipt_code": receipt["code"], "pin": receipt["pin"]}),
    ]
    with write_lock_held(path):
        responses = [request() for request in requests]
    for response in responses:
        assert response.status_code == 503, response.get_json()
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["type"] == "urn:onestory:problem:busy"
        assert response.headers["Retry-After"] == "1"
    assert entries_since(rt.engine, before) == []
    with rt.sessions() as session:
        assert len(session.scalars(select(Entry.id)).all()) == 1  # readable_family's
        stored = session.scalars(select(ConsentReceipt).where(
            ConsentReceipt.family_id == family)).one()
        assert stored.failed_attempts == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("busy" in r.getMessage() for r in caplog.records)
    # Once the lock is free, the same requests go through.
    assert [request().status_code for request in requests] == [200, 201, 201]
    assert len(entries_since(rt.engine, before)) == 3
    assert_verifies(rt.engine)


@SQLITE_ONLY
def test_the_command_line_says_busy_in_one_line(app: Flask, api: Api, impatient: None,
                                                cli_env: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = sqlite_path(app)
    rt = runtime_of(app)
    before = last_seq(rt.engine)
    with write_lock_held(path):
        result = run(capsys, "token", "create", "nurse1")
    assert "busy" in assert_one_line_failure(result)
    assert entries_since(rt.engine, before) == []
    assert run(capsys, "token", "create", "nurse1").code == 0
    assert [r.action for r in entries_since(rt.engine, before)] == ["token.create"]


def test_an_entry_write_follows_the_end_of_its_agencys_part(app: Flask, api: Api) -> None:
    """An entry write reads its field with the family's row locked (on
    PostgreSQL) and decides on what it reads after: an act on the family that
    holds that lock, ending the writing agency's part, and commits while the
    write waits, refuses the write; on SQLite the write, whose reads are then
    stale, runs again and is refused. No entry lands; no entry.write is recorded."""
    rt = runtime_of(app)
    family = readable_family(api)
    involved = api.post(f"/api/v1/families/{family}/involvements", "coord1",
                        json={"agency": "physio"})
    assert involved.status_code < 300, involved.get_json()
    api.write(family, "health", "physio's first note", who="physio1")
    seq_before = last_seq(rt.engine)
    postgres = rt.engine.dialect.name == "postgresql"
    holding, fired = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def end_part(wait_for_writer: bool) -> None:
        try:
            with rt.engine.connect() as conn:
                conn.execute(text("SELECT id FROM families WHERE id = :f FOR UPDATE")
                             if postgres else text("SELECT 1"), {"f": family})
                conn.execute(text("UPDATE involvements SET status = 'closed' "
                                  "WHERE family_id = :f AND agency_id = 'physio'"), {"f": family})
                holding.set()
                if wait_for_writer:  # until the write waits for the family's row
                    deadline = time.monotonic() + 30
                    with rt.engine.connect() as probe:
                        while not probe.execute(text(
                                "SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one():
                            assert time.monotonic() < deadline, "the write never waited"
                            time.sleep(0.01)
                conn.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            holding.set()

    def before(statement: str) -> None:
        # The write's first statement of its own: the field, read with the lock.
        if fired.is_set() or "fields.kinds" not in statement:
            return
        fired.set()
        if postgres:
            threading.Thread(target=end_part, args=(True,), daemon=True).start()
            assert holding.wait(30)
        else:
            end_part(False)

    request = InThread(api, lambda client: client.post(
        f"/api/v1/families/{family}/entries", "physio1",
        json={"field": "health", "value": "written on a part that has ended"}))
    with watching(rt.engine, lambda: request.ident, before=before):
        response = request.start().join(30)
    assert errors == []
    assert fired.is_set()
    assert response.status_code in (403, 404), response.get_json()
    with rt.sessions() as session:
        written = session.scalars(select(Entry.id).where(
            Entry.family_id == family, Entry.agency_id == "physio")).all()
    assert len(written) == 1  # the first note only
    assert "entry.write" not in [r.action for r in entries_since(rt.engine, seq_before)]
    assert_verifies(rt.engine)
