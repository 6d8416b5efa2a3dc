"""Which agencies work with a family: referring it, an agency's own
involvement and contact worker, and ending an agency's part.
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
from consent.errors import NotAgreedToKnow
from consent.model import Form
from consent.tables import ConsentFormRow
from coordination.actors import Actor
from coordination.casework import concealment
from coordination.casework.common import (
    INVOLVEMENT,
    FamilyView,
    InvolvementFacts,
    _audit,
    _involved,
    _visible,
    reference_errors,
)
from coordination.casework.form_versions import (
    _family_extras,
    _form_out,
    _form_view,
    _may_name_agency,
    _write_sealed,
)
from coordination.crypto import Vault
from coordination.errors import Conflict, InvalidInput, NotPermitted
from coordination.model import Involvement, Staff
from coordination.roles import InvolvementStatus


def _involvement_out(inv: Involvement | InvolvementFacts) -> dict[str, Any]:
    worker = inv.contact_worker
    return {
        "agency": inv.agency_id,
        "status": inv.status,
        "since": inv.since.isoformat(),
        # A read's plain copy holds the username itself (`InvolvementFacts`).
        "contact_worker": worker if isinstance(worker, str) or worker is None
        else worker.username,
    }


def _active_staff(session: Session, agency_id: str, username: str) -> Staff | None:
    """The active staff member of that agency with that username, held (on
    PostgreSQL) until the commit, so that a deactivation meanwhile waits
    and then hands the role over."""
    if "\x00" in username:  # raw input; no database compares it
        return None
    return session.scalars(
        select(Staff).where(Staff.agency_id == agency_id, Staff.username == username,
                            Staff.active).with_for_update(read=True)).first()


def contact_worker_errors(session: Session, actor: Actor, agency_id: Any, username: Any
                          ) -> dict[str, list[str]]:
    """What is wrong with a contact worker named for `agency_id`'s involvement
    (raw input; None means not given). Only that agency names its own: in
    another agency's referral any name is refused; its own must be the
    username of an active staff member of that agency."""
    if not isinstance(username, str):
        return {}
    if agency_id != actor.agency_id:
        return {"contact_worker": [f"only {agency_id} itself names its contact worker; "
                                   "leave contact_worker out"]}
    if _active_staff(session, agency_id, username) is None:
        return {"contact_worker": [f"'{username}' is not an active staff member of "
                                   f"{agency_id}"]}
    return {}


def _contact_worker(session: Session, actor: Actor, agency_id: str, username: str | None
                    ) -> Staff | None:
    errors = contact_worker_errors(session, actor, agency_id, username)
    if errors:
        raise InvalidInput(errors)
    return None if username is None else _active_staff(session, agency_id, username)


def colleagues(session: Session, actor: Actor) -> list[str]:
    """Usernames of the active staff of the actor's agency: who may be named
    its contact worker."""
    return list(session.scalars(select(Staff.username).where(
        Staff.agency_id == actor.agency_id, Staff.active).order_by(Staff.username)))


def sees_whole_form(session: Session, view: FamilyView, actor: Actor, now: datetime) -> None:
    """`NotPermitted` unless the actor's agency sees the family's whole
    current form (or there is none): an answer about referring (made, not
    agreed, already involved) would tell a reader of its own column what the
    others' columns hold. (With no form every referral is a 409 alike.)"""
    if view.form is not None and not _form_view(
            session, actor, view.family.id, view.form, now).full:
        raise NotPermitted("your agency may not see the family's whole consent form, so "
                           "it may not refer the family; a coordinator who sees it can")


def involve(session: Session, view: FamilyView, actor: Actor, agency_id: str,
            contact_worker: str | None, now: datetime) -> Involvement:
    """Make `agency_id` actively involved with the family from today, with
    the contact worker it names (its own active staff; else `InvalidInput`).
    The caller has checked consent, audits and commits."""
    existing = next((i for i in view.involvements if i.agency_id == agency_id), None)
    if existing is None:
        existing = Involvement(family_id=view.family.id, agency_id=agency_id, created_at=now)
        session.add(existing)
        view.involvements.append(existing)
    existing.status = InvolvementStatus.ACTIVE
    existing.since = now.date()
    # Whoever was its contact worker before, the agency names one anew.
    existing.contact_worker = _contact_worker(session, actor, agency_id, contact_worker)
    existing.contact_since = now.date() if existing.contact_worker is not None else None
    existing.updated_at = now
    return existing


