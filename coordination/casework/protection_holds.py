"""Protection holds (CONTRACT.md, "Exceptional access"): where telling the
family would put a child at risk, a coordinator of an agency allowed holds
conceals its agency's involvement, entries and/or looks from every family
view, with a reason and a review date at most 90 days ahead; it renews or
lifts the hold, and the hold lapses past its review date. Auditors see every
hold, its reason and its history, and a queue of those due for review.

What a hold in force conceals is decided in one place,
`coordination.casework.concealment`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.model import Action
from consent import model as consent
from coordination.actors import Actor
from coordination.casework.common import _as_date, _audit, _visible, iso_time, new_id
from coordination.casework.concealment import KINDS, hold_in_force
from coordination.crypto import FamilyCipher, Vault
from coordination.errors import Conflict, FamilyNotFound, InvalidInput, NotPermitted
from coordination.model import Agency, ProtectionHold, ProtectionHoldEvent
from coordination.roles import Role

TABLE = "protection_holds"
MAX_DAYS = 90
# Holds whose review date is this close appear in the auditors' review queue.
REVIEW_WITHIN_DAYS = 14


def _today(now: datetime) -> date:
    return now.astimezone(UTC).date()


def review_on_errors(review_on: Any, now: datetime) -> dict[str, list[str]]:
    """A review date after today and at most 90 days from today (raw input
    too: anything but a date is left to the schema)."""
    review_on = _as_date(review_on)
    if review_on is None:
        return {}
    today = _today(now)
    if review_on <= today:
        return {"review_on": ["must be after today"]}
    if review_on > today + timedelta(days=MAX_DAYS):
        return {"review_on": [f"must be at most {MAX_DAYS} days from today "
                              f"({(today + timedelta(days=MAX_DAYS)).isoformat()})"]}
    return {}


def state_of(hold: ProtectionHold, now: datetime) -> str:
    if hold.lifted_at is not None:
        return "lifted"
    return "in_force" if hold_in_force(hold, now) else "lapsed"


def _holder(session: Session, vault: Vault, actor: Actor, family_id: str, now: datetime,
            *, lock: bool = False) -> None:
    """A coordinator of an agency allowed holds, the family visible to it;
    else `FamilyNotFound` (not visible) or `NotPermitted`. Visible to the
    agency itself: the caller's own emergency access is no standing for a
    hold (one would conceal that very access from the family, which must
    be told of it)."""
    view = _visible(session, vault, actor, family_id, now, lock=lock)
    if actor.role != Role.COORDINATOR:
        raise NotPermitted("only a coordinator places, renews or lifts a protection hold")
    agency = session.get(Agency, actor.agency_id)
    if agency is None or not agency.protection_holds:
        raise NotPermitted("your agency is not allowed to place protection holds")
    if view.emergency is not None and not consent.is_visible(
            view.form, agency.id, view.involved(agency.id), now, view.duty):
        raise NotPermitted("an emergency access gives no standing for a protection hold: "
                           "only an agency with a part in the family's care places one")


def check_place(session: Session, vault: Vault, actor: Actor, family_id: str,
                now: datetime) -> None:
    """The checks of `place_hold` that come before 422, without acting."""
    _holder(session, vault, actor, family_id, now)


def _events(session: Session, hold_ids: list[str]) -> dict[str, list[ProtectionHoldEvent]]:
    out: dict[str, list[ProtectionHoldEvent]] = {h: [] for h in hold_ids}
    if hold_ids:
        for ev in session.scalars(select(ProtectionHoldEvent)
                                  .where(ProtectionHoldEvent.hold_id.in_(hold_ids))
                                  .order_by(ProtectionHoldEvent.hold_id,
                                            ProtectionHoldEvent.seq)):
            out[ev.hold_id].append(ev)
    return out


def _out(hold: ProtectionHold, cipher: FamilyCipher, events: list[ProtectionHoldEvent],
         now: datetime) -> dict[str, Any]:
    return {
        "id": hold.id,
        "family_id": hold.family_id,
        "agency": hold.agency_id,
        "conceal": hold.conceal.split(","),
        "reason": cipher.open(TABLE, "reason", hold.id, hold.reason),
        "review_on": hold.review_on.isoformat(),
        "state": state_of(hold, now),
        "set_at": iso_time(hold.set_at),
        "set_by": hold.set_by,
        "renewed_at": iso_time(hold.renewed_at) if hold.renewed_at else None,
        "renewed_by": hold.renewed_by,
        "lifted_at": iso_time(hold.lifted_at) if hold.lifted_at else None,
        "lifted_by": hold.lifted_by,
        "history": [{"act": e.act, "at": iso_time(e.at), "by": e.by,
                     "review_on": e.review_on.isoformat()} for e in events],
    }


def _event(session: Session, hold: ProtectionHold, act: str, actor: Actor,
           now: datetime) -> ProtectionHoldEvent:
    seq = session.scalar(select(func.coalesce(func.max(ProtectionHoldEvent.seq), 0))
                         .where(ProtectionHoldEvent.hold_id == hold.id)) or 0
    ev = ProtectionHoldEvent(hold_id=hold.id, seq=seq + 1, act=act, at=now, by=actor.label,
                             review_on=hold.review_on)
    session.add(ev)
    return ev


def place_hold(session: Session, vault: Vault, actor: Actor, family_id: str,
               data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Place a hold of the caller's agency on the family: `data` holds
    `conceal` (a non-empty subset of involvement, entries, access), `reason`
    and `review_on` (after today, at most 90 days ahead; else
    `InvalidInput`, nothing stored). Raises as `check_place`. Audited with
    what is concealed and the review date, never the reason."""
    _holder(session, vault, actor, family_id, now, lock=True)
    errors = review_on_errors(data["review_on"], now)
    if errors:
        raise InvalidInput(errors)
    conceal = [k for k in KINDS if k in set(data["conceal"])]
    cipher = vault.for_family(family_id)
    hold = ProtectionHold(id=new_id("hold"), family_id=family_id,
                          agency_id=str(actor.agency_id), conceal=",".join(conceal),
                          reason=b"", review_on=data["review_on"], set_at=now,
                          set_by=actor.label)
    hold.reason = cipher.seal(TABLE, "reason", hold.id, data["reason"])
    session.add(hold)
    session.flush()
    ev = _event(session, hold, "set", actor, now)
    _audit(session, actor, Action.PROTECTION_HOLD_SET, now, family_id=family_id,
           hold=hold.id, conceal=conceal, review_on=hold.review_on.isoformat())
    session.commit()
    return _out(hold, cipher, [ev], now)


