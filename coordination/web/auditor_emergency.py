"""Auditor pages, emergency accesses: the review queue (oldest first, each
with its reason and what was read under it) and the verdict form; the
counts on the log page, and which log entries belong to an access found
unjustified (CONTRACT.md, "Exceptional access")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from coordination.actors import Actor
from coordination.api import record_denial
from coordination.casework import common, emergency_review
from coordination.errors import Conflict
from coordination.roles import Role
from coordination.runtime import current, request_db
from coordination.schemas import EmergencyReviewIn
from coordination.web import parse, staff_page, text_fields

VERDICTS = [("justified", "Justified"), ("unjustified", "Unjustified")]


def me() -> Actor:
    actor: Actor = g.actor
    return actor


def summary() -> dict[str, Any]:
    """What the log page counts: accesses waiting for review, and those
    found unjustified (whose entries the log highlights)."""
    session = request_db()
    unjustified = emergency_review.unjustified_ids(session)
    return {"emergency_waiting": emergency_review.count_unreviewed(session),
            "emergency_unjustified": len(unjustified), "unjustified_ids": unjustified}


def unjustified_entry(detail: Mapping[str, Any], ids: set[str]) -> bool:
    """Whether a log entry is the opening of, a read under, or the review of
    an emergency access found unjustified."""
    basis = detail.get("basis")
    access = detail.get("access")
    if isinstance(basis, str) and basis.startswith("emergency:"):
        access = basis.removeprefix("emergency:")
    return isinstance(access, str) and access in ids


def register(bp: Blueprint) -> None:
    def _page(errors: dict[str, dict[str, list[str]]], forms: dict[str, dict[str, str]],
              reviewed: bool = False, status: int = 200) -> Any:
        rt = current()
        items = emergency_review.review_queue(request_db(), rt.vault, me(), reviewed, rt.now())
        names = {a.id: a.name for a in common.agencies(request_db())}
        return render_template("auditor/emergency.html", items=items, names=names,
                               errors=errors, forms=forms, verdicts=VERDICTS,
                               reviewed=reviewed), status

    @bp.get("/emergency-access")
    @staff_page(Role.AUDITOR)
    def emergency_queue() -> Any:
        return _page({}, {}, reviewed=request.args.get("reviewed") == "true")

    @bp.post("/emergency-access/<id:access_id>/review")
    @staff_page(Role.AUDITOR)
    def review_emergency(access_id: str) -> Any:
        rt = current()
        emergency_review.check_review(request_db(), me(), access_id)
        form = text_fields("verdict", "note")
        values, errors = parse(EmergencyReviewIn(), dict(form))
        if errors:
            return _page({access_id: errors}, {access_id: form}, status=422)
        try:
            emergency_review.review(request_db(), rt.vault, me(), access_id, values["verdict"],
                             values["note"], rt.now())
        except Conflict as exc:
            record_denial(exc)
            flash(str(exc), "error")
            return redirect(url_for("auditor.emergency_queue"))
        flash(f"Recorded: emergency access {access_id} was {values['verdict']}.", "success")
        return redirect(url_for("auditor.emergency_queue"))
