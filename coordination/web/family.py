"""The family's own page: sign in with the receipt code and PIN, see the
joint consent form as short sentences, stop sharing (one cell, one
service's column or everything, each confirmed first) and see who looked.

Every word is translated (coordination/translations, `make translations`);
the language is chosen on the page and kept in the session. The family's
session token lives only in the signed session cookie, never in a URL.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from datetime import date, datetime
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_date, format_datetime, gettext, lazy_gettext, ngettext
from werkzeug.wrappers import Response as BaseResponse

from audit.model import Action
from consent.errors import NoConsentForm
from coordination import accounts
from coordination.actors import Actor
from coordination.casework import access_log as who_looked
from coordination.casework import common, consent_forms, helping, involvements
from coordination.errors import Conflict, InvalidInput, NotAuthenticated, Throttled
from coordination.runtime import current, request_db
from coordination.schemas import FamilySessionIn, RevokeIn
from coordination.web import (
    FAMILY_COOKIE,
    end_signed_in,
    family_referrals,
    locale,
    parse,
    request_id,
    text_direction,
)
from coordination.web.words import can_see, field_words

# Dates written out (the month as a word), in each language's own order.
DATE = {"nb": "d. MMMM y"}
DAY = {"nb": "d. MMMM"}
DATE_TIME = {"nb": "d. MMMM y 'kl.' HH:mm", "ar": "d MMMM y\u060c HH:mm"}

# What a service did, as the family is told it (access_log.FAMILY_LOG_ACTIONS
# holds the staff's English words; these are the family's, translated).
DID = {
    # Translators: %(who)s is a service and the worker's role, such as
    # "Physiotherapy (practitioner)"; the sentence follows a date and time.
    Action.RECORD_READ: lazy_gettext("%(who)s looked at your record."),
    Action.CONSENT_READ: lazy_gettext("%(who)s looked at your consent form."),
    Action.CONSENT_HISTORY: lazy_gettext("%(who)s looked at the old versions of your "
                                         "consent form."),
    Action.ACCESS_LOG_READ: lazy_gettext("%(who)s looked at this list."),
    Action.ENTRY_WRITE: lazy_gettext("%(who)s wrote a note."),
    Action.FAMILY_CREATE: lazy_gettext("%(who)s added your family."),
    Action.CONSENT_SIGN: lazy_gettext("%(who)s saved the consent form you signed."),
    Action.CONSENT_REVOKE: lazy_gettext("%(who)s saved a change to your consent."),
    Action.INVOLVEMENT_REFER: lazy_gettext("%(who)s sent your family to another service."),
    Action.INVOLVEMENT_UPDATE: lazy_gettext("%(who)s changed how it works with your family."),
    # Translators: %(agency)s is the service whose part ended.
    Action.INVOLVEMENT_END: lazy_gettext("%(who)s wrote down that you ended the part of "
                                         "%(agency)s."),
    # Translators: %(agency)s is the service that asked to see more.
    Action.ACCESS_REQUEST_APPROVE: lazy_gettext("%(who)s wrote down that you said yes to "
                                                "%(agency)s asking to see more."),
    Action.ACCESS_REQUEST_DECLINE: lazy_gettext("%(who)s wrote down that you said no to "
                                                "%(agency)s asking to see more."),
    Action.REFERRAL_LIST: lazy_gettext("%(who)s looked at the list of services your family "
                                       "was sent to."),
    Action.REFERRAL_READ: lazy_gettext("%(who)s looked at a request for help for your family."),
    Action.REFERRAL_CREATE: lazy_gettext("%(who)s asked another service to help your family."),
    Action.REFERRAL_ACCEPT: lazy_gettext("%(who)s said yes: it will help your family."),
    Action.REFERRAL_DECLINE: lazy_gettext("%(who)s said no: it will not help your family "
                                          "this time."),
    Action.REFERRAL_WITHDRAW: lazy_gettext("%(who)s took back its request for help for your "
                                           "family."),
    Action.REFERRAL_CLOSE: lazy_gettext("%(who)s ended its help and wrote how it went."),
    Action.REFERRAL_AGREE: lazy_gettext("%(who)s wrote down that you said yes to a request "
                                        "for help."),
    Action.REFERRAL_REFUSE: lazy_gettext("%(who)s wrote down that you said no to a request "
                                         "for help."),
    Action.APPOINTMENT_BOOK: lazy_gettext("%(who)s booked an appointment for your family."),
    Action.APPOINTMENT_OUTCOME: lazy_gettext("%(who)s wrote down what happened at an "
                                             "appointment."),
    Action.EMERGENCY_OPEN: lazy_gettext("%(who)s opened your whole record in an emergency."),
    Action.FAMILY_AREA: lazy_gettext("%(who)s wrote down which area your family lives in, "
                                     "or removed it."),
}
# Asking another service names it.
ASKED = lazy_gettext("%(who)s asked %(agency)s to help your family.")
# A referral names the service the family was sent to.
REFERRED = lazy_gettext("%(who)s sent your family to %(agency)s.")
# Routine looks repeated by one person on one day are read as one line (`_times`).
DID_TIMES = frozenset({Action.RECORD_READ, Action.CONSENT_READ, Action.CONSENT_HISTORY,
                       Action.ACCESS_LOG_READ, Action.REFERRAL_LIST, Action.REFERRAL_READ})
REFUSED = lazy_gettext("%(who)s tried to look and was refused.")
# A refused request that would have changed something, not a look.
REFUSED_CHANGE = lazy_gettext("%(who)s tried to change something and was refused.")
ROLES = {
    "practitioner": lazy_gettext("practitioner"),
    "coordinator": lazy_gettext("coordinator"),
    "auditor": lazy_gettext("auditor"),
    "admin": lazy_gettext("administrator"),
    "evaluator": lazy_gettext("evaluator"),
}


def isolate(text: str) -> str:
    """A name inside a translated sentence, kept in its own direction
    (a Latin agency name in an Arabic sentence, and the reverse)."""
    return f"\u2068{text}\u2069" if text_direction() == "rtl" else text


def written_date(day: date) -> str:
    return format_date(day, DATE.get(locale(), "d MMMM y"))


def written_time(moment: datetime) -> str:
    return format_datetime(moment, DATE_TIME.get(locale(), "d MMMM y, HH:mm"))


def family_actor() -> Actor | None:
    """The signed-in family, or None (its token is dropped from the session)."""
    if "family_actor" in g:
        found: Actor = g.family_actor
        return found
    token = session.get(FAMILY_COOKIE)
    if not isinstance(token, str):
        return None
    try:
        actor: Actor | None = accounts.authenticate(request_db(), token, current().now())
    except NotAuthenticated:
        actor = None
    if actor is None or not actor.is_family:
        session.pop(FAMILY_COOKIE, None)
        flash(gettext("Your time on the family page has ended. Please sign in again."), "info")
        return None
    g.family_actor = dataclasses.replace(actor, request_id=request_id())
    return g.family_actor


def family_page(view: Callable[..., Any]) -> Callable[..., Any]:
    """A page for the signed-in family (passed to the view); others go to sign in."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        actor = family_actor()
        if actor is None:
            return redirect(url_for("family.sign_in"))
        return view(actor, *args, **kwargs)

    return wrapper


