"""A sign-in checks its password or PIN outside any transaction on SQLite
(`coordination.accounts.attempt_in_turn`): what others write meanwhile (a
re-issued receipt, a reset password, an erasure) and a failure after the
check must never let anyone in or lose a guess that was checked."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from sqlalchemy import select

import audit.services
import consent.services as consent_store
from audit.model import Action, AuditEntry
from consent.tables import ConsentReceipt
from coordination import accounts, db, signin
from coordination.errors import NotAuthenticated, Throttled
from coordination.model import ApiToken, SignInThrottle, Staff, WebSession
from tests.conftest import STAFF, Api, Clock, audit_fails_for
from tests.functional.test_database_down import _api
from tests.functional.test_read_path_attacks import served_app  # noqa: F401 - a fixture
from tests.web import csrf_token, password_of, set_passwords

WAIT = 10.0  # seconds a step may take before the test fails (never reached when it works)
MEANWHILE = 1.5  # how long a check waits for a write of another request to end


def _meanwhile(write: Callable[[], None]) -> tuple[threading.Event, threading.Thread]:
    """Start `write` (another request) and wait a little for it to end: on
    PostgreSQL it may wait for the sign-in's locks instead (then it ends after)."""
    done = threading.Event()

    def run() -> None:
        write()
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    done.wait(MEANWHILE)
    return done, thread


def _family_with_receipt(api: Api) -> tuple[str, str, str]:
    family = api.new_family("nurse1")
    receipt = api.sign(family, {"physio": ["health"]})["receipt"]
    return family, receipt["code"], receipt["pin"]


