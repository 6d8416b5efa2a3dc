"""Staff pages, breaking the glass (CONTRACT.md, "Exceptional access"): the
form to open emergency access (on its own page, and on a record with
withheld fields, only for staff of an agency allowed it), and the banner
with the time left on the record while the caller's access is open."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, url_for

from coordination.actors import Actor
from coordination.api import record_denial
from coordination.casework import emergency
from coordination.errors import Throttled
from coordination.roles import Role
from coordination.runtime import current, request_db
from coordination.schemas import EMERGENCY_LEGAL_BASES, EmergencyAccessIn
from coordination.web import parse, staff_page, text_fields

CASEWORK = (Role.PRACTITIONER, Role.COORDINATOR)
BASES = list(zip(EMERGENCY_LEGAL_BASES, ("Vital interest: a life or health is at stake",
                                          "Legal obligation: the law requires it"), strict=True))
NO_MATCH = ("No single person with this whole name and birth date was found. Check the "
            "spelling and the date: nothing more can be said.")


def me() -> Actor:
    actor: Actor = g.actor
    return actor


def time_left(expires_at: datetime, now: datetime) -> str:
    """How long an access stays open, in words ("1 h 05 min")."""
    minutes = max(0, int((expires_at - now).total_seconds() // 60))
    return f"{minutes // 60} h {minutes % 60:02d} min"


def record_context(family_id: str, withheld: bool) -> dict[str, Any]:
    """What the record page needs: the caller's open access (for the banner)
    and whether to offer the form (withheld fields, an allowed agency)."""
    rt = current()
    now = rt.now()
    open_access = emergency.current(request_db(), me(), family_id, now)
    return {
        "emergency_open": open_access,
        "emergency_left": time_left(open_access.expires_at, now)
        if open_access is not None and open_access.expires_at is not None else None,
        "emergency_offer": open_access is None and withheld
        and emergency.allowed(request_db(), me()),
        "emergency_bases": BASES,
    }


def register(bp: Blueprint) -> None:
    def _page(errors: dict[str, list[str]], form: dict[str, str], status: int = 200) -> Any:
        return render_template("staff/emergency.html", errors=errors, form=form,
                               bases=BASES, hours=int(
                                   current().settings.emergency_duration.total_seconds()
                                   // 3600)), status

    @bp.get("/emergency-access")
    @staff_page(*CASEWORK)
    def emergency_page() -> Any:
        emergency.check_open(request_db(), me())
        return _page({}, {})

    @bp.post("/emergency-access")
    @staff_page(*CASEWORK)
    def open_emergency() -> Any:
        emergency.check_open(request_db(), me())
        form = text_fields("name", "birth_date", "reason", "legal_basis")
        values, errors = parse(EmergencyAccessIn(), dict(form))
        if errors:
            return _page(errors, form, 422)
        rt = current()
        settings = rt.settings
        try:
            opened = emergency.open_access(
                request_db(), rt.vault, me(), values,
                emergency.Limits(settings.emergency_duration,
                                 settings.emergency_attempts_per_hour), rt.now())
        except emergency.NoSingleMatch as exc:
            record_denial(exc)
            return _page({"name": [NO_MATCH]}, form, 404)
        except Throttled as exc:
            return _page({"name": [str(exc)]}, form, 429)
        flash("Emergency access is open until "
              f"{opened['expires_at'][11:16]} UTC. An auditor will review it and the family "
              "is told.", "warn")
        return redirect(url_for("staff.family", family_id=opened["family_id"]))
