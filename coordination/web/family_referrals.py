"""The family's referrals on its own page: the requests for help it must
answer (agree or refuse, each after a confirmation saying exactly what
will change) and the appointments booked for it, in its language.

`register(bp)` adds the answer pages to the family blueprint; `on_page`
gives the consent page what its partial (family/_referrals.html) shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel import Locale, UnknownLocaleError
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext

from consent.errors import NoConsentForm
from coordination import accounts
from coordination.actors import Actor
from coordination.casework import common, consent_forms, referrals
from coordination.errors import Conflict, FamilyNotFound
from coordination.runtime import current, request_db
from coordination.web import locale
from coordination.web.words import field_words


def _names() -> dict[str, str]:
    """Each agency's name in the page's language where it gave one."""
    return accounts.names_in(request_db(), locale())


def language_name(code: str | None) -> str | None:
    """A language code as the family reads it, in its own language ("Türkçe"
    for "tr" on an English page: "Turkish")."""
    if not code:
        return None
    try:
        return str(Locale.parse(code.replace("-", "_")).get_display_name(locale()) or code)
    except (ValueError, UnknownLocaleError):
        return code


def _things(field_ids: list[str]) -> str:
    labels = {f.id: f.label for f in common.catalogue(request_db())}
    order = [f.id for f in common.catalogue(request_db())]
    ranked = sorted(field_ids, key=lambda f: (order.index(f) if f in order else len(order), f))
    return gettext("; ").join(field_words(f, labels) for f in ranked)


def _form(actor: Actor) -> dict[str, Any] | None:
    rt = current()
    try:
        return consent_forms.get_consent(request_db(), rt.vault, actor, str(actor.family_id),
                                         rt.now())
    except NoConsentForm:
        return None


def words(ref: dict[str, Any], form: dict[str, Any] | None) -> dict[str, Any]:
    """What the family is asked, and is told before and after answering: the
    cells agreeing adds (those the form in force does not grant yet)."""
    from coordination.web.family import isolate

    names = _names()
    to, by = isolate(names.get(ref["to"], ref["to"])), isolate(names.get(ref["from"],
                                                                           ref["from"]))
    in_force = form is not None and form["in_force"]
    granted = set(form["grants"].get(ref["to"], [])) if in_force and form else set()
    added = [f for f in ref["fields"] if f not in granted]
    out: dict[str, Any] = {
        "id": ref["id"],
        "in_force": in_force,
        "question": gettext("%(by)s wants to ask %(to)s to help your family.", by=by, to=to),
        "asks": gettext("%(to)s asks to see: %(things)s.", to=to,
                        things=_things(ref["fields"])),
        "reason": ref["reason"],
        "yes": (gettext("If you say yes, %(to)s can see: %(things)s. Your consent form gets a "
                        "new version that says so. Then %(to)s decides if it can help.",
                        to=to, things=_things(added)) if added else
                gettext("%(to)s can already see what it asks for. If you say yes, the request "
                        "goes to %(to)s, and %(to)s decides if it can help.", to=to)),
        "no": gettext("If you say no, %(to)s does not hear about your family from this "
                      "request. Nothing else changes.", to=to),
        "agreed": (gettext("You said yes. %(to)s can now see: %(things)s. The request went "
                           "to %(to)s.", to=to, things=_things(added)) if added else
                   gettext("You said yes. The request went to %(to)s.", to=to)),
        "refused": gettext("You said no. %(to)s was not told about your family.", to=to),
    }
    return out


def _isolated(value: str | None) -> str | None:
    from coordination.web.family import isolate

    return None if value is None else isolate(value)


def on_page(actor: Actor, form: dict[str, Any] | None) -> dict[str, Any]:
    """The requests awaiting the family's answer, and its booked appointments
    (not yet held), soonest first, for the consent page's partial."""
    from coordination.web.family import isolate, written_time

    rt = current()
    items = referrals.family_referrals(request_db(), rt.vault, actor, str(actor.family_id),
                                       rt.now())
    names = _names()
    pending = [words(r, form) for r in items if r["state"] == "awaiting_family"]
    booked: list[dict[str, Any]] = []
    for ref in items:
        if ref["state"] != "booked":
            continue
        for apt in ref["appointments"]:
            if apt["outcome"] is not None:
                continue
            at = datetime.fromisoformat(apt["at"].replace("Z", "+00:00"))
            booked.append({
                "at": at,
                "when": written_time(at),
                # Names and places keep their own direction inside a
                # right-to-left sentence (a Latin address in Arabic).
                "with": isolate(names.get(ref["to"], ref["to"])),
                "place": isolate(apt["place"]),
                "interpreter": _isolated(language_name(apt["interpreter_language"])),
                "accompanied_by": _isolated(apt["accompanied_by"]),
            })
    booked.sort(key=lambda a: a["at"])
    return {"pending": pending, "appointments": booked}


def register(bp: Blueprint) -> None:
    """Add the answer pages to the family blueprint."""
    from coordination.web.family import family_page

    @bp.route("/referrals/<id:referral_id>/<any(agree, refuse):answer>", methods=["GET", "POST"])
    @family_page
    def answer_referral(actor: Actor, referral_id: str, answer: str) -> Any:
        rt = current()
        family_id = str(actor.family_id)
        agree = answer == "agree"
        try:
            ref = referrals.get_referral(request_db(), rt.vault, actor, referral_id, rt.now())
        except FamilyNotFound:
            return render_template("family/error.html", status=404), 404
        form = _form(actor)
        said = words(ref, form)
        if ref["state"] != "awaiting_family":
            flash(gettext("This request is already answered. Nothing was changed."), "info")
            return redirect(url_for("family.consent"))
        if request.method == "GET" or request.form.get("confirmed") != "1":
            return render_template("family/referral_answer.html", ref=said, agree=agree,
                                   answer=answer)
        try:
            referrals.family_answer(request_db(), rt.vault, actor, family_id, referral_id,
                                    agree, rt.now())
        except Conflict:
            flash(gettext("Nothing was changed. Please look at your page again and try once "
                          "more."), "error")
            return redirect(url_for("family.consent"))
        flash(said["agreed"] if agree else said["refused"], "success")
        return redirect(url_for("family.consent"))
