"""Referrals, first API step (CONTRACT.md, "Referrals: asked, answered,
booked, attended"): asking, who sees what from when, accepting, declining,
withdrawing, refused moves, sealed reasons, audit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from consent.tables import ConsentFormRow
from coordination.model import Appointment, Involvement, Referral, ReferralEvent
from coordination.roles import InvolvementStatus
from tests.conftest import Api
from tests.functional.test_revocation_truth import audit_rows, count, family_token
from tests.unchanged import nothing_stored

# Physiotherapy may know of the family and see health notes; child
# protection sees protection notes only (not even that the family is involved
# with anyone); the kindergarten is named nowhere.
GRID = {
    "health-centre": ["involvement", "contact", "health", "protection", "education"],
    "physio": ["involvement", "health"],
    "cps": ["protection"],
}
REASON = "Walks late for her age; please assess gross motor skills."


@pytest.fixture
def case(api: Api) -> tuple[str, str]:
    """The family, its form signed, and the family's session token."""
    family = api.new_family("nurse1", display_name="Aylin Demir", birth_date="2024-03-14")
    receipt = api.sign(family, GRID)["receipt"]
    return family, family_token(api, receipt)


def ask(api: Api, family: str, who: str = "nurse1", **body: Any) -> Any:
    body.setdefault("to", "physio")
    body.setdefault("reason", REASON)
    body.setdefault("fields", ["health"])
    return api.post(f"/api/v1/families/{family}/referrals", who, json=body)


def listed(api: Api, who: str, query: str = "") -> list[str]:
    response = api.get(f"/api/v1/referrals{query}", who)
    assert response.status_code == 200, response.get_json()
    return [r["id"] for r in response.get_json()]


def test_a_referral_the_form_already_allows_is_sent(api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    made = ask(api, family, urgency="soon", interpreter_language="tr", accompany=True)
    assert made.status_code == 201, made.get_json()
    ref = made.get_json()
    assert made.headers["Location"].endswith(f"/api/v1/referrals/{ref['id']}")
    assert ref["id"].startswith("ref_") and ref["state"] == "sent"
    assert ref["from"] == "health-centre" and ref["to"] == "physio"
    assert ref["fields"] == ["involvement", "health"]  # involvement always asked
    assert ref["respond_by"] == "2026-11-25" and ref["urgency"] == "soon"  # 3 days
    assert ref["reason"] == REASON and ref["appointments"] == []
    assert [(h["state"], h["by"]) for h in ref["history"]] == [("sent", "nurse1")]
    # The receiving agency sees it, and so does the family.
    assert listed(api, "physiocoord", "?direction=in") == [ref["id"]]
    assert listed(api, "physiocoord", "?direction=out") == []
    assert listed(api, "nurse1", "?direction=out&state=sent") == [ref["id"]]
    _, token = case
    mine = api.get(f"/api/v1/families/{family}/referrals", token)
    assert [r["id"] for r in mine.get_json()] == [ref["id"]]


def test_a_referral_asking_more_than_the_form_allows_awaits_the_family(
        api: Api, case: tuple[str, str]) -> None:
    family, token = case
    made = ask(api, family, fields=["health", "contact"], respond_by="2026-12-01")
    assert made.status_code == 201, made.get_json()
    ref = made.get_json()
    assert ref["state"] == "awaiting_family" and ref["respond_by"] == "2026-12-01"
    # Not yet for the receiving agency: not listed, not readable (404 as absent).
    assert listed(api, "physiocoord") == []
    assert api.get(f"/api/v1/referrals/{ref['id']}", "physiocoord").status_code == 404
    theirs = api.get(f"/api/v1/families/{family}/referrals", "physio1")
    assert theirs.status_code == 200 and theirs.get_json() == []
    # The referrer and the family see it.
    assert listed(api, "coord1") == [ref["id"]]
    assert api.get(f"/api/v1/referrals/{ref['id']}", token).get_json()["reason"] == REASON
    # A referral to an agency the form names nowhere: awaiting the family too.
    assert ask(api, family, to="ecec", fields=[]).get_json()["state"] == "awaiting_family"


def test_visibility_a_third_agency_and_a_revoked_family(
        api: Api, case: tuple[str, str]) -> None:
    family, token = case
    ref = ask(api, family).get_json()["id"]
    # Child protection sees the family (a protection cell) but not the referral.
    assert api.get(f"/api/v1/referrals/{ref}", "cps1").status_code == 404
    assert api.get("/api/v1/referrals/ref_0000", "cps1").status_code == 404
    assert listed(api, "cps1") == []
    assert api.get(f"/api/v1/families/{family}/referrals", "cps1").get_json() == []
    # The family revokes physiotherapy's column: the family is no longer
    # visible to it, nor is the referral.
    assert api.post(f"/api/v1/families/{family}/consent/revoke", token,
                    json={"agency": "physio"}).status_code == 200
    assert listed(api, "physiocoord") == []
    assert api.get(f"/api/v1/referrals/{ref}", "physiocoord").status_code == 404
    assert listed(api, "nurse1") == [ref]


def test_accepting_involves_the_receiving_agency(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = ask(api, family).get_json()["id"]
    assert api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord",
                    json={"contact_worker": "nurse1"}).status_code == 422
    assert count(app, Involvement, Involvement.agency_id == "physio") == 0
    accepted = api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord",
                        json={"contact_worker": "physio1"})
    assert accepted.status_code == 200, accepted.get_json()
    body = accepted.get_json()
    assert body["state"] == "accepted"
    assert [h["state"] for h in body["history"]] == ["sent", "accepted"]
    assert count(app, Involvement, Involvement.agency_id == "physio",
                 Involvement.status == InvolvementStatus.ACTIVE) == 1
    record = api.get(f"/api/v1/families/{family}", "physio1").get_json()
    assert {"agency": "physio", "status": "active", "since": "2026-11-22",
            "contact_worker": "physio1"} in record["involvements"]
    [row] = audit_rows(app, "referral.accept")
    assert row.actor == "physiocoord" and row.family_id == family and ref in row.detail


