"""Staff pages, access requests: an agency asks the family for rows of the
record it cannot see, with a reason (a small form on the record page), sees
its own requests and their answers, and a coordinator of another involved
agency records the family's answer given in person (CONTRACT.md, "Access
requests")."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from coordination.actors import Actor
from coordination.api import record_denial
from coordination.casework import access_requests, common
from coordination.errors import Conflict, InvalidInput, NotPermitted
from coordination.roles import Role
from coordination.runtime import current, request_db
from coordination.schemas import AccessAnswerIn, AccessRequestIn
from coordination.web import parse, staff_page, text_fields

CASEWORK = (Role.PRACTITIONER, Role.COORDINATOR)
TOLD = [("in_person", "In person"), ("paper", "On paper")]
ANSWERS = [("approve", "Yes: the agency may see what it asked for"),
           ("decline", "No")]


def me() -> Actor:
    actor: Actor = g.actor
    return actor


def _names() -> dict[str, str]:
    return {a.id: a.name for a in common.agencies(request_db())}


def _labels() -> dict[str, str]:
    return {f.id: f.label for f in common.catalogue(request_db())}


def _may_record(family_id: str) -> list[dict[str, Any]] | None:
    """Other agencies' pending requests the caller may record answers to, or
    None when it may not record any."""
    if me().role != Role.COORDINATOR:
        return None
    rt = current()
    try:
        return access_requests.requests_to_record(request_db(), rt.vault, me(), family_id,
                                                  rt.now())
    except NotPermitted:
        return None


def register(bp: Blueprint) -> None:
    def _page(family_id: str, errors: dict[str, list[str]], form: dict[str, Any],
              status: int = 200) -> Any:
        """The agency's requests and those it may record answers to; with
        `errors`, only the form to put right (nothing is read)."""
        rt = current()
        mine = None if errors else access_requests.list_requests(
            request_db(), rt.vault, me(), family_id, rt.now())
        others = None if errors else _may_record(family_id)
        open_rows = set(access_requests.askable(request_db(), rt.vault, me(), family_id,
                                                rt.now()))
        return render_template("staff/access_requests.html", family_id=family_id, mine=mine,
                               others=others, names=_names(),
                               labels=_labels(),
                               fields=[f for f in common.catalogue(request_db())
                                       if f.id in open_rows],
                               errors=errors, form=form), status

    @bp.get("/families/<id:family_id>/access-requests")
    @staff_page(*CASEWORK)
    def access_requests_page(family_id: str) -> Any:
        return _page(family_id, {}, {})

    @bp.post("/families/<id:family_id>/access-requests")
    @staff_page(*CASEWORK)
    def ask_access(family_id: str) -> Any:
        form: dict[str, Any] = {**text_fields("reason"), "fields": request.form.getlist("field")}
        rt = current()
        values, errors = parse(AccessRequestIn(), form)
        for key, messages in access_requests.request_errors(request_db(), form).items():
            errors.setdefault(key, []).extend(messages)
        status = 422
        if not errors:
            try:
                access_requests.create_request(request_db(), rt.vault, me(), family_id, values,
                                               rt.now())
            except InvalidInput as exc:
                errors = exc.errors
            except Conflict as exc:
                record_denial(exc)
                errors, status = {"fields": [str(exc)]}, 409
        if errors:
            access_requests.check_create(request_db(), rt.vault, me(), family_id, rt.now())
            return _page(family_id, errors, form, status)
        labels = _labels()
        flash("Asked the family to let your agency see: "
              + ", ".join(labels.get(f, f) for f in values["asked"])
              + ". The family answers on its page, or in person with a coordinator of another "
                "agency that works with it.", "success")
        return redirect(url_for("staff.access_requests_page", family_id=family_id))

    @bp.route("/families/<id:family_id>/access-requests/<id:request_id>/answer",
              methods=["GET", "POST"])
    @staff_page(Role.COORDINATOR)
    def record_access_answer(family_id: str, request_id: str) -> Any:
        """Record the family's answer to another agency's request, given in person."""
        rt = current()
        access_requests.check_answer(request_db(), rt.vault, me(), family_id, request_id,
                                     rt.now())
        pending = {r["id"]: r for r in _may_record(family_id) or []}
        req = pending.get(request_id)
        if req is None:
            flash("That request is no longer waiting for the family's answer.", "info")
            return redirect(url_for("staff.access_requests_page", family_id=family_id))
        form = text_fields("signed_by", "method", "answer")
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            answer = form.pop("answer", None)
            values, errors = parse(AccessAnswerIn(), form)
            if answer not in {"approve", "decline"}:
                errors["answer"] = ["choose the family's answer"]
            form["answer"] = answer or ""
            if not errors:
                try:
                    access_requests.answer_request(request_db(), rt.vault, me(), family_id,
                                                   request_id, answer == "approve", values,
                                                   rt.now())
                except Conflict as exc:
                    record_denial(exc)
                    flash(str(exc), "error")
                    return redirect(url_for("staff.access_requests_page", family_id=family_id))
                name = _names().get(req["agency"], req["agency"])
                flash(f"Recorded: the family said {'yes' if answer == 'approve' else 'no'} to "
                      f"{name}'s request.", "success")
                return redirect(url_for("staff.access_requests_page", family_id=family_id))
        return render_template("staff/access_answer.html", family_id=family_id, req=req,
                               names=_names(), labels=_labels(), form=form, errors=errors,
                               methods=TOLD, answers=ANSWERS), 422 if errors else 200