def refer(
    session: Session,
    vault: Vault,
    actor: Actor,
    family_id: str,
    agency_id: str,
    contact_worker: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Refer the family to another agency, which becomes involved.

    Needs the family's current form to grant that agency `involvement`
    (else `Conflict`: the family has not agreed that it may know of it),
    and the referrer's agency the full view of that form (else
    `NotPermitted`: the answer would tell it what other columns hold).
    """
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    if agency_id != actor.agency_id:
        sees_whole_form(session, view, actor, now)
    errors = reference_errors(session, agency_id)
    errors.update(contact_worker_errors(session, actor, agency_id, contact_worker))
    if errors:
        raise InvalidInput(errors)
    # Consent first: whether another agency is involved is itself shared
    # information, so a referral the family has not agreed to reveals nothing.
    if not consent.decide(view.form, agency_id, INVOLVEMENT, now):
        raise Conflict(str(NotAgreedToKnow(agency_id)), reason="not_agreed")
    if view.involved(agency_id):
        raise Conflict(f"agency '{agency_id}' is already involved with this family")
    existing = involve(session, view, actor, agency_id, contact_worker, now)
    _audit(session, actor, Action.INVOLVEMENT_REFER, now, family_id=family_id, agency=agency_id)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("the family's involvements changed meanwhile; try again") from exc
    return _involvement_out(existing)


def update_involvement(
    session: Session,
    vault: Vault,
    actor: Actor,
    family_id: str,
    agency_id: str,
    changes: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Close the actor's own agency's involvement, or name its contact worker
    (an active staff member of that agency; None clears it)."""
    view = _visible(session, vault, actor, family_id, now, lock=True)
    if agency_id != actor.agency_id:
        raise NotPermitted("only that agency's coordinator may change its involvement")
    worker = _contact_worker(session, actor, agency_id, changes.get("contact_worker"))
    inv = next((i for i in view.involvements if i.agency_id == agency_id), None)
    if inv is None:
        raise Conflict("your agency has no involvement with this family")
    if "status" in changes:
        inv.status = changes["status"]
    if "contact_worker" in changes and inv.contact_worker is not worker:
        inv.contact_worker = worker
        inv.contact_since = now.date() if worker is not None else None
    if session.is_modified(inv):
        inv.updated_at = now
    detail: dict[str, Any] = {"agency": agency_id, "status": inv.status}
    if "contact_worker" in changes:
        detail["contact_worker"] = worker.username if worker else None
    _audit(session, actor, Action.INVOLVEMENT_UPDATE, now, family_id=family_id, **detail)
    session.commit()
    return _involvement_out(inv)


def check_end_involvement(
    session: Session, vault: Vault, actor: Actor, family_id: str, agency_id: str,
    now: datetime,
) -> None:
    """The checks of `end_involvement` that come before 422, without acting."""
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    _may_name_agency(session, view, actor, agency_id, now, ending=True)


def end_involvement(
    session: Session,
    vault: Vault,
    actor: Actor,
    family_id: str,
    agency_id: str,
    on_behalf: dict[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """End an agency's part in the family's record, as the family wishes:
    its active involvement closes and its column is revoked, in one new
    form version (when a form was ever recorded), so the family no longer
    exists for that agency.

    The family acts itself (`on_behalf` None); a coordinator of an involved
    agency records the family's wish with `on_behalf` = {"signed_by",
    "method"}, flagged as such in the audit log. A coordinator whose agency
    may not see who is involved (the `involvement` cell, in force) may end
    only its own agency's part (`NotPermitted`). `Conflict` when the agency has no part to end,
    or when a duty grant in force names it (the family cannot end that).
    (The agency is to be told in its worklist once that exists.)
    """
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    _may_name_agency(session, view, actor, agency_id, now, ending=True)
    errors = reference_errors(session, agency_id)
    if errors:
        raise InvalidInput(errors)
    # As for an agency with no part: the family must not learn of a concealed one
    # (not even through a duty grant's 409).
    concealed = actor.is_family and agency_id in concealment.concealed_from_family(
        session, family_id, now).involvement
    standing = [g for g in view.duty if g.agency == agency_id and g.in_force(now)]
    if standing and not concealed:
        until = max(g.until for g in standing).isoformat()
        raise Conflict(f"a duty grant keeps agency '{agency_id}' involved through {until}: "
                       "the law requires this sharing, so the family cannot end its part "
                       "until then", reason="duty_grant")
    inv = next((i for i in view.involvements
                if i.agency_id == agency_id and i.status == InvolvementStatus.ACTIVE), None)
    column = frozenset(c for c in (view.form.cells if view.form else ()) if c[0] == agency_id)
    if concealed:
        inv, column = None, frozenset()
    if inv is None and not column:
        raise Conflict(f"agency '{agency_id}' has no part in this family's record: it is not "
                       "involved and the form grants it nothing; nothing to end")
    if inv is not None:
        inv.status = InvolvementStatus.CLOSED
        inv.updated_at = now
    row: ConsentFormRow | None = None
    form: Form | None = None
    try:
        if view.form_row is not None and view.form is not None:
            old_id = f"v{view.form_row.version}"
            signed_by = (on_behalf["signed_by"] if on_behalf else view.cipher.open(
                "consent_forms", "signed_by", old_id, view.form_row.signed_by))
            purpose = view.cipher.open("consent_forms", "purpose", old_id, view.form_row.purpose)
            meta = dataclasses.replace(
                consent_store.FormMeta.of(view.form_row), signed_on=now.date(),
                method=on_behalf["method"] if on_behalf else consent.Method.FAMILY_PORTAL,
                witness=None if actor.is_family else actor.username,
                interpreter_language=None)
            row, form = _write_sealed(
                session, view, meta, signed_by, purpose, view.form_row.version + 1,
                view.form.cells - column, change=consent.describe_ending(agency_id),
                changed_by=actor.label, now=now)
        _audit(session, actor, Action.INVOLVEMENT_END, now, family_id=family_id,
               agency=agency_id, involvement_closed=inv is not None,
               version=row.version if row else None,
               **({"on_behalf_of_family": True, "method": on_behalf["method"]}
                  if on_behalf else {}))
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("the family's record changed meanwhile; reload it and try again") from exc
    out: dict[str, Any] = {"agency": agency_id, "involvement_closed": inv is not None,
                           "form": None}
    if row is not None and form is not None:
        seen = _form_view(session, actor, family_id, form, now)
        out["form"] = _family_extras(_form_out(view.cipher, row, form, now, seen), view,
                                     session, actor, now)
    return out
