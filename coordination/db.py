"""Persistence base: engine, sessions, the declarative base and column types.

`consent` and `audit` may import this module (and only this one) from
`coordination`.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BUSY_TIMEOUT = 30.0  # seconds a transaction that has read nothing waits for SQLite's write lock
GIVE_UP_AFTER = 30.0  # seconds of running a use case again before its conflict stands
_SQLITE_BUSY = 5  # primary result code; SQLITE_BUSY_SNAPSHOT (517) and others extend it
# PostgreSQL: serialization_failure and deadlock_detected ask for the same answer.
_PG_RETRY = frozenset({"40001", "40P01"})
# A pooled server connection idle longer than this is checked (one round trip)
# before a request uses it; one in steady use is not (see `make_engine`).
PING_AFTER_IDLE = 5.0


# An execution option: the connection's transactions only read (on SQLite in
# a server they take no turn; `serve_in_turns`).
READS_ONLY = "onestory_reads_only"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always read back timezone-aware.

    SQLite has no time zones; storing naive UTC everywhere keeps both
    backends identical and comparisons exact.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def private_folder(path: Path) -> None:
    """Make `path` (and missing parents) as a folder only its owner may enter."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _private_sqlite_file(url: str) -> None:
    """Create the database file of a SQLite URL, if missing, readable by its
    owner only (and its folder with it): SQLite gives the -wal, -shm and
    journal files the database file's mode, so they stay private too."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    private_folder(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


# --- SQLite: transactions of one server process take turns -------------------------


class TurnTimeout(Exception):
    """A transaction waited `BUSY_TIMEOUT` seconds for its turn: the database
    stayed busy (a write conflict, `is_write_conflict`)."""


class Turns:
    """A fair (first come, first served) lock for the transactions of one
    process on one SQLite database: a waiting thread gets the turn in the
    order it asked, handed over directly by the one before it. Owned by a
    driver connection, from its BEGIN to its COMMIT or ROLLBACK."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._queue: deque[object] = deque()
        self._owner: object | None = None  # the driver connection holding the turn
        self._thread: int | None = None  # the thread that took it

    def waiting(self) -> int:
        """Transactions waiting for their turn."""
        with self._changed:
            return len(self._queue)

    def held_by_this_thread(self) -> bool:
        return self._owner is not None and self._thread == threading.get_ident()

    def take(self, owner: object, timeout: float) -> None:
        """Wait for the turn (in order), then hold it for `owner`;
        `TurnTimeout` after `timeout` seconds, having taken nothing."""
        with self._changed:
            if self._owner is None and not self._queue:
                self._owner, self._thread = owner, threading.get_ident()
                return
            self._queue.append(owner)
            deadline = time.monotonic() + timeout
            while self._owner is not owner:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._queue.remove(owner)
                    raise TurnTimeout(f"no turn to write within {timeout:.0f} s")
                self._changed.wait(left)
            self._thread = threading.get_ident()

    def give_back(self, owner: object) -> None:
        """End `owner`'s turn (nothing when it holds none) and hand it to
        the first in the queue."""
        with self._changed:
            if self._owner is not owner:
                return
            self._owner = self._queue.popleft() if self._queue else None
            self._thread = None
            self._changed.notify_all()


_serving_in_turns = False
_turns: weakref.WeakKeyDictionary[Engine, Turns] = weakref.WeakKeyDictionary()


def turns_of(engine: Engine) -> Turns | None:
    """The turns `engine`'s transactions take (None: they do not)."""
    return _turns.get(engine)


def serve_in_turns() -> None:
    """From now on, SQLite engines made in this process (`make_engine`)
    run their transactions in turns: each waits for its turn (`Turns`, first
    come first served) at its BEGIN, begins IMMEDIATE (taking SQLite's write
    lock, or waiting up to `BUSY_TIMEOUT` for another process to leave it)
    and holds both until its COMMIT or ROLLBACK. Its reads can then never go
    stale before its writes, so no use case of this process runs twice
    because of another of its threads; other processes (the command line)
    still meet it through the busy timeout and `retry_on_conflict`.
    `onestory serve` calls it before its worker starts: requests take turns
    instead of racing for the write lock and backing off at random."""
    global _serving_in_turns
    _serving_in_turns = True


