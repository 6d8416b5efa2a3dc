"""Duty grants (CONTRACT.md, "Exceptional access"): sharing the law requires,
on a legal basis other than consent.

A coordinator of an involved agency proposes cells (catalogue rows;
`involvement` is always added) for a named agency, with a legal basis, a
justification and a last day at most 90 days ahead. The grant is
`pending_approval` until a coordinator of a third agency (neither the
proposer's nor the named one) approves it; `reject` ends it. Once approved
it allows its cells through its `until` day (`consent.model.decide`) and
makes the family visible to the named agency; the family's revocations do
not end it, and the family cannot end the named agency's part while it
stands (`casework.involvements.end_involvement`).

The justification is sealed under the family's key. Who may read a grant:
the family (all of them), auditors (all, they review them), staff of the
proposing or named agency, and coordinators (who may approve) of an agency
that may see who is involved with the family (its `involvement` cell); to
anyone else a grant answers like an absent one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.model import Action
from consent import model as consent
from consent.model import DUTY_MAX_DAYS, DutyState
from coordination.actors import Actor
from coordination.casework.common import (
    INVOLVEMENT,
    FamilyView,
    _audit,
    _involved,
    _load,
    _visible,
    catalogue,
    duty_grant_of,
    iso_time,
    new_id,
)
from coordination.casework.concealment import concealed_from_family
from coordination.crypto import FamilyCipher, Vault
from coordination.errors import Conflict, FamilyNotFound, InvalidInput, NotPermitted
from coordination.model import Agency, DutyGrantRow
from coordination.roles import Role

TABLE = "duty_grants"


def grant_errors(session: Session, data: Any, now: datetime) -> dict[str, list[str]]:
    """What is wrong with a proposal beyond its shape (works on raw input):
    an unknown agency or row, or a last day before today or more than 90
    days ahead."""
    if not isinstance(data, dict):
        return {}
    errors: dict[str, list[str]] = {}
    agency = data.get("agency")
    if isinstance(agency, str) and agency not in set(session.scalars(select(Agency.id))):
        errors["agency"] = [f"unknown agency '{agency}'"]
    asked = data.get("fields")
    if isinstance(asked, list):
        known = {f.id for f in catalogue(session)}
        unknown = [f"unknown field '{f}'" for f in asked if isinstance(f, str) and f not in known]
        if unknown:
            errors["fields"] = unknown
    until = data.get("until")
    if isinstance(until, str):
        try:
            last = datetime.strptime(until, "%Y-%m-%d").date()  # noqa: DTZ007 - a date
        except ValueError:
            return errors
        today = now.astimezone(UTC).date()
        if last < today:
            errors["until"] = ["the last day of a duty grant may not be in the past"]
        elif last > today + timedelta(days=DUTY_MAX_DAYS):
            errors["until"] = [f"a duty grant lasts at most {DUTY_MAX_DAYS} days: its last "
                               f"day is at the latest {(today + timedelta(days=DUTY_MAX_DAYS))}"]
    return errors


def _coordinator(actor: Actor) -> None:
    if actor.is_family or actor.role != Role.COORDINATOR:
        raise NotPermitted("only a coordinator proposes, approves or rejects a duty grant")


def check_propose(session: Session, vault: Vault, actor: Actor, family_id: str,
                  now: datetime) -> None:
    """The checks of `propose` that come before 422, without acting."""
    view = _visible(session, vault, actor, family_id, now)
    _coordinator(actor)
    _involved(view, actor)


def propose(session: Session, vault: Vault, actor: Actor, family_id: str,
            data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Propose that `agency` may see `fields` (plus `involvement`) of the
    family on `legal_basis`, for `justification`, through `until`: stored
    `pending_approval`, in force only once a third agency's coordinator
    approves. The caller is a coordinator of an involved agency
    (`NotPermitted`); bad values are `InvalidInput`, storing nothing."""
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _coordinator(actor)
    _involved(view, actor)
    raw = {**data, "fields": data["granted"], "until": data["until"].isoformat()}
    errors = grant_errors(session, raw, now)
    if errors:
        raise InvalidInput(errors)
    wanted = set(data["granted"]) | {INVOLVEMENT}
    rows = [f.id for f in catalogue(session) if f.id in wanted]
    grant_id = new_id("duty")
    row = DutyGrantRow(
        id=grant_id, family_id=family_id, agency_id=data["agency"], fields=",".join(rows),
        legal_basis=data["legal_basis"], until=data["until"],
        state=DutyState.PENDING.value, proposed_by=str(actor.username),
        proposer_agency=str(actor.agency_id), created_at=now,
        justification=view.cipher.seal(TABLE, "justification", grant_id,
                                       data["justification"]))
    session.add(row)
    _audit(session, actor, Action.DUTY_GRANT_PROPOSE, now, family_id=family_id,
           grant=grant_id, agency=row.agency_id, fields=rows, legal_basis=row.legal_basis,
           until=row.until.isoformat())
    session.commit()
    return _out(row, view.cipher, now)


def state_at(row: DutyGrantRow, now: datetime) -> str:
    """`pending_approval`, `approved` or `rejected` as stored; `ended` once
    its last day has passed (unless it was rejected)."""
    if row.state != DutyState.REJECTED.value and now.astimezone(UTC).date() > row.until:
        return "ended"
    return row.state


def _out(row: DutyGrantRow, cipher: FamilyCipher, now: datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "family_id": row.family_id,
        "agency": row.agency_id,
        "fields": row.fields.split(","),
        "legal_basis": row.legal_basis,
        "justification": cipher.open(TABLE, "justification", row.id, row.justification),
        "until": row.until.isoformat(),
        "state": state_at(row, now),
        "in_force": duty_grant_of(row).in_force(now),
        "proposed_by": row.proposed_by,
        "proposer_agency": row.proposer_agency,
        "created_at": iso_time(row.created_at),
        "decided_by": row.decided_by,
        "decider_agency": row.decider_agency,
        "decided_at": None if row.decided_at is None else iso_time(row.decided_at),
    }


