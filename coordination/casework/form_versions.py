"""A consent form version as each reader may see it (`consent.model.view_of_form`),
and writing a new sealed version: shared by the use cases that read or
change the family's form.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import consent.services as consent_store
from consent import model as consent
from consent.model import Form
from consent.tables import ConsentFormRow
from coordination.actors import Actor
from coordination.casework import concealment
from coordination.casework.common import INVOLVEMENT, FamilyView, iso_time
from coordination.crypto import FamilyCipher
from coordination.errors import NotPermitted
from coordination.model import Staff
from coordination.roles import InvolvementStatus


def _may_name_agency(session: Session, view: FamilyView, actor: Actor, agency_id: str,
                     now: datetime, *, ending: bool = False) -> None:
    # Whether another agency takes part is itself shared information: the
    # answer (a new version or not, 200 or 409, an involvement closed or
    # not) would tell it. Revoking another's cells needs the full view of
    # the form (which shows the grid); ending another's part needs what
    # shows who is involved: the `involvement` cell, in force.
    if actor.is_family or agency_id == actor.agency_id:
        return
    if ending:
        allowed = consent.decide(view.form, str(actor.agency_id), INVOLVEMENT, now).allowed
    else:
        allowed = view.form is not None and _form_view(session, actor, view.family.id,
                                                       view.form, now).full
    if not allowed:
        raise NotPermitted("your agency may not see who else takes part in this family's "
                           "record, so it may act only on its own part; the family can do "
                           "this on its page, or with a coordinator who sees its whole form")


def _reader(actor: Actor) -> str | None:
    """The agency reading a form (None: the family itself, which sees all)."""
    return None if actor.is_family else str(actor.agency_id)


def _recorders(session: Session, family_id: str) -> dict[int, str | None]:
    """Per version, the agency whose staff recorded the signed form it
    derives from: the latest newly signed form at or before it. Revocations
    and the family's own answers never make their author's agency the
    recorder. (One query.)"""
    rows = session.execute(
        select(ConsentFormRow.version, ConsentFormRow.change, Staff.agency_id)
        .outerjoin(Staff, Staff.username == ConsentFormRow.changed_by)
        .where(ConsentFormRow.family_id == family_id)
        .order_by(ConsentFormRow.version)
    ).all()
    out: dict[int, str | None] = {}
    recorder: str | None = None
    for version, change, agency in rows:
        if change in consent.SIGNED_CHANGES:
            recorder = agency
        out[version] = recorder
    return out


def _form_view(session: Session, actor: Actor, family_id: str, form: Form, now: datetime, *,
               recorders: dict[int, str | None] | None = None) -> consent.FormView:
    """How the actor may read this version (`consent.model.view_of_form`)."""
    if recorders is None:
        recorders = _recorders(session, family_id)
    return consent.view_of_form(form, _reader(actor), recorders.get(form.version), now)


def _form_out(
    cipher: FamilyCipher, row: ConsentFormRow, form: Form, now: datetime,
    view: consent.FormView | None = None,
) -> dict[str, Any]:
    """A form version as its reader may see it (`view`; None: all of it).
    Without the full view, nothing that names another agency or the signer
    is opened or returned."""
    full = view is None or view.full
    return {
        "version": row.version,
        "signed_by": (cipher.open("consent_forms", "signed_by", f"v{row.version}", row.signed_by)
                      if full else None),
        "signed_on": row.signed_on.isoformat(),
        "recorded_at": iso_time(row.recorded_at),
        "method": row.method,
        "witness": row.witness if full else None,
        "interpreter_language": row.interpreter_language if full else None,
        "purpose": cipher.open("consent_forms", "purpose", f"v{row.version}", row.purpose),
        "legal_basis": row.legal_basis,
        "valid_until": row.valid_until.isoformat(),
        "in_force": form.in_force(now),
        "statistics": bool(row.statistics),
        "grants": form.grants() if view is None else view.grants(),
        "view": "full" if full else "own_column",
    }


def _family_extras(out: dict[str, Any], view: FamilyView, session: Session,
                   actor: Actor, now: datetime) -> dict[str, Any]:
    """What the family itself is told besides the form: the agencies that
    work with it, and which agency recorded the form it signed. While a
    protection hold is in force, the form as the family reads it
    (`coordination.casework.concealment`)."""
    if actor.is_family:
        out["involved"] = sorted(i.agency_id for i in view.involvements
                                 if i.status == InvolvementStatus.ACTIVE)
        recorders = _recorders(session, view.family.id)
        out["recorded_by"] = recorders.get(out["version"])
        hidden = concealment.concealed_from_family(session, view.family.id, now)
        if hidden:
            versions = consent_store.history(session, view.family.id)
            stored, number = concealment.shown_version(
                concealment.family_numbering(versions, hidden), out["version"])
            if stored != out["version"]:
                # The version the family reads in its place: the last one shown.
                row, form = next((r, f) for r, f in versions if r.version == stored)
                out.update(_form_out(view.cipher, row, form, now))
                out["recorded_by"] = recorders.get(stored)
            concealment.conceal_form(out, hidden, number, concealment.staff_agencies(
                session, (out.get("changed_by"), out.get("witness"))))
    return out


def _write_sealed(
    session: Session,
    view: FamilyView,
    meta: consent_store.FormMeta,
    signed_by: str,
    purpose: str,
    version: int,
    cells: frozenset[consent.Cell],
    *,
    change: str,
    changed_by: str,
    now: datetime,
) -> tuple[ConsentFormRow, Form]:
    # A form version is never updated, so its free text is sealed before the
    # insert, bound to (family, version) rather than a row id.
    row_id = f"v{version}"
    meta = dataclasses.replace(
        meta,
        signed_by=view.cipher.seal("consent_forms", "signed_by", row_id, signed_by),
        purpose=view.cipher.seal("consent_forms", "purpose", row_id, purpose),
    )
    return consent_store.write_version(
        session, view.family.id, version, meta, cells, change=change, changed_by=changed_by,
        now=now,
    )
