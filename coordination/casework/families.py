"""Recording a family and finding one: `create_family`, `search_families`,
`possible_duplicates`."""

from __future__ import annotations

import functools
import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Date, Select, String, bindparam, select
from sqlalchemy.orm import Session

from audit.model import Action
from coordination.actors import Actor
from coordination.casework import areas, search_index
from coordination.casework.common import _as_date, _audit, new_id, visible_condition
from coordination.crypto import Vault
from coordination.errors import Conflict, InvalidInput, MinimalDataViolation
from coordination.model import Family, Involvement, Member
from coordination.roles import InvolvementStatus
from coordination.search_words import name_words

# What a minimal-data agency may record about a family.
MINIMAL_FAMILY_KEYS = frozenset({"display_name", "languages"})
SEARCH_LIMIT = 50
# Keys of a new family's body that are not the family's values.
OPTIONS = frozenset({"refuse_duplicate"})


class PossibleDuplicate(Conflict):
    """A family the agency can already see has the new family's name and
    birth date; `matches` are those families (`{"id", "display_name"}`)."""

    def __init__(self, matches: list[dict[str, str]]) -> None:
        ids = ", ".join(m["id"] for m in matches)
        super().__init__(
            f"a family your agency can already see has this name and birth date: {ids}; "
            "open it instead, or send the family again without \"refuse_duplicate\" to "
            "record a new one", reason="possible_duplicate")
        self.matches = matches


