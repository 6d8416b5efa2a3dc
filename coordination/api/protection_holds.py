"""Protection holds: a coordinator of an agency allowed them conceals its
agency's part from the family's views for a while; auditors list and review
every hold."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from coordination.api import actor, allow, body, db, load, runtime
from coordination.api.answers import ProtectionHoldOut
from coordination.api.openapi import document
from coordination.casework import protection_holds as holds
from coordination.roles import Role
from coordination.schemas import EmptyIn, HoldRenewIn, ProtectionHoldIn


def register(bp: Blueprint) -> None:
    @bp.post("/families/<id:family_id>/protection-holds")
    @document("Place a protection hold: conceal the caller's agency's involvement, entries "
              "and/or looks from every family view until lifted, renewed or past its review "
              "date (at most 90 days ahead)", body=ProtectionHoldIn,
              answer=ProtectionHoldOut, status=201)
    @allow(Role.COORDINATOR)
    def place_protection_hold(family_id: str) -> tuple[Response, int]:
        rt = runtime()
        data = load(ProtectionHoldIn(), body(), checks_first=lambda: holds.check_place(
            db(), rt.vault, actor(), family_id, rt.now()),
            also=lambda: holds.review_on_errors(body().get("review_on"), rt.now()))
        return jsonify(holds.place_hold(db(), rt.vault, actor(), family_id, data,
                                        rt.now())), 201

    @bp.get("/families/<id:family_id>/protection-holds")
    @document("The caller's agency's protection holds on the family, newest first, with "
              "their history", answer=ProtectionHoldOut, many=True)
    @allow(Role.COORDINATOR)
    def family_protection_holds(family_id: str) -> Response:
        rt = runtime()
        return jsonify(holds.family_holds(db(), rt.vault, actor(), family_id, rt.now()))

    @bp.delete("/families/<id:family_id>/protection-holds/<id:hold_id>")
    @document("Lift the caller's agency's protection hold: the family sees again what it "
              "concealed", body=EmptyIn, answer=ProtectionHoldOut, conflicts=True)
    @allow(Role.COORDINATOR)
    def lift_protection_hold(family_id: str, hold_id: str) -> Response:
        rt = runtime()
        load(EmptyIn(), body(), checks_first=lambda: holds.check_act(
            db(), rt.vault, actor(), family_id, hold_id, rt.now()))
        return jsonify(holds.lift_hold(db(), rt.vault, actor(), family_id, hold_id, rt.now()))

    @bp.post("/families/<id:family_id>/protection-holds/<id:hold_id>/renew")
    @document("Renew the caller's agency's protection hold in force to a new review date "
              "(at most 90 days ahead)", body=HoldRenewIn, answer=ProtectionHoldOut,
              conflicts=True)
    @allow(Role.COORDINATOR)
    def renew_protection_hold(family_id: str, hold_id: str) -> Response:
        rt = runtime()
        data = load(HoldRenewIn(), body(), checks_first=lambda: holds.check_act(
            db(), rt.vault, actor(), family_id, hold_id, rt.now()),
            also=lambda: holds.review_on_errors(body().get("review_on"), rt.now()))
        return jsonify(holds.renew_hold(db(), rt.vault, actor(), family_id, hold_id,
                                        data["review_on"], rt.now()))

    @bp.get("/protection-holds")
    @document("Every protection hold, newest first, with its reason and its history of "
              "set, renewed and lifted (auditors)", answer=ProtectionHoldOut, many=True)
    @allow(Role.AUDITOR)
    def protection_holds_list() -> Response:
        rt = runtime()
        return jsonify(holds.all_holds(db(), rt.vault, actor(), rt.now()))

    @bp.get("/protection-holds/review-queue")
    @document("The protection holds due for review: in force, review date within 14 days, "
              "soonest first (auditors)", answer=ProtectionHoldOut, many=True)
    @allow(Role.AUDITOR)
    def protection_holds_review_queue() -> Response:
        rt = runtime()
        return jsonify(holds.all_holds(db(), rt.vault, actor(), rt.now(), due_only=True))