def lang_url(code: str) -> str:
    """This page in another language (for a page answering a POST, the
    page the family would go back to)."""
    if request.method == "GET" and request.endpoint:
        # Only the page's own arguments: url_for would take others (`_external`,
        # `_anchor`, `endpoint`) as instructions.
        args: dict[str, Any] = {**(request.view_args or {})}
        args.update({k: v for k, v in request.args.items() if k in {"agency", "field"}})
        return url_for(request.endpoint, **args, lang=code)
    home = "family.consent" if "family_actor" in g else "family.sign_in"
    return url_for(home, lang=code)


def _names() -> dict[str, str]:
    """Each agency's name in the page's language where it gave one."""
    return accounts.names_in(request_db(), locale())


def _helpers(actor: Actor) -> list[dict[str, Any]]:
    """Who is helping the family, with names as the page shows them."""
    rt = current()
    names = _names()
    out = []
    for helper in helping.helping(request_db(), rt.vault, actor, str(actor.family_id),
                                  rt.now()):
        name = names.get(helper.agency, helper.agency)
        out.append({"agency": helper.agency, "name": name,
                    "contact_person": helper.contact_person,
                    "in_sentence": isolate(helper.contact_person or ""),
                    "since": written_date(helper.contact_since)
                    if helper.contact_since else None})
    return sorted(out, key=lambda h: h["name"].casefold())