def family_errors(actor: Actor, data: dict[str, Any], now: datetime,
                  session: Session | None = None) -> dict[str, list[str]]:
    """What is wrong with a new family beyond its shape (works on raw input);
    with `session`, also its area (`areas.area_errors`)."""
    errors: dict[str, list[str]] = {}
    if actor.minimal_data:
        for key in sorted(set(data) - MINIMAL_FAMILY_KEYS - OPTIONS):
            errors[key] = ["a minimal-data agency records only display_name and languages"]
        if "area" in errors:
            # No form can say yes yet: the family is only now being recorded.
            errors["area"] = [areas.MINIMAL_NEEDS_COUNTING + ", then set the area"]
    elif session is not None:
        errors.update(areas.area_errors(session, actor, data.get("area")))
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
    session: Session, vault: Vault, actor: Actor, data: dict[str, Any], now: datetime,
    *, confirmed: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Record a new family; the actor's agency becomes involved, and the
    family is in the search index at once. The answer names, as
    `possible_duplicates`, the families the agency could already see with
    the same name and birth date (`possible_duplicates()`).

    Raises `MinimalDataViolation` (nothing stored) when a minimal-data agency
    sends anything beyond a display name and languages, and, when
    `data["refuse_duplicate"]` is true and there are such families beyond
    those `confirmed` (ids the caller was shown and recorded anyway),
    `PossibleDuplicate` (nothing stored; the look is audited as a search).
    """
    errors = family_errors(actor, data, now, session)
    if errors:
        kind = MinimalDataViolation if actor.minimal_data and \
            set(data) - MINIMAL_FAMILY_KEYS - OPTIONS else InvalidInput
        raise kind(errors)
    duplicates = possible_duplicates(session, vault, actor, data["display_name"],
                                     data.get("birth_date"), now)
    if data.get("refuse_duplicate") and {m["id"] for m in duplicates} - confirmed:
        _audit(session, actor, Action.FAMILY_SEARCH, now, shown=["birth_date"],
               found=[m["id"] for m in duplicates], purpose="duplicate_check")
        session.commit()
        raise PossibleDuplicate(duplicates)
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
        area=seal("area", data.get("area")),
        recorded_by_agency=actor.agency_id,
        created_at=now,
    )
    session.add(family)
    session.flush()
    indexed: list[tuple[str, str, date | None]] = []
    for position, member in enumerate(data.get("members", [])):
        member_id = new_id("mem")
        born: date | None = member.get("birth_date")
        indexed.append((member_id, member["name"], born))
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
    session.flush()
    search_index.write(session, vault, {family_id: search_index.people_of(
        family_id, data["display_name"], birth_date, indexed)}, now)
    ids = [m["id"] for m in duplicates]
    detail: dict[str, Any] = {"possible_duplicates": ids} if ids else {}
    _audit(session, actor, Action.FAMILY_CREATE, now, family_id=family_id,
           shown=sorted(set(data) - OPTIONS), **detail)
    session.commit()
    return {"id": family_id, "display_name": data["display_name"], "possible_duplicates": ids}


def _find(session: Session, vault: Vault, actor: Actor, name: str | None,
          birth_date: date | None, now: datetime) -> list[dict[str, str]]:
    """Visible families matching a search (`search_index.matching`), oldest
    first, at most `SEARCH_LIMIT`: one query, whatever the number of matches,
    and one for their data keys."""
    params = search_index.parameters(vault, name, birth_date)
    params.update(agency=str(actor.agency_id), today=now.astimezone(UTC).date(), now=now)
    if actor.staff_id is not None:
        params["staff_id"] = actor.staff_id
    query = _find_statement(name is not None, birth_date is not None, actor.staff_id is not None)
    rows = session.execute(query, params).all()
    ciphers = vault.for_families([row.id for row in rows])
    return [
        {"id": row.id,
         "display_name": ciphers[row.id].open("families", "display_name", row.id,
                                              row.display_name)}
        for row in rows
    ]


@functools.cache
def _find_statement(name: bool, birth_date: bool, emergency: bool) -> Select[Any]:
    """`_find`'s statement (built once): the parameters of
    `search_index.matching` and `agency`, `today` and `now` of the
    visibility rule (`common.visible_condition`), with `emergency` also
    `staff_id` (that staff member's open emergency access)."""
    visible = visible_condition(bindparam("agency", type_=String),
                                bindparam("today", type_=Date), bindparam("now"),
                                bindparam("staff_id") if emergency else None)
    return (
        select(Family.id, Family.display_name)
        .where(*search_index.matching(name, birth_date), visible)
        .order_by(Family.created_at, Family.id)
        .limit(SEARCH_LIMIT)
    )


def possible_duplicates(session: Session, vault: Vault, actor: Actor, name: str,
                        birth_date: date | None, now: datetime) -> list[dict[str, str]]:
    """Families the actor's agency can already see whose name (the family's
    or a member's) holds every word of `name` and that have `birth_date`
    (the family's or a member's). Without a birth date, or a name without
    words, none: a name alone is too common to warn about. Not audited here:
    the caller records what it shows."""
    if birth_date is None or not name_words(name):
        return []
    return _find(session, vault, actor, name, birth_date, now)


def search_errors(name: str | None, birth_date: date | None) -> dict[str, list[str]]:
    """What is wrong with a search beyond its shape: nothing asked, or a
    name without a word (only spaces, hyphens, punctuation)."""
    if name is None and birth_date is None:
        return {"name": ["give a name, a birth date, or both"]}
    if name is not None and not name_words(name):
        return {"name": ["must hold a word (letters or digits)"]}
    return {}


def search_families(
    session: Session,
    vault: Vault,
    actor: Actor,
    name: str | None,
    birth_date: date | None,
    now: datetime,
) -> list[dict[str, str]]:
    """Families the actor's agency may know exist, of which one name (the
    family's or a member's) holds every word of `name`, and of which the
    family or a member was born on `birth_date`; either may be None, not
    both. Words are whole words in `coordination.search_words`'s form: case,
    diacritics and the Turkish i's do not matter, a prefix never matches.

    Visibility is applied inside the one query, so a name that matches only
    families hidden from the caller costs the same as no match at all.
    Raises `InvalidInput` (`search_errors`).
    """
    errors = search_errors(name, birth_date)
    if errors:
        raise InvalidInput(errors)
    found = _find(session, vault, actor, name, birth_date, now)
    _audit(session, actor, Action.FAMILY_SEARCH, now,
           shown=["birth_date"] if birth_date else None, found=[f["id"] for f in found])
    session.commit()
    return found
