"""The family's consent form: reading, recording, revoking, its history, and
how much of it the caller's agency sees.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import consent.services as consent_store
from audit.model import Action
from consent import model as consent
from consent.errors import NoConsentForm
from consent.tables import ConsentFormRow
from coordination.actors import Actor
from coordination.casework import areas, concealment
from coordination.casework.common import (
    _as_date,
    _audit,
    _involved,
    _visible,
    catalogue,
    reference_errors,
)
from coordination.casework.form_versions import (
    _family_extras,
    _form_out,
    _form_view,
    _may_name_agency,
    _reader,
    _recorders,
    _write_sealed,
)
from coordination.crypto import Vault
from coordination.errors import Conflict, InvalidInput
from coordination.model import Agency, ApiToken, Staff


def get_consent(
    session: Session, vault: Vault, actor: Actor, family_id: str, now: datetime
) -> dict[str, Any]:
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    if view.form_row is None or view.form is None:
        raise NoConsentForm("no consent form has been recorded for this family")
    seen = _form_view(session, actor, family_id, view.form, now)
    out = _family_extras(_form_out(view.cipher, view.form_row, view.form, now, seen), view,
                         session, actor, now)
    _audit(session, actor, Action.CONSENT_READ, now, family_id=family_id,
           version=view.form_row.version, **({} if seen.full else {"view": "own_column"}))
    session.commit()
    return out


def consent_errors(session: Session, data: dict[str, Any], now: datetime
                   ) -> dict[str, list[str]]:
    """What is wrong with a signed form beyond its shape (works on raw input):
    unknown agencies or fields in the grid, dates out of range."""
    errors: dict[str, list[str]] = {}
    grants = data.get("grants")
    if isinstance(grants, dict):
        known_agencies = set(session.scalars(select(Agency.id)))
        known_fields = {f.id for f in catalogue(session)}
        for agency_id, field_ids in grants.items():
            problems = [] if agency_id in known_agencies else [f"unknown agency '{agency_id}'"]
            if isinstance(field_ids, list):
                problems += [f"unknown field '{f}'" for f in field_ids
                             if isinstance(f, str) and f not in known_fields]
            if problems:
                errors[f"grants.{agency_id}"] = problems
    valid_until = _as_date(data.get("valid_until"))
    if valid_until and valid_until < now.date():
        errors["valid_until"] = ["must not be in the past"]
    signed_on = _as_date(data.get("signed_on"))
    if signed_on and signed_on > now.date():
        errors["signed_on"] = ["must not be in the future"]
    witness = data.get("witness")
    if isinstance(witness, str) and "\x00" not in witness and session.scalars(
            select(Staff.id).where(Staff.username == witness, Staff.active)).first() is None:
        errors["witness"] = [f"'{witness}' is not a staff member's username"]
    return errors


def record_consent(
    session: Session, vault: Vault, actor: Actor, family_id: str, data: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Record a newly signed joint form as a whole new version.

    The grid replaces the previous one. The first form, or one with
    `reissue_pin`, issues the family's receipt code and PIN (returned once).
    """
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    errors = consent_errors(session, data, now)
    if errors:
        raise InvalidInput(errors, "the form has invalid values")
    cells = consent.cells_from_grants(data["grants"])
    family_changed = session.scalar(
        select(func.max(ConsentFormRow.recorded_at))
        .where(ConsentFormRow.family_id == family_id,
               or_(ConsentFormRow.changed_by == "family",
                   ConsentFormRow.change.like("end part %")))
    )
    if family_changed is not None and data["signed_on"] < family_changed.date():
        raise Conflict(
            f"the family changed its consent on {family_changed.date().isoformat()}, after "
            "this form was signed; record a form signed since then"
        )
    version = (view.form_row.version if view.form_row else 0) + 1
    meta = consent_store.FormMeta(
        signed_by=b"",
        signed_on=data["signed_on"],
        method=data["method"],
        witness=data.get("witness") or actor.username,
        interpreter_language=data.get("interpreter_language"),
        purpose=b"",
        legal_basis=data.get("legal_basis", "consent"),
        valid_until=data["valid_until"],
        statistics=bool(data.get("statistics", False)),
    )
    try:
        row, form = _write_sealed(
            session, view, meta, data["signed_by"], data["purpose"], version, cells,
            change="signed" if version == 1 else "re-signed", changed_by=actor.label, now=now,
        )
        receipt = None
        if view.form_row is None or data.get("reissue_pin"):
            code, pin = consent_store.issue_receipt(session, family_id, now)
            receipt = {"code": code, "pin": pin}
            # A new PIN also ends the family's open sessions: the old receipt
            # may be in the wrong hands.
            session.execute(
                update(ApiToken)
                .where(ApiToken.family_id == family_id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        dropped = areas.drop_area_unless_counted(session, view, meta.statistics)
        _audit(session, actor, Action.CONSENT_SIGN, now, family_id=family_id,
               version=version, reissued_pin=receipt is not None, statistics=meta.statistics,
               area_cleared=dropped)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("the consent form changed meanwhile; reload it and try again") from exc
    # The caller's agency recorded this version, so it reads all of it.
    out = _form_out(view.cipher, row, form, now,
                    consent.view_of_form(form, _reader(actor), actor.agency_id, now))
    if receipt:
        out["receipt"] = receipt
    return out


def revoke_consent(
    session: Session,
    vault: Vault,
    actor: Actor,
    family_id: str,
    agency_id: str | None,
    field_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Revoke one cell, a column, a row, or everything (both None).

    Makes a new version that takes effect on the very next request; when
    nothing would change, no version is written. A coordinator without the
    full view of the form revokes only in its own agency's column
    (`NotPermitted` otherwise).
    """
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    # Whether a new version is written would tell a reader of its own column
    # whether the others hold cells: without the full view, only its own.
    # (With no form at all every revocation is a 409 alike: nothing to tell.)
    if view.form is not None:
        _may_name_agency(session, view, actor, "" if agency_id is None else agency_id, now)
    errors = reference_errors(session, agency_id, field_id)
    if errors:
        raise InvalidInput(errors)
    if view.form_row is None or view.form is None:
        raise Conflict("no consent form has been recorded for this family; nothing to revoke")
    remaining = consent.revoke(view.form.cells, agency_id, field_id)
    if actor.is_family and agency_id is not None and agency_id in (
            concealment.concealed_from_family(session, family_id, now).involvement):
        # Answered as for an agency with no cells: the family's view of the
        # form must not change, nor tell that a concealed agency takes part.
        remaining = view.form.cells
    if remaining == view.form.cells:
        out = _family_extras(_form_out(view.cipher, view.form_row, view.form, now,
                                       _form_view(session, actor, family_id, view.form, now)),
                             view, session, actor, now)
        _audit(session, actor, Action.CONSENT_REVOKE, now, family_id=family_id,
               reason="nothing_to_revoke", agency=agency_id, field=field_id)
        session.commit()
        return out
    old_id = f"v{view.form_row.version}"
    signed_by = view.cipher.open("consent_forms", "signed_by", old_id, view.form_row.signed_by)
    purpose = view.cipher.open("consent_forms", "purpose", old_id, view.form_row.purpose)
    meta = consent_store.FormMeta.of(view.form_row)
    try:
        row, form = _write_sealed(
            session, view, meta, signed_by, purpose, view.form_row.version + 1, remaining,
            change=consent.describe_revocation(agency_id, field_id), changed_by=actor.label,
            now=now,
        )
        _audit(session, actor, Action.CONSENT_REVOKE, now, family_id=family_id,
               version=row.version, agency=agency_id, field=field_id)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("the consent form changed meanwhile; reload it and try again") from exc
    return _family_extras(_form_out(view.cipher, row, form, now,
                                    _form_view(session, actor, family_id, form, now)),
                          view, session, actor, now)


def consent_history(
    session: Session, vault: Vault, actor: Actor, family_id: str, now: datetime
) -> list[dict[str, Any]]:
    """Every version, oldest first, each as the reader may see it
    (`consent.model.view_of_form`): without the full view of a version, its
    change text and `changed_by` are given only when they name no other
    agency (the family, or the reader's own staff)."""
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    versions = consent_store.history(session, family_id)
    recorders = _recorders(session, family_id)
    authors = {row.changed_by for row, _ in versions} | {
        row.witness for row, _ in versions if row.witness is not None}
    agency_of: dict[str, str] = {
        username: agency for username, agency in session.execute(
            select(Staff.username, Staff.agency_id).where(Staff.username.in_(authors)))}
    reader = _reader(actor)
    hidden = (concealment.concealed_from_family(session, family_id, now) if actor.is_family
              else concealment.NOTHING)
    numbering = concealment.family_numbering(versions, hidden) if hidden else {}
    out = []
    for row, form in versions:
        if hidden and numbering.get(row.version) is None:
            continue
        seen = _form_view(session, actor, family_id, form, now, recorders=recorders)
        item = _form_out(view.cipher, row, form, now, seen)
        item["change"] = consent.change_as_read(row.change, reader, seen.full)
        own = row.changed_by == "family" or agency_of.get(row.changed_by) == reader
        item["changed_by"] = row.changed_by if seen.full or own else None
        if hidden:
            concealment.conceal_form(item, hidden, numbering[row.version] or row.version,
                                     agency_of)
        out.append(item)
    _audit(session, actor, Action.CONSENT_HISTORY, now, family_id=family_id)
    session.commit()
    return out


def sees_whole_form(session: Session, vault: Vault, actor: Actor, family_id: str,
                    now: datetime) -> bool:
    """Whether the actor reads the family's current form in full (no content
    is read, so nothing is audited)."""
    view = _visible(session, vault, actor, family_id, now)
    return actor.is_family or (
        view.form is not None and _form_view(session, actor, family_id, view.form, now).full)


def may_refer(session: Session, vault: Vault, actor: Actor, family_id: str,
              now: datetime) -> bool:
    """Whether `refer` would let the actor's agency ask at all: the full view
    of the current form, or no form yet (every referral then is a 409
    alike). No content is read, so nothing is audited."""
    view = _visible(session, vault, actor, family_id, now)
    return view.form is None or _form_view(session, actor, family_id, view.form, now).full