def test_a_receipt_reissued_while_its_pin_is_checked_lets_no_one_in(
        app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Staff re-issue a family's receipt (the old one may be in the wrong
    hands: that also ends the family's sessions) while someone signs in with
    the old code and PIN: either the sign-in came first and its session is
    ended with the others, or it is refused. No session outlives the re-issue."""
    family, code, pin = _family_with_receipt(api)
    verify = consent_store._verify
    reissued: list[threading.Thread] = []

    def racing(pin_hash: str, given: str) -> bool:
        _, thread = _meanwhile(lambda: api.sign(family, {"physio": ["health"]},
                                                reissue_pin=True))
        reissued.append(thread)
        return verify(pin_hash, given)

    monkeypatch.setattr(consent_store, "_verify", racing)
    response = app.test_client().post("/api/v1/family/session",
                                      json={"receipt_code": code, "pin": pin})
    reissued[0].join(WAIT)
    assert response.status_code in (201, 401)
    with app.extensions["onestory"].sessions() as session:
        open_tokens = session.scalars(select(ApiToken).where(
            ApiToken.family_id == family, ApiToken.revoked_at.is_(None))).all()
    assert open_tokens == [], "a session opened with a receipt re-issued meanwhile"


@pytest.mark.parametrize("rehash", [False, True])
def test_a_password_reset_while_the_old_one_is_checked_wins(
        app: Flask, api: Api, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        rehash: bool) -> None:
    """An admin resets a password (someone else knows it: that ends their
    sessions) while a sign-in with the old password is being checked: no
    session with the old password outlives the reset, and the new password
    is the one that stays (a rehash of the old one never overwrites it)."""
    set_passwords(app)
    if rehash:  # stored at other argon2 parameters: a right password is rehashed
        with app.extensions["onestory"].sessions() as session:
            staff = session.scalars(select(Staff).where(Staff.username == "auditor1")).one()
            staff.password_hash = PasswordHasher(time_cost=2, memory_cost=2048,
                                                 parallelism=1).hash(password_of("auditor1"))
            session.commit()
    check = signin._check_password
    new: list[str] = []
    threads: list[threading.Thread] = []

    def reset() -> None:
        with app.extensions["onestory"].sessions() as session:
            by = _admin(session)
            new.append(accounts.reset_password(session, "auditor1", clock(), by))

    def racing(staff: Any, password: str) -> bool:
        _, thread = _meanwhile(reset)
        threads.append(thread)
        return check(staff, password)

    monkeypatch.setattr(signin, "_check_password", racing)
    client = app.test_client()
    token = csrf_token(client.get("/sign-in").get_data(as_text=True))
    response = client.post("/sign-in", data={"username": "auditor1",
                                             "password": password_of("auditor1"),
                                             "csrf_token": token})
    threads[0].join(WAIT)
    assert response.status_code in (302, 401)
    with app.extensions["onestory"].sessions() as session:
        staff = session.scalars(select(Staff).where(Staff.username == "auditor1")).one()
        assert accounts.password_hasher.verify(staff.password_hash, new[0])
        assert session.scalars(select(WebSession).where(
            WebSession.ended_at.is_(None))).all() == [], "a session outlived the reset"


def _admin(session: Any) -> Any:
    from coordination.actors import Actor
    from coordination.roles import Role

    staff = session.scalars(select(Staff).where(Staff.username == "admin1")).one()
    return Actor(username=staff.username, staff_id=staff.id, agency_id=staff.agency_id,
                 role=Role(staff.role))


class _Stopped(BaseException):
    """The process stops (killed, out of memory) while a guess is checked."""


def _stop(*_args: Any) -> bool:
    raise _Stopped()


# On PostgreSQL claim, check and outcome are one transaction: these run on SQLite only.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
@pytest.mark.parametrize("after", ["audit fails", "process stops"])
@pytest.mark.parametrize("attempt", ["unknown code", "real code", "staff password"])
def test_a_guess_checked_is_counted_whatever_happens_after(
        app: Flask, api: Api, clock: Clock, db_url: str, monkeypatch: pytest.MonkeyPatch,
        attempt: str, after: str) -> None:
    """On SQLite the attempt is claimed and committed before the check: when
    the outcome cannot be recorded (the audit log fails: `503`) or the
    process stops during the check, the guess is still counted (never fewer
    failures than guesses checked). On PostgreSQL claim, check and outcome
    are one transaction: nothing of it is kept, and nothing was answered."""
    set_passwords(app)
    code = _family_with_receipt(api)[1] if attempt == "real code" else "AAAA-BBBB"
    if after == "audit fails":
        audit_fails_for(monkeypatch, Action.LOGIN_FAILED)
    else:
        monkeypatch.setattr(signin, "_check_password", _stop)
        monkeypatch.setattr(consent_store, "_verify", _stop)
    client = app.test_client()
    rt = app.extensions["onestory"]
    if attempt == "staff password":
        keys = [accounts.throttle_key("user", "auditor1"),
                accounts.throttle_key("addr", "127.0.0.1")]
        if after == "audit fails":
            token = csrf_token(client.get("/sign-in").get_data(as_text=True))
            assert client.post("/sign-in", data={"username": "auditor1", "password": "wrong",
                                                 "csrf_token": token}).status_code == 503
        else:
            with rt.sessions() as session, pytest.raises(_Stopped):
                signin.with_password(session, "auditor1", "wrong", "127.0.0.1", clock())
    else:
        keys = [accounts.throttle_key("receipt", consent_store.normalise_code(code))]
        if after == "audit fails":
            assert client.post("/api/v1/family/session", json={
                "receipt_code": code, "pin": "000000"}).status_code == 503
        else:
            with rt.sessions() as session, pytest.raises(_Stopped):
                accounts.open_family_session(session, code, "000000", timedelta(hours=1),
                                             clock())
    with rt.sessions() as session:
        if attempt == "real code":
            receipt = session.scalars(select(ConsentReceipt)).one()
            assert receipt.failed_attempts == 1
            return
        for key in keys:
            row = session.get(SignInThrottle, key)
            assert row is not None and row.failures == 1, key


GUESSES = 12  # parallel wrong guesses on one key, more than any free attempts


def _burst(app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch,
           attempt: str) -> tuple[int, list[int]]:
    """`GUESSES` wrong guesses at once on one receipt code or one username,
    each check made slow enough for the others to pile up behind it; the
    clock stands still, so no delay or lockout runs out meanwhile. Returns
    how many guesses were checked and the answers."""
    set_passwords(app)
    checks, counted = [0], threading.Lock()

    def counting(check: Callable[..., bool]) -> Callable[..., bool]:
        def slow(*args: Any) -> bool:
            with counted:
                checks[0] += 1
            threading.Event().wait(0.05)
            return check(*args)
        return slow

    if attempt == "staff password":
        monkeypatch.setattr(signin, "_check_password", counting(signin._check_password))

        def guess() -> int:
            client = app.test_client()
            token = csrf_token(client.get("/sign-in").get_data(as_text=True))
            return client.post("/sign-in", data={"username": "auditor1", "password": "wrong",
                                                 "csrf_token": token}).status_code
    else:
        code = _family_with_receipt(api)[1] if attempt == "real code" else "AAAA-BBBB"
        monkeypatch.setattr(consent_store, "_verify", counting(consent_store._verify))

        def guess() -> int:
            return app.test_client().post("/api/v1/family/session", json={
                "receipt_code": code, "pin": "000000"}).status_code
    answers: list[int] = []
    start = threading.Barrier(GUESSES)

    def guesser() -> None:
        start.wait(WAIT)
        answers.append(guess())

    threads = [threading.Thread(target=guesser) for _ in range(GUESSES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    return checks[0], sorted(answers)


def _free(app: Flask, attempt: str) -> int:
    if attempt == "staff password":
        policy = app.extensions["onestory"].settings.web_policy
        return int(min(policy.user_failures, policy.address_failures))
    return consent_store.FREE_ATTEMPTS


ATTEMPTS = ["unknown code", "real code", "staff password"]


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_parallel_guesses_on_one_key_get_no_more_checks_than_the_free_attempts(
        app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch, attempt: str) -> None:
    """Guesses sent at once on one receipt code (real or unknown) or one
    username: no more are checked than the free attempts allow; every other
    is refused as slowed down or locked out (`429`), none fails otherwise."""
    checks, answers = _burst(app, api, monkeypatch, attempt)
    free = _free(app, attempt)
    assert checks == free
    assert answers == [401] * free + [429] * (GUESSES - free)


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_parallel_guesses_in_the_servers_turns_get_no_more_checks(
        served_app: Flask, clock: Clock, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        attempt: str) -> None:
    """The same on SQLite as `onestory serve` runs it: transactions in turns."""
    checks, answers = _burst(served_app, _api(served_app, clock), monkeypatch, attempt)
    free = _free(served_app, attempt)
    assert checks == free
    assert answers == [401] * free + [429] * (GUESSES - free)


def _stripe(key: str) -> int:
    return zlib.crc32(key.encode()) % len(accounts._ATTEMPT_STRIPES)


def _sign_in_on_its_own(app: Flask, clock: Clock, username: str, address: str,
                        outcomes: list[str]) -> threading.Thread:
    def run() -> None:
        with app.extensions["onestory"].sessions() as session:
            try:
                signin.with_password(session, username, "wrong", address, clock())
            except (NotAuthenticated, Throttled):
                outcomes.append("refused")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_sign_ins_whose_username_and_address_stripes_cross_all_end(
        served_app: Flask, clock: Clock, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        ) -> None:
    """One sign-in's username shares its stripe with another's address and
    the other way round (and one whose username and address share one
    stripe): none waits for another for good."""
    _api(served_app, clock)
    set_passwords(served_app)
    user = {name: _stripe(accounts.throttle_key("user", name)) for name, _, _ in STAFF}
    one, two = next((a, b) for a in user for b in user if user[a] != user[b])
    address = {}
    for n in range(100_000):
        stripe = _stripe(accounts.throttle_key("addr", f"10.0.{n // 256}.{n % 256}"))
        address.setdefault(stripe, f"10.0.{n // 256}.{n % 256}")
    check = signin._check_password

    def slow(*args: Any) -> bool:
        threading.Event().wait(0.02)
        return check(*args)

    monkeypatch.setattr(signin, "_check_password", slow)
    outcomes: list[str] = []
    threads = []
    for _ in range(4):
        threads += [_sign_in_on_its_own(served_app, clock, one, address[user[two]], outcomes),
                    _sign_in_on_its_own(served_app, clock, two, address[user[one]], outcomes),
                    _sign_in_on_its_own(served_app, clock, one, address[user[one]], outcomes)]
    for thread in threads:
        thread.join(WAIT)
    assert outcomes == ["refused"] * len(threads)


def test_a_sign_in_in_a_request_holding_the_turn_waits_for_no_one_holding_it(
        served_app: Flask, clock: Clock, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        ) -> None:
    """A sign-in whose request already holds the server's turn (it began a
    transaction) while another attempt on the same username is being
    checked: it gives the turn back before waiting for that attempt, which
    then records its outcome; both end (no wait for the turn's timeout)."""
    _api(served_app, clock)
    set_passwords(served_app)
    checking, release = threading.Event(), threading.Event()
    check = signin._check_password

    def held(*args: Any) -> bool:
        if not checking.is_set():
            checking.set()
            release.wait(WAIT)
        return check(*args)

    monkeypatch.setattr(signin, "_check_password", held)
    outcomes: list[str] = []
    other = _sign_in_on_its_own(served_app, clock, "auditor1", "10.0.0.1", outcomes)
    assert checking.wait(WAIT)
    rt = served_app.extensions["onestory"]
    turns = db.turns_of(rt.engine)
    assert turns is not None
    with rt.sessions() as session:
        session.execute(select(Staff.id)).all()
        assert turns.held_by_this_thread()
        release.set()
        # Were the turn kept while waiting, the other could record nothing
        # until its wait for the turn timed out (then refused as busy).
        with pytest.raises(NotAuthenticated):
            signin.with_password(session, "auditor1", "wrong", "10.0.0.2", clock())
        other.join(WAIT)
    assert outcomes == ["refused"]



@pytest.mark.parametrize("pin", ["right", "wrong"])
def test_a_family_erased_while_its_pin_is_checked_is_refused_cleanly(
        app: Flask, api: Api, clock: Clock, monkeypatch: pytest.MonkeyPatch, pin: str) -> None:
    """The family is erased while a PIN (after earlier wrong ones, so a wrong
    one slows the code down further) is being checked: the sign-in is
    refused like any wrong one (`401`, never a `500`), or it came first and
    its session went with the family."""
    family, code, right = _family_with_receipt(api)
    client = app.test_client()
    for _ in range(consent_store.FREE_ATTEMPTS):
        assert client.post("/api/v1/family/session", json={
            "receipt_code": code, "pin": "000000"}).status_code == 401
    clock.advance(hours=1)
    verify = consent_store._verify
    erased: list[threading.Thread] = []

    def racing(pin_hash: str, given: str) -> bool:
        _, thread = _meanwhile(lambda: api.call(
            "DELETE", f"/api/v1/families/{family}", "admin1", json={"reason": "asked"}))
        erased.append(thread)
        return verify(pin_hash, given)

    monkeypatch.setattr(consent_store, "_verify", racing)
    response = client.post("/api/v1/family/session", json={
        "receipt_code": code, "pin": right if pin == "right" else "000000"})
    erased[0].join(WAIT)
    assert response.status_code in ((201, 401) if pin == "right" else (401,))
    with app.extensions["onestory"].sessions() as session:
        assert session.scalars(select(ApiToken).where(ApiToken.family_id == family)).all() == []


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_a_write_conflict_after_the_check_runs_the_sign_in_again_and_counts_both(
        app: Flask, api: Api, db_url: str, monkeypatch: pytest.MonkeyPatch,
        attempt: str) -> None:
    """Recording the outcome meets a write conflict once: the whole sign-in
    runs again (`retry_on_conflict`), is refused, and on SQLite (where the
    first claim was committed) both checks are counted."""
    set_passwords(app)
    code = _family_with_receipt(api)[1] if attempt == "real code" else "AAAA-BBBB"
    real = audit.services.record
    conflicts = [1]
    checks = [0]

    def conflicting(session: Any, event: Any, now: Any) -> Any:
        if event.action == Action.LOGIN_FAILED and conflicts[0]:
            conflicts[0] -= 1
            raise db.TurnTimeout("busy")
        return real(session, event, now)

    def counting(check: Callable[..., bool]) -> Callable[..., bool]:
        def counted(*args: Any) -> bool:
            checks[0] += 1
            return check(*args)
        return counted

    monkeypatch.setattr(audit.services, "record", conflicting)
    monkeypatch.setattr(signin, "_check_password", counting(signin._check_password))
    monkeypatch.setattr(consent_store, "_verify", counting(consent_store._verify))
    client = app.test_client()
    if attempt == "staff password":
        token = csrf_token(client.get("/sign-in").get_data(as_text=True))
        status = client.post("/sign-in", data={"username": "auditor1", "password": "wrong",
                                               "csrf_token": token}).status_code
    else:
        status = client.post("/api/v1/family/session", json={
            "receipt_code": code, "pin": "000000"}).status_code
    assert status == 401
    assert checks[0] == 2
    counted = checks[0] if db_url.startswith("sqlite") else 1
    with app.extensions["onestory"].sessions() as session:
        if attempt == "real code":
            assert session.scalars(select(ConsentReceipt.failed_attempts)).one() == counted
        elif attempt == "unknown code":
            row = session.get(SignInThrottle, accounts.throttle_key("receipt", "AAAABBBB"))
            assert row is not None and row.failures == counted
        else:
            for key in (accounts.throttle_key("user", "auditor1"),
                        accounts.throttle_key("addr", "127.0.0.1")):
                row = session.get(SignInThrottle, key)
                assert row is not None and row.failures == counted, key
        failed = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "login.failed")).all()
        assert len(failed) == 1


