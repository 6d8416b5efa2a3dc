"""Use cases of accounts: agencies, staff, API tokens and family sessions."""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

import audit.services as audit_log
import consent.services as consent_store
from audit.model import Action, Outcome
from audit.services import Event
from coordination.actors import Actor
from coordination.casework.common import iso_time
from coordination.db import is_write_conflict
from coordination.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, Throttled
from coordination.model import (
    Agency,
    AgencyName,
    ApiToken,
    Family,
    Involvement,
    SignInThrottle,
    Staff,
    WebSession,
)
from coordination.roles import Role

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# How history and the audit log name the family itself (`Actor.label`): no
# staff member may pass for it.
RESERVED_USERNAMES = frozenset({"family"})
password_hasher = PasswordHasher()


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: it only keeps
    # a stolen table from being replayed as tokens.
    return hashlib.sha256(token.encode()).hexdigest()


def add_agency(
    session: Session, slug: str, name: str, kind: str, minimal_data: bool, now: datetime,
    emergency_access: bool = False, *, protection_holds: bool = False,
) -> Agency:
    if not SLUG.match(slug):
        raise InvalidInput({"slug": ["use lower-case letters, digits and hyphens"]},
                           f"invalid agency slug {slug!r}: use lower-case letters, digits, hyphens")
    if not name.strip() or len(name) > 200:
        raise InvalidInput({"name": ["1 to 200 characters"]}, "the name must be 1-200 characters")
    if not kind.strip() or len(kind) > 64:
        raise InvalidInput({"kind": ["1 to 64 characters"]}, "the kind must be 1-64 characters")
    if session.get(Agency, slug) is not None:
        raise Conflict(f"agency '{slug}' already exists")
    agency = Agency(id=slug, name=name.strip(), kind=kind.strip(), minimal_data=minimal_data,
                    emergency_access=emergency_access, created_at=now,
                    protection_holds=protection_holds)
    session.add(agency)
    session.commit()
    return agency


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput({"role": [f"one of {allowed}"]},
                           f"unknown role {role!r}: use one of {allowed}") from None


def _display_name(display_name: str | None) -> str | None:
    if display_name is None or not display_name.strip():
        return None
    name = " ".join(display_name.split())
    if len(name) > 200 or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidInput({"display_name": ["1 to 200 characters, no control characters"]},
                           "the display name must be 1-200 characters")
    return name


def _event(action: Action, by: Actor | None, agency_id: str, detail: dict[str, Any]) -> Event:
    """An account change on record: by an admin on the web page (`by`), or
    by the server's operator on the command line."""
    if by is None:
        return Event(action=action, actor="cli", agency_id=agency_id, detail=detail)
    return Event(action=action, actor=by.label, agency_id=by.agency_id, role=by.role_name,
                 detail=detail, request_id=by.request_id)


# No characters read alike (0/O, 1/l/I): the password is read out or copied by hand.
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # noqa: S105 - an alphabet, not a secret


def new_password() -> str:
    """A password made for someone: five groups of four characters (about
    99 random bits), shown once to the admin who gives it to them; only its
    argon2 hash is stored."""
    return "-".join("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(4))
                    for _ in range(5))