def _install_turns(engine: Engine) -> Turns:
    """Hand the turn back when the driver has committed or rolled back
    (also when the pool rolls a returned connection back, or drops it)."""
    turns = _turns[engine] = Turns()
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    # SQLAlchemy passes the pool's proxy of the driver connection here.
    def do_commit(connection: Any) -> None:
        try:
            commit(connection)
        finally:
            turns.give_back(getattr(connection, "dbapi_connection", connection))

    def do_rollback(connection: Any) -> None:
        try:
            rollback(connection)
        finally:
            turns.give_back(getattr(connection, "dbapi_connection", connection))

    setattr(dialect, "do_commit", do_commit)  # noqa: B010 - this engine's dialect only
    setattr(dialect, "do_rollback", do_rollback)  # noqa: B010

    @event.listens_for(engine, "close")
    def _closed(dbapi_connection: Any, _record: Any) -> None:
        turns.give_back(dbapi_connection)

    @event.listens_for(engine, "invalidate")
    def _invalidated(dbapi_connection: Any, _record: Any, _exc: Any) -> None:
        turns.give_back(dbapi_connection)

    return turns


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Build an engine; SQLite gets foreign keys, WAL, synchronous=NORMAL and a
    busy timeout, and deferred transactions (see `retry_on_conflict`), or
    in a server, transactions in turns (`serve_in_turns`); its file is
    created with mode 0600 in a 0700 folder."""
    if url.startswith("sqlite"):
        _private_sqlite_file(url)
        engine = create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT}, hide_parameters=True, **kwargs
        )
        turns = _install_turns(engine) if _serving_in_turns else None

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # SQLAlchemy, not the driver, begins transactions (see below).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                return  # asked for no transaction (a migration's VACUUM)
            driver = conn.connection.dbapi_connection
            if driver.isolation_level is not None:
                # Set back after an AUTOCOMMIT block: the driver must never
                # begin transactions on its own (see `_sqlite_pragmas`).
                driver.isolation_level = None
            reads_only = conn.get_execution_options().get(READS_ONLY, False)
            if turns is not None and not reads_only and not turns.held_by_this_thread():
                # In a server (`serve_in_turns`): this thread's turn, then the
                # write lock, both until the transaction ends. (A second
                # transaction of the thread that holds the turn, a log
                # verification beside the request's own, begins deferred.)
                turns.take(driver, BUSY_TIMEOUT)
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                except BaseException:
                    turns.give_back(driver)
                    raise
                return
            # Deferred (also a transaction that only reads, `READS_ONLY`, a
            # log verification: it waits for no turn and holds up none):
            # reads take no lock, so requests read side by side; a
            # transaction takes the database's write lock at its first write
            # (for a use case, its audit append). One whose reads have gone
            # stale by then is refused and run again whole.
            conn.exec_driver_sql("BEGIN")

        return engine
    # Values never appear in error messages or logs.
    engine = create_engine(url, hide_parameters=True, **kwargs)
    _ping_when_idle(engine)
    return engine


# Bumped whenever a server connection is found lost, on any engine of the process.
_losses = [0]


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it has lain idle in
    the pool for `PING_AFTER_IDLE` seconds, or when a connection of any
    engine of this process (the data database's, the key store's) has been
    lost since it was last used, or when the server has sent it something
    while it lay idle (a server that shuts down or restarts does, then
    closes it; `_server_spoke`): one that fails is replaced by a new one
    (the pool tries again), so a request after a quiet spell or after an
    outage does not meet a dead connection. A connection in steady use
    costs no check (SQLAlchemy's `pool_pre_ping` would add a round trip to
    every request); one the server drops while in use fails its request,
    and the pool then replaces every connection it holds to that server."""

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info["losses"] = _losses[0]

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "handle_error")
    def _lost(context: Any) -> None:
        if context.is_disconnect:
            _losses[0] += 1

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        quiet = since is not None and time.monotonic() - since >= PING_AFTER_IDLE
        if (not quiet and record.info.get("losses") == _losses[0]
                and not _server_spoke(dbapi_connection)):
            return  # in steady use, and nothing lost since
        record.info["losses"] = _losses[0]
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
            dbapi_connection.rollback()  # the driver may have begun a transaction
        except Exception as exc:  # noqa: BLE001 - any failure means a new connection
            raise DisconnectionError("a pooled connection did not answer") from exc
        if not alive:
            raise DisconnectionError("a pooled connection did not answer")


def _server_spoke(dbapi_connection: Any) -> bool:
    """Whether the server sent anything to this idle connection since its
    last answer, found without a round trip: a server that shuts down or
    restarts says so and closes it (then the connection is checked). Any
    doubt counts as spoken."""
    try:
        poll = select.poll()
        poll.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
        return bool(poll.poll(0))
    except Exception:  # noqa: BLE001 - closed, or no socket to ask: check it
        return True


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


# --- write conflicts ---------------------------------------------------------------

T = TypeVar("T")


def is_write_conflict(exc: BaseException) -> bool:
    """Whether the database refused `exc`'s statement only because other
    transactions were writing: SQLite's SQLITE_BUSY in any of its forms (the
    write lock held elsewhere, or this transaction's read snapshot stale at
    its first write), or a PostgreSQL serialization failure or deadlock.
    Running the whole use case again in a new transaction is then correct."""
    driver = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(driver, TurnTimeout):
        return True
    if isinstance(driver, sqlite3.Error):
        return (getattr(driver, "sqlite_errorcode", 0) & 0xFF) == _SQLITE_BUSY
    return getattr(driver, "sqlstate", None) in _PG_RETRY


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be used at all just now (not
    reachable, the connection lost, no connection free in the pool, a file
    that cannot be opened) rather than that a statement was wrong. Check
    `is_write_conflict` first: SQLite's busy errors are operational errors too."""
    if isinstance(exc, PoolTimeout):
        return True
    return isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


def retry_on_conflict(
    session: Session,
    work: Callable[[], T],
    *,
    give_up_after: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run `work` (one whole use case on `session`) and return what it returns.

    When it fails on a write conflict (`is_write_conflict`), roll `session`
    back, wait a little (exponential, jittered, so that writers refused
    together do not meet again) and run it again from the start, with fresh
    reads. After `give_up_after` seconds (default `GIVE_UP_AFTER`) the
    conflict is re-raised, with the session rolled back. Any other exception
    propagates at once.
    """
    limit = GIVE_UP_AFTER if give_up_after is None else give_up_after
    started = clock()
    wait = 0.005
    while True:
        try:
            return work()
        except Exception as exc:
            if not is_write_conflict(exc):
                raise
            session.rollback()
            pause = wait * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
            if clock() - started + pause > limit:
                raise
            sleep(pause)
            wait = min(wait * 2, 0.5)
