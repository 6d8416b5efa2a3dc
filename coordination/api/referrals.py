"""Referrals: one agency asks another to work with a family, the other answers."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from coordination.api import actor, allow, body, db, load, runtime
from coordination.api.answers import AppointmentOut, ReferralDetail, ReferralOut
from coordination.api.openapi import document
from coordination.casework import referrals
from coordination.casework.referral_states import Act
from coordination.roles import Role
from coordination.schemas import (
    AppointmentIn,
    AppointmentOutcomeIn,
    EmptyIn,
    InPersonAnswerIn,
    ReferralAcceptIn,
    ReferralAskIn,
    ReferralCloseIn,
    ReferralListArgs,
    ReferralReasonIn,
)

CASEWORK = (Role.PRACTITIONER, Role.COORDINATOR)


def register(bp: Blueprint) -> None:
    @bp.post("/families/<id:family_id>/referrals")
    @document("Refer the family to another agency, asking which rows it may see; `sent` "
              "when the form already allows them, else `awaiting_family`",
              body=ReferralAskIn, answer=ReferralDetail, status=201, headers=("Location",))
    @allow(*CASEWORK)
    def create_referral(family_id: str) -> tuple[Response, int, dict[str, str]]:
        rt = runtime()
        data = load(ReferralAskIn(), body(), checks_first=lambda: referrals.check_create(
            db(), rt.vault, actor(), family_id, rt.now()),
            also=lambda: referrals.referral_errors(db(), actor(), body(), rt.now()))
        created = referrals.create_referral(db(), rt.vault, actor(), family_id, data,
                                            rt.now())
        location = url_for("api.referral", referral_id=created["id"])
        return jsonify(created), 201, {"Location": location}

    @bp.get("/referrals")
    @document("Referrals to (`in`) or from (`out`) the caller's agency, newest first",
              query=ReferralListArgs, answer=ReferralOut, many=True)
    @allow(*CASEWORK)
    def referral_list() -> Response:
        args = load(ReferralListArgs(), request.args.to_dict())
        rt = runtime()
        return jsonify(referrals.list_referrals(db(), rt.vault, actor(), args.get("state"),
                                                args.get("direction"), rt.now()))

    @bp.get("/families/<id:family_id>/referrals")
    @document("The family's referrals the caller may know of, newest first",
              answer=ReferralOut, many=True)
    @allow(*CASEWORK, family=True)
    def family_referrals(family_id: str) -> Response:
        rt = runtime()
        return jsonify(referrals.family_referrals(db(), rt.vault, actor(), family_id,
                                                  rt.now()))

    @bp.get("/referrals/<id:referral_id>")
    @document("One referral with its history of states (who, when, why)",
              answer=ReferralDetail)
    @allow(*CASEWORK, family=True)
    def referral(referral_id: str) -> Response:
        rt = runtime()
        return jsonify(referrals.get_referral(db(), rt.vault, actor(), referral_id, rt.now()))

    @bp.post("/referrals/<id:referral_id>/accept")
    @document("Accept a referral to the caller's agency, which becomes involved",
              body=ReferralAcceptIn, answer=ReferralDetail, conflicts=True)
    @allow(Role.COORDINATOR)
    def accept_referral(referral_id: str) -> Response:
        return _act(referral_id, Act.ACCEPT, ReferralAcceptIn())

    @bp.post("/referrals/<id:referral_id>/decline")
    @document("Decline a referral to the caller's agency, saying why",
              body=ReferralReasonIn, answer=ReferralDetail, conflicts=True)
    @allow(Role.COORDINATOR)
    def decline_referral(referral_id: str) -> Response:
        return _act(referral_id, Act.DECLINE, ReferralReasonIn())

    @bp.post("/referrals/<id:referral_id>/withdraw")
    @document("Withdraw a referral the caller's agency made, saying why",
              body=ReferralReasonIn, answer=ReferralDetail, conflicts=True)
    @allow(Role.COORDINATOR)
    def withdraw_referral(referral_id: str) -> Response:
        return _act(referral_id, Act.WITHDRAW, ReferralReasonIn())

    @bp.post("/families/<id:family_id>/referrals/<id:referral_id>/agree")
    @document("The family agrees to a referral awaiting it (or a coordinator of another "
              "involved agency records its answer given in person): a new form version "
              "grants the receiving agency exactly the asked rows, and the referral is `sent`",
              body=(EmptyIn, InPersonAnswerIn), answer=ReferralDetail, conflicts=True)
    @allow(Role.COORDINATOR, family=True)
    def agree_referral(family_id: str, referral_id: str) -> Response:
        return _answer(family_id, referral_id, agree=True)

    @bp.post("/families/<id:family_id>/referrals/<id:referral_id>/refuse")
    @document("The family refuses a referral awaiting it (`declined_by_family`), or a "
              "coordinator of another involved agency records that answer given in person",
              body=(EmptyIn, InPersonAnswerIn), answer=ReferralDetail, conflicts=True)
    @allow(Role.COORDINATOR, family=True)
    def refuse_referral(family_id: str, referral_id: str) -> Response:
        return _answer(family_id, referral_id, agree=False)

    @bp.post("/referrals/<id:referral_id>/close")
    @document("Close a referral to the caller's agency after an appointment attended or "
              "missed, with a note on the outcome the referrer reads",
              body=ReferralCloseIn, answer=ReferralDetail, conflicts=True)
    @allow(*CASEWORK)
    def close_referral(referral_id: str) -> Response:
        return _act(referral_id, Act.CLOSE, ReferralCloseIn())

    @bp.post("/referrals/<id:referral_id>/appointments")
    @document("Book an appointment for a referral to the caller's agency (accepted, or "
              "its last appointment missed); the referral becomes `booked`",
              body=AppointmentIn, answer=AppointmentOut, status=201, conflicts=True)
    @allow(*CASEWORK)
    def book_appointment(referral_id: str) -> tuple[Response, int]:
        rt = runtime()
        data = load(AppointmentIn(), body(), checks_first=lambda: referrals.check_book(
            db(), rt.vault, actor(), referral_id, rt.now()))
        return jsonify(referrals.book_appointment(db(), rt.vault, actor(), referral_id, data,
                                                  rt.now())), 201

    @bp.patch("/referrals/<id:referral_id>/appointments/<id:appointment_id>")
    @document("Record what became of an appointment, once: `attended`, `missed`, or "
              "`cancelled` (the referral is `accepted` again)",
              body=AppointmentOutcomeIn, answer=AppointmentOut, conflicts=True)
    @allow(*CASEWORK)
    def appointment_outcome(referral_id: str, appointment_id: str) -> Response:
        rt = runtime()
        data = load(AppointmentOutcomeIn(), body(), checks_first=lambda: referrals.check_outcome(
            db(), rt.vault, actor(), referral_id, appointment_id, rt.now()))
        return jsonify(referrals.set_outcome(db(), rt.vault, actor(), referral_id,
                                             appointment_id, data, rt.now()))


def _act(referral_id: str, act: Act,
         schema: ReferralAcceptIn | ReferralReasonIn | ReferralCloseIn) -> Response:
    rt = runtime()
    data = load(schema, body(), checks_first=lambda: referrals.check_act(
        db(), rt.vault, actor(), referral_id, act, rt.now()))
    return jsonify(referrals.act_on_referral(db(), rt.vault, actor(), referral_id, act, data,
                                             rt.now()))


def _answer(family_id: str, referral_id: str, *, agree: bool) -> Response:
    rt = runtime()
    who = actor()
    # The family answers itself (an empty body); a coordinator records the
    # family's answer and says who gave it and how.
    schema = EmptyIn() if who.is_family else InPersonAnswerIn()
    data = load(schema, body(), checks_first=lambda: referrals.check_family_answer(
        db(), rt.vault, who, family_id, referral_id, rt.now()))
    return jsonify(referrals.family_answer(db(), rt.vault, who, family_id, referral_id,
                                           agree, rt.now(),
                                           None if who.is_family else data))