def _labels() -> dict[str, str]:
    return {f.id: f.label for f in common.catalogue(request_db())}


def _columns(form: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per service that takes part: that may see something, or
    that works with the family (it sees what it wrote itself), its fields in
    form order."""
    names, catalogue = _names(), common.catalogue(request_db())
    labels = {f.id: f.label for f in catalogue}
    order = {f.id: i for i, f in enumerate(catalogue)}
    involved = set(form.get("involved", []))
    columns = []
    for agency in set(form["grants"]) | involved:
        field_ids = form["grants"].get(agency, []) if form["in_force"] else []
        if not field_ids and agency not in involved:
            continue
        ordered = sorted(field_ids, key=lambda f: (order.get(f, len(order)), f))
        name = names.get(agency, agency)
        sentences = [can_see(isolate(name), ordered, labels)] if ordered else []
        if agency in involved:
            sentences.append(gettext("%(agency)s works with your family and sees what it "
                                     "wrote itself.", agency=isolate(name)))
            if form.get("recorded_by") == agency:
                sentences.append(gettext("%(agency)s saved the form you signed, so it sees "
                                         "the whole form.", agency=isolate(name)))
        columns.append({
            "agency": agency,
            "name": name,
            "in_sentence": isolate(name),
            "sentence": " ".join(sentences),
            "shares": bool(ordered),
            "cells": [{"field": f, "words": field_words(f, labels)} for f in ordered],
        })
    return sorted(columns, key=lambda c: c["name"].casefold())


def _times(action: str, num: int, who: str, day: str) -> str:
    # Spelled out per action so that the extractor sees each message.
    if action == Action.RECORD_READ:
        return ngettext("%(who)s looked at your record %(num)d time on %(day)s.",
                        "%(who)s looked at your record %(num)d times on %(day)s.", num,
                        who=who, day=day)
    if action == Action.CONSENT_READ:
        return ngettext("%(who)s looked at your consent form %(num)d time on %(day)s.",
                        "%(who)s looked at your consent form %(num)d times on %(day)s.", num,
                        who=who, day=day)
    if action == Action.CONSENT_HISTORY:
        return ngettext(
            "%(who)s looked at the old versions of your consent form %(num)d time on %(day)s.",
            "%(who)s looked at the old versions of your consent form %(num)d times on "
            "%(day)s.", num, who=who, day=day)
    if action == Action.REFERRAL_LIST:
        return ngettext(
            "%(who)s looked at the list of services your family was sent to %(num)d time "
            "on %(day)s.",
            "%(who)s looked at the list of services your family was sent to %(num)d times "
            "on %(day)s.", num, who=who, day=day)
    if action == Action.REFERRAL_READ:
        return ngettext(
            "%(who)s looked at a request for help for your family %(num)d time on %(day)s.",
            "%(who)s looked at a request for help for your family %(num)d times on %(day)s.",
            num, who=who, day=day)
    return ngettext("%(who)s looked at this list %(num)d time on %(day)s.",
                    "%(who)s looked at this list %(num)d times on %(day)s.", num,
                    who=who, day=day)


def _log_sentence(row: dict[str, Any], labels: dict[str, str],
                  order: dict[str, int]) -> dict[str, Any]:
    agency = row.get("agency_name") or gettext("Someone")
    role = ROLES.get(row.get("role") or "")
    who = f"{isolate(agency)} ({role})" if role else isolate(agency)
    refused = row["refused"] or row["action"] == Action.REQUEST_DENIED
    at = datetime.fromisoformat(row["at"])
    about = isolate(row.get("about_agency_name") or gettext("another service"))
    change = row.get("what") == who_looked.TRIED_TO_CHANGE
    if refused and row.get("times", 1) > 1 and change:
        first = ngettext(
            "%(who)s tried to change something %(num)d time on %(day)s and was refused.",
            "%(who)s tried to change something %(num)d times on %(day)s and was refused.",
            row["times"], who=who, day=format_date(at, DAY.get(locale(), "d MMMM")))
    elif refused and row.get("times", 1) > 1:
        first = ngettext("%(who)s tried to look %(num)d time on %(day)s and was refused.",
                         "%(who)s tried to look %(num)d times on %(day)s and was refused.",
                         row["times"], who=who, day=format_date(at, DAY.get(locale(), "d MMMM")))
    elif refused:
        first = str(REFUSED_CHANGE if change else REFUSED) % {"who": who}
    elif row.get("times", 1) > 1 and row["action"] in DID_TIMES:
        day = format_date(at, DAY.get(locale(), "d MMMM"))
        first = _times(row["action"], row["times"], who, day)
    elif row["action"] == Action.INVOLVEMENT_REFER and row.get("about_agency_name"):
        first = str(REFERRED) % {"who": who, "agency": about}
    elif row["action"] == Action.REFERRAL_CREATE and row.get("about_agency_name"):
        first = str(ASKED) % {"who": who, "agency": about}
    else:
        said = DID.get(row["action"], DID[Action.RECORD_READ])
        first = str(said) % {"who": who, "agency": about}
    lines = [first]

    def things(field_ids: list[str]) -> str:
        return gettext("; ").join(field_words(f, labels) for f in
                                  sorted(field_ids, key=lambda f: (order.get(f, len(order)), f)))

    shown, own = things(row["fields_shown"]), things(row.get("fields_own", []))
    if not refused and row["action"] == Action.RECORD_READ:
        if shown:
            lines.append(gettext("They saw: %(things)s.", things=shown))
        if own:
            # Translators: the service looked only at notes it wrote itself.
            lines.append(gettext("They looked at what they wrote themselves: %(things)s.",
                                 things=own))
    elif shown and not refused and row["action"] == Action.ENTRY_WRITE:
        lines.append(gettext("The note is about: %(things)s.", things=shown))
    return {"at": at, "when": written_time(at), "refused": refused,
            "text": " ".join(lines)}


def _still(agency: str, form: dict[str, Any] | None) -> list[str]:
    """What an agency can still do after a change, as the family is told it:
    the cells it keeps, whether it still works with the family (and so sees
    what it wrote itself), and whether it sees the whole form because it
    saved the form the family signed. Empty when it has no part left."""
    if form is None:
        return []
    name = isolate(_names().get(agency, agency))
    catalogue = common.catalogue(request_db())
    labels = {f.id: f.label for f in catalogue}
    order = {f.id: i for i, f in enumerate(catalogue)}
    # Past its last day the form shares nothing: no cell is still seen.
    kept = sorted(form["grants"].get(agency, []) if form["in_force"] else [],
                  key=lambda f: (order.get(f, len(order)), f))
    involved = agency in form.get("involved", [])
    out = []
    if kept:
        out.append(gettext("%(agency)s can still see: %(things)s.", agency=name,
                           things=gettext("; ").join(field_words(f, labels) for f in kept)))
    if involved:
        out.append(gettext("%(agency)s still works with your family and sees what it wrote "
                           "itself.", agency=name))
        if form.get("recorded_by") == agency:
            out.append(gettext("%(agency)s saved the form you signed, so it still sees the "
                               "whole form.", agency=name))
    elif kept:
        out.append(gettext("%(agency)s also still sees what it wrote itself.", agency=name))
    return out


def _revoke_words(agency: str | None, field_id: str | None,
                  form: dict[str, Any] | None) -> dict[str, str]:
    """The question before, and the message after, stopping to share: what
    changes and what does not. `form` is the form before the change (for
    the question) or after it (for the message)."""
    name = isolate(_names().get(agency, agency)) if agency else ""
    thing = field_words(field_id, _labels()) if field_id else ""
    involved = list(form.get("involved", [])) if form else []
    if agency:
        if field_id:
            # Translators: %(agency)s is a service's name; %(thing)s is a kind of
            # information, such as "health notes".
            ask = gettext("%(agency)s will no longer see %(thing)s.", agency=name, thing=thing)
            done = gettext("%(agency)s can no longer see %(thing)s.", agency=name, thing=thing)
            none = gettext("%(agency)s cannot see %(thing)s now. There is nothing to stop.",
                           agency=name, thing=thing)
        elif agency in involved:
            ask = gettext("%(agency)s will no longer see what other services share about "
                          "your family.", agency=name)
            done = gettext("%(agency)s can no longer see what other services share about "
                           "your family.", agency=name)
            none = gettext("%(agency)s cannot see what other services share now. There is "
                           "nothing to stop.", agency=name)
        else:
            ask = gettext("%(agency)s will no longer see anything about your family.",
                          agency=name)
            done = gettext("%(agency)s can no longer see anything about your family.",
                           agency=name)
            none = gettext("%(agency)s cannot see anything now. There is nothing to stop.",
                           agency=name)
        still = _still(agency, form)
        if agency in involved:
            ask_still = [gettext("%(agency)s will still work with your family and see what it "
                                 "wrote itself. To end that too, choose “End the part of "
                                 "%(agency)s” on your page.", agency=name)]
        else:
            ask_still = []
        return {"ask": " ".join([ask, *ask_still]), "done": " ".join([done, *still]),
                "none": none}
    keep = []
    for involved_agency in involved:
        n = isolate(_names().get(involved_agency, involved_agency))
        keep.append(gettext("%(agency)s still works with your family and sees what it wrote "
                            "itself.", agency=n))
        if form and form.get("recorded_by") == involved_agency:
            keep.append(gettext("%(agency)s saved the form you signed, so it still sees the "
                                "whole form.", agency=n))
    if field_id:
        return {"ask": " ".join([gettext("No service will see %(thing)s from another service "
                                         "any more. Each service still sees what it wrote "
                                         "itself.", thing=thing), *keep]),
                "done": " ".join([gettext("No service can see %(thing)s from another service "
                                          "now. Each service still sees what it wrote itself.",
                                          thing=thing), *keep]),
                "none": gettext("No service can see %(thing)s now. There is nothing to "
                                "stop.", thing=thing)}
    return {"ask": " ".join([gettext("No service will see what other services share about "
                                     "your family any more."), *keep]),
            "done": " ".join([gettext("No service can see what other services share about "
                                      "your family now."), *keep]),
            "none": gettext("No service can see anything now. There is nothing to stop.")}


def _end_words(agency: str) -> dict[str, str]:
    """The question before, and the message after, ending an agency's part."""
    name = isolate(_names().get(agency, agency))
    return {
        "ask": gettext("%(agency)s will no longer work with your family. It will not find "
                       "your family any more, and will not see anything about it.",
                       agency=name),
        "done": gettext("%(agency)s no longer has any part in your family's record.",
                        agency=name),
        "none": gettext("%(agency)s has no part in your family's record now. There is "
                        "nothing to end.", agency=name),
        "kept": gettext("What %(agency)s wrote before stays in your record, for the services "
                        "you let see it.", agency=name),
    }


def _has_part(form: dict[str, Any] | None, agency: str) -> bool:
    return form is not None and (bool(form["grants"].get(agency))
                                 or agency in form.get("involved", []))


def _shares(form: dict[str, Any] | None, agency: str | None, field_id: str | None) -> bool:
    """Whether the current form grants anything this revocation would take away."""
    if form is None:
        return False
    return any(fs and (agency is None or a == agency) and (field_id is None or field_id in fs)
               for a, fs in form["grants"].items())


def _sign_in_page(status: int = 200, message: str | None = None,
                  errors: dict[str, str] | None = None, code: str = "",
                  headers: dict[str, str] | None = None) -> Any:
    page = render_template("family/sign_in.html", message=message, errors=errors or {},
                           code=code)
    return page, status, headers or {}


def _invalid_choice() -> Any:
    page = render_template("family/error.html", status=422)
    return page, 422


def create_blueprint() -> Blueprint:
    from coordination.web import family_duty, family_emergency, family_entries, family_requests

    bp = Blueprint("family", __name__, url_prefix="/family")
    family_requests.register(bp)
    family_duty.register(bp)

    @bp.context_processor
    def _family_page_globals() -> dict[str, Any]:
        return {"lang_url": lang_url, "signed_in": "family_actor" in g}

    @bp.get("/")
    def sign_in() -> Any:
        if family_actor() is not None:
            return redirect(url_for("family.consent"))
        return _sign_in_page()

    @bp.post("/")
    def sign_in_post() -> Any:
        form = {k: request.form.get(k, "").strip() for k in ("receipt_code", "pin")}
        code = form["receipt_code"][:32]
        values, errors = parse(FamilySessionIn(), {k: v for k, v in form.items() if v})
        if errors:
            problems = {}
            if not form["receipt_code"]:
                problems["receipt_code"] = gettext("Please type the receipt code from your "
                                                   "paper.")
            if not form["pin"]:
                problems["pin"] = gettext("Please type the PIN from your paper.")
            if not problems:  # too long: cannot be a real code or PIN
                return _sign_in_page(401, gettext("The code or PIN is not right."), code=code)
            return _sign_in_page(422, errors=problems, code=code)
        rt = current()
        try:
            opened = accounts.open_family_session(
                request_db(), values["receipt_code"], values["pin"],
                rt.settings.family_session_lifetime, rt.now(), request_id=request_id())
        except Throttled as exc:
            minutes = max(1, math.ceil(exc.retry_after / 60))
            message = ngettext(
                "There were too many wrong tries. Please wait about %(num)d minute, "
                "then try again.",
                "There were too many wrong tries. Please wait about %(num)d minutes, "
                "then try again.", minutes)
            return _sign_in_page(429, message, code=code,
                                 headers={"Retry-After": str(exc.retry_after)})
        except NotAuthenticated:
            return _sign_in_page(401, gettext("The code or PIN is not right."), code=code)
        # A fresh session at sign-in: nothing from before (fixation) carries
        # over, and whoever was signed in on this browser is signed out.
        end_signed_in()
        session[FAMILY_COOKIE] = opened["token"]
        return redirect(url_for("family.consent"))

    @bp.post("/sign-out")
    def sign_out() -> BaseResponse:
        end_signed_in()
        flash(gettext("You are signed out. Thank you."), "info")
        return redirect(url_for("family.sign_in"))

    @bp.get("/consent")
    @family_page
    def consent(actor: Actor) -> Any:
        rt = current()
        try:
            form = consent_forms.get_consent(request_db(), rt.vault, actor, str(actor.family_id),
                                             rt.now())
        except NoConsentForm:
            return render_template("family/consent.html", form=None, columns=[],
                                   access_requests=family_requests.pending(actor),
                                   referral_items=family_referrals.on_page(actor, None),
                                   helpers=_helpers(actor),
                                   emergencies=family_emergency.on_page(actor),
                                   typed_entries=family_entries.on_page(actor))
        valid_until = written_date(date.fromisoformat(form["valid_until"]))
        return render_template("family/consent.html", form=form, columns=_columns(form),
                               valid_until=valid_until,
                               access_requests=family_requests.pending(actor),
                               referral_items=family_referrals.on_page(actor, form),
                               helpers=_helpers(actor),
                               emergencies=family_emergency.on_page(actor),
                               typed_entries=family_entries.on_page(actor))

    def _current(actor: Actor) -> dict[str, Any] | None:
        rt = current()
        try:
            return consent_forms.get_consent(request_db(), rt.vault, actor, str(actor.family_id),
                                             rt.now())
        except NoConsentForm:
            return None

    @bp.route("/consent/revoke", methods=["GET", "POST"])
    @family_page
    def revoke(actor: Actor) -> Any:
        raw: dict[str, Any] = {k: request.values[k] for k in ("agency", "field")
                               if request.values.get(k)}
        values, errors = parse(RevokeIn(), raw)
        if errors or common.reference_errors(request_db(), raw.get("agency"),
                                             raw.get("field")):
            return _invalid_choice()
        agency, field_id = values.get("agency"), values.get("field")
        rt = current()
        if request.method == "POST" and request.form.get("confirmed") != "1":
            return redirect(url_for("family.revoke", **raw))
        if request.method == "GET":
            form = _current(actor)
            return render_template("family/revoke.html", agency=agency, field=field_id,
                                   words=_revoke_words(agency, field_id, form),
                                   shares=_shares(form, agency, field_id))
        try:
            after = consent_forms.revoke_consent(request_db(), rt.vault, actor,
                                                 str(actor.family_id), agency, field_id, rt.now())
        except InvalidInput:
            return _invalid_choice()
        except Conflict:
            flash(gettext("Nothing was changed. Please look at your form again and try "
                          "once more."), "error")
            return redirect(url_for("family.consent"))
        flash(_revoke_words(agency, field_id, after)["done"], "success")
        return redirect(url_for("family.consent"))

    @bp.route("/end", methods=["GET", "POST"])
    @family_page
    def end_part(actor: Actor) -> Any:
        agency = request.values.get("agency", "")
        values, errors = parse(RevokeIn(), {"agency": agency})
        if errors or not agency or common.reference_errors(request_db(), agency):
            return _invalid_choice()
        agency = values["agency"]
        if request.method == "POST" and request.form.get("confirmed") != "1":
            return redirect(url_for("family.end_part", agency=agency))
        if request.method == "GET":
            return render_template("family/end.html", agency=agency, words=_end_words(agency),
                                   has_part=_has_part(_current(actor), agency))
        rt = current()
        try:
            involvements.end_involvement(request_db(), rt.vault, actor, str(actor.family_id),
                                         agency, None, rt.now())
        except InvalidInput:
            return _invalid_choice()
        except Conflict:
            flash(_end_words(agency)["none"], "info")
            return redirect(url_for("family.consent"))
        words = _end_words(agency)
        flash(" ".join([words["done"], words["kept"]]), "success")
        return redirect(url_for("family.consent"))

    @bp.get("/access-log")
    @family_page
    def access_log(actor: Actor) -> Any:
        rt = current()
        rows = who_looked.access_log(request_db(), rt.vault, actor, str(actor.family_id),
                                     rt.now(), tz=rt.settings.timezone)
        catalogue = common.catalogue(request_db())
        labels = {f.id: f.label for f in catalogue}
        order = {f.id: i for i, f in enumerate(catalogue)}
        return render_template("family/access_log.html",
                               rows=[_log_sentence(r, labels, order) for r in rows])

    family_referrals.register(bp)
    from coordination.web import family_counting

    family_counting.register(bp)
    return bp