def add_staff(
    session: Session,
    username: str,
    agency_id: str,
    role: str,
    password: str | None,
    now: datetime,
    display_name: str | None = None,
    by: Actor | None = None,
) -> Staff:
    """Add an active staff member (no password: signs in only through the
    agency's provider). With `by` (an admin on the web page) only to the
    admin's own agency, and on the audit log. Raises `InvalidInput`,
    `NotFound` (agency) or `Conflict` (username taken)."""
    if not USERNAME.match(username):
        raise InvalidInput({"username": ["letters, digits, '.', '_' and '-', at most 64"]},
                           f"invalid username {username!r}")
    if username.casefold() in RESERVED_USERNAMES:
        raise InvalidInput({"username": [f"'{username}' is reserved: it names the family"]},
                           f"the username {username!r} is reserved: it names the family")
    role_value = _role(role)
    name = _display_name(display_name)
    if session.get(Agency, agency_id) is None or (by is not None and by.agency_id != agency_id):
        raise NotFound(f"no agency '{agency_id}'")
    if session.scalars(select(Staff).where(Staff.username == username)).first() is not None:
        raise Conflict(f"user '{username}' already exists")
    if password is not None and len(password) < 8:
        raise InvalidInput({"password": ["at least 8 characters"]},
                           "the password must have at least 8 characters")
    staff = Staff(
        username=username,
        agency_id=agency_id,
        role=role_value,
        password_hash=password_hasher.hash(password) if password else None,
        active=True,
        created_at=now,
        display_name=name,
    )
    session.add(staff)
    if by is not None:
        audit_log.record(session, _event(Action.USER_ADD, by, agency_id, {
            "user": username, "role": role_value.value, "password": password is not None}), now)
    session.commit()
    return staff


def staff_name(staff: Staff) -> str:
    """How a staff member is named to families and colleagues."""
    return staff.display_name or staff.username


def list_staff(session: Session, agency_id: str | None = None) -> list[Staff]:
    """Staff members, by agency then username; only that agency's when given."""
    query = select(Staff).order_by(Staff.agency_id, Staff.username)
    if agency_id is not None:
        if session.get(Agency, agency_id) is None:
            raise NotFound(f"no agency '{agency_id}'")
        query = query.where(Staff.agency_id == agency_id)
    return list(session.scalars(query))


def _staff_named(session: Session, username: str, agency_id: str | None = None) -> Staff:
    # Locked until the commit (PostgreSQL), so that nothing names this
    # person contact worker, or signs them in, half-way through a change.
    # Within one agency (an admin's page), another agency's staff member
    # answers exactly like one who does not exist.
    staff = session.scalars(select(Staff).where(Staff.username == username)
                            .with_for_update()).first()
    if staff is None or (agency_id is not None and staff.agency_id != agency_id):
        raise NotFound(f"no user '{username}'")
    return staff


def _lock_admins(session: Session, by: Actor | None) -> None:
    """Lock the active admins of the acting admin's agency, in one order,
    before anything else: two admins demoting each other at once are then
    decided one after the other (`_keep_an_admin`)."""
    if by is not None:
        session.scalars(select(Staff.id).where(
            Staff.agency_id == by.agency_id, Staff.role == Role.ADMIN, Staff.active)
            .order_by(Staff.id).with_for_update()).all()


def _keep_an_admin(session: Session, by: Actor | None, staff: Staff) -> None:
    """On the web page, no change may leave an agency without an active
    admin (the last one cannot deactivate or demote themselves: the page
    would be lost to the agency). The command line on the server is not
    bound by this (it is how an agency gets its first admin back)."""
    if by is None or staff.role != Role.ADMIN or not staff.active:
        return
    others = session.scalars(select(Staff.id).where(
        Staff.agency_id == staff.agency_id, Staff.role == Role.ADMIN, Staff.active,
        Staff.id != staff.id)).first()
    if others is None:
        raise Conflict(f"{staff.username} is the last active admin of {staff.agency_id}; "
                       "make another staff member admin first")


def _revoke_tokens(session: Session, staff: Staff, now: datetime) -> int:
    result = session.execute(update(ApiToken).where(
        ApiToken.staff_id == staff.id, ApiToken.revoked_at.is_(None)).values(revoked_at=now))
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Deactivation:
    sessions_ended: int
    tokens_revoked: int
    contact_worker_changes: int  # involvements handed over (or cleared)


