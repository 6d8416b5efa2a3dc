"""Access requests (CONTRACT.md, "Access requests"): an agency the family is
visible to asks the family for cells it cannot see, with a reason; the
family approves or declines, itself or in person (recorded by a coordinator
of another involved agency who reads the whole form). Approving writes a new
version of the form in force adding exactly the asked cells.

The rules (one pending request per agency and family, none for a field the
family declined less than 30 days ago, the lapse after 30 days) are
`casework.access_request_rules`; here they are stored. The reason, and the
name of whoever gave an answer in person, are sealed under the family's key.
A request the caller may not know of answers like an absent one (404).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import consent.services as consent_store
from audit.model import Action
from consent import model as consent
from coordination.actors import Actor
from coordination.casework import access_request_rules as rules
from coordination.casework.common import (
    FamilyView,
    _audit,
    _involved,
    _visible,
    _visible_to,
    catalogue,
    iso_time,
    new_id,
)
from coordination.casework.concealment import (
    NOTHING,
    Concealed,
    concealed_from_family,
    family_numbering,
    shown_version,
    staff_agencies,
    staff_for_family,
)
from coordination.casework.form_versions import _form_view, _write_sealed
from coordination.crypto import FamilyCipher, Vault
from coordination.errors import Conflict, FamilyNotFound, InvalidInput, NotPermitted
from coordination.model import AccessRequest, Family
from coordination.roles import Role

TABLE = "access_requests"


def request_errors(session: Session, data: Any) -> dict[str, list[str]]:
    """What is wrong with a request beyond its shape (works on raw input):
    asked rows that are not catalogue rows."""
    asked = data.get("fields") if isinstance(data, dict) else None
    if not isinstance(asked, list):
        return {}
    known = {f.id for f in catalogue(session)}
    unknown = [f"unknown field '{f}'" for f in asked if isinstance(f, str) and f not in known]
    return {"fields": unknown} if unknown else {}


def _asker(actor: Actor) -> None:
    if actor.is_family or actor.role not in {Role.PRACTITIONER, Role.COORDINATOR}:
        raise NotPermitted("only an agency's practitioners and coordinators ask for access")


def check_create(session: Session, vault: Vault, actor: Actor, family_id: str,
                 now: datetime) -> None:
    """The checks of `create_request` that come before 422, without acting."""
    _visible(session, vault, actor, family_id, now)
    _asker(actor)


def askable(session: Session, vault: Vault, actor: Actor, family_id: str,
            now: datetime) -> list[str]:
    """The catalogue rows the actor's agency could ask for: those the form in
    force does not grant it, in catalogue order. (No content is read, so
    nothing is audited; the family must be visible.)"""
    view = _visible(session, vault, actor, family_id, now)
    return [f.id for f in catalogue(session)
            if not consent.decide(view.form, str(actor.agency_id), f.id, now, view.duty)]


def _fields(req: AccessRequest) -> list[str]:
    return req.fields.split(",") if req.fields else []


def _past(req: AccessRequest) -> rules.Past:
    return rules.Past(rules.State(req.state), frozenset(_fields(req)), req.created_at,
                      req.answered_at)


def create_request(session: Session, vault: Vault, actor: Actor, family_id: str,
                   data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Ask the family that the caller's agency may see the `asked` rows, for
    `reason`. The family must be visible to the agency (else
    `FamilyNotFound`); unknown rows are `InvalidInput`. A `Conflict`, storing
    nothing, when the form in force already grants the agency one of them,
    when the agency has a pending request for this family, or when the
    family declined one of them for it less than 30 days ago."""
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _asker(actor)
    errors = request_errors(session, {"fields": data["asked"]})
    if errors:
        raise InvalidInput(errors)
    agency = str(actor.agency_id)
    wanted = set(data["asked"])
    asked = [f.id for f in catalogue(session) if f.id in wanted]
    granted = [f for f in asked if consent.decide(view.form, agency, f, now, view.duty)]
    earlier = session.scalars(select(AccessRequest).where(
        AccessRequest.family_id == family_id, AccessRequest.agency_id == agency))
    refused = rules.refusal(asked, granted, [_past(r) for r in earlier], now)
    if refused is not None:
        raise Conflict(refused.message)
    req_id = new_id("req")
    req = AccessRequest(
        id=req_id, family_id=family_id, agency_id=agency, asked_by=str(actor.username),
        fields=",".join(asked), state=rules.State.PENDING.value, created_at=now,
        reason=view.cipher.seal(TABLE, "reason", req_id, data["reason"]))
    session.add(req)
    _audit(session, actor, Action.ACCESS_REQUEST_CREATE, now, family_id=family_id,
           request=req_id, agency=agency, fields=asked)
    session.commit()
    return _out(req, data["reason"], view.cipher, now, full=True)


