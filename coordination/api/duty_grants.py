"""Duty grants: sharing the law requires, proposed by a coordinator of an
involved agency and approved by a coordinator of a third agency
(CONTRACT.md, "Exceptional access")."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from coordination.api import actor, allow, body, db, load, runtime
from coordination.api.answers import DutyGrantOut
from coordination.api.openapi import document
from coordination.casework import duty_grants
from coordination.roles import Role
from coordination.schemas import DutyGrantIn, EmptyIn


def register(bp: Blueprint) -> None:
    @bp.post("/families/<id:family_id>/duty-grants")
    @document("Propose that an agency sees rows of the family because the law requires "
              "it (not by consent), with a justification and a last day at most 90 days "
              "ahead; in force once a coordinator of a third agency approves",
              body=DutyGrantIn, answer=DutyGrantOut, status=201)
    @allow(Role.COORDINATOR)
    def propose_duty_grant(family_id: str) -> tuple[Response, int]:
        rt = runtime()
        data = load(DutyGrantIn(), body(), checks_first=lambda: duty_grants.check_propose(
            db(), rt.vault, actor(), family_id, rt.now()),
            also=lambda: duty_grants.grant_errors(db(), body(), rt.now()))
        return jsonify(duty_grants.propose(db(), rt.vault, actor(), family_id, data,
                                           rt.now())), 201

    @bp.get("/families/<id:family_id>/duty-grants")
    @document("The family's duty grants the caller may read, newest first, with their "
              "justifications (the family and auditors read all of them)",
              answer=DutyGrantOut, many=True)
    @allow(Role.PRACTITIONER, Role.COORDINATOR, Role.AUDITOR, family=True)
    def duty_grants_list(family_id: str) -> Response:
        rt = runtime()
        return jsonify(duty_grants.list_grants(db(), rt.vault, actor(), family_id, rt.now()))

    @bp.post("/families/<id:family_id>/duty-grants/<id:grant_id>/approve")
    @document("Approve a pending duty grant: it is in force from now through its last day "
              "(a coordinator of an agency neither the proposer's nor the named one)",
              body=EmptyIn, answer=DutyGrantOut, conflicts=True)
    @allow(Role.COORDINATOR)
    def approve_duty_grant(family_id: str, grant_id: str) -> Response:
        return _decide(family_id, grant_id, approve=True)

    @bp.post("/families/<id:family_id>/duty-grants/<id:grant_id>/reject")
    @document("Reject a pending duty grant: it never takes effect (a coordinator of an "
              "agency neither the proposer's nor the named one)",
              body=EmptyIn, answer=DutyGrantOut, conflicts=True)
    @allow(Role.COORDINATOR)
    def reject_duty_grant(family_id: str, grant_id: str) -> Response:
        return _decide(family_id, grant_id, approve=False)


def _decide(family_id: str, grant_id: str, *, approve: bool) -> Response:
    rt = runtime()
    load(EmptyIn(), body(), checks_first=lambda: duty_grants.check_decide(
        db(), rt.vault, actor(), family_id, grant_id, rt.now()))
    return jsonify(duty_grants.decide(db(), rt.vault, actor(), family_id, grant_id, approve,
                                      rt.now()))