def _own_hold(session: Session, vault: Vault, actor: Actor, family_id: str, hold_id: str,
              now: datetime, *, lock: bool = False) -> ProtectionHold:
    """The caller's agency's hold on the family; another's, or none, is
    `FamilyNotFound` as for an absent family."""
    _holder(session, vault, actor, family_id, now, lock=lock)
    hold = session.get(ProtectionHold, hold_id, populate_existing=lock)
    if hold is None or hold.family_id != family_id or hold.agency_id != actor.agency_id:
        raise FamilyNotFound("absent")
    return hold


def check_act(session: Session, vault: Vault, actor: Actor, family_id: str, hold_id: str,
              now: datetime) -> None:
    """The checks of `renew_hold` and `lift_hold` that come before 422."""
    _own_hold(session, vault, actor, family_id, hold_id, now)


def renew_hold(session: Session, vault: Vault, actor: Actor, family_id: str, hold_id: str,
               review_on: date, now: datetime) -> dict[str, Any]:
    """Move a hold in force to a new review date (after today, at most 90
    days ahead: `InvalidInput`). A lifted or lapsed hold is a `Conflict`:
    place a new one."""
    hold = _own_hold(session, vault, actor, family_id, hold_id, now, lock=True)
    errors = review_on_errors(review_on, now)
    if errors:
        raise InvalidInput(errors)
    state = state_of(hold, now)
    if state != "in_force":
        raise Conflict(f"the hold is {state}; place a new one")
    hold.review_on = review_on
    hold.renewed_at, hold.renewed_by = now, actor.label
    _event(session, hold, "renewed", actor, now)
    _audit(session, actor, Action.PROTECTION_HOLD_RENEW, now, family_id=family_id,
           hold=hold.id, review_on=review_on.isoformat())
    session.commit()
    return _out(hold, vault.for_family(family_id), _events(session, [hold.id])[hold.id], now)