def _out(req: AccessRequest, reason: str, cipher: FamilyCipher, now: datetime, *,
         full: bool) -> dict[str, Any]:
    """A request as its reader may see it. Without `full` (a reader not
    seeing the whole form), who recorded an answer given in person (staff of
    another agency) is left out: it would tell that agency takes part."""
    answered_by = req.answered_by
    if answered_by not in {None, "family"} and not full:
        answered_by = None
    return {
        "id": req.id,
        "family_id": req.family_id,
        "agency": req.agency_id,
        "asked_by": req.asked_by,
        "fields": _fields(req),
        "reason": reason,
        "state": rules.state_at(rules.State(req.state), req.created_at, now).value,
        "created_at": iso_time(req.created_at),
        "lapses_at": iso_time(rules.lapses_at(req.created_at)),
        "answered_at": None if req.answered_at is None else iso_time(req.answered_at),
        "answered_by": answered_by,
        "method": req.answer_method,
        "version": req.version,
    }


def _sees_whole_form(session: Session, view: FamilyView, actor: Actor, now: datetime) -> bool:
    return actor.is_family or (view.form is not None and _form_view(
        session, actor, view.family.id, view.form, now).full)


def _newest_first(session: Session, family_id: str) -> Any:
    return (select(AccessRequest).where(AccessRequest.family_id == family_id)
            .order_by(AccessRequest.created_at.desc(), AccessRequest.id.desc()))


def list_requests(session: Session, vault: Vault, actor: Actor, family_id: str,
                  now: datetime) -> list[dict[str, Any]]:
    """The family's access requests, newest first: all of them to the family
    (but those of an agency whose involvement a protection hold conceals),
    its own agency's to staff (of an agency the family is visible to)."""
    view = _visible(session, vault, actor, family_id, now)
    query = _newest_first(session, family_id)
    held = NOTHING
    if not actor.is_family:
        query = query.where(AccessRequest.agency_id == actor.agency_id)
    else:
        held = concealed_from_family(session, family_id, now)
        if held.involvement:
            query = query.where(AccessRequest.agency_id.not_in(sorted(held.involvement)))
    full = _sees_whole_form(session, view, actor, now)
    out = [_out(r, view.cipher.open(TABLE, "reason", r.id, r.reason), view.cipher, now,
                full=full) for r in session.scalars(query)]
    if actor.is_family and held.involvement:
        # Nor does it learn of that agency's staff recording its answers.
        agency_of = staff_agencies(session, (r["answered_by"] for r in out))
        for r in out:
            r["answered_by"] = staff_for_family(r["answered_by"], agency_of, held)
        _versions_as_family_reads(session, family_id, held, out)
    _audit(session, actor, Action.ACCESS_REQUEST_LIST, now, family_id=family_id,
           count=len(out))
    session.commit()
    return out


