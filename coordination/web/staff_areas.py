"""A family's area on the staff pages: the choice on the new-family form
(`area_choices`), and changing it from the record page (`POST
/staff/families/<id>/area`). Partials: staff/_area_choice.html and
staff/_area.html."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, request, url_for

from coordination.actors import Actor
from coordination.casework import areas, common
from coordination.errors import InvalidInput
from coordination.roles import Role
from coordination.runtime import current, request_db
from coordination.schemas import FamilyAreaIn
from coordination.web import parse, staff_page

CASEWORK = (Role.PRACTITIONER, Role.COORDINATOR)


def area_choices() -> list[tuple[str, str]]:
    """The signed-in staff member's agency's areas, as (code, "name (code)")."""
    actor: Actor | None = g.get("actor")
    if actor is None or actor.agency_id is None:
        return []
    return [(a.code, f"{a.name} ({a.code})")
            for a in areas.agency_areas(request_db(), actor.agency_id)]


def register(bp: Blueprint) -> None:
    @bp.app_context_processor
    def _areas() -> dict[str, Any]:
        return {"area_choices": area_choices}

    @bp.post("/families/<id:family_id>/area")
    @staff_page(*CASEWORK)
    def set_area(family_id: str) -> Any:
        """Give the family one of the agency's areas, or none (empty)."""
        chosen = request.form.get("area", "").strip() or None
        rt = current()
        actor: Actor = g.actor
        values, errors = parse(FamilyAreaIn(), {"area": chosen})
        if not errors:
            try:
                areas.set_family_area(request_db(), rt.vault, actor, family_id,
                                      values["area"], rt.now())
            except InvalidInput as exc:
                errors = exc.errors
        if errors:
            common.check_access(request_db(), rt.vault, actor, family_id, rt.now(),
                                involved=True)
            flash("The area was not changed: "
                  + "; ".join(m for ms in errors.values() for m in ms), "error")
        elif chosen:
            flash("The family's area is saved.", "success")
        else:
            flash("The family has no area now.", "success")
        return redirect(url_for("staff.family", family_id=family_id))
