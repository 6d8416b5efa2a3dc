"""Writing an entry under one field: `write_entry`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from audit.model import Action
from coordination.actors import Actor
from coordination.casework.common import (
    INVOLVEMENT,
    _audit,
    _involved,
    _visible,
    catalogue,
    iso_time,
    new_id,
)
from coordination.crypto import Vault
from coordination.errors import InvalidInput, MinimalDataViolation
from coordination.model import Entry

# What a minimal-data agency may write entries under.
MINIMAL_ENTRY_FIELDS = frozenset({"contact", "story"})


def entry_errors(session: Session, actor: Actor, field_id: Any) -> dict[str, list[str]]:
    """What is wrong with the field an entry is written under (raw input)."""
    if not isinstance(field_id, str):
        return {}
    if field_id not in {f.id for f in catalogue(session)}:
        return {"field": [f"unknown field '{field_id}'"]}
    if field_id == INVOLVEMENT:
        return {"field": ["'involvement' is kept by referrals, not written as an entry"]}
    if actor.minimal_data and field_id not in MINIMAL_ENTRY_FIELDS:
        return {"field": [f"a minimal-data agency writes only contact and story, "
                          f"not '{field_id}'"]}
    return {}


def write_entry(
    session: Session,
    vault: Vault,
    actor: Actor,
    family_id: str,
    field_id: str,
    value: str,
    now: datetime,
) -> dict[str, str]:
    """Write an entry under one field for an involved agency."""
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    errors = entry_errors(session, actor, field_id)
    if errors:
        kind = MinimalDataViolation if actor.minimal_data else InvalidInput
        raise kind(errors)
    entry_id = new_id("ent")
    entry = Entry(
        id=entry_id,
        family_id=family_id,
        field_id=field_id,
        agency_id=actor.agency_id,
        author_id=actor.staff_id,
        written_at=now,
        value=view.cipher.seal("entries", "value", entry_id, value),
    )
    session.add(entry)
    _audit(session, actor, Action.ENTRY_WRITE, now, family_id=family_id, shown=[field_id],
           entry=entry_id)
    session.commit()
    return {
        "id": entry_id,
        "field": field_id,
        "agency": str(actor.agency_id),
        "author": str(actor.username),
        "written_at": iso_time(now),
        "value": value,
    }
