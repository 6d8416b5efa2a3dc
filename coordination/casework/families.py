"""Recording a family and finding one: `create_family`, `search_families`."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.model import Action
from coordination.actors import Actor
from coordination.casework.common import _as_date, _audit, _visible_to, new_id
from coordination.crypto import Vault
from coordination.errors import InvalidInput, MinimalDataViolation
from coordination.model import Family, Involvement, Member
from coordination.roles import InvolvementStatus

# What a minimal-data agency may record about a family.
MINIMAL_FAMILY_KEYS = frozenset({"display_name", "languages"})
SEARCH_LIMIT = 50


def family_errors(actor: Actor, data: dict[str, Any], now: datetime) -> dict[str, list[str]]:
    """What is wrong with a new family beyond its shape (works on raw input)."""
    errors: dict[str, list[str]] = {}
    if actor.minimal_data:
        for key in sorted(set(data) - MINIMAL_FAMILY_KEYS):
            errors[key] = ["a minimal-data agency records only display_name and languages"]
    born = _as_date(data.get("birth_date"))
    if born and born > now.date():
        errors.setdefault("birth_date", []).append("must not be in the future")
    members = data.get("members")
    for i, member in enumerate(members if isinstance(members, list) else []):
        born = _as_date(member.get("birth_date")) if isinstance(member, dict) else None
        if born and born > now.date():
            errors[f"members.{i}.birth_date"] = ["must not be in the future"]
    return errors


def create_family(
    session: Session, vault: Vault, actor: Actor, data: dict[str, Any], now: datetime
) -> dict[str, str]:
    """Record a new family; the actor's agency becomes involved.

    Raises `MinimalDataViolation` (nothing stored) when a minimal-data agency
    sends anything beyond a display name and languages.
    """
    errors = family_errors(actor, data, now)
    if errors:
        kind = MinimalDataViolation if actor.minimal_data and set(data) - MINIMAL_FAMILY_KEYS \
            else InvalidInput
        raise kind(errors)
    family_id = new_id("fam")
    cipher = vault.new_family(family_id, now)

    def seal(column: str, value: str | None) -> bytes | None:
        return None if value is None else cipher.seal("families", column, family_id, value)

    birth_date: date | None = data.get("birth_date")
    family = Family(
        id=family_id,
        display_name=seal("display_name", data["display_name"]),
        name_index=vault.blind_index("name", data["display_name"]),
        birth_date_index=(
            vault.blind_index("birth_date", birth_date.isoformat()) if birth_date else None
        ),
        birth_date=seal("birth_date", birth_date.isoformat() if birth_date else None),
        address=seal("address", data.get("address")),
        national_id=seal("national_id", data.get("national_id")),
        languages=seal("languages", json.dumps(data["languages"]) if "languages" in data else None),
        recorded_by_agency=actor.agency_id,
        created_at=now,
    )
    session.add(family)
    session.flush()
    for position, member in enumerate(data.get("members", [])):
        member_id = new_id("mem")
        born: date | None = member.get("birth_date")
        session.add(
            Member(
                id=member_id,
                family_id=family_id,
                position=position,
                name=cipher.seal("family_members", "name", member_id, member["name"]),
                relation=cipher.seal("family_members", "relation", member_id, member["relation"]),
                birth_date=(
                    cipher.seal("family_members", "birth_date", member_id, born.isoformat())
                    if born
                    else None
                ),
            )
        )
    session.add(
        Involvement(
            family_id=family_id,
            agency_id=actor.agency_id,
            status=InvolvementStatus.ACTIVE,
            since=now.date(),
            contact_worker_id=actor.staff_id,
            contact_since=now.date(),
            created_at=now,
            updated_at=now,
        )
    )
    _audit(session, actor, Action.FAMILY_CREATE, now, family_id=family_id,
           shown=sorted(data))
    session.commit()
    return {"id": family_id, "display_name": data["display_name"]}


def search_families(
    session: Session,
    vault: Vault,
    actor: Actor,
    name: str,
    birth_date: date | None,
    now: datetime,
) -> list[dict[str, str]]:
    """Families with exactly this (normalised) name, and birth date if given,
    that the actor's agency may know exist.

    Visibility is applied inside the one query, so a name that matches only
    families hidden from the caller costs the same as no match at all.
    """
    agency = str(actor.agency_id)
    query = (
        select(Family.id, Family.display_name)
        .where(Family.name_index == vault.blind_index("name", name),
               _visible_to(agency, now))
        .order_by(Family.created_at, Family.id)
        .limit(SEARCH_LIMIT)
    )
    if birth_date is not None:
        query = query.where(
            Family.birth_date_index == vault.blind_index("birth_date", birth_date.isoformat())
        )
    rows = session.execute(query).all()
    ciphers = vault.for_families([row.id for row in rows])
    found = [
        {"id": row.id,
         "display_name": ciphers[row.id].open("families", "display_name", row.id,
                                              row.display_name)}
        for row in rows
    ]
    _audit(session, actor, Action.FAMILY_SEARCH, now,
           shown=["birth_date"] if birth_date else None, found=[row.id for row in rows])
    session.commit()
    return found
