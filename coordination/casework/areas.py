"""Areas: the districts an agency may give a family (`AgencyArea`), and the
one area a family carries (`families.area`, sealed under the family's key).

A family recorded by a minimal-data agency is known to OneStory by a
pseudonym only; its area would say where it lives. It may carry one only
while its consent form in force says `statistics: true` (the family agreed to
be counted), and loses it in the same transaction as a new form version that
says no (`drop_area_unless_counted`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit.services as audit_log
from audit.model import Action
from audit.services import Event
from coordination.actors import Actor
from coordination.casework.common import (
    FamilyRead,
    FamilyView,
    _audit,
    _involved,
    _visible,
)
from coordination.crypto import Vault
from coordination.errors import InvalidInput, NotFound
from coordination.model import Agency, AgencyArea
from coordination.reports.period import UNKNOWN_AREA

CODE_MAX = 32
NAME_MAX = 200
MINIMAL_NEEDS_COUNTING = (
    "a family recorded by a minimal-data agency carries an area only while its consent "
    "form in force says \"statistics\": true (the family agreed to be counted); record "
    "such a form first")


# --- an agency's list ---------------------------------------------------------


def agency_areas(session: Session, agency_id: str) -> list[AgencyArea]:
    """The agency's areas, by code."""
    return list(session.scalars(select(AgencyArea).where(AgencyArea.agency_id == agency_id)
                                .order_by(AgencyArea.code)))


def _check_code(code: str) -> str:
    code = code.strip()
    if not code or len(code) > CODE_MAX or not all(ch.isalnum() or ch in "-_." for ch in code):
        raise InvalidInput({"area": [f"a code of 1-{CODE_MAX} letters, digits, '-', '_', '.'"]},
                           f"invalid area code {code!r}: use 1-{CODE_MAX} letters, digits, "
                           "'-', '_' or '.'")
    if code.casefold() == UNKNOWN_AREA:
        # Reports group families without an area under this code.
        raise InvalidInput({"area": [f"'{UNKNOWN_AREA}' stands for no area in reports"]},
                           f"an area cannot be called {code!r}: reports group families "
                           "without an area under that code")
    return code


def set_agency_areas(session: Session, slug: str, add: dict[str, str], remove: list[str],
                     now: datetime) -> list[AgencyArea]:
    """Add or rename (`add`: code -> name) and remove (`remove`: codes) areas
    of an agency's list, on the audit log (codes only). Removing a code
    leaves families that carry it as they are. Returns the list as it now
    is. Raises `NotFound` (no such agency), `InvalidInput` (a bad code or
    name, or removing a code the list does not hold); nothing changes then."""
    if session.get(Agency, slug) is None:
        raise NotFound(f"no agency '{slug}'")
    checked: dict[str, str] = {}
    for code, name in add.items():
        name = " ".join(name.split())
        if not name or len(name) > NAME_MAX or any(ord(ch) < 32 for ch in name):
            raise InvalidInput({"name": [f"1 to {NAME_MAX} characters"]},
                               f"the name of area {code!r} must be 1-{NAME_MAX} characters")
        checked[_check_code(code)] = name
    held = {a.code: a for a in agency_areas(session, slug)}
    for code in remove:
        if code not in held:
            raise InvalidInput({"area": ["not in the agency's list"]},
                               f"agency '{slug}' has no area {code!r}")
    for code in remove:
        session.delete(held.pop(code))
    for code, name in checked.items():
        if code in held:
            held[code].name = name
        else:
            session.add(AgencyArea(agency_id=slug, code=code, name=name))
    audit_log.record(session, Event(action=Action.AGENCY_AREAS, actor="cli", agency_id=slug,
                                    detail={"set": sorted(checked), "removed": sorted(remove)}),
                     now)
    session.commit()
    return agency_areas(session, slug)


# --- a family's area -------------------------------------------------------------


def area_errors(session: Session, actor: Actor, code: Any) -> dict[str, list[str]]:
    """What is wrong with `code` as an area the actor's agency gives (raw
    input; None means none): it must be in the agency's list."""
    if not isinstance(code, str) or actor.agency_id is None:
        return {}
    codes = [a.code for a in agency_areas(session, actor.agency_id)]
    if code in codes:
        return {}
    if not codes:
        return {"area": ["your agency has no areas to give (an administrator sets them: "
                         "onestory agency set SLUG --area CODE=NAME)"]}
    return {"area": [f"'{code}' is not one of your agency's areas: one of {', '.join(codes)}"]}


def counted(view: FamilyView | FamilyRead, now: datetime) -> bool:
    """Whether the family's form in force says it may be counted."""
    return (view.form_row is not None and view.form is not None
            and bool(view.form_row.statistics) and view.form.in_force(now))


def set_family_area(session: Session, vault: Vault, actor: Actor, family_id: str,
                    code: str | None, now: datetime) -> dict[str, Any]:
    """Give the family an area from the actor's agency's list, or clear it
    (None); audited (whether set or cleared, never the code). Raises
    `FamilyNotFound`, `NotPermitted` (the agency is not involved),
    `InvalidInput` (a code not in the agency's list; or an area for a family
    recorded by a minimal-data agency whose form in force does not say
    `statistics: true`); nothing changes then."""
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    if code is not None:
        errors = area_errors(session, actor, code)
        if errors:
            raise InvalidInput(errors)
        if view.recorded_minimal and not counted(view, now):
            raise InvalidInput({"area": [MINIMAL_NEEDS_COUNTING]})
    family = view.family
    family.area = None if code is None else view.cipher.seal("families", "area", family.id, code)
    _audit(session, actor, Action.FAMILY_AREA, now, family_id=family_id, set=code is not None)
    session.commit()
    return {"area": None if code is None else area_named(session, code, actor.agency_id,
                                                         family.recorded_by_agency)}


def area_named(session: Session, code: str, *agencies: str | None,
               listed: Sequence[Sequence[str]] = ()) -> dict[str, str]:
    """The area `code` with its name: as the first of `agencies` whose list
    holds it names it, else as any list does (the code alone if none).
    `listed`: (agency, code, name) rows already read, at least the whole
    lists of `agencies`; the lists are read only when none of those holds it."""
    names = {agency: name for agency, listed_code, name in listed
             if listed_code == code and agency in agencies}
    if not names:
        names = {a.agency_id: a.name for a in session.scalars(
            select(AgencyArea).where(AgencyArea.code == code).order_by(AgencyArea.agency_id))}
    name = next((names[a] for a in agencies if a in names), next(iter(names.values()), code))
    return {"code": code, "name": name}


def family_area(session: Session, view: FamilyView | FamilyRead, reader: str | None,
                now: datetime, listed: Sequence[Sequence[str]] = ()) -> dict[str, str] | None:
    """The family's area as `reader`'s agency reads it (opened here; the
    caller decides whether the reader may see it), or None. A family
    recorded by a minimal-data agency whose form in force no longer says yes
    (it expired) has none, whatever is stored."""
    family = view.family
    if family.area is None or (view.recorded_minimal and not counted(view, now)):
        return None
    code = view.cipher.open("families", "area", family.id, family.area)
    return area_named(session, code, reader, family.recorded_by_agency, listed=listed)


def drop_area_unless_counted(session: Session, view: FamilyView, statistics: bool) -> bool:
    """Within a use case writing a new form version that says `statistics`:
    a family recorded by a minimal-data agency loses its area when the new
    version says no. Returns whether it was dropped (the caller audits)."""
    if statistics or view.family.area is None or not view.recorded_minimal:
        return False
    view.family.area = None
    return True