def deactivate_staff(session: Session, username: str, hand_over_to: str | None,
                     now: datetime, by: Actor | None = None) -> Deactivation:
    """Deactivate a staff member: their web sessions end and their API tokens
    are revoked at once, and wherever they were contact worker a colleague
    takes over (`hand_over_to`: an active staff member of the same agency)
    or, without one, nobody is. All in one transaction, on the audit log.
    With `by` (an admin on the web page) only within the admin's agency,
    never leaving it without an admin. Raises `NotFound` for an unknown user
    or colleague, `InvalidInput` for a colleague who cannot take over,
    `Conflict` for the agency's last admin."""
    scope = by.agency_id if by is not None else None
    _lock_admins(session, by)
    staff = _staff_named(session, username, scope)
    _keep_an_admin(session, by, staff)
    colleague = None
    if hand_over_to is not None:
        colleague = session.scalars(select(Staff).where(Staff.username == hand_over_to)
                                    .with_for_update(read=True)).first()
        if colleague is None or (scope is not None and colleague.agency_id != scope):
            raise NotFound(f"no user '{hand_over_to}' to hand over to")
        if colleague.id == staff.id:
            raise InvalidInput({"hand_over_to": ["another staff member"]},
                               f"{username} cannot hand over to themselves")
        if colleague.agency_id != staff.agency_id or not colleague.active:
            raise InvalidInput({"hand_over_to": ["an active colleague in the same agency"]},
                               f"{hand_over_to} is not an active colleague of {username} "
                               f"in {staff.agency_id}")
    staff.active = False
    ended = session.execute(update(WebSession).where(
        WebSession.staff_id == staff.id, WebSession.ended_at.is_(None)).values(ended_at=now))
    revoked = _revoke_tokens(session, staff, now)
    handed = session.execute(update(Involvement).where(
        Involvement.contact_worker_id == staff.id).values(
        contact_worker_id=colleague.id if colleague else None,
        contact_since=now.date() if colleague else None, updated_at=now))
    done = Deactivation(sessions_ended=int(ended.rowcount),  # type: ignore[attr-defined]
                        tokens_revoked=revoked,
                        contact_worker_changes=int(handed.rowcount))  # type: ignore[attr-defined]
    audit_log.record(session, _event(
        Action.USER_DEACTIVATE, by, staff.agency_id,
        {"user": staff.username, "hand_over_to": hand_over_to,
         "sessions_ended": done.sessions_ended, "tokens_revoked": done.tokens_revoked,
         "contact_worker_changes": done.contact_worker_changes}), now)
    session.commit()
    return done


def revoke_tokens(session: Session, username: str, now: datetime,
                  by: Actor | None = None) -> int:
    """Revoke every API token of a staff member, on the audit log; returns how
    many were still valid to revoke. With `by`, only within the admin's agency."""
    staff = _staff_named(session, username, by.agency_id if by is not None else None)
    revoked = _revoke_tokens(session, staff, now)
    audit_log.record(session, _event(Action.TOKEN_REVOKE, by, staff.agency_id,
                                     {"user": staff.username, "revoked": revoked}), now)
    session.commit()
    return revoked


def change_role(session: Session, username: str, role: str, now: datetime,
                by: Actor) -> Staff:
    """An admin gives a staff member of their own agency another role; it
    applies from that person's next request (sessions and tokens read the
    current role). Never leaves the agency without an admin. Raises
    `InvalidInput` (role), `NotFound` (user, or another agency's), `Conflict`."""
    role_value = _role(role)
    _lock_admins(session, by)
    staff = _staff_named(session, username, by.agency_id)
    if not staff.active:
        raise Conflict(f"{username} is deactivated")
    if role_value != Role.ADMIN:
        _keep_an_admin(session, by, staff)
    before = str(staff.role)
    staff.role = role_value
    audit_log.record(session, _event(Action.USER_ROLE, by, staff.agency_id, {
        "user": staff.username, "from": before, "to": role_value.value}), now)
    session.commit()
    return staff