def test_decline_and_withdraw_reasons_are_read_by_the_other_side(
        api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    declined_ref = ask(api, family).get_json()["id"]
    declined = api.post(f"/api/v1/referrals/{declined_ref}/decline", "physiocoord",
                        json={"reason": "No capacity before March; try the hospital."})
    assert declined.status_code == 200 and declined.get_json()["state"] == "declined"
    seen = api.get(f"/api/v1/referrals/{declined_ref}", "coord1").get_json()
    assert seen["history"][-1] == {
        "state": "declined", "at": "2026-11-22T10:00:00Z", "by": "physiocoord",
        "agency": "physio", "note": "No capacity before March; try the hospital."}
    withdrawn_ref = ask(api, family).get_json()["id"]
    withdrawn = api.post(f"/api/v1/referrals/{withdrawn_ref}/withdraw", "coord1",
                         json={"reason": "The family moved away."})
    assert withdrawn.status_code == 200 and withdrawn.get_json()["state"] == "withdrawn"
    seen = api.get(f"/api/v1/referrals/{withdrawn_ref}", "physiocoord").get_json()
    assert seen["history"][-1]["note"] == "The family moved away."


def test_moves_not_in_the_diagram_are_409_and_store_nothing(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = ask(api, family).get_json()["id"]
    assert api.post(f"/api/v1/referrals/{ref}/decline", "physiocoord",
                    json={"reason": "No."}).status_code == 200
    before = count(app, ReferralEvent)
    for act, who, body in (("accept", "physiocoord", {}),
                           ("decline", "physiocoord", {"reason": "Again."}),
                           ("withdraw", "coord1", {"reason": "Too late."})):
        refused = api.post(f"/api/v1/referrals/{ref}/{act}", who, json=body)
        assert refused.status_code == 409, (act, refused.get_json())
        assert "declined" in refused.get_json()["detail"]
    assert count(app, ReferralEvent) == before
    assert count(app, Involvement, Involvement.agency_id == "physio") == 0
    assert audit_rows(app, "referral.accept") == []
    # Awaiting the family, the receiving agency cannot answer (it may not know of it).
    waiting = ask(api, family, fields=["contact"]).get_json()["id"]
    assert api.post(f"/api/v1/referrals/{waiting}/accept", "physiocoord",
                    json={}).status_code == 404
    assert api.get(f"/api/v1/referrals/{waiting}", "coord1").get_json()["state"] == \
        "awaiting_family"


def test_wrong_role_or_side_is_403(api: Api, case: tuple[str, str]) -> None:
    family, token = case
    ref = ask(api, family).get_json()["id"]
    assert ask(api, family, who="auditor1").status_code == 403
    assert ask(api, family, who=token).status_code == 403
    assert api.get("/api/v1/referrals", "auditor1").status_code == 403
    # A practitioner may not answer; the referrer may not accept its own.
    assert api.post(f"/api/v1/referrals/{ref}/accept", "physio1", json={}).status_code == 403
    assert api.post(f"/api/v1/referrals/{ref}/accept", "coord1", json={}).status_code == 403
    assert api.post(f"/api/v1/referrals/{ref}/withdraw", "physiocoord",
                    json={"reason": "Not mine."}).status_code == 403
    # An agency not involved may not refer (the family is visible to physio).
    assert ask(api, family, who="physio1", to="cps").status_code == 403


def test_bad_referrals_are_422_naming_each_and_store_nothing(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    bad = ask(api, family, to="health-centre", fields=["health", "shoe_size"],
              respond_by="2026-11-01", reason="")
    assert bad.status_code == 422
    errors = bad.get_json()["errors"]
    assert set(errors) == {"to", "fields", "respond_by", "reason"}, errors
    assert errors["fields"] == ["unknown field 'shoe_size'"]
    assert ask(api, family, to="nowhere").get_json()["errors"]["to"] == [
        "unknown agency 'nowhere'"]
    assert ask(api, family, urgency="asap").status_code == 422
    assert count(app, Referral) == 0


def test_reasons_are_sealed_and_every_act_audited(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = ask(api, family).get_json()["id"]
    api.post(f"/api/v1/referrals/{ref}/decline", "physiocoord",
             json={"reason": "Unmistakable decline words."})
    with app.extensions["onestory"].engine.connect() as conn:
        reasons = [bytes(r[0]) for r in conn.execute(text("SELECT reason FROM referrals"))]
        notes = [bytes(r[0]) for r in conn.execute(
            text("SELECT note FROM referral_events WHERE note IS NOT NULL"))]
    assert len(reasons) == 1 and len(notes) == 1
    for blob in reasons + notes:
        assert b"gross motor" not in blob and b"Unmistakable" not in blob
    with app.extensions["onestory"].sessions() as session:
        assert session.scalar(select(Referral.state)) == "declined"
    listed(api, "physiocoord")
    api.get(f"/api/v1/referrals/{ref}", "coord1")
    [created] = audit_rows(app, "referral.create")
    assert created.actor == "nurse1" and created.family_id == family
    assert ref in created.detail and "gross motor" not in created.detail
    assert [r.actor for r in audit_rows(app, "referral.decline")] == ["physiocoord"]
    [agency_list] = audit_rows(app, "referral.list")
    assert agency_list.actor == "physiocoord"
    assert json.loads(agency_list.detail)["families"] == [family]  # whose reasons were read
    assert [r.actor for r in audit_rows(app, "referral.read")] == ["coord1"]


def test_erasing_the_family_takes_its_referrals(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = ask(api, family).get_json()["id"]
    api.post(f"/api/v1/referrals/{ref}/decline", "physiocoord", json={"reason": "No room."})
    erased = api.call("DELETE", f"/api/v1/families/{family}", "admin1",
                      json={"reason": "the family asked"})
    assert erased.status_code == 204
    assert count(app, Referral) == 0 and count(app, ReferralEvent) == 0
    assert api.get(f"/api/v1/referrals/{ref}", "coord1").status_code == 404


def test_an_agency_not_seeing_the_whole_form_may_not_refer(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    """As for `POST .../involvements`: its answer would tell what other
    columns hold."""
    family, _ = case
    assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    assert api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
                    json={"agency": "physio", "field": "involvement"}).status_code == 200
    refused = ask(api, family, who="physio1", to="cps")
    assert refused.status_code == 403, refused.get_json()
    assert "whole consent form" in refused.get_json()["detail"]
    assert count(app, Referral) == 0
    # The default answer-by day follows the urgency.
    made = ask(api, family, urgency="urgent").get_json()
    assert made["respond_by"] == "2026-11-23"
    assert ask(api, family).get_json()["respond_by"] == "2026-12-02"


def test_accepting_after_the_family_took_back_involvement_is_409(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = ask(api, family).get_json()["id"]
    assert api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
                    json={"agency": "physio", "field": "involvement"}).status_code == 200
    refused = api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord", json={})
    assert refused.status_code == 409, refused.get_json()
    assert count(app, Involvement, Involvement.agency_id == "physio") == 0
    assert api.get(f"/api/v1/referrals/{ref}", "coord1").get_json()["state"] == "sent"


def accepted(api: Api, family: str) -> str:
    ref = ask(api, family).get_json()["id"]
    assert api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord",
                    json={"contact_worker": "physio1"}).status_code == 200
    return str(ref)


def book(api: Api, ref: str, who: str = "physio1", **body: Any) -> Any:
    body.setdefault("at", "2026-11-26T09:30:00+01:00")
    body.setdefault("place", "Physio unit, room 4, Storgata 12")
    return api.post(f"/api/v1/referrals/{ref}/appointments", who, json=body)


def outcome(api: Api, ref: str, apt: str, who: str = "physio1", **body: Any) -> Any:
    return api.call("PATCH", f"/api/v1/referrals/{ref}/appointments/{apt}", who, json=body)


def state(api: Api, ref: str) -> str:
    return str(api.get(f"/api/v1/referrals/{ref}", "coord1").get_json()["state"])


def test_booking_an_appointment_and_what_became_of_it(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, token = case
    ref = accepted(api, family)
    made = book(api, ref, interpreter_language="tr", accompanied_by="Health visitor")
    assert made.status_code == 201, made.get_json()
    apt = made.get_json()
    assert apt["id"].startswith("apt_") and apt["referral_id"] == ref
    assert apt["at"] == "2026-11-26T08:30:00Z"  # read as UTC
    assert apt["place"] == "Physio unit, room 4, Storgata 12"
    assert apt["accompanied_by"] == "Health visitor" and apt["interpreter_language"] == "tr"
    assert apt["outcome"] is None and apt["note"] is None
    # Booked: the referrer, the family and both lists show the appointment.
    seen = api.get(f"/api/v1/referrals/{ref}", "coord1").get_json()
    assert seen["state"] == "booked" and seen["appointments"] == [apt]
    assert [h["state"] for h in seen["history"]] == ["sent", "accepted", "booked"]
    [mine] = api.get(f"/api/v1/families/{family}/referrals", token).get_json()
    assert mine["appointments"] == [apt]
    [theirs] = api.get("/api/v1/referrals?direction=in", "physiocoord").get_json()
    assert theirs["appointments"] == [apt]
    # Booked twice is a 409 and stores nothing.
    assert book(api, ref).status_code == 409
    # Missed: booked again; the second attended.
    missed = outcome(api, ref, apt["id"], outcome="missed", note="Nobody came; phoned.")
    assert missed.status_code == 200, missed.get_json()
    assert missed.get_json()["outcome"] == "missed"
    assert missed.get_json()["note"] == "Nobody came; phoned."
    assert state(api, ref) == "missed"
    again = book(api, ref, "physiocoord", at="2026-12-03T09:00:00Z").get_json()
    assert state(api, ref) == "booked"
    assert outcome(api, ref, again["id"], outcome="attended").status_code == 200
    assert state(api, ref) == "attended"
    # An outcome is set once.
    twice = outcome(api, ref, again["id"], outcome="missed")
    assert twice.status_code == 409 and "already marked attended" in twice.get_json()["detail"]
    assert outcome(api, ref, apt["id"], outcome="attended").status_code == 409
    listed_apts = api.get(f"/api/v1/referrals/{ref}", token).get_json()["appointments"]
    assert [(a["id"], a["outcome"]) for a in listed_apts] == [
        (apt["id"], "missed"), (again["id"], "attended")]
    assert [r.actor for r in audit_rows(app, "appointment.book")] == ["physio1", "physiocoord"]
    assert [json.loads(r.detail)["outcome"] for r in audit_rows(
        app, "appointment.outcome")] == ["missed", "attended"]


def test_a_cancelled_appointment_takes_the_referral_back_to_accepted(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = accepted(api, family)
    apt = book(api, ref).get_json()["id"]
    cancelled = outcome(api, ref, apt, outcome="cancelled", note="The therapist is unwell.")
    assert cancelled.status_code == 200 and state(api, ref) == "accepted"
    assert book(api, ref).status_code == 201 and state(api, ref) == "booked"
    with app.extensions["onestory"].engine.connect() as conn:
        blobs = [bytes(b) for row in conn.execute(text(
            "SELECT place, accompanied_by, note FROM appointments")) for b in row
            if b is not None]
    assert len(blobs) == 3
    for blob in blobs:
        assert b"Storgata" not in blob and b"therapist" not in blob


def test_appointments_only_by_the_receiving_agency_and_only_when_accepted(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, token = case
    ref = ask(api, family).get_json()["id"]
    # Sent, not yet accepted: no booking.
    refused = book(api, ref)
    assert refused.status_code == 409 and "sent" in refused.get_json()["detail"]
    api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord", json={})
    # The referrer, the family, an auditor, a third agency may not book.
    assert book(api, ref, "nurse1").status_code == 403
    assert book(api, ref, token).status_code == 403
    assert book(api, ref, "auditor1").status_code == 403
    assert book(api, ref, "cps1").status_code == 404
    assert book(api, "ref_0000").status_code == 404
    assert count(app, Appointment) == 0
    apt = book(api, ref).get_json()["id"]
    assert outcome(api, ref, apt, "nurse1", outcome="attended").status_code == 403
    assert outcome(api, ref, "apt_0000", outcome="attended").status_code == 404
    other = ask(api, family).get_json()["id"]
    assert outcome(api, other, apt, outcome="attended").status_code == 404
    # Withdrawn with an appointment open: its outcome can no longer be set.
    assert api.post(f"/api/v1/referrals/{ref}/withdraw", "coord1",
                    json={"reason": "The family moved."}).status_code == 200
    assert outcome(api, ref, apt, outcome="attended").status_code == 409
    assert audit_rows(app, "appointment.outcome") == []


def test_bad_appointments_are_422_naming_each_and_store_nothing(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = accepted(api, family)
    bad = book(api, ref, at="2026-11-26T09:30:00", place=" ", interpreter_language="Turkish",
               colour="red")
    assert bad.status_code == 422
    assert set(bad.get_json()["errors"]) == {"at", "place", "interpreter_language", "colour"}
    assert book(api, ref, at="next tuesday").status_code == 422
    assert book(api, ref, at=20261126).status_code == 422
    assert count(app, Appointment) == 0 and state(api, ref) == "accepted"
    apt = book(api, ref).get_json()["id"]
    assert outcome(api, ref, apt, outcome="done").status_code == 422
    assert outcome(api, ref, apt).status_code == 422
    assert state(api, ref) == "booked"
    # The erased family's appointments go with it.
    assert api.call("DELETE", f"/api/v1/families/{family}", "admin1",
                    json={"reason": "the family asked"}).status_code == 204
    assert count(app, Appointment) == 0


def close(api: Api, ref: str, who: str = "physio1", **body: Any) -> Any:
    body.setdefault("outcome_note", "Assessed; weekly sessions until March, then review.")
    return api.post(f"/api/v1/referrals/{ref}/close", who, json=body)


def test_closing_after_an_attended_appointment_the_referrer_reads_the_note(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, token = case
    ref = accepted(api, family)
    # Accepted, booked: not yet (409), storing nothing.
    assert close(api, ref).status_code == 409
    apt = book(api, ref).get_json()["id"]
    refused = close(api, ref)
    assert refused.status_code == 409 and "booked" in refused.get_json()["detail"]
    outcome(api, ref, apt, outcome="attended")
    # Only the receiving agency closes it.
    assert close(api, ref, "nurse1").status_code == 403
    assert close(api, ref, "coord1").status_code == 403
    assert close(api, ref, token).status_code == 403
    assert close(api, ref, "cps1").status_code == 404
    assert close(api, ref, outcome_note="   ").status_code == 422
    assert close(api, ref, outcome_note="Done.", extra=1).status_code == 422
    assert audit_rows(app, "referral.close") == []
    closed = close(api, ref)
    assert closed.status_code == 200, closed.get_json()
    assert closed.get_json()["state"] == "closed"
    seen = api.get(f"/api/v1/referrals/{ref}", "coord1").get_json()
    assert seen["history"][-1] == {
        "state": "closed", "at": "2026-11-22T10:00:00Z", "by": "physio1", "agency": "physio",
        "note": "Assessed; weekly sessions until March, then review."}
    # Closed is an end: nothing more, not even withdrawing or a second close.
    assert close(api, ref, "physiocoord").status_code == 409
    assert api.post(f"/api/v1/referrals/{ref}/withdraw", "coord1",
                    json={"reason": "Late."}).status_code == 409
    assert book(api, ref).status_code == 409
    [row] = audit_rows(app, "referral.close")
    assert row.actor == "physio1" and row.family_id == family and ref in row.detail
    assert "weekly" not in row.detail
    with app.extensions["onestory"].engine.connect() as conn:
        notes = [bytes(r[0]) for r in conn.execute(
            text("SELECT note FROM referral_events WHERE note IS NOT NULL"))]
    assert len(notes) == 1 and b"weekly" not in notes[0]


def test_closing_after_a_missed_appointment(api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = accepted(api, family)
    apt = book(api, ref).get_json()["id"]
    outcome(api, ref, apt, outcome="missed")
    closed = close(api, ref, "physiocoord", outcome_note="Three calls unanswered; closed.")
    assert closed.status_code == 200 and closed.get_json()["state"] == "closed"
    assert [h["state"] for h in closed.get_json()["history"]] == [
        "sent", "accepted", "booked", "missed", "closed"]


def answer(api: Api, family: str, ref: str, token: str, how: str, body: Any = None) -> Any:
    return api.post(f"/api/v1/families/{family}/referrals/{ref}/{how}", token,
                    json={} if body is None else body)


def test_the_family_agrees_and_the_form_grants_exactly_the_asked_cells(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, token = case
    before = api.get(f"/api/v1/families/{family}/consent", token).get_json()
    ref = ask(api, family, fields=["health", "contact"]).get_json()["id"]
    # Staff record an answer only saying who gave it and how (below); the
    # receiving agency may not know of it yet; a bad body is a 422 changing nothing.
    assert answer(api, family, ref, "coord1", "agree").status_code == 422
    assert answer(api, family, ref, "physiocoord", "agree").status_code == 404
    assert answer(api, family, ref, token, "agree", {"yes": True}).status_code == 422
    assert answer(api, family, "ref_0000", token, "agree").status_code == 404
    assert state(api, ref) == "awaiting_family"
    agreed = answer(api, family, ref, token, "agree")
    assert agreed.status_code == 200, agreed.get_json()
    assert agreed.get_json()["state"] == "sent"
    assert [h["state"] for h in agreed.get_json()["history"]] == ["awaiting_family", "sent"]
    after = api.get(f"/api/v1/families/{family}/consent", token).get_json()
    assert after["version"] == before["version"] + 1
    assert after["signed_by"] == before["signed_by"]
    assert after["valid_until"] == before["valid_until"]
    assert after["method"] == "family_portal" and after["witness"] is None
    added = {(a, f) for a, fs in after["grants"].items() for f in fs} - {
        (a, f) for a, fs in before["grants"].items() for f in fs}
    assert added == {("physio", "contact")}  # involvement and health were granted already
    # The receiving agency now sees it and may accept; answering twice is a 409.
    assert listed(api, "physiocoord", "?direction=in") == [ref]
    assert answer(api, family, ref, token, "agree").status_code == 409
    assert answer(api, family, ref, token, "refuse").status_code == 409
    [row] = audit_rows(app, "referral.agree")
    assert row.actor == "family" and ref in row.detail


def test_the_family_refuses_and_the_receiving_agency_never_learns_of_it(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, token = case
    version = api.get(f"/api/v1/families/{family}/consent", token).get_json()["version"]
    ref = ask(api, family, to="ecec", fields=["education"]).get_json()["id"]
    refused = answer(api, family, ref, token, "refuse")
    assert refused.status_code == 200 and refused.get_json()["state"] == "declined_by_family"
    assert api.get(f"/api/v1/families/{family}/consent", token).get_json()[
        "version"] == version
    assert api.get(f"/api/v1/referrals/{ref}", "coord1").get_json()[
        "state"] == "declined_by_family"
    assert answer(api, family, ref, token, "agree").status_code == 409
    # A referral already sent is not the family's to answer.
    sent = ask(api, family).get_json()["id"]
    assert answer(api, family, sent, token, "refuse").status_code == 409
    assert [r.actor for r in audit_rows(app, "referral.refuse")] == ["family"]


def test_agreeing_with_no_form_in_force_is_409(app: Flask, api: Api, clock: Any) -> None:
    family = api.new_family("nurse1", display_name="Deniz Kaya", birth_date="2023-05-02")
    receipt = api.sign(family, GRID, valid_until="2026-11-24")["receipt"]
    ref = ask(api, family, fields=["contact"]).get_json()["id"]
    clock.advance(days=3)  # the form ended on 2026-11-24
    token = family_token(api, receipt)
    refused = answer(api, family, ref, token, "agree")
    assert refused.status_code == 409, refused.get_json()
    assert "no consent form is in force" in refused.get_json()["detail"]
    assert state(api, ref) == "awaiting_family"
    assert audit_rows(app, "referral.agree") == []
    with app.extensions["onestory"].sessions() as session:
        assert session.scalar(select(func.count()).select_from(ConsentFormRow)) == 1


# --- the family's answer given in person, recorded by a coordinator ----------------

IN_PERSON = {"signed_by": "Ayşe Demir (mother)", "method": "in_person"}


@pytest.fixture
def physio_involved(api: Api, case: tuple[str, str]) -> str:
    """The case with physiotherapy involved too: an agency that sees the whole
    form (the form grants it `involvement`) and is neither side of a
    referral from the health centre to the kindergarten."""
    family, _ = case
    assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    return family


def test_a_coordinator_of_another_involved_agency_records_the_answer_given_in_person(
        app: Flask, api: Api, physio_involved: str) -> None:
    family = physio_involved
    before = api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()
    ref = ask(api, family, to="ecec", fields=["education"]).get_json()["id"]
    agreed = answer(api, family, ref, "physiocoord", "agree", IN_PERSON)
    assert agreed.status_code == 200, agreed.get_json()
    assert agreed.get_json()["state"] == "sent"
    after = api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()
    assert after["version"] == before["version"] + 1
    # The new version records who gave the answer, how, and who witnessed it.
    assert after["signed_by"] == "Ayşe Demir (mother)" and after["method"] == "in_person"
    assert after["witness"] == "physiocoord" and after["signed_on"] == "2026-11-22"
    assert after["valid_until"] == before["valid_until"]
    assert sorted(after["grants"]["ecec"]) == ["education", "involvement"]
    [row] = audit_rows(app, "referral.agree")
    detail = json.loads(row.detail)
    assert row.actor == "physiocoord" and detail["on_behalf_of_family"] is True
    assert detail["method"] == "in_person" and "Ayşe" not in row.detail
    # Answered: answering again, in person or not, is a 409 changing nothing.
    assert answer(api, family, ref, "physiocoord", "refuse", IN_PERSON).status_code == 409
    assert api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()[
        "version"] == after["version"]
    # The referrer's own coordinator may record a refusal in person too.
    other = ask(api, family, to="ecec", fields=["social"]).get_json()["id"]
    refused = answer(api, family, other, "coord1", "refuse",
                     {"signed_by": "Ayşe Demir", "method": "paper"})
    assert refused.status_code == 200 and refused.get_json()["state"] == "declined_by_family"
    assert api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()[
        "version"] == after["version"]
    assert json.loads(audit_rows(app, "referral.refuse")[0].detail)["method"] == "paper"


def test_the_receiving_agency_may_not_record_the_familys_answer(
        app: Flask, api: Api, physio_involved: str) -> None:
    family = physio_involved
    ref = ask(api, family, to="physio", fields=["contact"]).get_json()["id"]
    with nothing_stored(app):
        # Awaiting the family, the receiving agency may not know of it: as absent.
        hidden = answer(api, family, ref, "physiocoord", "agree", IN_PERSON)
        assert hidden.status_code == 404
        assert hidden.get_json() == answer(api, family, "ref_0000", "physiocoord", "agree",
                                           IN_PERSON).get_json()
    # Once it may know of it (sent), it is refused as the receiving side: 403, not 409.
    sent = ask(api, family, to="physio").get_json()["id"]
    refused = answer(api, family, sent, "physiocoord", "refuse", IN_PERSON)
    assert refused.status_code == 403, refused.get_json()
    assert "referred to" in refused.get_json()["detail"]
    assert state(api, ref) == "awaiting_family" and state(api, sent) == "sent"


@pytest.mark.parametrize(("who", "body", "status"), [
    ("nurse1", IN_PERSON, 403),          # a practitioner of the referring agency
    ("auditor1", IN_PERSON, 403),        # no casework role at all
    ("physio1", IN_PERSON, 403),         # a practitioner of another involved agency
    ("coord1", {}, 422),                 # the family's empty body from staff
    ("coord1", {"signed_by": "  ", "method": "in_person"}, 422),
    ("coord1", {"signed_by": "Ayşe", "method": "family_portal"}, 422),
    ("coord1", {"signed_by": "Ayşe"}, 422),
    ("coord1", {**IN_PERSON, "witness": "coord1"}, 422),
    ("family", IN_PERSON, 422),          # a staff body from the family
])
def test_in_person_answers_refused_store_nothing(
        app: Flask, api: Api, physio_involved: str, case: tuple[str, str], who: str,
        body: Any, status: int) -> None:
    family, token = case
    ref = ask(api, family, to="ecec", fields=["education"]).get_json()["id"]
    caller = token if who == "family" else who
    with nothing_stored(app):
        refused = answer(api, family, ref, caller, "agree", body)
        assert refused.status_code == status, refused.get_json()
    if status == 422:
        assert refused.get_json()["errors"]
    assert state(api, ref) == "awaiting_family"
    assert audit_rows(app, "referral.agree") == []


def test_an_agency_that_may_not_know_of_the_referral_gets_404(
        app: Flask, api: Api, physio_involved: str, case: tuple[str, str]) -> None:
    """Physiotherapy, involved but reading only its own column once the family
    took back its `involvement` cell, may not learn of the health centre's
    referrals: as absent. A referral in another family's path is absent too."""
    family, token = case
    ref = ask(api, family, to="ecec", fields=["education"]).get_json()["id"]
    assert api.post(f"/api/v1/families/{family}/consent/revoke", token,
                    json={"agency": "physio", "field": "involvement"}).status_code == 200
    other = api.new_family("nurse1", display_name="Other")
    api.sign(other, GRID)
    with nothing_stored(app):
        assert answer(api, family, ref, "physiocoord", "agree", IN_PERSON).status_code == 404
        assert answer(api, other, ref, "coord1", "agree", IN_PERSON).status_code == 404
    assert state(api, ref) == "awaiting_family"


def test_an_agency_no_longer_involved_may_not_record_an_answer(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = ask(api, family, to="ecec", fields=["education"]).get_json()["id"]
    assert api.call("PATCH", f"/api/v1/families/{family}/involvements/health-centre",
                    "coord1", json={"status": "closed"}).status_code == 200
    with nothing_stored(app):
        refused = answer(api, family, ref, "coord1", "agree", IN_PERSON)
    assert refused.status_code == 403 and "not involved" in refused.get_json()["detail"]
    assert state(api, ref) == "awaiting_family"


# --- an absent referral and one the caller may not know of: the same work -----------


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/v1/referrals/{ref}", None),
    ("POST", "/api/v1/referrals/{ref}/accept", {}),
    ("POST", "/api/v1/referrals/{ref}/appointments",
     {"at": "2026-11-26T09:30:00Z", "place": "Room 4"}),
    ("POST", "/api/v1/families/{family}/referrals/{ref}/agree", IN_PERSON),
])
def test_an_invisible_referral_takes_the_same_path_as_an_absent_one(
        app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch, case: tuple[str, str],
        method: str, path: str, body: Any) -> None:
    """Absent, of a family the caller may not see, or of a family it sees but
    not for it to know of: the same statements, the same key work, the same
    404 (the denial on record differs only in the family id it names)."""
    from tests.functional.test_query_budget import work_done

    family, _ = case
    # Physiotherapy sees this family but may not know of a referral awaiting it;
    # the other family it does not see at all.
    hidden = ask(api, family, to="physio", fields=["contact"]).get_json()["id"]
    unseen = api.new_family("nurse1", display_name="Unseen")
    api.sign(unseen, {"health-centre": ["involvement"]})
    of_unseen = ask(api, unseen, to="physio").get_json()["id"]

    def walk(ref: str, fam: str) -> tuple[list[str], Any]:
        with work_done(app, monkeypatch) as done:
            response = api.call(method, path.format(ref=ref, family=fam), "physiocoord",
                                json=body)
        assert response.status_code == 404, response.get_json()
        return done, response.get_json()

    for ref, fam in ((hidden, family), (of_unseen, unseen)):
        walk("ref_00000000000000000000", fam)  # the first of a kind may warm caches
        absent = walk("ref_00000000000000000000", fam)
        assert walk(ref, fam) == absent, ref


def test_a_referral_withdrawn_before_the_family_agreed_stays_unknown_to_the_receiver(
        api: Api, case: tuple[str, str]) -> None:
    """Withdrawn while the family was still asked: the receiving agency
    never learns of it, in its lists, on the family's list or by its id."""
    family, _ = case
    waiting = ask(api, family, fields=["contact"]).get_json()["id"]
    sent = ask(api, family).get_json()["id"]
    for ref in (waiting, sent):
        assert api.post(f"/api/v1/referrals/{ref}/withdraw", "coord1",
                        json={"reason": "The family moved."}).status_code == 200
    assert listed(api, "physiocoord") == [sent]
    assert listed(api, "physiocoord", "?state=withdrawn") == [sent]
    assert api.get(f"/api/v1/referrals/{waiting}", "physiocoord").status_code == 404
    assert api.get(f"/api/v1/referrals/{sent}", "physiocoord").status_code == 200
    theirs = api.get(f"/api/v1/families/{family}/referrals", "physio1").get_json()
    assert [r["id"] for r in theirs] == [sent]
    assert sorted(listed(api, "coord1")) == sorted([waiting, sent])
