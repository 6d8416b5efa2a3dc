"""Who is helping a family: the agencies that work with it and each one's
contact person, as the family's own page tells it (DOMAIN.md, "parents miss
the overview of who is doing what")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from coordination.actors import Actor
from coordination.casework.common import _visible
from coordination.casework.concealment import concealed_from_family
from coordination.crypto import Vault
from coordination.errors import FamilyNotFound
from coordination.roles import InvolvementStatus


@dataclass(frozen=True)
class Helper:
    agency: str
    contact_person: str | None  # the contact worker's display name (else username)
    contact_since: date | None = None  # since when (after a hand-over: its day)


def helping(session: Session, vault: Vault, actor: Actor, family_id: str,
            now: datetime) -> list[Helper]:
    """The agencies with an active involvement in the family, oldest first,
    each with its contact person's name; after a hand-over, the colleague
    who took over; none whose involvement a protection hold conceals. Only
    for the family itself (`FamilyNotFound` for anyone else: staff read
    involvements through the shared record, as the form lets them)."""
    if not actor.is_family:
        raise FamilyNotFound("not_visible", family_id)
    view = _visible(session, vault, actor, family_id, now)
    hidden = concealed_from_family(session, family_id, now).involvement
    out = []
    for inv in view.involvements:
        if inv.status != InvolvementStatus.ACTIVE or inv.agency_id in hidden:
            continue
        worker = inv.contact_worker
        if worker is None or not worker.active:
            out.append(Helper(inv.agency_id, None))
        else:
            out.append(Helper(inv.agency_id, worker.display_name or worker.username,
                              inv.contact_since))
    return out