def reset_password(session: Session, username: str, now: datetime, by: Actor) -> str:
    """An admin sets a new password, made here and returned to be shown
    once, for a staff member of their own agency. Their web sessions end
    (whoever knew the old password is signed out); API tokens are left to
    `revoke_tokens`. Raises `NotFound` (user, or another agency's),
    `Conflict` (deactivated)."""
    staff = _staff_named(session, username, by.agency_id)
    if not staff.active:
        raise Conflict(f"{username} is deactivated")
    password = new_password()
    staff.password_hash = password_hasher.hash(password)
    ended = session.execute(update(WebSession).where(
        WebSession.staff_id == staff.id, WebSession.ended_at.is_(None)).values(ended_at=now))
    audit_log.record(session, _event(Action.USER_PASSWORD_RESET, by, staff.agency_id, {
        "user": staff.username,
        "sessions_ended": int(ended.rowcount)}), now)  # type: ignore[attr-defined]
    session.commit()
    return password


def set_display_name(session: Session, username: str, display_name: str | None,
                     now: datetime, by: Actor) -> Staff:
    """An admin sets (or, blank, removes) how a staff member of their own
    agency is named to families; on the audit log (not the name itself).
    Raises `InvalidInput`, `NotFound` (user, or another agency's)."""
    name = _display_name(display_name)
    staff = _staff_named(session, username, by.agency_id)
    staff.display_name = name
    audit_log.record(session, _event(Action.USER_NAME, by, staff.agency_id, {
        "user": staff.username, "named": name is not None}), now)
    session.commit()
    return staff


LANGUAGE = re.compile(r"^[a-z]{2,3}$")


def set_agency_emergency_access(session: Session, slug: str, allowed: bool,
                                now: datetime) -> None:
    """Allow (or stop) the agency's practitioners and coordinators to break
    the glass; on the audit log. Accesses already open run their course.
    Raises `NotFound`."""
    agency = session.get(Agency, slug)
    if agency is None:
        raise NotFound(f"no agency '{slug}'")
    agency.emergency_access = allowed
    audit_log.record(session, Event(action=Action.AGENCY_EMERGENCY_ACCESS, actor="cli",
                                    agency_id=slug, detail={"allowed": allowed}), now)
    session.commit()


def set_agency_names(session: Session, slug: str, names: dict[str, str | None],
                     now: datetime) -> dict[str, str]:
    """Set (a name) or remove (None or blank) an agency's name per language
    (ISO 639 code); the family page in that language uses it, and otherwise
    the agency's own name. On the audit log (languages only). Returns every
    name the agency now has. Raises `NotFound`, `InvalidInput`."""
    agency = session.get(Agency, slug)
    if agency is None:
        raise NotFound(f"no agency '{slug}'")
    for language, name in names.items():
        if not LANGUAGE.match(language):
            raise InvalidInput({"language": ["a two- or three-letter language code"]},
                               f"invalid language {language!r}: use a code such as tr or nb")
        if name is not None and name.strip() and (
                len(name.strip()) > 200 or any(ord(ch) < 32 for ch in name)):
            raise InvalidInput({"name": ["1 to 200 characters"]},
                               "a name must be 1-200 characters")
    for language, name in names.items():
        row = session.get(AgencyName, (slug, language))
        if name is None or not name.strip():
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(AgencyName(agency_id=slug, language=language, name=name.strip()))
        else:
            row.name = name.strip()
    audit_log.record(session, Event(action=Action.AGENCY_NAMES, actor="cli", agency_id=slug,
                                    detail={"languages": sorted(names)}), now)
    session.commit()
    return agency_names(session, slug)


def set_protection_holds(session: Session, slug: str, allowed: bool, now: datetime) -> None:
    """Allow (or no longer allow) the agency's coordinators to place
    protection holds; holds already placed stay until lifted or lapsed. On
    the audit log. Raises `NotFound`."""
    agency = session.get(Agency, slug)
    if agency is None:
        raise NotFound(f"no agency '{slug}'")
    agency.protection_holds = allowed
    audit_log.record(session, Event(action=Action.AGENCY_PROTECTION_HOLDS, actor="cli",
                                    agency_id=slug, detail={"allowed": allowed}), now)
    session.commit()


