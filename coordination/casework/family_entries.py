"""The typed entries (needs, attendance) on the family's own page:
`typed_entries`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coordination.actors import Actor
from coordination.casework import entry_kinds
from coordination.casework.common import _visible
from coordination.casework.concealment import concealed_from_family
from coordination.crypto import Vault
from coordination.errors import FamilyNotFound
from coordination.model import Entry


@dataclass(frozen=True)
class TypedEntry:
    agency: str
    written_at: datetime
    kind: str
    data: dict[str, Any]


def typed_entries(session: Session, vault: Vault, actor: Actor, family_id: str,
                  now: datetime) -> list[TypedEntry]:
    """The family's needs and attendance entries, newest first, each with
    the agency that wrote it; none of an agency whose entries or involvement
    a protection hold in force conceals from the family (its notes, or that
    it takes part, would show). Only for the family itself (`FamilyNotFound`
    for anyone else: staff read entries through the shared record)."""
    if not actor.is_family:
        raise FamilyNotFound("not_visible", family_id)
    view = _visible(session, vault, actor, family_id, now)
    hidden = concealed_from_family(session, family_id, now)
    left_out = hidden.entries | hidden.involvement
    rows = session.scalars(
        select(Entry).where(Entry.family_id == family_id, Entry.kind.in_(entry_kinds.TYPED))
        .order_by(Entry.written_at.desc(), Entry.id))
    out = []
    for entry in rows:
        if entry.agency_id in left_out:
            continue  # never opened
        opened = view.cipher.open("entries", "value", entry.id, entry.value)
        data = entry_kinds.stored_data(entry.kind, opened)
        if data is not None:
            out.append(TypedEntry(entry.agency_id, entry.written_at, entry.kind, data))
    return out
