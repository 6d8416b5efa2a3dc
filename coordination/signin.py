"""Staff sign-in for the web UI: passwords (argon2), an agency's OpenID
Connect provider, browser sessions with an idle timeout, and temporary
lockout after repeated failures.

Every sign-in, failed sign-in and sign-out is on the audit log, in the
same transaction as the act. Failures say nothing about which check
failed: an unknown user, a wrong password and a deactivated account look
alike to the person signing in (the audit entry keeps the reason).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

import audit.services as audit_log
from audit.model import Action, Outcome
from audit.services import Event
from coordination import accounts
from coordination.accounts import claim_throttle, throttle_key
from coordination.actors import Actor
from coordination.errors import NotAuthenticated, Throttled
from coordination.model import Agency, SignInThrottle, Staff, WebSession
from coordination.roles import Role


@dataclass(frozen=True)
class Policy:
    idle: timedelta = timedelta(minutes=30)
    lifetime: timedelta = timedelta(hours=12)
    user_failures: int = 5  # failures of one username before it is locked
    address_failures: int = 20  # failures from one client address before it is locked
    window: timedelta = timedelta(minutes=15)  # failures older than this are forgotten
    lockout: timedelta = timedelta(minutes=15)
    touch_every: timedelta = timedelta(minutes=1)  # how often last_seen_at is written


_dummy: str | None = None


def _check_password(staff: Staff | None, password: str) -> bool:
    """Constant work whether or not the user exists (no timing oracle)."""
    global _dummy
    hasher = accounts.password_hasher
    stored = staff.password_hash if staff is not None else None
    if stored is None:
        if _dummy is None:
            _dummy = hasher.hash(secrets.token_hex(8))
        stored = _dummy
    try:
        ok = hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and staff is not None and staff.password_hash is not None


def _locked_for(rows: list[SignInThrottle], now: datetime) -> int:
    """Seconds until every lock among `rows` has passed (0: none)."""
    waits = [(row.locked_until - now).total_seconds() for row in rows
             if row.locked_until is not None and row.locked_until > now]
    return int(max(waits)) + 1 if waits else 0


def _count_failure(row: SignInThrottle, limit: int, policy: Policy, now: datetime) -> None:
    if now - row.first_failure_at > policy.window:
        row.failures, row.first_failure_at = 0, now
    row.failures += 1
    if row.failures >= limit:
        row.locked_until = now + policy.lockout
        row.failures, row.first_failure_at = 0, now


def _failed(session: Session, staff: Staff | None, reason: str, via: str, now: datetime,
            request_id: str | None, agency_id: str | None = None) -> None:
    # A typed name that is no user may be anything (even a password), so
    # only known usernames are named in the log.
    audit_log.record(session, Event(
        action=Action.LOGIN_FAILED, outcome=Outcome.DENIED,
        actor=staff.username if staff else None,
        agency_id=staff.agency_id if staff else agency_id,
        role=staff.role if staff else None, reason=reason,
        detail={"via": via, "channel": "web"}, request_id=request_id), now)


def _open(session: Session, staff: Staff, via: str, policy: Policy, now: datetime,
          request_id: str | None) -> str:
    token = "ws_" + secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=accounts.hash_token(token), staff_id=staff.id,
                           method=via, created_at=now, last_seen_at=now,
                           expires_at=now + policy.lifetime))
    audit_log.record(session, Event(
        action=Action.LOGIN, actor=staff.username, agency_id=staff.agency_id,
        role=staff.role, detail={"via": via, "channel": "web"}, request_id=request_id), now)
    session.commit()
    return token


def with_password(session: Session, username: str, password: str, address: str,
                  now: datetime, policy: Policy = Policy(), request_id: str | None = None
                  ) -> str:
    """Sign a staff member in with username and password; returns the
    browser session's secret (only its hash is stored).

    Raises `Throttled` while the username or the client address is locked
    out, and `NotAuthenticated` for any wrong credential.
    """
    limits = {throttle_key("user", username.casefold()): policy.user_failures,
              throttle_key("addr", address): policy.address_failures}
    # Each attempt on a username or an address sees the count the one before
    # it left (`accounts.attempt_in_turn`); rows locked in one global order.
    with accounts.attempt_in_turn(session, limits) as before_check:
        rows = {key: claim_throttle(session, key, now) for key in sorted(limits)}
        staff = session.scalars(select(Staff).where(Staff.username == username)).first()
        wait = _locked_for(list(rows.values()), now)
        if wait:
            _failed(session, staff, "locked_out", "password", now, request_id)
            session.commit()
            raise Throttled(wait)
        # Counted before the check, so that a guess checked is counted even
        # when its outcome cannot be recorded (on SQLite `before_check`
        # commits it); a right password takes it back below.
        before = {key: (row.failures, row.first_failure_at, row.locked_until)
                  for key, row in rows.items()}
        for key, row in rows.items():
            _count_failure(row, limits[key], policy, now)
        before_check()
        checked = staff.password_hash if staff is not None else None
        ok = _check_password(staff, password)
        hasher = accounts.password_hasher
        rehashed = (hasher.hash(password) if ok and checked
                    and hasher.check_needs_rehash(checked) else None)
        if staff is not None:
            # The check may have run outside the claim's transaction (SQLite),
            # and the staff row is not claimed: a password reset or a
            # deactivation meanwhile wins (locked from here to the commit, so
            # a reset after it ends the session this opens).
            staff = session.scalars(
                select(Staff).where(Staff.id == staff.id).with_for_update()
                .execution_options(populate_existing=True)).first()
            ok = ok and staff is not None and staff.password_hash == checked
        if not ok or staff is None or not staff.active:
            reason = ("unknown_user" if staff is None else
                      "wrong_password" if not ok else "inactive")
            _failed(session, staff, reason, "password", now, request_id)
            session.commit()  # the failure counts even though sign-in fails
            raise NotAuthenticated()
        for key, row in rows.items():
            row.failures, row.first_failure_at, row.locked_until = before[key]
        user_row = rows[throttle_key("user", username.casefold())]
        user_row.failures, user_row.locked_until = 0, None
        if rehashed is not None:
            staff.password_hash = rehashed
        return _open(session, staff, "password", policy, now, request_id)


def oidc_agencies(session: Session) -> list[Agency]:
    """Agencies whose staff may sign in through their own provider."""
    return list(session.scalars(
        select(Agency).where(Agency.oidc_issuer.is_not(None), Agency.oidc_client_id.is_not(None))
        .order_by(Agency.name)))


def with_oidc(session: Session, agency_id: str, subject: str | None, now: datetime,
              policy: Policy = Policy(), request_id: str | None = None) -> str:
    """Sign in the staff member of `agency_id` whose provider subject is
    `subject` (taken from an ID token the caller has validated). Unknown
    subjects and deactivated staff raise `NotAuthenticated`; a subject is
    never matched across agencies."""
    staff = None
    if subject:
        staff = session.scalars(select(Staff).where(
            Staff.agency_id == agency_id, Staff.oidc_subject == subject)).first()
    if staff is None or not staff.active:
        _failed(session, staff, "unknown_subject" if staff is None else "inactive", "oidc",
                now, request_id, agency_id=agency_id)
        session.commit()
        raise NotAuthenticated()
    return _open(session, staff, "oidc", policy, now, request_id)


def oidc_failed(session: Session, agency_id: str, reason: str, now: datetime,
                request_id: str | None = None) -> None:
    """Put a provider sign-in that failed before any subject was known on record."""
    _failed(session, None, reason, "oidc", now, request_id, agency_id=agency_id)
    session.commit()


def actor_for(session: Session, token: str, now: datetime, policy: Policy = Policy(),
              request_id: str | None = None) -> Actor:
    """The staff member behind a browser session. A session that is
    unknown, signed out, past its lifetime or idle too long raises
    `NotAuthenticated` (an idle one is ended and that is put on record)."""
    row = session.execute(
        select(WebSession, Staff, Agency)
        .join(Staff, Staff.id == WebSession.staff_id)
        .join(Agency, Agency.id == Staff.agency_id)
        .where(WebSession.token_hash == accounts.hash_token(token))
    ).first()
    if row is None:
        raise NotAuthenticated()
    web, staff, agency = row
    if web.ended_at is not None or not staff.active:
        raise NotAuthenticated()
    if now >= web.expires_at or now - web.last_seen_at >= policy.idle:
        web.ended_at = now
        audit_log.record(session, Event(
            action=Action.LOGOUT, actor=staff.username, agency_id=staff.agency_id,
            role=staff.role, reason="idle" if now < web.expires_at else "expired",
            detail={"channel": "web"}, request_id=request_id), now)
        session.commit()
        raise NotAuthenticated()
    if now - web.last_seen_at >= policy.touch_every:
        web.last_seen_at = now
        session.commit()
    return Actor(username=staff.username, staff_id=staff.id, agency_id=agency.id,
                 role=Role(staff.role), minimal_data=agency.minimal_data,
                 request_id=request_id)


def sign_out(session: Session, token: str, now: datetime, request_id: str | None = None
             ) -> None:
    """End a browser session (on record); an unknown or ended one is left alone."""
    row = session.execute(
        select(WebSession, Staff).join(Staff, Staff.id == WebSession.staff_id)
        .where(WebSession.token_hash == accounts.hash_token(token))
    ).first()
    if row is None or row[0].ended_at is not None:
        return
    web, staff = row

    def end() -> None:
        web.ended_at = now

    accounts.end_access(session, end, Event(
        action=Action.LOGOUT, actor=staff.username, agency_id=staff.agency_id, role=staff.role,
        detail={"channel": "web"}, request_id=request_id), now)
