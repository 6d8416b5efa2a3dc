"""The auditor's review of emergency accesses (CONTRACT.md, "Exceptional
access"): the queue, oldest first, each with its reason (which auditors may
read) and what was read under it; the verdict and note, once; the counts
and ids the auditor's pages highlight."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.model import Action, AuditEntry
from coordination.actors import Actor
from coordination.casework.common import _audit, iso_time
from coordination.casework.emergency import TABLE
from coordination.crypto import Vault
from coordination.errors import Conflict, NotFound, NotPermitted
from coordination.model import EmergencyAccess, Staff
from coordination.roles import Role

VERDICTS = ("justified", "unjustified")


def count_unreviewed(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(EmergencyAccess)
                          .where(EmergencyAccess.expires_at.is_not(None),
                                 EmergencyAccess.reviewed_at.is_(None))) or 0


def unjustified_ids(session: Session) -> set[str]:
    return set(session.scalars(select(EmergencyAccess.id)
                               .where(EmergencyAccess.verdict == "unjustified")))


def _auditor(actor: Actor) -> None:
    if actor.is_family or actor.role != Role.AUDITOR:
        raise NotPermitted("only auditors review emergency accesses")


def _reads(session: Session, access: EmergencyAccess, username: str) -> list[dict[str, Any]]:
    """What was read under the access: the record reads whose basis it is."""
    basis = f"emergency:{access.id}"
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.family_id == access.family_id, AuditEntry.actor == username,
               AuditEntry.action == Action.RECORD_READ.value,
               AuditEntry.detail.contains(basis))
        .order_by(AuditEntry.seq))
    out = []
    for entry in rows:
        detail = json.loads(entry.detail or "{}")
        if detail.get("basis") != basis:
            continue
        out.append({"at": entry.at[:19] + "Z",
                    "shown": entry.shown.split(",") if entry.shown else []})
    return out


def _out(session: Session, vault: Vault, access: EmergencyAccess) -> dict[str, Any]:
    staff = session.get(Staff, access.staff_id)
    username = staff.username if staff is not None else ""
    cipher = vault.for_family(str(access.family_id))
    return {
        "id": access.id, "family_id": access.family_id, "agency": access.agency_id,
        "opened_by": username, "legal_basis": access.legal_basis,
        "reason": cipher.open(TABLE, "reason", access.id, access.reason)
        if access.reason is not None else "",
        "opened_at": iso_time(access.opened_at),
        "expires_at": iso_time(access.expires_at) if access.expires_at else None,
        "reads": _reads(session, access, username),
        "verdict": access.verdict,
        "note": cipher.open(TABLE, "review_note", access.id, access.review_note)
        if access.review_note is not None else None,
        "reviewed_by": access.reviewed_by,
        "reviewed_at": iso_time(access.reviewed_at) if access.reviewed_at else None,
    }


def review_queue(session: Session, vault: Vault, actor: Actor, reviewed: bool,
                 now: datetime) -> list[dict[str, Any]]:
    """Opened emergency accesses for an auditor, oldest first: unreviewed
    (`reviewed` False) or reviewed, each with its reason (which auditors may
    read) and what was read under it. On the audit log."""
    _auditor(actor)
    query = select(EmergencyAccess).where(EmergencyAccess.expires_at.is_not(None))
    query = query.where(EmergencyAccess.reviewed_at.is_not(None) if reviewed
                        else EmergencyAccess.reviewed_at.is_(None))
    rows = list(session.scalars(query.order_by(EmergencyAccess.opened_at, EmergencyAccess.id)))
    out = [_out(session, vault, r) for r in rows]
    _audit(session, actor, Action.EMERGENCY_LIST, now, reviewed=reviewed,
           accesses=[r.id for r in rows])
    session.commit()
    return out


def check_review(session: Session, actor: Actor, access_id: str) -> None:
    """The checks of `review` that come before 422."""
    _auditor(actor)
    if _opened(session, access_id) is None:
        raise NotFound("no such emergency access")


def _opened(session: Session, access_id: str, *, lock: bool = False
            ) -> EmergencyAccess | None:
    """The opened access (not a refused attempt); with `lock`, held until
    the transaction ends so that two verdicts sent at once leave one
    (PostgreSQL; SQLite runs the later one again on what the first left)."""
    access = session.get(EmergencyAccess, access_id, with_for_update=lock,
                         populate_existing=lock)
    if access is None or access.expires_at is None:
        return None
    return access


def review(session: Session, vault: Vault, actor: Actor, access_id: str, verdict: str,
           note: str, now: datetime) -> dict[str, Any]:
    """Record an auditor's verdict (`justified` or `unjustified`) and note
    (sealed under the family's key) on an opened emergency access. Raises
    `NotPermitted` (not an auditor), `NotFound`, `Conflict` when it was
    reviewed already."""
    check_review(session, actor, access_id)
    access = _opened(session, access_id, lock=True)
    assert access is not None  # noqa: S101 - checked just above
    if access.reviewed_at is not None:
        raise Conflict("this emergency access was reviewed already")
    access.verdict = verdict
    access.reviewed_at = now
    access.reviewed_by = actor.username
    access.review_note = vault.for_family(str(access.family_id)).seal(
        TABLE, "review_note", access.id, note)
    _audit(session, actor, Action.EMERGENCY_REVIEW, now, family_id=access.family_id,
           access=access.id, verdict=verdict, reason=verdict)
    session.commit()
    return _out(session, vault, access)
