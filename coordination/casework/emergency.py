"""Breaking the glass (CONTRACT.md, "Exceptional access").

A practitioner or coordinator of an agency allowed emergency access names
one person (the family or a member) by whole name and birth date, says why
and on which legal basis; when exactly one person matches, that staff member
alone (not their colleagues) reads the family's whole record, except
minimal-data agencies' entries, until the access expires. Every attempt is
stored and audited and counts against a per-user limit; an attempt that
found no single person keeps neither a family nor its reason (there is no
family key to seal it under, and it may name the person): the log says only
that it happened, when, by whom, on which basis. Auditors review each
opened access (`casework.emergency_review`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, union
from sqlalchemy.orm import Session

import audit.services as audit_log
from audit.model import Action, Outcome
from audit.services import Event
from coordination.actors import Actor
from coordination.casework import concealment, search_index
from coordination.casework.common import _audit, iso_time, new_id
from coordination.crypto import Vault
from coordination.errors import FamilyNotFound, NotPermitted, Throttled
from coordination.model import (
    Agency,
    EmergencyAccess,
    Erasure,
    Family,
    SearchIndexed,
    SearchTerm,
    Staff,
)
from coordination.roles import Role
from coordination.search_words import name_words

TABLE = "emergency_accesses"
WINDOW = timedelta(hours=1)  # the per-user limit counts attempts in this window
MAX_DURATION = timedelta(hours=24)


@dataclass(frozen=True)
class Limits:
    """How long an access stays open, and how many attempts a user may make
    an hour (`coordination.config.Settings`)."""

    duration: timedelta = timedelta(hours=2)
    attempts_per_hour: int = 5


class NoSingleMatch(FamilyNotFound):
    """No person, or more than one, has that name and birth date: one answer
    for both, which says nothing more."""

    def __init__(self) -> None:
        super().__init__("no_single_match")


def allowed(session: Session, actor: Actor) -> bool:
    """May the actor break the glass at all: a practitioner or coordinator
    of an agency allowed emergency access (never an auditor or admin)."""
    if actor.is_family or actor.role not in {Role.PRACTITIONER, Role.COORDINATOR}:
        return False
    agency = session.get(Agency, actor.agency_id) if actor.agency_id else None
    return agency is not None and bool(agency.emergency_access)


def check_open(session: Session, actor: Actor) -> None:
    """The check of `open_access` that comes before 422: the caller's agency
    must be allowed emergency access (`NotPermitted`)."""
    if not allowed(session, actor):
        raise NotPermitted("your agency may not use emergency access")


def _matches(session: Session, vault: Vault, name: str, born: date) -> list[str]:
    """The family of each person (at most two are looked for) whose whole
    name is `name` and who was born on `born`: the same statements and the
    same work whatever is found."""
    words = {vault.blind_index(search_index.WORD, w) for w in name_words(name)}
    wanted = sorted(words | {vault.blind_index(search_index.BIRTH_DATE, born.isoformat())})
    # One person's terms are exactly the words asked and the birth date:
    # not a name with one more word, not one with another date.
    indexed = (select(SearchTerm.family_id, SearchTerm.owner)
               .group_by(SearchTerm.family_id, SearchTerm.owner)
               .having(func.count(SearchTerm.term) == len(wanted),
                       func.sum(case((SearchTerm.term.in_(wanted), 1), else_=0))
                       == len(wanted)))
    # Families recorded before the index (not yet reindexed): their own name.
    unindexed = (select(Family.id, Family.id.label("owner"))
                 .where(Family.name_index == vault.blind_index("name", name),
                        Family.birth_date_index == vault.blind_index(
                            search_index.BIRTH_DATE, born.isoformat()),
                        Family.id.not_in(select(SearchIndexed.family_id))))
    found = union(indexed, unindexed).subquery()
    rows = session.execute(
        select(found.c.family_id).where(found.c.family_id.not_in(select(Erasure.family_id)))
        .limit(2))
    return [row[0] for row in rows]


def _refused(session: Session, actor: Actor, reason: str, now: datetime,
             **detail: Any) -> None:
    """A refused attempt on the log: who, when, why refused, the basis
    claimed; never the name, birth date or reason typed."""
    audit_log.record(session, Event(
        action=Action.EMERGENCY_OPEN, outcome=Outcome.DENIED, actor=actor.label,
        agency_id=actor.agency_id, role=actor.role_name, reason=reason, detail=detail,
        request_id=actor.request_id), now)


def open_access(session: Session, vault: Vault, actor: Actor, data: dict[str, Any],
                limits: Limits, now: datetime) -> dict[str, str]:
    """Break the glass: `data` holds `name`, `birth_date`, `reason` and
    `legal_basis`, already validated. Returns `{"id", "family_id",
    "expires_at"}` when exactly one person matches; otherwise raises
    `NoSingleMatch` (404). Raises `NotPermitted` when the agency is not
    allowed, `Throttled` past the per-user limit. Every attempt, refused ones
    included, is on the audit log, committed before the answer."""
    check_open(session, actor)
    if session.get_bind().dialect.name == "postgresql":
        # One attempt of a user at a time, so that parallel ones cannot all
        # pass the limit (SQLite runs one writer at a time anyway).
        session.execute(select(Staff.id).where(Staff.id == actor.staff_id).with_for_update())
    since = now - WINDOW
    recent = list(session.scalars(
        select(EmergencyAccess.opened_at)
        .where(EmergencyAccess.staff_id == actor.staff_id, EmergencyAccess.opened_at > since)
        .order_by(EmergencyAccess.opened_at)))
    basis = data["legal_basis"]
    if len(recent) >= limits.attempts_per_hour:
        _refused(session, actor, "throttled", now, legal_basis=basis)
        session.commit()
        wait = recent[0] + WINDOW - now
        raise Throttled(max(1, int(wait.total_seconds()) + 1))
    found = _matches(session, vault, data["name"], data["birth_date"])
    access_id = new_id("emg")
    duration = min(limits.duration, MAX_DURATION)
    row = EmergencyAccess(id=access_id, staff_id=actor.staff_id, agency_id=actor.agency_id,
                          legal_basis=basis, opened_at=now)
    if len(found) != 1:
        session.add(row)
        _refused(session, actor, "no_single_match", now, attempt=access_id, legal_basis=basis)
        session.commit()
        raise NoSingleMatch()
    family_id = found[0]
    row.family_id = family_id
    row.expires_at = now + duration
    row.reason = vault.for_family(family_id).seal(TABLE, "reason", access_id, data["reason"])
    session.add(row)
    _audit(session, actor, Action.EMERGENCY_OPEN, now, family_id=family_id,
           access=access_id, legal_basis=basis, expires_at=iso_time(row.expires_at))
    session.commit()
    return {"id": access_id, "family_id": family_id, "expires_at": iso_time(row.expires_at)}


def current(session: Session, actor: Actor, family_id: str, now: datetime
            ) -> EmergencyAccess | None:
    """The caller's own emergency access to the family open at `now`."""
    if actor.staff_id is None:
        return None
    found: EmergencyAccess | None = session.scalar(
        select(EmergencyAccess)
        .where(EmergencyAccess.family_id == family_id,
               EmergencyAccess.staff_id == actor.staff_id,
               EmergencyAccess.opened_at <= now, EmergencyAccess.expires_at > now)
        .order_by(EmergencyAccess.expires_at.desc()).limit(1))
    return found


