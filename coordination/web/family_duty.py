"""The duty grants in force on the family's own page: one plain sentence
each, saying which service sees what because of the law, until when and
why, and that the family cannot stop it (its revocations do not end a duty
grant; it ends by itself on its last day).

`register(bp)` makes `duty_grants_in_force()` available to the family
pages; its partial is family/_duty_grants.html.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, g
from flask_babel import gettext

from coordination.casework import duty_grants
from coordination.runtime import current, request_db
from coordination.web.family import _names, isolate, written_date
from coordination.web.family_referrals import _things


def in_force() -> list[dict[str, Any]]:
    """The signed-in family's duty grants in force, as its page says them."""
    actor = g.get("family_actor")
    if actor is None:
        return []
    rt = current()
    names = _names()
    out = []
    for grant in duty_grants.in_force_for_family(request_db(), rt.vault, actor,
                                                 str(actor.family_id), rt.now()):
        agency = isolate(names.get(grant["agency"], grant["agency"]))
        until = written_date(date.fromisoformat(grant["until"]))
        out.append({
            "id": grant["id"],
            "sentence": gettext(
                "Because of the law, %(agency)s can see this until %(date)s: %(things)s.",
                agency=agency, things=_things(grant["fields"]), date=until),
            "why": grant["justification"],
            "cannot_stop": gettext(
                "You cannot stop this. It stays even if you stop sharing with %(agency)s. "
                "It ends by itself after %(date)s.", agency=agency, date=until),
        })
    return out


def register(bp: Blueprint) -> None:
    @bp.context_processor
    def _duty_grants() -> dict[str, Any]:
        return {"duty_grants_in_force": in_force}
