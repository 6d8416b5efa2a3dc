"""Staff pages for referrals (CONTRACT.md, "Referrals: asked, answered,
booked, attended"): the referral form from the family's record, the
agency's referrals in and out, one referral with its history, and each
act on it, offered only to who may make it.

Registered on the staff blueprint (`register(bp)`), so the staff pages'
sign-in, CSRF and refusal records apply. Views parse with the API's
schemas, call one use case of `casework.referrals` and render; bad input
is the page again with each field's error (422), nothing changed.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from coordination.actors import Actor
from coordination.api import record_denial
from coordination.casework import common, involvements, referrals
from coordination.casework import referral_states as rules
from coordination.errors import Conflict, InvalidInput
from coordination.roles import Role
from coordination.runtime import current, request_db
from coordination.schemas import (
    AppointmentIn,
    AppointmentOutcomeIn,
    InPersonAnswerIn,
    ReferralAcceptIn,
    ReferralAskIn,
    ReferralCloseIn,
    ReferralListArgs,
    ReferralReasonIn,
)
from coordination.web import parse, staff_page, text_fields

CASEWORK = (Role.PRACTITIONER, Role.COORDINATOR)
URGENCIES = [("routine", "Routine: answer within 10 days"),
             ("soon", "Soon: answer within 3 days"),
             ("urgent", "Urgent: answer within 1 day")]
TOLD = [("in_person", "In person"), ("paper", "On paper")]
STATES = {
    "awaiting_family": "Waiting for the family's answer",
    "sent": "Sent: waiting for the receiving agency",
    "declined_by_family": "The family said no",
    "declined": "Declined",
    "accepted": "Accepted",
    "booked": "Appointment booked",
    "attended": "Appointment attended",
    "missed": "Appointment missed",
    "closed": "Closed",
    "withdrawn": "Withdrawn",
}
OUTCOMES = {"attended": "Attended", "missed": "Missed", "cancelled": "Cancelled"}
# A moment typed into a datetime-local field: read as UTC, as the staff pages say.
LOCAL_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?")


def me() -> Actor:
    actor: Actor = g.actor
    return actor


def _names() -> dict[str, str]:
    return {a.id: a.name for a in common.agencies(request_db())}


def _labels() -> dict[str, str]:
    return {f.id: f.label for f in common.catalogue(request_db())}


def offered(actor: Actor, ref: dict[str, Any]) -> set[str]:
    """The acts the page offers this reader on this referral: those the
    diagram allows next that its agency's side and its role may make."""
    state = rules.State(ref["state"])
    allowed = set(rules.allowed_acts(state))
    out: set[str] = set()
    for act in allowed:
        party = rules.WHO[act]
        if party == rules.Party.FAMILY:
            # A coordinator of an involved agency other than the receiving one
            # records the family's answer given in person.
            if actor.role == Role.COORDINATOR and ref["to"] != actor.agency_id:
                out.add("answer")
            continue
        agency = ref["to"] if party == rules.Party.RECEIVER else ref["from"]
        roles = CASEWORK if act in referrals.BY_PRACTITIONERS else (Role.COORDINATOR,)
        if agency == actor.agency_id and actor.role in roles:
            out.add(act.value)
    if "attended" in out or "missed" in out or "cancelled" in out:
        out.add("outcome")
    return out


def _moment(value: str) -> str:
    """A datetime-local value as the API's ISO moment in UTC."""
    return value + ("" if value.count(":") == 2 else ":00") + "Z" if LOCAL_MOMENT.fullmatch(
        value) else value