def test_a_rehash_at_sign_in_holds_no_turn(
        served_app: Flask, clock: Clock, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        ) -> None:
    """A right password stored at other argon2 parameters is rehashed at
    sign-in: that hashing (as slow as a check) runs outside any transaction,
    so it holds up no other request, and the new hash is the one kept."""
    _api(served_app, clock)
    set_passwords(served_app)
    rt = served_app.extensions["onestory"]
    with rt.sessions() as session:
        staff = session.scalars(select(Staff).where(Staff.username == "auditor1")).one()
        staff.password_hash = PasswordHasher(time_cost=2, memory_cost=2048,
                                             parallelism=1).hash(password_of("auditor1"))
        session.commit()
    turns = db.turns_of(rt.engine)
    assert turns is not None
    held: list[bool] = []
    cheap = accounts.password_hasher

    class Watched(PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            held.append(turns.held_by_this_thread())
            return cheap.hash(password, salt=salt)

    monkeypatch.setattr(accounts, "password_hasher", Watched(
        time_cost=cheap.time_cost, memory_cost=cheap.memory_cost,
        parallelism=cheap.parallelism))
    with rt.sessions() as session:
        signin.with_password(session, "auditor1", password_of("auditor1"), "10.0.0.3",
                             clock())
        stored = session.scalars(select(Staff.password_hash).where(
            Staff.username == "auditor1")).one()
    assert held == [False]
    assert not cheap.check_needs_rehash(stored)
    assert cheap.verify(stored, password_of("auditor1"))


@SQLITE_ONLY
@pytest.mark.parametrize("after", ["audit fails", "process stops"])
def test_a_real_code_whose_outcome_is_lost_is_still_slowed_down(
        app: Flask, api: Api, clock: Clock, db_url: str, monkeypatch: pytest.MonkeyPatch,
        after: str) -> None:
    """The last free guess on a real code is checked but its outcome never
    recorded (on SQLite the claim was committed before the check): the code
    is slowed down all the same, so the next guess at once is not checked."""
    code = _family_with_receipt(api)[1]
    client = app.test_client()
    for _ in range(consent_store.FREE_ATTEMPTS - 1):
        assert client.post("/api/v1/family/session", json={
            "receipt_code": code, "pin": "000000"}).status_code == 401
    with monkeypatch.context() as lost:
        if after == "audit fails":
            audit_fails_for(lost, Action.LOGIN_FAILED)
            assert client.post("/api/v1/family/session", json={
                "receipt_code": code, "pin": "000000"}).status_code == 503
        else:
            lost.setattr(consent_store, "_verify", _stop)
            with app.extensions["onestory"].sessions() as session, pytest.raises(_Stopped):
                accounts.open_family_session(session, code, "000000", timedelta(hours=1),
                                             clock())
    assert client.post("/api/v1/family/session", json={
        "receipt_code": code, "pin": "000000"}).status_code == 429
