"""The family's page, access requests: a service asks to see more; the
family reads who asks to see what and why, in its language, and says yes
or no after a page saying exactly what will change (CONTRACT.md, "Access
requests"). Every POST carries the CSRF token (Flask-WTF, as on every page).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext

from consent.errors import NoConsentForm
from coordination import accounts
from coordination.actors import Actor
from coordination.casework import access_requests, common, consent_forms
from coordination.errors import Conflict
from coordination.runtime import current, request_db
from coordination.web import locale
from coordination.web.family import family_page, isolate, written_date
from coordination.web.words import field_words

INVOLVEMENT = common.INVOLVEMENT


def _things(field_ids: list[str]) -> str:
    labels = {f.id: f.label for f in common.catalogue(request_db())}
    return gettext("; ").join(field_words(f, labels) for f in field_ids)


def _name(agency: str) -> str:
    names = accounts.names_in(request_db(), locale())  # in the page's language
    return isolate(names.get(agency, agency))


def _shown(req: dict[str, Any]) -> dict[str, Any]:
    """A request as the family's page shows it."""
    # It lapses at `lapses_at`: "before" the day it lapses is always in time.
    last = datetime.fromisoformat(req["lapses_at"]).date()
    return {
        "id": req["id"],
        "agency": req["agency"],
        "sentence": gettext("%(agency)s asks to see: %(things)s.", agency=_name(req["agency"]),
                            things=_things(req["fields"])),
        "reason": req["reason"],
        "before": written_date(last),
    }


def pending(actor: Actor) -> list[dict[str, Any]]:
    """The family's pending requests, newest first, in its words."""
    rt = current()
    found = access_requests.list_requests(request_db(), rt.vault, actor, str(actor.family_id),
                                          rt.now())
    return [_shown(r) for r in found if r["state"] == "pending"]


def _form_in_force(actor: Actor) -> dict[str, Any] | None:
    rt = current()
    try:
        form = consent_forms.get_consent(request_db(), rt.vault, actor, str(actor.family_id),
                                         rt.now())
    except NoConsentForm:
        return None
    return form if form["in_force"] else None


def _words(req: dict[str, Any], approve: bool, form: dict[str, Any] | None) -> dict[str, Any]:
    """The question before, and the message after, an answer: exactly what
    changes (`form` is the form in force, None when there is none)."""
    agency, things = _name(req["agency"]), _things(req["fields"])
    if approve:
        more = []
        if INVOLVEMENT in req["fields"]:
            more.append(gettext("%(agency)s will also see your whole consent form: which "
                                "services take part and what each may see.", agency=agency))
        if form is not None:
            more.append(gettext("Your form stays valid until %(date)s. You can stop this "
                                "sharing at any time on your page.",
                                date=written_date(date.fromisoformat(form["valid_until"]))))
        more.append(gettext("Nothing else changes."))
        return {
            "ask": gettext("If you say yes, %(agency)s will then be able to see: "
                           "%(things)s.", agency=agency, things=things),
            "more": more,
            "yes": gettext("Yes, let them see it"),
            "done": gettext("%(agency)s can now see: %(things)s.", agency=agency,
                            things=things),
        }
    return {
        "ask": gettext("If you say no, %(agency)s will not see: %(things)s.", agency=agency,
                       things=things),
        "more": [gettext("Nothing else changes. %(agency)s will see your answer, and cannot "
                         "ask for the same again for 30 days.", agency=agency)],
        "yes": gettext("Yes, say no to this"),
        "done": gettext("You said no. %(agency)s will not see: %(things)s.", agency=agency,
                        things=things),
    }


def _no_longer(req: dict[str, Any]) -> str:
    if req["state"] == "approved":
        return gettext("You said yes to this already.")
    if req["state"] == "declined":
        return gettext("You said no to this already.")
    return gettext("This question ended without an answer, so nothing changed.")


def _no_form() -> str:
    return gettext("Your consent form has ended, so nothing can be added to it. To share "
                   "again, ask one of the services: you will sign a new form.")


def register(bp: Blueprint) -> None:
    @bp.route("/access-requests/<id:request_id>/<any(approve, decline):act>",
              methods=["GET", "POST"])
    @family_page
    def answer_access_request(actor: Actor, request_id: str, act: str) -> Any:
        approve = act == "approve"
        if request.method == "POST" and request.form.get("confirmed") != "1":
            return redirect(url_for("family.answer_access_request", request_id=request_id,
                                    act=act))
        rt = current()
        if request.method == "POST":
            try:
                answered = access_requests.answer_request(
                    request_db(), rt.vault, actor, str(actor.family_id), request_id, approve,
                    None, rt.now())
            except Conflict as exc:
                flash(_no_form() if exc.reason == "no_form" else
                      gettext("Nothing was changed. Please look at your page again."), "error")
                return redirect(url_for("family.consent"))
            flash(_words(answered, approve, None)["done"], "success")
            return redirect(url_for("family.consent"))
        found = access_requests.list_requests(request_db(), rt.vault, actor,
                                              str(actor.family_id), rt.now())
        req = next((r for r in found if r["id"] == request_id), None)
        if req is None:
            return render_template("family/error.html", status=404), 404
        form = _form_in_force(actor) if approve else None
        closed = None
        if req["state"] != "pending":
            closed = _no_longer(req)
        elif approve and form is None:
            closed = _no_form()
        return render_template("family/access_request.html", req=_shown(req), act=act,
                               words=_words(req, approve, form), closed=closed)