def _sees_all(view: FamilyView, actor: Actor, now: datetime) -> bool:
    """The family, and coordinators (who may approve) of an agency that may
    see who is involved."""
    return actor.is_family or (actor.role == Role.COORDINATOR and bool(consent.decide(
        view.form, str(actor.agency_id), INVOLVEMENT, now, view.duty)))


def _readable(view: FamilyView, actor: Actor, row: DutyGrantRow, now: datetime) -> bool:
    return _sees_all(view, actor, now) or actor.agency_id in {row.agency_id,
                                                              row.proposer_agency}


def _for_reader(grant: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """A grant as the caller reads it: the family is not told which staff and
    agencies proposed and approved it (always `null`, so that an agency a
    protection hold conceals leaves no trace there either)."""
    if actor.is_family:
        grant.update(proposed_by=None, proposer_agency=None, decided_by=None,
                     decider_agency=None)
    return grant


def _family_for(session: Session, vault: Vault, actor: Actor, family_id: str,
                now: datetime) -> FamilyView:
    """Auditors read every family's grants (the family must exist); everyone
    else as the visibility rule says."""
    if actor.role == Role.AUDITOR and not actor.is_family:
        view = _load(session, vault, family_id)
        if view is None:
            raise FamilyNotFound("absent")
        return view
    return _visible(session, vault, actor, family_id, now)


def list_grants(session: Session, vault: Vault, actor: Actor, family_id: str,
                now: datetime) -> list[dict[str, Any]]:
    """The family's duty grants the caller may read, newest first (see the
    module's docstring), with their justifications."""
    view = _family_for(session, vault, actor, family_id, now)
    rows = session.scalars(select(DutyGrantRow).where(DutyGrantRow.family_id == family_id)
                           .order_by(DutyGrantRow.created_at.desc(), DutyGrantRow.id.desc()))
    auditor = actor.role == Role.AUDITOR and not actor.is_family
    # The family does not learn of an agency whose part a protection hold conceals.
    hidden = (concealed_from_family(session, family_id, now).involvement
              if actor.is_family else frozenset())
    out = [_for_reader(_out(r, view.cipher, now), actor) for r in rows
           if (auditor or _readable(view, actor, r, now)) and r.agency_id not in hidden]
    _audit(session, actor, Action.DUTY_GRANT_LIST, now, family_id=family_id, count=len(out))
    session.commit()
    return out


def _find(session: Session, vault: Vault, actor: Actor, family_id: str, grant_id: str,
          now: datetime, *, lock: bool = False) -> tuple[DutyGrantRow, FamilyView]:
    """The grant and its family when the caller may decide on it: a
    coordinator (`NotPermitted`) of an agency that is neither the proposer's
    nor the named one (`NotPermitted`). A grant unknown, of another family
    or not readable by the caller is `FamilyNotFound`, as an absent family."""
    view = _visible(session, vault, actor, family_id, now, lock=lock)
    _coordinator(actor)
    row = session.get(DutyGrantRow, grant_id, populate_existing=lock)
    if row is None or row.family_id != family_id or not _readable(view, actor, row, now):
        raise FamilyNotFound("absent")
    if actor.agency_id in {row.agency_id, row.proposer_agency}:
        raise NotPermitted("a duty grant is approved by a coordinator of a third agency: "
                           "neither the proposing agency nor the one it names")
    return row, view


def check_decide(session: Session, vault: Vault, actor: Actor, family_id: str,
                 grant_id: str, now: datetime) -> None:
    """The checks of `decide` that come before 422, without acting."""
    _find(session, vault, actor, family_id, grant_id, now)


def decide(session: Session, vault: Vault, actor: Actor, family_id: str, grant_id: str,
           approve: bool, now: datetime) -> dict[str, Any]:
    """Approve (in force from now through `until`) or reject a pending
    duty grant. `Conflict` when it is no longer pending or its last day has
    passed."""
    row, view = _find(session, vault, actor, family_id, grant_id, now, lock=True)
    state = state_at(row, now)
    if state != DutyState.PENDING.value:
        raise Conflict(f"this duty grant is {state.replace('_', ' ')}, no longer pending "
                       "approval")
    row.state = (DutyState.APPROVED if approve else DutyState.REJECTED).value
    row.decided_by = str(actor.username)
    row.decider_agency = str(actor.agency_id)
    row.decided_at = now
    _audit(session, actor,
           Action.DUTY_GRANT_APPROVE if approve else Action.DUTY_GRANT_REJECT, now,
           family_id=family_id, grant=row.id, agency=row.agency_id)
    session.commit()
    return _out(row, view.cipher, now)


def in_force_for_family(session: Session, vault: Vault, actor: Actor, family_id: str,
                        now: datetime) -> list[dict[str, Any]]:
    """The family's own view of the grants in force (its page): each with
    its agency, rows, justification and last day. Not audited: the family
    reading about itself."""
    view = _visible(session, vault, actor, family_id, now)
    rows = session.scalars(select(DutyGrantRow).where(
        DutyGrantRow.family_id == family_id,
        DutyGrantRow.state == DutyState.APPROVED.value,
        DutyGrantRow.until >= now.astimezone(UTC).date(),
    ).order_by(DutyGrantRow.created_at, DutyGrantRow.id))
    # Nothing of an agency whose part a protection hold conceals from the family.
    hidden = concealed_from_family(session, family_id, now).involvement
    return [_for_reader(_out(r, view.cipher, now), actor) for r in rows
            if r.agency_id not in hidden]