def agency_names(session: Session, slug: str) -> dict[str, str]:
    """An agency's names by language."""
    return {row.language: row.name for row in session.scalars(
        select(AgencyName).where(AgencyName.agency_id == slug).order_by(AgencyName.language))}


def names_in(session: Session, language: str) -> dict[str, str]:
    """Every agency's name as a page in `language` shows it: its name in
    that language where it gave one, else its own name."""
    names = {a.id: a.name for a in session.scalars(select(Agency))}
    names.update({row.agency_id: row.name for row in session.scalars(
        select(AgencyName).where(AgencyName.language == language))})
    return names


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def set_agency_provider(session: Session, slug: str, issuer: str | None,
                        client_id: str | None) -> Agency:
    """Set (or, with None, remove) the agency's OpenID Connect provider for
    staff sign-in. The issuer must use https (http only on this machine)."""
    agency = session.get(Agency, slug)
    if agency is None:
        raise NotFound(f"no agency '{slug}'")
    if issuer is not None:
        parts = urlsplit(issuer)
        secure = parts.scheme == "https" or (parts.scheme == "http"
                                              and parts.hostname in LOOPBACK)
        if not secure or not parts.hostname or parts.query or parts.fragment \
                or len(issuer) > 300:
            raise InvalidInput({"issuer": ["an https URL (http only for 127.0.0.1)"]},
                               f"invalid issuer {issuer!r}: use the provider's https URL")
        if not client_id or not client_id.strip() or len(client_id) > 200:
            raise InvalidInput({"client_id": ["1 to 200 characters"]},
                               "the client id must be 1-200 characters")
    agency.oidc_issuer = issuer.rstrip("/") if issuer else None
    agency.oidc_client_id = client_id.strip() if issuer and client_id else None
    session.commit()
    return agency


def link_provider_subject(session: Session, username: str, subject: str | None) -> Staff:
    """Match a staff member to their `sub` at their agency's provider (None unlinks)."""
    staff = session.scalars(select(Staff).where(Staff.username == username)).first()
    if staff is None:
        raise NotFound(f"no user '{username}'")
    if subject is not None and (not subject.strip() or len(subject) > 255):
        raise InvalidInput({"subject": ["1 to 255 characters"]},
                           "the subject must be 1-255 characters")
    if subject is not None and session.scalars(select(Staff.id).where(
            Staff.agency_id == staff.agency_id, Staff.oidc_subject == subject,
            Staff.id != staff.id)).first() is not None:
        raise Conflict(f"another user of {staff.agency_id} is linked to that subject")
    staff.oidc_subject = subject
    session.commit()
    return staff


def create_token(session: Session, username: str, lifetime: timedelta, now: datetime) -> str:
    """A new bearer token for a staff member; only its hash is stored."""
    staff = session.scalars(select(Staff).where(Staff.username == username)).first()
    if staff is None or not staff.active:
        raise NotFound(f"no active user '{username}'")
    token = "os_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(token_hash=hash_token(token), staff_id=staff.id, created_at=now,
                 expires_at=now + lifetime)
    )
    audit_log.record(session, Event(action=Action.TOKEN_CREATE, actor=staff.username,
                                    agency_id=staff.agency_id, role=staff.role,
                                    detail={"expires": iso_time(now + lifetime)}), now)
    session.commit()
    return token


# Built once (every API request runs it): the token with its staff member and
# agency, as plain columns of the tables (a statement without mapped classes
# skips the ORM's compile and result steps: a third of its CPU).
_TOKENS, _STAFF, _AGENCIES = (cast(Table, m.__table__) for m in (ApiToken, Staff, Agency))
_TOKEN_LOOKUP = (select(_TOKENS.c.revoked_at, _TOKENS.c.expires_at, _TOKENS.c.family_id,
                        _STAFF.c.id.label("staff_id"), _STAFF.c.username, _STAFF.c.role,
                        _STAFF.c.active, _AGENCIES.c.id.label("agency_id"),
                        _AGENCIES.c.minimal_data)
                 .outerjoin(_STAFF, _STAFF.c.id == _TOKENS.c.staff_id)
                 .outerjoin(_AGENCIES, _AGENCIES.c.id == _STAFF.c.agency_id)
                 .where(_TOKENS.c.token_hash == bindparam("token_hash")))


