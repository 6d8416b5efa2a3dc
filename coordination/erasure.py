"""Erasing a family by destroying its key (crypto-shredding).

Order matters and each step is idempotent, so an interrupted erasure is
finished by running it again:

1. record the erasure (data database, committed);
2. delete the family's data key (key store, committed) — from here on no
   copy of the family's rows, in any backup of the data database, can be
   decrypted, provided the key store's own backups have expired;
3. delete the family's rows (data database, one transaction) and mark the
   erasure complete.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

import audit.services as audit_log
from audit.model import Action
from audit.services import Event
from consent.tables import ConsentCellRow, ConsentFormRow, ConsentReceipt
from coordination.casework import search_index
from coordination.errors import Conflict, FamilyNotFound, InvalidInput
from coordination.keystore import KeyStore
from coordination.model import (
    AccessRequest,
    ApiToken,
    Appointment,
    EmergencyAccess,
    Entry,
    Erasure,
    Family,
    Involvement,
    Member,
    ProtectionHold,
    ProtectionHoldEvent,
    Referral,
    ReferralEvent,
)


def erase_family(
    session: Session, keystore: KeyStore, family_id: str, reason: str, by: str, now: datetime,
    *, agency_id: str | None = None, request_id: str | None = None,
) -> Erasure:
    """Erase (or finish erasing) a family. Raises `FamilyNotFound` for an
    unknown family, `Conflict` for one already erased."""
    check_exists(session, family_id)
    if not reason.strip() or len(reason) > 500:
        raise InvalidInput({"reason": ["1 to 500 characters"]}, "give a reason of 1-500 characters")
    erasure = session.get(Erasure, family_id)
    if erasure is None:
        erasure = Erasure(family_id=family_id, reason=reason.strip(), requested_by=by,
                          requested_at=now)
        session.add(erasure)
        # From now on search no longer finds the family, even if the erasure
        # is interrupted before its rows go.
        session.execute(update(Family).where(Family.id == family_id)
                        .values(name_index="", birth_date_index=None))
        search_index.forget(session, family_id)
        audit_log.record(session, Event(action=Action.FAMILY_ERASE, actor=by, role="admin",
                                        agency_id=agency_id, family_id=family_id,
                                        reason="requested", request_id=request_id), now)
        session.commit()
    elif erasure.completed_at is not None:
        raise Conflict("this family was erased already")

    keystore.destroy(family_id)
    erasure.key_destroyed_at = erasure.key_destroyed_at or now
    session.commit()

    form_ids = select(ConsentFormRow.id).where(ConsentFormRow.family_id == family_id)
    session.execute(delete(ConsentCellRow).where(ConsentCellRow.form_id.in_(form_ids)))
    referral_ids = select(Referral.id).where(Referral.family_id == family_id)
    session.execute(delete(ReferralEvent).where(ReferralEvent.referral_id.in_(referral_ids)))
    session.execute(delete(Appointment).where(Appointment.referral_id.in_(referral_ids)))
    hold_ids = select(ProtectionHold.id).where(ProtectionHold.family_id == family_id)
    session.execute(delete(ProtectionHoldEvent).where(ProtectionHoldEvent.hold_id.in_(hold_ids)))
    search_index.forget(session, family_id)
    for table in (ConsentFormRow, ConsentReceipt, ApiToken, Entry, Member, Involvement,
                  Referral, AccessRequest, ProtectionHold, EmergencyAccess):
        session.execute(delete(table).where(table.family_id == family_id))
    session.execute(delete(Family).where(Family.id == family_id))
    erasure.completed_at = now
    audit_log.record(session, Event(action=Action.FAMILY_ERASE, actor=by, role="admin",
                                    agency_id=agency_id, family_id=family_id,
                                    reason="completed", request_id=request_id), now)
    session.commit()
    return erasure


def check_exists(session: Session, family_id: str) -> None:
    """404 before 422: raise `FamilyNotFound` unless there is something to erase."""
    if session.get(Family, family_id) is None and session.get(Erasure, family_id) is None:
        raise FamilyNotFound()



def unfinished(session: Session) -> list[str]:
    """Families whose erasure was interrupted."""
    return list(session.scalars(select(Erasure.family_id).where(Erasure.completed_at.is_(None))))
