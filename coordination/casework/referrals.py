"""Referrals (CONTRACT.md, "Referrals: asked, answered, booked, attended"):
one agency asks another to work with a family, the receiving agency answers.

The moves and who makes them are `casework.referral_states`; here they are
stored. A reason or note is sealed under the family's key like an entry;
states, dates, agency ids and the asked catalogue rows are not. A referral
the caller may not see answers exactly like an absent one (404).
The receiving agency books appointments (place, who accompanies the family
and the outcome's note sealed too), records what became of each, once, and
closes the referral with a note the referrer reads. The family agrees to a
referral awaiting it (a new form version grants the receiving agency exactly
the asked rows) or refuses it, on its page or in person (recorded by a
coordinator of another involved agency).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import consent.services as consent_store
from audit.model import Action
from consent import model as consent
from coordination.actors import Actor
from coordination.casework import referral_states as rules
from coordination.casework.common import (
    INVOLVEMENT,
    FamilyView,
    _as_date,
    _audit,
    _involved,
    _visible,
    _visible_to,
    catalogue,
    iso_time,
    new_id,
)
from coordination.casework.concealment import concealed_from_family
from coordination.casework.form_versions import _form_view, _recorders, _write_sealed
from coordination.casework.involvements import contact_worker_errors, involve, sees_whole_form
from coordination.crypto import FamilyCipher, Vault
from coordination.errors import Conflict, FamilyNotFound, InvalidInput, NotPermitted
from coordination.model import Agency, Appointment, Family, Referral, ReferralEvent
from coordination.roles import Role

RECEIVER_HIDDEN = tuple(s.value for s in rules.State if not rules.receiver_sees(s))


def _ever_sent(session: Session, referral_ids: list[str]) -> set[str]:
    """Which of these referrals were ever `sent` (one query)."""
    if not referral_ids:
        return set()
    return set(session.scalars(select(ReferralEvent.referral_id).where(
        ReferralEvent.referral_id.in_(referral_ids),
        ReferralEvent.state == rules.State.SENT.value).distinct()))


def unknown_to(session: Session, agency: str, referral_ids: Iterable[str]) -> set[str]:
    """Of these referrals, those to `agency` that it may not know of (awaiting
    the family, refused by it, or withdrawn before ever being sent), so that
    what names them (the family's log of who did what) leaves them out."""
    ids = sorted(set(referral_ids))
    if not ids:
        return set()
    refs = session.execute(select(Referral.id, Referral.state).where(
        Referral.id.in_(ids), Referral.to_agency == agency)).all()
    sent = _ever_sent(session, [r.id for r in refs])
    return {r.id for r in refs if not rules.receiver_sees(rules.State(r.state), r.id in sent)}


def referral_errors(session: Session, actor: Actor, data: dict[str, Any], now: datetime
                    ) -> dict[str, list[str]]:
    """What is wrong with a referral beyond its shape (works on raw input):
    an unknown agency or the caller's own, unknown catalogue rows, an
    answer-by day in the past."""
    errors: dict[str, list[str]] = {}
    to = data.get("to")
    if isinstance(to, str):
        if to == actor.agency_id:
            errors["to"] = ["refer to another agency than your own"]
        elif to not in set(session.scalars(select(Agency.id))):
            errors["to"] = [f"unknown agency '{to}'"]
    asked = data.get("fields")
    if isinstance(asked, list):
        known = {f.id for f in catalogue(session)}
        unknown = [f"unknown field '{f}'" for f in asked if isinstance(f, str) and f not in known]
        if unknown:
            errors["fields"] = unknown
    respond_by = _as_date(data.get("respond_by"))
    if respond_by is not None and respond_by < now.date():
        errors["respond_by"] = ["must not be in the past"]
    return errors


def check_create(session: Session, vault: Vault, actor: Actor, family_id: str,
                 now: datetime) -> None:
    """The checks of `create_referral` that come before 422, without acting."""
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    sees_whole_form(session, view, actor, now)


def referral_choices(session: Session, vault: Vault, actor: Actor, family_id: str,
                     now: datetime) -> dict[str, Any]:
    """What the referral form offers (the checks of `create_referral` first):
    `agencies`, those the family could be referred to (known, not the
    caller's, not actively involved), each `{"id", "name", "granted"}` with
    the rows the form in force already grants it, and `in_force` (whether a
    form is). The grid is read, so it is on record as a look at the form."""
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    sees_whole_form(session, view, actor, now)
    rows = catalogue(session)
    in_force = view.form is not None and view.form.in_force(now)
    choices = []
    for agency in session.scalars(select(Agency).order_by(Agency.name, Agency.id)):
        if agency.id == actor.agency_id or view.involved(agency.id):
            continue
        granted = [f.id for f in rows
                   if in_force and consent.decide(view.form, agency.id, f.id, now)]
        choices.append({"id": agency.id, "name": agency.name, "granted": granted})
    _audit(session, actor, Action.CONSENT_READ, now, family_id=family_id,
           purpose="referral_form")
    session.commit()
    return {"agencies": choices, "in_force": in_force}


def create_referral(session: Session, vault: Vault, actor: Actor, family_id: str,
                    data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Refer the family to another agency, asking it may see `asked` rows
    (and always `involvement`).

    The caller's agency must be involved and see the family's whole current
    form (as for `involvements.refer`; else `NotPermitted`). The referral is
    `sent` when the form in force already grants the receiving agency every
    asked row, else `awaiting_family` (the family is asked first). Nothing
    about the receiving agency's involvement changes until it accepts."""
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    sees_whole_form(session, view, actor, now)
    raw = {**data, "fields": data["asked"]}
    errors = referral_errors(session, actor, raw, now)
    if errors:
        raise InvalidInput(errors)
    wanted = set(data["asked"]) | {INVOLVEMENT}
    asked = [f.id for f in catalogue(session) if f.id in wanted]
    to = data["to"]
    granted = all(consent.decide(view.form, to, f, now, view.duty) for f in asked)
    state = rules.State.SENT if granted else rules.State.AWAITING_FAMILY
    urgency = rules.Urgency(data.get("urgency") or rules.Urgency.ROUTINE)
    ref_id = new_id("ref")
    ref = Referral(
        id=ref_id, family_id=family_id, from_agency=actor.agency_id, to_agency=to,
        state=state.value, urgency=urgency.value, created_at=now,
        respond_by=rules.respond_by(now.date(), urgency, data.get("respond_by")),
        interpreter_language=data.get("interpreter_language"),
        accompany=bool(data.get("accompany", False)), fields=",".join(asked),
        reason=view.cipher.seal("referrals", "reason", ref_id, data["reason"]),
    )
    session.add(ref)
    session.flush()
    event = _event(view.cipher, ref, actor, 1, None, now)
    session.add(event)
    _audit(session, actor, Action.REFERRAL_CREATE, now, family_id=family_id,
           referral=ref_id, to=to, state=state.value)
    session.commit()
    return _out(ref, data["reason"], view.cipher, [event])


def _event(cipher: FamilyCipher, ref: Referral, actor: Actor, seq: int, note: str | None,
           now: datetime) -> ReferralEvent:
    return ReferralEvent(
        referral_id=ref.id, seq=seq, at=now, state=ref.state, by=actor.label,
        agency_id=actor.agency_id,
        note=None if note is None else cipher.seal("referral_events", "note",
                                                   f"{ref.id}/{seq}", note))


def _out(ref: Referral, reason: str, cipher: FamilyCipher | None = None,
         events: list[ReferralEvent] | None = None,
         appointments: list[Appointment] | None = None, *,
         full: bool = True, concealed: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A referral as its reader may see it. Without `full` (a reader not
    seeing the family's whole form), a step taken by an agency other than
    the two sides (a coordinator recording the family's answer given in
    person) reads as the family's: its name would tell that agency takes part.
    So does, for the family, a step taken by an agency in `concealed` (whose
    involvement a protection hold conceals from it)."""
    out: dict[str, Any] = {
        "id": ref.id,
        "family_id": ref.family_id,
        "from": ref.from_agency,
        "to": ref.to_agency,
        "state": ref.state,
        "urgency": ref.urgency,
        "created_at": iso_time(ref.created_at),
        "respond_by": ref.respond_by.isoformat(),
        "reason": reason,
        "fields": ref.fields.split(",") if ref.fields else [],
        "interpreter_language": ref.interpreter_language,
        "accompany": ref.accompany,
        "appointments": ([] if cipher is None else
                         [_appointment_out(cipher, a) for a in appointments or []]),
    }
    if events is not None and cipher is not None:
        sides = {None, ref.from_agency, ref.to_agency}
        out["history"] = [{
            "state": e.state, "at": iso_time(e.at),
            **({"by": e.by, "agency": e.agency_id}
               if (full or e.agency_id in sides) and e.agency_id not in concealed
               else {"by": "family", "agency": None}),
            "note": None if e.note is None else cipher.open(
                "referral_events", "note", f"{ref.id}/{e.seq}", e.note),
        } for e in events]
    return out


def _appointment_out(cipher: FamilyCipher, apt: Appointment) -> dict[str, Any]:
    def opened(column: str, sealed: bytes | None) -> str | None:
        return None if sealed is None else cipher.open("appointments", column, apt.id, sealed)

    return {
        "id": apt.id,
        "referral_id": apt.referral_id,
        "at": iso_time(apt.at),
        "place": opened("place", apt.place),
        "interpreter_language": apt.interpreter_language,
        "accompanied_by": opened("accompanied_by", apt.accompanied_by),
        "outcome": apt.outcome,
        "note": opened("note", apt.note),
        "created_at": iso_time(apt.created_at),
    }


def _appointments(session: Session, refs: list[Referral]) -> dict[str, list[Appointment]]:
    """The referrals' appointments by referral id, earliest first (one query)."""
    found: dict[str, list[Appointment]] = {r.id: [] for r in refs}
    if refs:
        for apt in session.scalars(select(Appointment).where(
                Appointment.referral_id.in_(list(found)))
                .order_by(Appointment.at, Appointment.created_at, Appointment.id)):
            found[apt.referral_id].append(apt)
    return found


def _reason(cipher: FamilyCipher, ref: Referral) -> str:
    return cipher.open("referrals", "reason", ref.id, ref.reason)


def _sees(actor: Actor, ref: Referral, ever_sent: bool) -> bool:
    """Whether the actor (its agency's staff, or the family) may know of the
    referral (`ever_sent`: whether it was ever sent); the family's
    visibility is checked besides."""
    if actor.is_family:
        return actor.family_id == ref.family_id
    if ref.from_agency == actor.agency_id:
        return True
    return ref.to_agency == actor.agency_id and rules.receiver_sees(rules.State(ref.state),
                                                                    ever_sent)


def list_referrals(session: Session, vault: Vault, actor: Actor, state: str | None,
                   direction: str | None, now: datetime, *, with_names: bool = False
                   ) -> list[dict[str, Any]]:
    """The referrals from (`out`) or to (`in`) the caller's agency, or both,
    newest first: to it only from `sent` on, and only of families visible to
    it now. Reasons are opened with one key unwrap per family. With
    `with_names` (the staff pages) each carries its family's `family_name`."""
    agency = str(actor.agency_id)
    outgoing = Referral.from_agency == agency
    never_sent = ~exists().where(ReferralEvent.referral_id == Referral.id,
                                 ReferralEvent.state == rules.State.SENT.value)
    incoming = ((Referral.to_agency == agency) & Referral.state.not_in(RECEIVER_HIDDEN)
                & ~((Referral.state == rules.State.WITHDRAWN.value) & never_sent))
    which = {"out": outgoing, "in": incoming}.get(direction or "", or_(outgoing, incoming))
    query = (select(Referral).join(Family, Family.id == Referral.family_id)
             .where(which, _visible_to(agency, now))
             .order_by(Referral.created_at.desc(), Referral.id.desc()))
    if state is not None:
        query = query.where(Referral.state == state)
    refs = list(session.scalars(query))
    ciphers = vault.for_families(sorted({r.family_id for r in refs}))
    apts = _appointments(session, refs)
    out = [_out(r, _reason(ciphers[r.family_id], r), ciphers[r.family_id],
                appointments=apts[r.id]) for r in refs]
    if with_names:
        for item, ref in zip(out, refs, strict=True):
            family = session.get(Family, ref.family_id)  # loaded by the join above
            item["family_name"] = None if family is None else ciphers[ref.family_id].open(
                "families", "display_name", family.id, family.display_name)
    # Reasons of several families were read: which ones goes on record (as
    # search records what it found), so an auditor can follow each family.
    _audit(session, actor, Action.REFERRAL_LIST, now, direction=direction, state=state,
           count=len(out), families=sorted({r.family_id for r in refs}))
    session.commit()
    return out


def family_referrals(session: Session, vault: Vault, actor: Actor, family_id: str,
                     now: datetime) -> list[dict[str, Any]]:
    """The family's referrals the caller may know of, newest first."""
    view = _visible(session, vault, actor, family_id, now)
    every = list(session.scalars(
        select(Referral).where(Referral.family_id == family_id)
        .order_by(Referral.created_at.desc(), Referral.id.desc())))
    sent = _ever_sent(session, [r.id for r in every])
    refs = [r for r in every if _sees(actor, r, r.id in sent)]
    if actor.is_family:
        hidden = concealed_from_family(session, family_id, now).involvement
        refs = [r for r in refs if r.from_agency not in hidden and r.to_agency not in hidden]
    apts = _appointments(session, refs)
    out = [_out(r, _reason(view.cipher, r), view.cipher, appointments=apts[r.id])
           for r in refs]
    _audit(session, actor, Action.REFERRAL_LIST, now, family_id=family_id, count=len(out))
    session.commit()
    return out


# The family id looked up when a referral id names none: the same statements
# then run as for a referral of a family the caller may not see.
NOWHERE = "fam_00000000000000000000"


def _find(session: Session, vault: Vault, actor: Actor, referral_id: str, now: datetime,
          *, lock: bool = False, recording: bool = False) -> tuple[Referral, FamilyView]:
    """The referral and its family if the caller may know of it; otherwise
    `FamilyNotFound`, as for an absent one.

    An absent referral, one of a family the caller may not see and one the
    caller's agency may not know of do the same work (the same statements,
    the same key work) before the same 404, so that neither the answer nor
    its timing tells them apart. With `recording` (a coordinator recording
    the family's answer given in person) a coordinator of another involved
    agency that sees the family's whole form may know of it too."""
    found = session.scalar(select(Referral.family_id).where(Referral.id == referral_id))
    family_id = found or NOWHERE
    view: FamilyView | None
    try:
        view = _visible(session, vault, actor, family_id, now, lock=lock)
    except FamilyNotFound as exc:
        view, refused = None, exc
    else:
        refused = FamilyNotFound("not_visible", family_id)
    recorders = _recorders(session, family_id) if recording else {}
    ref = session.get(Referral, referral_id, populate_existing=lock)
    ever_sent = referral_id in _ever_sent(session, [referral_id])
    if view is None or ref is None or not (
            _sees(actor, ref, ever_sent)
            or (recording and _records_for(actor, ref, view, recorders, now))):
        raise refused
    if actor.is_family and {ref.from_agency, ref.to_agency} & concealed_from_family(
            session, family_id, now).involvement:
        raise FamilyNotFound("absent")
    return ref, view


def _records_for(actor: Actor, ref: Referral, view: FamilyView,
                 recorders: dict[int, str | None], now: datetime) -> bool:
    """Whether a member of staff of an agency other than the two sides may
    know of the family's referral, to record its answer: its agency is
    involved and sees the whole current form. Never the receiving agency
    while it may not know of it (that would tell it a referral awaits)."""
    if (actor.is_family or actor.agency_id == ref.to_agency
            or not view.involved(actor.agency_id) or view.form is None):
        return False
    return consent.view_of_form(view.form, str(actor.agency_id),
                                recorders.get(view.form.version), now).full


def _history(session: Session, ref: Referral) -> list[ReferralEvent]:
    return list(session.scalars(select(ReferralEvent).where(
        ReferralEvent.referral_id == ref.id).order_by(ReferralEvent.seq)))


def _detail(session: Session, view: FamilyView, actor: Actor, ref: Referral,
            now: datetime) -> dict[str, Any]:
    full = actor.is_family or (view.form is not None and _form_view(
        session, actor, view.family.id, view.form, now).full)
    concealed = (concealed_from_family(session, view.family.id, now).involvement
                 if actor.is_family else frozenset())
    return _out(ref, _reason(view.cipher, ref), view.cipher, _history(session, ref),
                _appointments(session, [ref])[ref.id], full=full, concealed=concealed)


def get_referral(session: Session, vault: Vault, actor: Actor, referral_id: str,
                 now: datetime, *, with_name: bool = False) -> dict[str, Any]:
    """One referral with its history of states (who, when, why); with
    `with_name` (the staff pages) its family's `family_name` too."""
    ref, view = _find(session, vault, actor, referral_id, now)
    out = _detail(session, view, actor, ref, now)
    if with_name:
        out["family_name"] = view.cipher.open("families", "display_name", view.family.id,
                                              view.family.display_name)
    _audit(session, actor, Action.REFERRAL_READ, now, family_id=ref.family_id,
           referral=ref.id)
    session.commit()
    return out


ACTIONS = {rules.Act.ACCEPT: Action.REFERRAL_ACCEPT, rules.Act.DECLINE: Action.REFERRAL_DECLINE,
           rules.Act.WITHDRAW: Action.REFERRAL_WITHDRAW, rules.Act.CLOSE: Action.REFERRAL_CLOSE}


def check_act(session: Session, vault: Vault, actor: Actor, referral_id: str, act: rules.Act,
              now: datetime) -> None:
    """The checks of `act_on_referral` that come before 422, without acting."""
    ref, _ = _find(session, vault, actor, referral_id, now)
    _may_act(actor, ref, act)


# Acts the receiving agency's practitioners make too (the others are a coordinator's).
BY_PRACTITIONERS = frozenset({rules.Act.BOOK, rules.Act.ATTENDED, rules.Act.MISSED,
                              rules.Act.CANCEL_APPOINTMENT, rules.Act.CLOSE})


def _may_act(actor: Actor, ref: Referral, act: rules.Act) -> None:
    party = rules.WHO[act]
    agency = ref.to_agency if party == rules.Party.RECEIVER else ref.from_agency
    roles = {Role.COORDINATOR, Role.PRACTITIONER} if act in BY_PRACTITIONERS else {
        Role.COORDINATOR}
    if actor.is_family or actor.agency_id != agency or actor.role not in roles:
        whose = "receiving" if party == rules.Party.RECEIVER else "referring"
        who = "staff" if act in BY_PRACTITIONERS else "a coordinator"
        raise NotPermitted(f"only {who} of the {whose} agency may do this")


def act_on_referral(session: Session, vault: Vault, actor: Actor, referral_id: str,
                    act: rules.Act, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Accept (the receiving agency becomes involved, naming its contact
    worker), decline or withdraw (with a reason the other side reads), or
    close after an appointment attended or missed (with an outcome note the
    referrer reads in the history; staff of the receiving agency).
    A move the diagram does not have is a `Conflict`, storing nothing."""
    ref, view = _find(session, vault, actor, referral_id, now, lock=True)
    _may_act(actor, ref, act)
    moved = _move(ref, act)
    detail: dict[str, Any] = {}
    if act == rules.Act.ACCEPT:
        worker = data.get("contact_worker")
        errors = contact_worker_errors(session, actor, ref.to_agency, worker)
        if errors:
            raise InvalidInput(errors)
        if not consent.decide(view.form, ref.to_agency, INVOLVEMENT, now, view.duty):
            raise Conflict("the family's current form no longer lets your agency know of "
                           "it; it cannot be accepted now", reason="not_agreed")
        involve(session, view, actor, ref.to_agency, worker, now)
        detail["contact_worker"] = worker
    note = data.get("outcome_note") if act == rules.Act.CLOSE else data.get("reason")
    _record(session, view.cipher, ref, actor, moved, note, now)
    _audit(session, actor, ACTIONS[act], now, family_id=ref.family_id, referral=ref.id,
           state=moved.value, **detail)
    session.commit()
    return _detail(session, view, actor, ref, now)


def _move(ref: Referral, act: rules.Act) -> rules.State:
    try:
        return rules.next_state(rules.State(ref.state), act)
    except rules.IllegalTransition as exc:
        raise Conflict(str(exc)) from None


def _record(session: Session, cipher: FamilyCipher, ref: Referral, actor: Actor,
            moved: rules.State, note: str | None, now: datetime) -> None:
    """Move the referral and add the state to its history."""
    ref.state = moved.value
    seq = (session.scalar(select(func.max(ReferralEvent.seq)).where(
        ReferralEvent.referral_id == ref.id)) or 0) + 1
    session.add(_event(cipher, ref, actor, seq, note, now))


# An appointment is booked for the coming two years, or recorded after the
# fact up to a year back; a moment outside that is a typing slip (year 252).
BOOK_BACK = timedelta(days=366)
BOOK_AHEAD = timedelta(days=2 * 366)


def appointment_errors(at: datetime, now: datetime) -> dict[str, list[str]]:
    """The appointment's moment, checked against `now` (a 422 naming `at`)."""
    if not now - BOOK_BACK <= at <= now + BOOK_AHEAD:
        return {"at": ["must be within a year before and two years after today"]}
    return {}


def check_book(session: Session, vault: Vault, actor: Actor, referral_id: str,
               now: datetime) -> None:
    """The checks of `book_appointment` that come before 422, without acting."""
    ref, _ = _find(session, vault, actor, referral_id, now)
    _may_act(actor, ref, rules.Act.BOOK)


def book_appointment(session: Session, vault: Vault, actor: Actor, referral_id: str,
                     data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Book an appointment for an accepted referral (or one whose last
    appointment was missed): the referral becomes `booked`. Staff of the
    receiving agency only (`NotPermitted`); from any other state a
    `Conflict`, storing nothing. The place and who accompanies the family are
    sealed under the family's key."""
    ref, view = _find(session, vault, actor, referral_id, now, lock=True)
    _may_act(actor, ref, rules.Act.BOOK)
    errors = appointment_errors(data["at"], now)
    if errors:
        raise InvalidInput(errors)
    moved = _move(ref, rules.Act.BOOK)
    apt_id = new_id("apt")
    cipher = view.cipher
    accompanied = data.get("accompanied_by")
    apt = Appointment(
        id=apt_id, referral_id=ref.id, at=data["at"],
        place=cipher.seal("appointments", "place", apt_id, data["place"]),
        interpreter_language=data.get("interpreter_language"),
        accompanied_by=None if accompanied is None else cipher.seal(
            "appointments", "accompanied_by", apt_id, accompanied),
        created_at=now,
    )
    session.add(apt)
    _record(session, cipher, ref, actor, moved, None, now)
    _audit(session, actor, Action.APPOINTMENT_BOOK, now, family_id=ref.family_id,
           referral=ref.id, appointment=apt_id, at=iso_time(apt.at))
    session.commit()
    return _appointment_out(cipher, apt)


def _find_appointment(session: Session, vault: Vault, actor: Actor, referral_id: str,
                      appointment_id: str, now: datetime, *, lock: bool = False
                      ) -> tuple[Referral, FamilyView, Appointment]:
    ref, view = _find(session, vault, actor, referral_id, now, lock=lock)
    apt = session.get(Appointment, appointment_id, populate_existing=lock)
    if apt is None or apt.referral_id != ref.id:
        raise FamilyNotFound("absent")
    return ref, view, apt


def check_outcome(session: Session, vault: Vault, actor: Actor, referral_id: str,
                  appointment_id: str, now: datetime) -> None:
    """The checks of `set_outcome` that come before 422, without acting."""
    ref, _, _ = _find_appointment(session, vault, actor, referral_id, appointment_id, now)
    _may_act(actor, ref, rules.Act.ATTENDED)


def set_outcome(session: Session, vault: Vault, actor: Actor, referral_id: str,
                appointment_id: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Record what became of an appointment, once (a second time is a
    `Conflict`): `attended` and `missed` move a booked referral on,
    `cancelled` takes it back to `accepted`. The note is sealed."""
    ref, view, apt = _find_appointment(session, vault, actor, referral_id, appointment_id,
                                       now, lock=True)
    act = rules.Act(data["outcome"])
    _may_act(actor, ref, act)
    if apt.outcome is not None:
        raise Conflict(f"this appointment is already marked {apt.outcome}")
    moved = _move(ref, act)
    note = data.get("note")
    apt.outcome = act.value
    apt.note = None if note is None else view.cipher.seal("appointments", "note", apt.id, note)
    _record(session, view.cipher, ref, actor, moved, None, now)
    _audit(session, actor, Action.APPOINTMENT_OUTCOME, now, family_id=ref.family_id,
           referral=ref.id, appointment=apt.id, outcome=act.value)
    session.commit()
    return _appointment_out(view.cipher, apt)


def check_family_answer(session: Session, vault: Vault, actor: Actor, family_id: str,
                        referral_id: str, now: datetime) -> None:
    """The checks of `family_answer` that come before 422, without acting."""
    _family_referral(session, vault, actor, family_id, referral_id, now)


def _family_referral(session: Session, vault: Vault, actor: Actor, family_id: str,
                     referral_id: str, now: datetime, *, lock: bool = False
                     ) -> tuple[Referral, FamilyView]:
    """The referral the family (or a coordinator recording its answer) answers.

    Staff: only a coordinator (`NotPermitted`) of an involved agency
    (`NotPermitted`) that knows of the referral (the referrer, or an agency
    seeing the whole form; else 404 as absent), never of the receiving
    agency (`NotPermitted`): it would be answering its own referral."""
    if not actor.is_family and actor.role != Role.COORDINATOR:
        raise NotPermitted("only the family, or a coordinator of another involved agency "
                           "recording its answer, answers a referral awaiting it")
    ref, view = _find(session, vault, actor, referral_id, now, lock=lock,
                      recording=not actor.is_family)
    if ref.family_id != family_id:
        raise FamilyNotFound("absent")
    if not actor.is_family:
        _involved(view, actor)
        if actor.agency_id == ref.to_agency:
            raise NotPermitted("the agency the family is referred to may not record the "
                               "family's answer; a coordinator of another involved agency "
                               "can, or the family on its own page")
    return ref, view


def family_answer(session: Session, vault: Vault, actor: Actor, family_id: str,
                  referral_id: str, agree: bool, now: datetime,
                  on_behalf: dict[str, Any] | None = None) -> dict[str, Any]:
    """The family agrees to a referral awaiting it, or refuses it (only from
    `awaiting_family`, else a `Conflict`).

    The family acts itself (`on_behalf` None), or a coordinator of an
    involved agency other than the receiving one records its answer given
    in person, with `on_behalf` = {"signed_by", "method"} (flagged as such
    in the audit log; see `_family_referral` for who may).
    Agreeing writes a new version of the form in force, same purpose and
    validity, signed today by the family (on its page: the same signer,
    method `family_portal`; in person: that signer and method, the
    coordinator as witness), adding exactly the asked cells for the
    receiving agency (none when they are granted already); the referral is
    `sent`. With no form in force it is a `Conflict`, storing nothing.
    Refusing makes it `declined_by_family`; the receiving agency never
    learns of it."""
    ref, view = _family_referral(session, vault, actor, family_id, referral_id, now, lock=True)
    act = rules.Act.FAMILY_AGREES if agree else rules.Act.FAMILY_REFUSES
    moved = _move(ref, act)
    version: int | None = None
    if agree:
        form, row = view.form, view.form_row
        if form is None or row is None or not form.in_force(now):
            raise Conflict("no consent form is in force for this family; one must be "
                           "signed before agreeing to a referral", reason="no_form")
        asked = ref.fields.split(",") if ref.fields else []
        added = frozenset((ref.to_agency, f) for f in asked) - form.cells
        if added:
            old_id = f"v{row.version}"
            signed_by = (on_behalf["signed_by"] if on_behalf else view.cipher.open(
                "consent_forms", "signed_by", old_id, row.signed_by))
            purpose = view.cipher.open("consent_forms", "purpose", old_id, row.purpose)
            meta = dataclasses.replace(
                consent_store.FormMeta.of(row), signed_on=now.date(),
                method=on_behalf["method"] if on_behalf else consent.Method.FAMILY_PORTAL,
                witness=None if actor.is_family else actor.username,
                interpreter_language=None)
            try:
                written, _ = _write_sealed(
                    session, view, meta, signed_by, purpose,
                    row.version + 1, form.cells | added,
                    change=consent.describe_grant(ref.to_agency, sorted(f for _, f in added)),
                    changed_by=actor.label, now=now)
            except IntegrityError as exc:
                session.rollback()
                raise Conflict("the consent form changed meanwhile; reload it and try "
                               "again") from exc
            version = written.version
    _record(session, view.cipher, ref, actor, moved, None, now)
    _audit(session, actor, Action.REFERRAL_AGREE if agree else Action.REFERRAL_REFUSE, now,
           family_id=ref.family_id, referral=ref.id, state=moved.value, version=version,
           **({"on_behalf_of_family": True, "method": on_behalf["method"]}
              if on_behalf else {}))
    session.commit()
    return _detail(session, view, actor, ref, now)