def _versions_as_family_reads(session: Session, family_id: str, held: Concealed,
                              out: list[dict[str, Any]]) -> None:
    """Each request's form version numbered as the family reads its form
    while a hold leaves versions out (no number beyond its current one)."""
    numbering = family_numbering(consent_store.history(session, family_id), held)
    for r in out:
        if r["version"] is not None:
            r["version"] = shown_version(numbering, r["version"])[1]


def _may_record(session: Session, view: FamilyView, actor: Actor, now: datetime) -> None:
    """Staff recording the family's answer given in person: a coordinator of
    an involved agency that reads the whole form (it tells the family what
    the request would change)."""
    if actor.is_family:
        return
    if actor.role != Role.COORDINATOR:
        raise NotPermitted("only a coordinator records the family's answer given in person")
    _involved(view, actor)
    if not _sees_whole_form(session, view, actor, now):
        raise NotPermitted("your agency may not see the family's whole consent form, so it "
                           "may not record the family's answer; the family can answer on "
                           "its page, or with a coordinator who sees its whole form")


def requests_to_record(session: Session, vault: Vault, actor: Actor, family_id: str,
                       now: datetime) -> list[dict[str, Any]]:
    """The pending requests of other agencies whose answer, given in person,
    the caller may record (see `answer_request`), newest first."""
    view = _visible(session, vault, actor, family_id, now)
    _may_record(session, view, actor, now)
    out = [_out(r, view.cipher.open(TABLE, "reason", r.id, r.reason), view.cipher, now,
                full=True)
           for r in session.scalars(_newest_first(session, family_id).where(
               AccessRequest.agency_id != actor.agency_id,
               AccessRequest.state == rules.State.PENDING.value))
           if rules.state_at(rules.State.PENDING, r.created_at, now) == rules.State.PENDING]
    _audit(session, actor, Action.ACCESS_REQUEST_LIST, now, family_id=family_id,
           count=len(out), to_record=True)
    session.commit()
    return out


def _find(session: Session, vault: Vault, actor: Actor, family_id: str, request_id: str,
          now: datetime, *, lock: bool = False) -> tuple[AccessRequest, FamilyView]:
    """The request and its family when the caller may answer it: the family
    itself, or a coordinator allowed by `_may_record` whose agency is not
    the asking one (`NotPermitted`). An unknown request, or one of another
    family, is `FamilyNotFound`, as for an absent family."""
    view = _visible(session, vault, actor, family_id, now, lock=lock)
    _may_record(session, view, actor, now)
    req = session.get(AccessRequest, request_id, populate_existing=lock)
    if req is None or req.family_id != family_id or (
            actor.is_family and req.agency_id in concealed_from_family(
                session, family_id, now).involvement):
        raise FamilyNotFound("absent")
    if not actor.is_family and req.agency_id == actor.agency_id:
        raise NotPermitted("your agency asked for this itself, so it may not record the "
                           "family's answer; the family answers on its page, or with a "
                           "coordinator of another agency that works with it")
    return req, view


def check_answer(session: Session, vault: Vault, actor: Actor, family_id: str,
                 request_id: str, now: datetime) -> None:
    """The checks of `answer_request` that come before 422, without acting."""
    _find(session, vault, actor, family_id, request_id, now)


