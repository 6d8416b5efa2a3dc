"""Access requests: an agency asks the family for cells it cannot see; the
family (or a coordinator of another involved agency, recording its answer
given in person) approves or declines."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from coordination.api import actor, allow, body, db, load, runtime
from coordination.api.answers import AccessRequestOut
from coordination.api.openapi import document
from coordination.casework import access_requests
from coordination.roles import Role
from coordination.schemas import AccessAnswerIn, AccessRequestIn, EmptyIn

CASEWORK = (Role.PRACTITIONER, Role.COORDINATOR)


def register(bp: Blueprint) -> None:
    @bp.post("/families/<id:family_id>/access-requests")
    @document("Ask the family that the caller's agency may see rows it cannot see now, "
              "saying why; answered by the family", body=AccessRequestIn,
              answer=AccessRequestOut, status=201, conflicts=True)
    @allow(*CASEWORK)
    def create_access_request(family_id: str) -> tuple[Response, int]:
        rt = runtime()
        data = load(AccessRequestIn(), body(), checks_first=lambda: access_requests.check_create(
            db(), rt.vault, actor(), family_id, rt.now()),
            also=lambda: access_requests.request_errors(db(), body()))
        return jsonify(access_requests.create_request(db(), rt.vault, actor(), family_id, data,
                                                      rt.now())), 201

    @bp.get("/families/<id:family_id>/access-requests")
    @document("The family's access requests, newest first: the caller's agency's own, or "
              "all of them to the family", answer=AccessRequestOut, many=True)
    @allow(*CASEWORK, family=True)
    def access_requests_list(family_id: str) -> Response:
        rt = runtime()
        return jsonify(access_requests.list_requests(db(), rt.vault, actor(), family_id,
                                                     rt.now()))

    @bp.post("/families/<id:family_id>/access-requests/<id:request_id>/approve")
    @document("Approve a pending access request: a new form version grants the asking "
              "agency exactly the asked rows (the family; or a coordinator of another "
              "involved agency recording the family's answer given in person)",
              body=(EmptyIn, AccessAnswerIn), answer=AccessRequestOut, conflicts=True)
    @allow(Role.COORDINATOR, family=True)
    def approve_access_request(family_id: str, request_id: str) -> Response:
        return _answer(family_id, request_id, approve=True)

    @bp.post("/families/<id:family_id>/access-requests/<id:request_id>/decline")
    @document("Decline a pending access request (the family; or a coordinator of another "
              "involved agency recording the family's answer given in person)",
              body=(EmptyIn, AccessAnswerIn), answer=AccessRequestOut, conflicts=True)
    @allow(Role.COORDINATOR, family=True)
    def decline_access_request(family_id: str, request_id: str) -> Response:
        return _answer(family_id, request_id, approve=False)


def _answer(family_id: str, request_id: str, *, approve: bool) -> Response:
    rt = runtime()
    who = actor()
    # The family answers itself (an empty body); a coordinator records the
    # family's answer and says who gave it and how.
    schema = EmptyIn() if who.is_family else AccessAnswerIn()
    data = load(schema, body(), checks_first=lambda: access_requests.check_answer(
        db(), rt.vault, who, family_id, request_id, rt.now()))
    return jsonify(access_requests.answer_request(
        db(), rt.vault, who, family_id, request_id, approve,
        None if who.is_family else data, rt.now()))