def authenticate(session: Session, token: str, now: datetime) -> Actor:
    """The actor behind a bearer token. Unknown, expired and revoked tokens,
    and tokens of deactivated staff, all raise the same `NotAuthenticated`.

    The staff member's current agency and role apply, not those at issue.
    """
    row = session.execute(_TOKEN_LOOKUP, {"token_hash": hash_token(token)}).first()
    if row is None:
        raise NotAuthenticated()
    if row.revoked_at is not None or now >= row.expires_at:
        raise NotAuthenticated()
    if row.family_id is not None:
        return Actor(family_id=row.family_id)
    if row.staff_id is None or not row.active or row.agency_id is None:
        raise NotAuthenticated()
    return Actor(
        username=row.username,
        staff_id=row.staff_id,
        agency_id=row.agency_id,
        role=Role(row.role),
        minimal_data=row.minimal_data,
    )


def throttle_key(kind: str, value: str) -> str:
    """The stored key of a throttled thing (a username, an address, a code):
    hashed, so that whatever was typed is not kept."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


# One lock per stripe of keys: attempts on keys of one stripe take turns (SQLite only).
_ATTEMPT_STRIPES = tuple(threading.Lock() for _ in range(64))


def _no_wait() -> None:
    """`attempt_in_turn`'s `before_check` where the check may stay in the transaction."""


@contextlib.contextmanager
def attempt_in_turn(session: Session, keys: Iterable[str]) -> Iterator[Callable[[], None]]:
    """Run one sign-in attempt on `keys` (throttle keys) so that parallel
    attempts on the same key are counted one after the other, each seeing
    the count the one before it left; gives `before_check`, which the
    attempt calls once it has read and claimed what it counts, right before
    the deliberately slow (argon2) check.

    PostgreSQL: the claimed rows stay locked from the claim through the
    check to the commit (`claim_throttle`, the receipt's claiming UPDATE);
    only attempts on the same key wait. `before_check` does nothing.

    SQLite: a transaction there holds the whole database (in a server, its
    one turn: `coordination.db.Turns`), so a check inside one would hold up
    every request. Attempts on the same key take turns in this process
    instead (a server on SQLite is one process: `onestory serve` refuses
    more workers), and `before_check` commits the claim, so the check runs
    outside any transaction and what follows it writes in a new one. The
    request's transaction so far is committed before waiting, so that no
    attempt waits for a key while holding the database."""
    if session.get_bind().dialect.name != "sqlite":
        yield _no_wait
        return
    if session.in_transaction():
        session.commit()
    stripes = sorted({zlib.crc32(key.encode()) % len(_ATTEMPT_STRIPES) for key in keys})
    for stripe in stripes:  # always in one order: no two attempts wait for each other
        _ATTEMPT_STRIPES[stripe].acquire()
    try:
        yield session.commit
    finally:
        for stripe in reversed(stripes):
            _ATTEMPT_STRIPES[stripe].release()