def lift_hold(session: Session, vault: Vault, actor: Actor, family_id: str, hold_id: str,
              now: datetime) -> dict[str, Any]:
    """Lift a hold in force: from now on the family sees again what it
    concealed, the past looks included. A lifted or lapsed hold is a
    `Conflict`."""
    hold = _own_hold(session, vault, actor, family_id, hold_id, now, lock=True)
    state = state_of(hold, now)
    if state != "in_force":
        raise Conflict(f"the hold is {state} already")
    hold.lifted_at, hold.lifted_by = now, actor.label
    _event(session, hold, "lifted", actor, now)
    _audit(session, actor, Action.PROTECTION_HOLD_LIFT, now, family_id=family_id,
           hold=hold.id)
    session.commit()
    return _out(hold, vault.for_family(family_id), _events(session, [hold.id])[hold.id], now)


def family_holds(session: Session, vault: Vault, actor: Actor, family_id: str,
                 now: datetime) -> list[dict[str, Any]]:
    """The caller's agency's holds on the family, newest first, with their
    reasons and history (raises as `check_place`). Audited."""
    _holder(session, vault, actor, family_id, now)
    holds = list(session.scalars(
        select(ProtectionHold)
        .where(ProtectionHold.family_id == family_id,
               ProtectionHold.agency_id == actor.agency_id)
        .order_by(ProtectionHold.set_at.desc(), ProtectionHold.id)))
    cipher = vault.for_family(family_id)
    events = _events(session, [h.id for h in holds])
    out = [_out(h, cipher, events[h.id], now) for h in holds]
    _audit(session, actor, Action.PROTECTION_HOLD_LIST, now, family_id=family_id,
           count=len(out))
    session.commit()
    return out


def due_for_review(hold: dict[str, Any], now: datetime) -> bool:
    """Whether a hold (as `all_holds` gives it) is in the review queue: in
    force, its review date within 14 days."""
    horizon = _today(now) + timedelta(days=REVIEW_WITHIN_DAYS)
    return hold["state"] == "in_force" and date.fromisoformat(hold["review_on"]) <= horizon


def all_holds(session: Session, vault: Vault, actor: Actor, now: datetime, *,
              due_only: bool = False) -> list[dict[str, Any]]:
    """Every hold, newest first, with its reason and history (auditors only:
    `NotPermitted` for anyone else). With `due_only`, the review queue: holds
    in force whose review date is within 14 days, soonest first. Audited
    with the families whose reasons were read."""
    if actor.is_family or actor.role != Role.AUDITOR:
        raise NotPermitted("only auditors review protection holds")
    holds = list(session.scalars(select(ProtectionHold)
                                 .order_by(ProtectionHold.set_at.desc(), ProtectionHold.id)))
    if due_only:
        horizon = _today(now) + timedelta(days=REVIEW_WITHIN_DAYS)
        holds = sorted((h for h in holds if hold_in_force(h, now) and h.review_on <= horizon),
                       key=lambda h: (h.review_on, h.id))
    ciphers = vault.for_families(sorted({h.family_id for h in holds}))
    events = _events(session, [h.id for h in holds])
    out = [_out(h, ciphers[h.family_id], events[h.id], now) for h in holds]
    _audit(session, actor, Action.PROTECTION_HOLD_LIST, now, due_only=due_only,
           count=len(out), families=sorted({h.family_id for h in holds}))
    session.commit()
    return out
