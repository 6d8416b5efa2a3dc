"""Breaking the glass and its review (CONTRACT.md, "Exceptional access")."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from coordination.api import actor, allow, body, db, load, runtime
from coordination.api.answers import EmergencyAccessOut, EmergencyOpened
from coordination.api.openapi import document
from coordination.casework import emergency, emergency_review
from coordination.roles import Role
from coordination.schemas import EmergencyAccessIn, EmergencyListArgs, EmergencyReviewIn


def limits() -> emergency.Limits:
    settings = runtime().settings
    return emergency.Limits(settings.emergency_duration, settings.emergency_attempts_per_hour)


def register(bp: Blueprint) -> None:
    @bp.post("/emergency-access")
    @document("Break the glass: open the whole record (except minimal-data agencies' "
              "entries) of the family of the one person with this whole name and birth "
              "date, for the caller alone and for a short time; 404, saying nothing more, "
              "when no person or more than one matches. Every attempt is audited and "
              "limited per user (429); each opened access is reviewed by an auditor and "
              "shown to the family", body=EmergencyAccessIn, answer=EmergencyOpened,
              status=201, throttled=True,
              not_found="No person, or more than one, has this whole name and birth date "
                        "(the two answers are identical).")
    @allow(Role.PRACTITIONER, Role.COORDINATOR)
    def open_emergency_access() -> tuple[Response, int]:
        rt = runtime()
        data = load(EmergencyAccessIn(), body(),
                    checks_first=lambda: emergency.check_open(db(), actor()))
        return jsonify(emergency.open_access(db(), rt.vault, actor(), data, limits(),
                                             rt.now())), 201

    @bp.get("/emergency-access")
    @document("Emergency accesses for review, oldest first, each with its reason and what "
              "was read under it (auditors)", query=EmergencyListArgs,
              answer=EmergencyAccessOut, many=True)
    @allow(Role.AUDITOR)
    def emergency_accesses() -> Response:
        rt = runtime()
        args = load(EmergencyListArgs(), request.args.to_dict())
        return jsonify(emergency_review.review_queue(db(), rt.vault, actor(), args["reviewed"],
                                              rt.now()))

    @bp.post("/emergency-access/<id:access_id>/review")
    @document("An auditor's verdict on one emergency access, with a note; 409 when it was "
              "reviewed already", body=EmergencyReviewIn, answer=EmergencyAccessOut,
              conflicts=True)
    @allow(Role.AUDITOR)
    def review_emergency_access(access_id: str) -> Response:
        rt = runtime()
        data = load(EmergencyReviewIn(), body(),
                    checks_first=lambda: emergency_review.check_review(db(), actor(), access_id))
        return jsonify(emergency_review.review(db(), rt.vault, actor(), access_id, data["verdict"],
                                        data["note"], rt.now()))