def answer_request(session: Session, vault: Vault, actor: Actor, family_id: str,
                   request_id: str, approve: bool, on_behalf: dict[str, Any] | None,
                   now: datetime) -> dict[str, Any]:
    """The family approves or declines a pending request: itself
    (`on_behalf` None), or in person, recorded by a coordinator of another
    involved agency with `on_behalf` = {"signed_by", "method"}.

    Approving writes a new version of the form in force adding exactly the
    asked cells for the asking agency (none when all are granted already):
    the signer, purpose, legal basis and validity are the form's; the
    method is `family_portal` (the family itself) or the one recorded, with
    the recorder as witness. With no form in force it is a `Conflict`,
    storing nothing. A request answered already, or lapsed, is a
    `Conflict`."""
    req, view = _find(session, vault, actor, family_id, request_id, now, lock=True)
    try:
        rules.check_answerable(rules.State(req.state), req.created_at, now)
    except rules.NotAnswerable as exc:
        raise Conflict(str(exc)) from None
    method = on_behalf["method"] if on_behalf else consent.Method.FAMILY_PORTAL.value
    version: int | None = None
    if approve:
        version = _grant(session, view, actor, req, on_behalf, method, now)
    req.state = (rules.State.APPROVED if approve else rules.State.DECLINED).value
    req.answered_at = now
    req.answered_by = actor.label
    req.answer_method = method
    if on_behalf:
        req.answer_signed_by = view.cipher.seal(TABLE, "answer_signed_by", req.id,
                                                on_behalf["signed_by"])
    req.version = version
    detail: dict[str, Any] = {"request": req.id, "agency": req.agency_id,
                              "fields": _fields(req), "version": version}
    if on_behalf:
        detail.update(on_behalf_of_family=True, method=method)
    _audit(session, actor, Action.ACCESS_REQUEST_APPROVE if approve
           else Action.ACCESS_REQUEST_DECLINE, now, family_id=family_id, **detail)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("the consent form changed meanwhile; reload it and try again") from exc
    out = _out(req, view.cipher.open(TABLE, "reason", req.id, req.reason), view.cipher, now,
               full=True)
    if actor.is_family:
        held = concealed_from_family(session, family_id, now)
        if held.involvement:
            _versions_as_family_reads(session, family_id, held, [out])
    return out


def _grant(session: Session, view: FamilyView, actor: Actor, req: AccessRequest,
           on_behalf: dict[str, Any] | None, method: str, now: datetime) -> int | None:
    """Write the version adding the asked cells; its number, or None when
    nothing was left to add."""
    form, row = view.form, view.form_row
    if form is None or row is None or not form.in_force(now):
        raise Conflict("no consent form is in force for this family; a newly signed form "
                       "is needed before a request can be approved", reason="no_form")
    added = frozenset((req.agency_id, f) for f in _fields(req)) - form.cells
    if not added:
        return None
    old_id = f"v{row.version}"
    signed_by = (on_behalf["signed_by"] if on_behalf else
                 view.cipher.open("consent_forms", "signed_by", old_id, row.signed_by))
    purpose = view.cipher.open("consent_forms", "purpose", old_id, row.purpose)
    meta = dataclasses.replace(
        consent_store.FormMeta.of(row), signed_on=now.date(), method=method,
        witness=None if actor.is_family else actor.username, interpreter_language=None)
    try:
        written, _ = _write_sealed(
            session, view, meta, signed_by, purpose, row.version + 1, form.cells | added,
            change=consent.describe_grant(req.agency_id, sorted(f for _, f in added)),
            changed_by=actor.label, now=now)
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("the consent form changed meanwhile; reload it and try again") from exc
    return written.version


def answered_since(session: Session, agency_id: str, since: datetime, now: datetime
                   ) -> list[dict[str, Any]]:
    """The agency's requests the family answered at or after `since`, newest
    answer first, of families visible to the agency at `now` (for its
    worklist: `access_request.answered`). Opens nothing sealed and audits
    nothing; the caller that shows them does."""
    rows = session.scalars(
        select(AccessRequest).join(Family, Family.id == AccessRequest.family_id)
        .where(AccessRequest.agency_id == agency_id, AccessRequest.answered_at >= since,
               AccessRequest.state.in_([rules.State.APPROVED.value,
                                        rules.State.DECLINED.value]),
               _visible_to(agency_id, now))
        .order_by(AccessRequest.answered_at.desc(), AccessRequest.id.desc()))
    return [{"id": r.id, "family_id": r.family_id, "state": r.state, "fields": _fields(r),
             "answered_at": iso_time(r.answered_at) if r.answered_at else None}
            for r in rows]