def for_family(session: Session, family_id: str, now: datetime) -> list[dict[str, Any]]:
    """Every emergency access to the family, newest first, as the family is
    shown it: which agency, on which basis, from when until when, and
    whether an auditor found it justified. The one place the family-facing
    list is built: a protection hold in force concealing the agency's looks
    or its part leaves its accesses out (`concealment`)."""
    held = concealment.concealed_from_family(session, family_id, now)
    hidden = held.access | held.involvement
    rows = session.scalars(
        select(EmergencyAccess)
        .where(EmergencyAccess.family_id == family_id, EmergencyAccess.expires_at.is_not(None))
        .order_by(EmergencyAccess.opened_at.desc(), EmergencyAccess.id))
    return [{"id": r.id, "agency": r.agency_id, "legal_basis": r.legal_basis,
             "opened_at": r.opened_at, "expires_at": r.expires_at, "verdict": r.verdict}
            for r in rows if r.agency_id not in hidden]


def unreviewed_of_agency(session: Session, agency: str) -> list[EmergencyAccess]:
    """The agency's opened emergency accesses no auditor has reviewed yet,
    oldest first (its coordinators' worklist)."""
    return list(session.scalars(
        select(EmergencyAccess)
        .where(EmergencyAccess.agency_id == agency, EmergencyAccess.expires_at.is_not(None),
               EmergencyAccess.reviewed_at.is_(None))
        .order_by(EmergencyAccess.opened_at, EmergencyAccess.id)))