def claim_throttle(session: Session, key_hash: str, now: datetime) -> SignInThrottle:
    """The throttle row of a key, created if new and locked until commit, so
    that parallel attempts on one key are counted one after the other (never
    all checked against the same count)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(SignInThrottle).values(
        key_hash=key_hash, failures=0, first_failure_at=now,
    ).on_conflict_do_nothing(index_elements=["key_hash"]))
    return session.scalars(
        select(SignInThrottle).where(SignInThrottle.key_hash == key_hash).with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _receipt_key(code: str) -> str:
    return throttle_key("receipt", consent_store.normalise_code(code))


def _check_unknown_code(session: Session, code: str, pin: str, now: datetime,
                        before_check: Callable[[], None]) -> consent_store.ReceiptCheck:
    """A code no receipt has is counted and slowed down exactly like a real
    code with a wrong PIN (the same free tries, the same doubling waits, the
    same argon2 work), so that the answers never tell a guesser which codes
    exist. Its count is kept by the code's hash, never the code."""
    row = claim_throttle(session, _receipt_key(code), now)
    if row.locked_until is not None and row.locked_until > now:
        return consent_store.ReceiptCheck(
            None, retry_after=consent_store.seconds_until(row.locked_until, now))
    # Counted before the check, so that a guess checked is counted even when
    # its outcome cannot be recorded (on SQLite `before_check` commits it).
    row.failures += 1
    row.locked_until = consent_store.slowed_until(row.failures, now)
    before_check()
    consent_store.check_nothing(pin)
    return consent_store.ReceiptCheck(None)


def open_family_session(
    session: Session, code: str, pin: str, lifetime: timedelta, now: datetime,
    request_id: str | None = None,
) -> dict[str, str]:
    """Exchange a receipt code and PIN for a short-lived family token.

    Wrong attempts slow the code down (`Throttled`) without locking it; an
    unknown code answers exactly as a real one with a wrong PIN.
    """
    # A real code and an unknown one are one key, so both take the same turns.
    with attempt_in_turn(session, [_receipt_key(code)]) as before_check:
        check = consent_store.check_receipt(session, code, pin, now, before_check=before_check)
        if not check.known:
            check = _check_unknown_code(session, code, pin, now, before_check)
        return _family_session_after(session, check, lifetime, now, request_id)


def _family_session_after(session: Session, check: consent_store.ReceiptCheck,
                          lifetime: timedelta, now: datetime, request_id: str | None
                          ) -> dict[str, str]:
    if check.family_id is None:
        audit_log.record(session, Event(
            action=Action.LOGIN_FAILED, outcome=Outcome.DENIED, actor="family", role="family",
            family_id=check.attempted,
            reason="slowed_down" if check.retry_after else "wrong_code_or_pin",
            request_id=request_id), now)
        session.commit()  # keep the failure count even though the act fails
        if check.retry_after:
            raise Throttled(check.retry_after)
        raise NotAuthenticated()
    if session.get(Family, check.family_id) is None:
        session.rollback()
        raise NotAuthenticated()
    token = "fs_" + secrets.token_urlsafe(32)
    expires = now + lifetime
    session.add(ApiToken(token_hash=hash_token(token), family_id=check.family_id,
                         created_at=now, expires_at=expires))
    audit_log.record(session, Event(action=Action.LOGIN, actor="family", role="family",
                                    family_id=check.family_id, request_id=request_id), now)
    session.commit()
    return {
        "token": token,
        "family_id": check.family_id,
        "expires_at": iso_time(expires),
    }


def end_access(session: Session, end: Callable[[], None], event: Event, now: datetime) -> None:
    """End a session and put that on record, in one transaction. Ending is
    never refused: when the record cannot be written the session is ended
    anyway and the failure raised for the caller to report (a write
    conflict is raised untouched, for the whole act to run again)."""
    end()
    try:
        audit_log.record(session, event, now)
        session.commit()
    except Exception as exc:
        session.rollback()
        if is_write_conflict(exc):
            raise
        end()
        session.commit()
        raise


def close_family_session(session: Session, token: str, now: datetime,
                         request_id: str | None = None) -> None:
    """End a family session before it expires (sign-out, on record); an
    unknown, expired or already ended one is left alone."""
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token),
                               ApiToken.family_id.is_not(None))
    ).first()
    if row is None or row.revoked_at is not None or now >= row.expires_at:
        return

    def end() -> None:
        row.revoked_at = now

    end_access(session, end, Event(action=Action.LOGOUT, actor="family", role="family",
                                   family_id=row.family_id, request_id=request_id), now)
