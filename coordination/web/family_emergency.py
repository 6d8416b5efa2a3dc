"""The family's page, emergency accesses: each time a service opened the
family's whole record in an emergency, when, for how long, on which legal
basis and what the auditor found (CONTRACT.md, "Exceptional access"). Built
from `casework.emergency.for_family`, the one family-facing list."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext, lazy_gettext

from coordination.actors import Actor
from coordination.casework import emergency
from coordination.runtime import current, request_db
from coordination.web.family import written_time
from coordination.web.family_requests import _name

BASIS = {
    "vital_interest": lazy_gettext("It said a life or someone's health was at risk."),
    "legal_obligation": lazy_gettext("It said the law required it."),
}
VERDICT = {
    None: lazy_gettext("An auditor will check whether it was right to do so."),
    "justified": lazy_gettext("An auditor checked it and found it was right to do so."),
    "unjustified": lazy_gettext("An auditor checked it and found it was not right to do so."),
}


def on_page(actor: Actor) -> list[dict[str, Any]]:
    """The family's emergency accesses, newest first, in its words."""
    out = []
    for access in emergency.for_family(request_db(), str(actor.family_id), current().now()):
        out.append({"id": access["id"], "lines": [
            gettext("%(agency)s opened your whole record in an emergency on %(when)s, "
                    "until %(until)s.", agency=_name(access["agency"]),
                    when=written_time(access["opened_at"]),
                    until=written_time(access["expires_at"])),
            str(BASIS.get(access["legal_basis"], "")),
            str(VERDICT.get(access["verdict"], VERDICT[None])),
        ]})
    return out
