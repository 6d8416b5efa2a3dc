"""The family's joint consent form, its history and access log, and the
family's own session."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify

from coordination import accounts
from coordination.api import actor, allow, body, db, load, runtime
from coordination.api.answers import (
    AccessLogItem,
    ConsentForm,
    ConsentVersion,
    FamilySessionOut,
    HiddenOut,
)
from coordination.api.openapi import document
from coordination.casework import access_log as who_looked
from coordination.casework import common, consent_forms
from coordination.roles import Role
from coordination.schemas import ConsentIn, EmptyIn, FamilySessionIn, RevokeIn

CASEWORK = (Role.PRACTITIONER, Role.COORDINATOR)


def register(bp: Blueprint) -> None:
    @bp.get("/families/<id:family_id>/consent")
    @document("The current consent form", answer=ConsentForm)
    @allow(*CASEWORK, family=True)
    def get_consent(family_id: str) -> Response:
        rt = runtime()
        return jsonify(consent_forms.get_consent(db(), rt.vault, actor(), family_id, rt.now()))

    @bp.put("/families/<id:family_id>/consent")
    @document("Record a newly signed form as a whole new version", body=ConsentIn,
              answer=ConsentForm, status=201, conflicts=True)
    @allow(Role.COORDINATOR)
    def put_consent(family_id: str) -> tuple[Response, int]:
        rt = runtime()
        data = load(ConsentIn(), body(), checks_first=lambda: common.check_access(
            db(), rt.vault, actor(), family_id, rt.now(), involved=True),
            also=lambda: consent_forms.consent_errors(db(), body(), rt.now()))
        form = consent_forms.record_consent(db(), rt.vault, actor(), family_id, data, rt.now())
        return jsonify(form), 201

    @bp.post("/families/<id:family_id>/consent/revoke")
    @document("Revoke a cell, a column, a row or everything", body=RevokeIn,
              answer=ConsentForm, conflicts=True)
    @allow(Role.COORDINATOR, family=True)
    def revoke(family_id: str) -> Response:
        rt = runtime()
        data = load(RevokeIn(), body(), checks_first=lambda: common.check_access(
            db(), rt.vault, actor(), family_id, rt.now(), involved=True),
            also=lambda: common.reference_errors(db(), body().get("agency"),
                                                 body().get("field")))
        form = consent_forms.revoke_consent(
            db(), rt.vault, actor(), family_id, data.get("agency"), data.get("field"), rt.now()
        )
        return jsonify(form)

    @bp.get("/families/<id:family_id>/consent/history")
    @document("Every version of the form, oldest first", answer=ConsentVersion, many=True)
    @allow(Role.COORDINATOR, family=True)
    def history(family_id: str) -> Response:
        rt = runtime()
        return jsonify(consent_forms.consent_history(db(), rt.vault, actor(), family_id, rt.now()))

    @bp.get("/families/<id:family_id>/access-log")
    @document("Who looked at what and when, newest first", answer=AccessLogItem,
              many=True)
    @allow(Role.COORDINATOR, family=True)
    def access_log(family_id: str) -> Response:
        rt = runtime()
        return jsonify(who_looked.access_log(db(), rt.vault, actor(), family_id, rt.now(),
                                             tz=rt.settings.timezone))

    @bp.post("/families/<id:family_id>/access-log/<int:seq>/hide")
    @document("Hide an entry of the access log from the family", body=EmptyIn,
              answer=HiddenOut, status=201)
    @allow(Role.COORDINATOR)
    def hide(family_id: str, seq: int) -> tuple[Response, int]:
        rt = runtime()
        load(EmptyIn(), body(), checks_first=lambda: common.check_access(
            db(), rt.vault, actor(), family_id, rt.now(), involved=True))
        return jsonify(who_looked.hide_from_family(db(), rt.vault, actor(), family_id, seq,
                                                   rt.now())), 201

    @bp.post("/family/session")
    @document("The family opens a short session with its receipt code and PIN",
              body=FamilySessionIn, answer=FamilySessionOut, status=201, token=False,
              signs_in=True)
    def family_session() -> tuple[Response, int]:
        data = load(FamilySessionIn(), body())
        rt = runtime()
        opened = accounts.open_family_session(
            db(), data["receipt_code"], data["pin"], rt.settings.family_session_lifetime,
            rt.now(), request_id=g.request_id,
        )
        return jsonify(opened), 201
