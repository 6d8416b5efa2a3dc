"""The family's answer to "may we count you in anonymous statistics?": part
of its consent form (`consent_forms.statistics`), changed by the family
itself as a new form version (`set_counting`).

Counted families appear only in reports' totals, which never show a family
and hide small counts (coordination.reports); families who said no, and
forms recorded before the question existed, are left out of every report.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import consent.services as consent_store
from audit.model import Action
from consent import model as consent
from consent.errors import NoConsentForm
from coordination.actors import Actor
from coordination.casework import areas
from coordination.casework.common import _audit, _visible
from coordination.casework.form_versions import _family_extras, _form_out, _write_sealed
from coordination.crypto import Vault
from coordination.errors import Conflict, NotPermitted


def describe_counting(counted: bool) -> str:
    """The change text of a version where the family gave its answer."""
    return "statistics yes" if counted else "statistics no"


def set_counting(session: Session, vault: Vault, actor: Actor, family_id: str,
                 counted: bool, now: datetime) -> dict[str, Any]:
    """The family says whether it may be counted in anonymous statistics: a
    new form version with the same grid, dates and signer, in one
    transaction with its audit entry (no version when the answer is the
    same). A family recorded by a minimal-data agency that says no loses its
    area (`areas.drop_area_unless_counted`). Returns the form as the family
    reads it. Raises `NotPermitted` (not the family itself), `NoConsentForm`
    (nothing signed yet), `Conflict` (the form changed meanwhile)."""
    if not actor.is_family:
        raise NotPermitted("only the family itself gives this answer here; staff record it "
                           "on a newly signed form")
    view = _visible(session, vault, actor, family_id, now, lock=True)
    row, form = view.form_row, view.form
    if row is None or form is None:
        raise NoConsentForm("no consent form has been recorded for this family")
    if bool(row.statistics) == counted:
        _audit(session, actor, Action.CONSENT_STATISTICS, now, family_id=family_id,
               counted=counted, reason="unchanged")
        session.commit()
        return _family_extras(_form_out(view.cipher, row, form, now), view, session, actor, now)
    old_id = f"v{row.version}"
    signed_by = view.cipher.open("consent_forms", "signed_by", old_id, row.signed_by)
    purpose = view.cipher.open("consent_forms", "purpose", old_id, row.purpose)
    meta = dataclasses.replace(
        consent_store.FormMeta.of(row), signed_on=now.date(),
        method=consent.Method.FAMILY_PORTAL, witness=None, interpreter_language=None,
        statistics=counted)
    try:
        written, new_form = _write_sealed(
            session, view, meta, signed_by, purpose, row.version + 1, form.cells,
            change=describe_counting(counted), changed_by=actor.label, now=now)
        dropped = areas.drop_area_unless_counted(session, view, counted)
        _audit(session, actor, Action.CONSENT_STATISTICS, now, family_id=family_id,
               counted=counted, version=written.version,
               area_cleared=dropped)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("the consent form changed meanwhile; reload it and try again") from exc
    return _family_extras(_form_out(view.cipher, written, new_form, now), view, session,
                          actor, now)