def register(bp: Blueprint) -> None:
    """Add the referral pages to the staff blueprint."""

    def _form_page(family_id: str, errors: dict[str, list[str]], form: dict[str, Any],
                   status: int = 200, choices: dict[str, Any] | None = None) -> Any:
        rt = current()
        if choices is None:
            choices = referrals.referral_choices(request_db(), rt.vault, me(), family_id,
                                                 rt.now())
        fields = [(f.id, f.label) for f in common.catalogue(request_db())
                  if f.id != common.INVOLVEMENT]
        return render_template("staff/referrals/new.html", family_id=family_id, errors=errors,
                               form=form, choices=choices, fields=fields, labels=_labels(),
                               urgencies=URGENCIES), status

    @bp.get("/families/<id:family_id>/referrals/new")
    @staff_page(*CASEWORK)
    def new_referral(family_id: str) -> Any:
        return _form_page(family_id, {}, {"urgency": "routine", "fields": []})

    @bp.post("/families/<id:family_id>/referrals")
    @staff_page(*CASEWORK)
    def refer(family_id: str) -> Any:
        rt = current()
        form: dict[str, Any] = text_fields("to", "reason", "urgency", "interpreter_language",
                                           "respond_by")
        form["fields"] = request.form.getlist("fields")
        form["accompany"] = request.form.get("accompany") == "yes"
        data = {**form}
        referrals.check_create(request_db(), rt.vault, me(), family_id, rt.now())
        values, errors = parse(ReferralAskIn(), data)
        for key, messages in referrals.referral_errors(request_db(), me(), data,
                                                       rt.now()).items():
            errors.setdefault(key, []).extend(m for m in messages if m not in errors.get(key, []))
        choices = referrals.referral_choices(request_db(), rt.vault, me(), family_id, rt.now())
        offered_ids = {c["id"] for c in choices["agencies"]}
        if "to" in form and form["to"] not in offered_ids and "to" not in errors:
            errors["to"] = ["choose one of the agencies listed: this one already works with "
                            "the family"]
        if errors:
            return _form_page(family_id, errors, form, 422, choices)
        try:
            made = referrals.create_referral(request_db(), rt.vault, me(), family_id, values,
                                             rt.now())
        except InvalidInput as exc:
            return _form_page(family_id, exc.errors, form, 422)
        name = _names().get(made["to"], made["to"])
        if made["state"] == rules.State.SENT:
            flash(f"Sent to {name}: the family's consent form already lets {name} know of the "
                  "family and see what you asked for.", "success")
        else:
            flash(f"Recorded. The family is asked first whether {name} may know of it and see "
                  "what you asked for; nothing reaches " + name + " until the family agrees.",
                  "success")
        return redirect(url_for("staff.referral", referral_id=made["id"]))

    @bp.get("/families/<id:family_id>/referrals")
    @staff_page(*CASEWORK)
    def family_referrals(family_id: str) -> Any:
        rt = current()
        items = referrals.family_referrals(request_db(), rt.vault, me(), family_id, rt.now())
        return render_template("staff/referrals/family.html", family_id=family_id,
                               items=items, names=_names(), states=STATES)

    @bp.get("/referrals")
    @staff_page(*CASEWORK)
    def referral_list() -> Any:
        raw = {k: v for k, v in request.args.items() if k in {"direction", "state"} and v}
        args, errors = parse(ReferralListArgs(), raw)
        if errors:
            return render_template("staff/referrals/list.html", items=[], args=raw,
                                   errors=errors, names=_names(), states=STATES), 422
        rt = current()
        items = referrals.list_referrals(request_db(), rt.vault, me(), args.get("state"),
                                         args.get("direction"), rt.now(), with_names=True)
        incoming = [r for r in items if r["to"] == me().agency_id]
        outgoing = [r for r in items if r["from"] == me().agency_id]
        return render_template("staff/referrals/list.html", incoming=incoming,
                               outgoing=outgoing, args=raw, errors={}, names=_names(),
                               states=STATES)

    def _page(referral_id: str, errors: dict[str, list[str]] | None = None,
              form: dict[str, Any] | None = None, status: int = 200) -> Any:
        rt = current()
        ref = referrals.get_referral(request_db(), rt.vault, me(), referral_id, rt.now(),
                                     with_name=True)
        acts = offered(me(), ref)
        colleagues = ([(u, u) for u in involvements.colleagues(request_db(), me())]
                      if "accept" in acts else [])
        open_apt = next((a for a in ref["appointments"] if a["outcome"] is None), None)
        return render_template("staff/referrals/show.html", ref=ref, acts=acts,
                               errors=errors or {}, form=form or {}, names=_names(),
                               labels=_labels(), states=STATES, outcomes=OUTCOMES,
                               colleagues=colleagues, open_apt=open_apt, told=TOLD), status

    @bp.get("/referrals/<id:referral_id>")
    @staff_page(*CASEWORK)
    def referral(referral_id: str) -> Any:
        return _page(referral_id)

    def _act(referral_id: str, act: rules.Act, schema: Any, data: dict[str, Any],
             done: str) -> Any:
        rt = current()
        referrals.check_act(request_db(), rt.vault, me(), referral_id, act, rt.now())
        values, errors = parse(schema, data)
        if not errors:
            try:
                referrals.act_on_referral(request_db(), rt.vault, me(), referral_id, act,
                                          values, rt.now())
            except InvalidInput as exc:
                errors = exc.errors
            except Conflict as exc:
                record_denial(exc)
                flash(f"Nothing was changed: {exc}.", "error")
                return redirect(url_for("staff.referral", referral_id=referral_id))
        if errors:
            return _page(referral_id, errors, data, 422)
        flash(done, "success")
        return redirect(url_for("staff.referral", referral_id=referral_id))

    @bp.post("/referrals/<id:referral_id>/accept")
    @staff_page(Role.COORDINATOR)
    def accept_referral(referral_id: str) -> Any:
        data = text_fields("contact_worker")
        return _act(referral_id, rules.Act.ACCEPT, ReferralAcceptIn(), data,
                    "Accepted: your agency now works with this family.")

    @bp.post("/referrals/<id:referral_id>/decline")
    @staff_page(Role.COORDINATOR)
    def decline_referral(referral_id: str) -> Any:
        return _act(referral_id, rules.Act.DECLINE, ReferralReasonIn(), text_fields("reason"),
                    "Declined. The referring agency reads your reason.")

    @bp.post("/referrals/<id:referral_id>/withdraw")
    @staff_page(Role.COORDINATOR)
    def withdraw_referral(referral_id: str) -> Any:
        return _act(referral_id, rules.Act.WITHDRAW, ReferralReasonIn(), text_fields("reason"),
                    "Withdrawn. The receiving agency reads your reason.")

    @bp.post("/referrals/<id:referral_id>/close")
    @staff_page(*CASEWORK)
    def close_referral(referral_id: str) -> Any:
        return _act(referral_id, rules.Act.CLOSE, ReferralCloseIn(),
                    text_fields("outcome_note"),
                    "Closed. The referring agency reads your note on the outcome.")

    @bp.post("/referrals/<id:referral_id>/appointments")
    @staff_page(*CASEWORK)
    def book_appointment(referral_id: str) -> Any:
        rt = current()
        referrals.check_book(request_db(), rt.vault, me(), referral_id, rt.now())
        form = text_fields("at", "place", "interpreter_language", "accompanied_by")
        data = {**form, **({"at": _moment(form["at"])} if "at" in form else {})}
        values, errors = parse(AppointmentIn(), data)
        if not errors:
            errors = referrals.appointment_errors(values["at"], rt.now())
        if not errors:
            try:
                referrals.book_appointment(request_db(), rt.vault, me(), referral_id, values,
                                           rt.now())
            except Conflict as exc:
                record_denial(exc)
                flash(f"Nothing was changed: {exc}.", "error")
                return redirect(url_for("staff.referral", referral_id=referral_id))
        if errors:
            return _page(referral_id, errors, form, 422)
        flash("The appointment is booked. The family sees it on its page.", "success")
        return redirect(url_for("staff.referral", referral_id=referral_id))

    @bp.post("/referrals/<id:referral_id>/appointments/<id:appointment_id>")
    @staff_page(*CASEWORK)
    def appointment_outcome(referral_id: str, appointment_id: str) -> Any:
        rt = current()
        referrals.check_outcome(request_db(), rt.vault, me(), referral_id, appointment_id,
                                rt.now())
        form = text_fields("outcome", "note")
        values, errors = parse(AppointmentOutcomeIn(), form)
        if not errors:
            try:
                referrals.set_outcome(request_db(), rt.vault, me(), referral_id,
                                      appointment_id, values, rt.now())
            except Conflict as exc:
                record_denial(exc)
                flash(f"Nothing was changed: {exc}.", "error")
                return redirect(url_for("staff.referral", referral_id=referral_id))
        if errors:
            return _page(referral_id, errors, form, 422)
        flash(f"The appointment is marked {values['outcome']}.", "success")
        return redirect(url_for("staff.referral", referral_id=referral_id))

    @bp.post("/families/<id:family_id>/referrals/<id:referral_id>/answer")
    @staff_page(Role.COORDINATOR)
    def record_answer(family_id: str, referral_id: str) -> Any:
        """Record the family's answer given in person (agree or refuse)."""
        rt = current()
        form = text_fields("signed_by", "method", "answer")
        referrals.check_family_answer(request_db(), rt.vault, me(), family_id, referral_id,
                                      rt.now())
        values, errors = parse(InPersonAnswerIn(), {k: v for k, v in form.items()
                                                    if k != "answer"})
        if form.get("answer") not in {"agree", "refuse"}:
            errors["answer"] = ["choose whether the family said yes or no"]
        if not errors:
            try:
                referrals.family_answer(request_db(), rt.vault, me(), family_id, referral_id,
                                        form["answer"] == "agree", rt.now(), values)
            except Conflict as exc:
                record_denial(exc)
                flash(f"Nothing was changed: {exc}.", "error")
                return redirect(url_for("staff.referral", referral_id=referral_id))
        if errors:
            return _page(referral_id, errors, form, 422)
        flash("Recorded: the family said yes. The referral is sent, and the family's consent "
              "form has a new version." if form["answer"] == "agree" else
              "Recorded: the family said no. The receiving agency will not learn of it.",
              "success")
        return redirect(url_for("staff.referral", referral_id=referral_id))
