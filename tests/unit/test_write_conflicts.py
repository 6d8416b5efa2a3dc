"""Which errors are write conflicts, and how a use case is run again."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from coordination.db import is_write_conflict, retry_on_conflict


def sqlite_error(code: int, kind: type[sqlite3.Error] = sqlite3.OperationalError
                 ) -> sqlite3.Error:
    error = kind("database is locked")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


class PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def wrapped(orig: BaseException) -> OperationalError:
    return OperationalError("UPDATE audit_head ...", {}, orig)


@pytest.mark.parametrize("error", [
    pytest.param(sqlite_error(5), id="sqlite-busy"),  # the write lock stayed taken
    pytest.param(sqlite_error(517), id="sqlite-busy-snapshot"),  # the reads went stale
    pytest.param(sqlite_error(261), id="sqlite-busy-recovery"),
    pytest.param(wrapped(sqlite_error(5)), id="sqlalchemy-busy"),
    pytest.param(wrapped(sqlite_error(517)), id="sqlalchemy-busy-snapshot"),
    pytest.param(wrapped(PgError("40001")), id="pg-serialization-failure"),
    pytest.param(wrapped(PgError("40P01")), id="pg-deadlock"),
])
def test_conflicts(error: BaseException) -> None:
    assert is_write_conflict(error)


@pytest.mark.parametrize("error", [
    # SQLITE_LOCKED is a conflict inside one connection, not with other writers.
    pytest.param(sqlite_error(6), id="sqlite-locked"),
    pytest.param(sqlite_error(8), id="sqlite-readonly"),
    pytest.param(sqlite_error(1), id="sqlite-error"),
    pytest.param(sqlite_error(2067, sqlite3.IntegrityError), id="sqlite-unique"),
    pytest.param(wrapped(sqlite_error(14)), id="sqlalchemy-cantopen"),
    pytest.param(wrapped(PgError("23505")), id="pg-unique-violation"),
    pytest.param(IntegrityError("INSERT ...", {}, sqlite_error(2067, sqlite3.IntegrityError)),
                 id="sqlalchemy-integrity"),
    pytest.param(ValueError("database is locked"), id="not-the-database"),
])
def test_not_conflicts(error: BaseException) -> None:
    assert not is_write_conflict(error)


class FakeSession:
    def __init__(self) -> None:
        self.rollbacks = 0

    def rollback(self) -> None:
        self.rollbacks += 1


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def run(work: Any, session: FakeSession, time: FakeTime, give_up_after: float = 30.0) -> Any:
    return retry_on_conflict(session, work, give_up_after=give_up_after,  # type: ignore[arg-type]
                             sleep=time.sleep, clock=time.clock)


def test_a_conflict_runs_the_whole_use_case_again_after_a_rollback() -> None:
    session, time, calls = FakeSession(), FakeTime(), []

    def work() -> str:
        calls.append(session.rollbacks)
        if len(calls) < 4:
            raise wrapped(sqlite_error(517))
        return "done"

    assert run(work, session, time) == "done"
    assert calls == [0, 1, 2, 3]  # each run after one more rollback
    assert session.rollbacks == 3
    # Jittered and growing: each pause between half and all of 5 ms, 10 ms, 20 ms.
    for pause, ceiling in zip(time.pauses, (0.005, 0.01, 0.02), strict=True):
        assert ceiling / 2 <= pause <= ceiling


def test_other_failures_are_not_retried() -> None:
    session, time = FakeSession(), FakeTime()

    def work() -> None:
        raise wrapped(sqlite_error(14))

    with pytest.raises(OperationalError):
        run(work, session, time)
    assert session.rollbacks == 0
    assert time.pauses == []


def test_a_conflict_that_outlasts_the_patience_is_raised_rolled_back() -> None:
    session, time, runs = FakeSession(), FakeTime(), []

    def work() -> None:
        runs.append(time.now)
        time.now += 0.01  # each run takes 10 ms
        raise wrapped(sqlite_error(5))

    with pytest.raises(OperationalError) as raised:
        run(work, session, time, give_up_after=30.0)
    assert is_write_conflict(raised.value)
    assert session.rollbacks == len(runs)
    # About the patience: no run starts after it (the last may end a run's length later).
    assert 29.0 < runs[-1] <= 30.0
    assert time.now <= 30.0 + 0.01
    assert max(time.pauses) <= 0.5  # the pause stops growing at half a second


def test_a_run_that_alone_outlasts_the_patience_is_not_repeated() -> None:
    """A transaction that waited the whole busy timeout for the lock is not
    run again: the caller has waited long enough."""
    session, time, runs = FakeSession(), FakeTime(), []

    def work() -> None:
        runs.append(time.now)
        time.now += 30.0
        raise wrapped(sqlite_error(5))

    with pytest.raises(OperationalError):
        run(work, session, time, give_up_after=30.0)
    assert len(runs) == 1
    assert time.pauses == []
