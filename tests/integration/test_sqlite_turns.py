"""SQLite in a server: transactions of one process take turns, in order
(`coordination.db.serve_in_turns`), and another process still writes beside it.

Real SQLite files, real threads; the engines are made as `make_engine` makes
them after `serve_in_turns` (the flag is set for each test and set back).
Nothing here is timed: the order of the turns is observed, and every wait
is bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from coordination import db
from coordination.db import (
    Turns,
    TurnTimeout,
    is_write_conflict,
    make_engine,
    retry_on_conflict,
    turns_of,
)

WAIT = 20.0  # seconds any step may take before the test fails (never reached when it works)


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE acts (n INTEGER PRIMARY KEY, who TEXT NOT NULL)"))
    engine.dispose()
    return url


@pytest.fixture
def served(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An engine as the server makes it (`serve_in_turns`)."""
    monkeypatch.setattr(db, "_serving_in_turns", False)
    db.serve_in_turns()
    engine = make_engine(url, pool_size=10)
    monkeypatch.setattr(db, "_serving_in_turns", False)
    try:
        yield engine
    finally:
        engine.dispose()


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT} s: {what}")
        time.sleep(0.01)


def acts(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [r.who for r in conn.execute(text("SELECT who FROM acts ORDER BY n"))]
    finally:
        engine.dispose()


def test_only_a_server_engine_takes_turns(url: str, served: Engine) -> None:
    plain = make_engine(url)
    try:
        assert turns_of(plain) is None
    finally:
        plain.dispose()
    assert turns_of(served) is not None


def test_transactions_take_turns_in_the_order_they_asked(url: str, served: Engine) -> None:
    turns = turns_of(served)
    assert turns is not None
    first = served.connect()
    first.execute(text("SELECT count(*) FROM acts"))  # BEGIN: the turn is first's
    done: list[str] = []
    threads = []
    for name in ("b", "c", "d", "e"):
        def act(name: str = name) -> None:
            with served.begin() as conn:
                # What it read is what it writes after: nothing came between.
                n = conn.execute(text("SELECT count(*) FROM acts")).scalar_one()
                conn.execute(text("INSERT INTO acts (n, who) VALUES (:n, :who)"),
                             {"n": n + 1, "who": name})
            done.append(name)
        thread = threading.Thread(target=act)
        waiting = turns.waiting()
        thread.start()
        threads.append(thread)
        until(lambda waiting=waiting: turns.waiting() == waiting + 1, f"{name} queued")
    assert done == []  # all wait for first
    first.execute(text("INSERT INTO acts (n, who) VALUES (0, 'a')"))
    first.commit()
    first.close()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()
    assert done == ["b", "c", "d", "e"]
    assert acts(url) == ["a", "b", "c", "d", "e"]
    assert turns.waiting() == 0


def test_a_failed_use_case_hands_the_turn_on(url: str, served: Engine) -> None:
    turns = turns_of(served)
    assert turns is not None
    with served.connect() as conn:
        conn.execute(text("INSERT INTO acts (n, who) VALUES (1, 'kept')"))
        conn.commit()
    landed = threading.Event()

    def next_writer() -> None:
        with served.begin() as conn:
            conn.execute(text("INSERT INTO acts (n, who) VALUES (3, 'next')"))
        landed.set()

    failing = served.connect()
    with pytest.raises(Exception, match="UNIQUE"), failing.begin():
        failing.execute(text("INSERT INTO acts (n, who) VALUES (2, 'rolled back')"))
        thread = threading.Thread(target=next_writer)
        thread.start()
        until(lambda: turns.waiting() == 1, "the next writer queued")
        failing.execute(text("INSERT INTO acts (n, who) VALUES (1, 'duplicate')"))
    thread.join(WAIT)
    assert landed.is_set()
    # A transaction left open and closed (the pool rolls it back) hands it on too.
    failing.execute(text("INSERT INTO acts (n, who) VALUES (4, 'never committed')"))
    failing.close()
    with served.begin() as conn:
        conn.execute(text("INSERT INTO acts (n, who) VALUES (5, 'after close')"))
    assert acts(url) == ["kept", "next", "after close"]
    assert turns.waiting() == 0


def test_another_process_writing_is_waited_for(url: str, served: Engine) -> None:
    """The command line (an engine without turns, as another process has)
    holds SQLite's write lock: the server's transaction waits for it (busy
    timeout) at its BEGIN IMMEDIATE and then reads what the other committed,
    never a stale snapshot; both writes land."""
    other = make_engine(url)
    try:
        cli = other.connect()
        cli.execute(text("INSERT INTO acts (n, who) VALUES (1, 'cli')"))  # write lock taken
        seen: list[int] = []

        def server_use_case() -> None:
            with served.connect() as conn:
                def work() -> None:
                    n = conn.execute(text("SELECT count(*) FROM acts")).scalar_one()
                    conn.execute(text("INSERT INTO acts (n, who) VALUES (:n, 'server')"),
                                 {"n": n + 1})
                    conn.commit()
                    seen.append(n)
                retry_on_conflict(conn, work)  # type: ignore[arg-type]

        thread = threading.Thread(target=server_use_case)
        thread.start()
        time.sleep(0.2)  # gives it the time to begin (it waits either way)
        assert seen == []
        cli.commit()
        cli.close()
        thread.join(WAIT)
        assert not thread.is_alive()
        assert seen == [1]
        assert acts(url) == ["cli", "server"]
    finally:
        other.dispose()


def test_a_second_transaction_of_the_thread_holding_the_turn_does_not_wait(
        url: str, served: Engine) -> None:
    """A log verification beside the request's own transaction (the same
    thread) begins deferred instead of waiting for itself."""
    with served.connect() as request, served.connect() as verify:
        request.execute(text("SELECT count(*) FROM acts"))
        assert verify.execute(text("SELECT count(*) FROM acts")).scalar_one() == 0
        request.execute(text("INSERT INTO acts (n, who) VALUES (1, 'request')"))
        request.commit()
    assert acts(url) == ["request"]


def test_a_wait_that_runs_out_takes_nothing_and_answers_busy() -> None:
    """A transaction that waited too long leaves the queue (the next still
    gets the turn) and counts as a write conflict: the request is run again
    or answered 503 "busy", nothing kept."""
    turns = Turns()
    first, late, next_one = object(), object(), object()
    turns.take(first, WAIT)
    with pytest.raises(TurnTimeout) as raised:
        turns.take(late, 0.05)
    assert is_write_conflict(raised.value)
    assert turns.waiting() == 0
    got: list[object] = []
    thread = threading.Thread(target=lambda: (turns.take(next_one, WAIT), got.append(next_one)))
    thread.start()
    until(lambda: turns.waiting() == 1, "the next one queued")
    turns.give_back(late)  # holds none: nothing changes
    assert got == []
    turns.give_back(first)
    thread.join(WAIT)
    assert got == [next_one]
    assert not turns.held_by_this_thread()
