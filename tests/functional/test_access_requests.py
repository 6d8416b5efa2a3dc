"""Access requests over the API (CONTRACT.md, "Access requests"): an agency
asks the family for cells it cannot see, the family approves or declines
(itself, or in person through another agency's coordinator); one pending
request per agency and family, no second ask for a declined field within
30 days, lapse after 30 days; every refusal and failure mode."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from coordination.casework import access_requests
from coordination.model import AccessRequest
from tests.conftest import T0, Api, Clock
from tests.functional.test_revocation_truth import audit_rows, count, family_token
from tests.unchanged import nothing_stored

# The health centre records the form and sees most; physiotherapy may know of
# the family and see health notes; child protection sees protection notes
# only; the kindergarten is named nowhere (the family does not exist for it).
GRID = {
    "health-centre": ["involvement", "contact", "health", "protection", "education"],
    "physio": ["involvement", "health"],
    "cps": ["protection"],
}
REASON = "We need to reach the mother to book the first physiotherapy session."


@pytest.fixture
def case(api: Api) -> tuple[str, dict[str, str]]:
    """The family (the health centre involved), its form signed, and its receipt."""
    family = api.new_family("nurse1", display_name="Aylin Demir", birth_date="2024-03-14",
                            address="Storgata 1")
    api.write(family, "contact", "Mother: +47 400 00 000")
    receipt: dict[str, str] = api.sign(family, GRID)["receipt"]
    return family, receipt


def ask(api: Api, family: str, who: str = "physio1", **body: Any) -> Any:
    body.setdefault("fields", ["contact"])
    body.setdefault("reason", REASON)
    return api.post(f"/api/v1/families/{family}/access-requests", who, json=body)


def answer(api: Api, family: str, req: str, who: str, act: str = "approve",
           body: Any = None) -> Any:
    return api.post(f"/api/v1/families/{family}/access-requests/{req}/{act}", who,
                    json={} if body is None else body)


def listed(api: Api, family: str, who: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/families/{family}/access-requests", who)
    assert response.status_code == 200, response.get_json()
    found: list[dict[str, Any]] = response.get_json()
    return found


def grants(api: Api, family: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = api.get(f"/api/v1/families/{family}/consent",
                                          "coord1").get_json()["grants"]
    return found


IN_PERSON = {"signed_by": "Elif Demir (mother)", "method": "in_person"}


def test_the_family_approves_exactly_the_asked_cells(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, receipt = case
    before = grants(api, family)
    assert "contact" in api.get(f"/api/v1/families/{family}", "physio1").get_json()["withheld"]
    made = ask(api, family, fields=["contact", "household", "contact"])
    assert made.status_code == 201, made.get_json()
    req = made.get_json()
    assert req["id"].startswith("req_") and req["state"] == "pending"
    assert req["agency"] == "physio" and req["asked_by"] == "physio1"
    assert req["fields"] == ["contact", "household"]  # catalogue order, once each
    assert req["reason"] == REASON
    assert req["created_at"] == "2026-11-22T10:00:00Z"
    assert req["lapses_at"] == "2026-12-22T10:00:00Z"
    assert req["answered_at"] is None and req["version"] is None
    token = family_token(api, receipt)
    assert [r["id"] for r in listed(api, family, token)] == [req["id"]]
    approved = answer(api, family, req["id"], token)
    assert approved.status_code == 200, approved.get_json()
    out = approved.get_json()
    assert out["state"] == "approved" and out["answered_by"] == "family"
    assert out["method"] == "family_portal" and out["version"] == 2
    # Exactly the asked cells were added, for the asking agency only.
    after = grants(api, family)
    assert after == {**before, "physio": ["contact", "health", "household", "involvement"]}
    form = api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()
    assert form["version"] == 2 and form["method"] == "family_portal"
    assert form["signed_by"] == "Guardian Name" and form["valid_until"] == "2027-11-22"
    history = api.get(f"/api/v1/families/{family}/consent/history", "coord1").get_json()
    assert history[-1]["change"] == "grant cells physio/contact,physio/household"
    assert history[-1]["changed_by"] == "family"
    # Physiotherapy now reads the contact notes and the address.
    record = api.get(f"/api/v1/families/{family}", "physio1").get_json()
    assert [e["value"] for e in record["fields"]["contact"]] == ["Mother: +47 400 00 000"]
    assert record["address"] == "Storgata 1" and "contact" not in record["withheld"]
    [row] = audit_rows(app, "access_request.approve")
    assert row.actor == "family" and row.family_id == family
    assert json.loads(row.detail)["version"] == 2
    [created] = audit_rows(app, "access_request.create")
    assert created.actor == "physio1" and "reach the mother" not in created.detail


def test_who_sees_which_requests_newest_first(
        api: Api, clock: Clock, case: tuple[str, dict[str, str]]) -> None:
    family, receipt = case
    first = ask(api, family).get_json()["id"]
    clock.advance(minutes=5)
    second = ask(api, family, who="cps1", fields=["health"]).get_json()["id"]
    clock.advance(minutes=5)
    third = ask(api, family, who="nurse1", fields=["social"]).get_json()["id"]
    token = family_token(api, receipt)
    assert [r["id"] for r in listed(api, family, token)] == [third, second, first]
    assert [r["id"] for r in listed(api, family, "physiocoord")] == [first]
    assert [r["id"] for r in listed(api, family, "cps1")] == [second]
    assert [r["id"] for r in listed(api, family, "coord1")] == [third]


def test_declined_fields_wait_30_days(
        app: Flask, api: Api, clock: Clock, case: tuple[str, dict[str, str]]) -> None:
    family, receipt = case
    req = ask(api, family, fields=["contact", "story"]).get_json()["id"]
    declined = answer(api, family, req, family_token(api, receipt), "decline")
    assert declined.status_code == 200, declined.get_json()
    assert declined.get_json()["state"] == "declined" and declined.get_json()["version"] is None
    assert api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()["version"] == 1
    clock.advance(days=29, hours=23)
    with nothing_stored(app):
        again = ask(api, family, fields=["contact"])
        assert again.status_code == 409, again.get_json()
        assert "declined contact" in again.get_json()["detail"]
        assert ask(api, family, fields=["story", "social"]).status_code == 409
    # Another field may be asked for meanwhile.
    other = ask(api, family, fields=["social"])
    assert other.status_code == 201, other.get_json()
    answer(api, family, other.get_json()["id"], family_token(api, receipt), "decline")
    clock.advance(hours=1)
    assert ask(api, family, fields=["contact"]).status_code == 201
    [denied] = [r for r in audit_rows(app, "request.denied") if r.reason == "conflict"][:1]
    assert denied.family_id == family and denied.actor == "physio1"


def test_one_pending_request_per_agency_until_it_lapses(
        app: Flask, api: Api, clock: Clock, case: tuple[str, dict[str, str]]) -> None:
    family, receipt = case
    req = ask(api, family).get_json()["id"]
    with nothing_stored(app):
        second = ask(api, family, fields=["household"])
        assert second.status_code == 409
        assert "pending request" in second.get_json()["detail"]
    # Another agency may ask meanwhile.
    assert ask(api, family, who="cps1", fields=["health"]).status_code == 201
    clock.advance(days=30)
    assert [r["state"] for r in listed(api, family, "physio1")] == ["lapsed"]
    token = family_token(api, receipt)
    with nothing_stored(app):
        late = answer(api, family, req, token)
        assert late.status_code == 409, late.get_json()
        assert "lapsed" in late.get_json()["detail"]
        assert answer(api, family, req, "coord1", "decline", IN_PERSON).status_code == 409
    assert "physio" in grants(api, family) and "contact" not in grants(api, family)["physio"]
    # A lapsed request no longer blocks a new one.
    assert ask(api, family, fields=["household"]).status_code == 201


def test_a_request_is_answered_once(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, receipt = case
    req = ask(api, family).get_json()["id"]
    token = family_token(api, receipt)
    assert answer(api, family, req, token).status_code == 200
    with nothing_stored(app):
        for act in ("approve", "decline"):
            again = answer(api, family, req, token, act)
            assert again.status_code == 409, again.get_json()
            assert "approved already" in again.get_json()["detail"]
        assert answer(api, family, req, "coord1", "decline", IN_PERSON).status_code == 409
    assert len(audit_rows(app, "access_request.approve")) == 1


def test_a_field_already_granted_is_409(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, _ = case
    with nothing_stored(app):
        for fields in (["health"], ["contact", "health"], ["involvement"]):
            refused = ask(api, family, fields=fields)
            assert refused.status_code == 409, (fields, refused.get_json())
            assert "may already see" in refused.get_json()["detail"]
    assert count(app, AccessRequest) == 0


def test_no_token_wrong_role_wrong_agency_and_other_families(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, receipt = case
    req = ask(api, family).get_json()["id"]
    other = api.new_family("coord1", display_name="Other Family")
    other_token = family_token(api, api.sign(other, {"health-centre": ["health"]})["receipt"])
    token = family_token(api, receipt)
    base = f"/api/v1/families/{family}/access-requests"
    with nothing_stored(app):
        # No token, or a bad one.
        assert api.post(base, json={"fields": ["contact"], "reason": "x"}).status_code == 401
        assert api.get(base).status_code == 401
        assert api.get(base, "not-a-token").status_code == 401
        assert api.post(f"{base}/{req}/approve", json={}).status_code == 401
        # Roles that may not use the routes at all.
        for who in ("auditor1", "admin1"):
            assert ask(api, family, who=who).status_code == 403
            assert api.get(base, who).status_code == 403
            assert answer(api, family, req, who).status_code == 403
        assert ask(api, family, who=token).status_code == 403  # the family does not ask
        assert answer(api, family, req, "physio1", body=IN_PERSON).status_code == 403
        assert answer(api, family, req, "nurse1", body=IN_PERSON).status_code == 403
        # A family not visible to the agency does not exist for it.
        for who in ("ecec1", "ngo1"):
            assert ask(api, family, who=who).status_code == 404
            assert api.get(base, who).status_code == 404
        assert answer(api, family, req, "ngocoord", body=IN_PERSON).status_code == 404
        # Another family's token: this family does not exist for it.
        assert api.get(base, other_token).status_code == 404
        assert answer(api, family, req, other_token).status_code == 404
        # A request of another family, or none, under this family: 404.
        assert answer(api, other, req, other_token).status_code == 404
        assert answer(api, family, "req_0000", token).status_code == 404
        # Physiotherapy sees the family but is not involved: it cannot record.
        refused = answer(api, family, req, "physiocoord", body=IN_PERSON)
        assert refused.status_code == 403 and "not involved" in refused.get_json()["detail"]
    assert listed(api, family, token)[0]["state"] == "pending"
    denied = audit_rows(app, "request.denied")
    assert {r.reason for r in denied} >= {"unauthenticated", "role", "not_visible",
                                          "not_permitted"}
    assert all(r.family_id in {family, other, None} for r in denied)


def test_in_person_answer_recorded_by_another_agencys_coordinator(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, receipt = case
    req = ask(api, family, who="cps1", fields=["health", "contact"]).get_json()["id"]
    approved = answer(api, family, req, "coord1", body=IN_PERSON)
    assert approved.status_code == 200, approved.get_json()
    out = approved.get_json()
    assert out["state"] == "approved" and out["answered_by"] == "coord1"
    assert out["method"] == "in_person" and out["version"] == 2
    form = api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()
    assert form["grants"]["cps"] == ["contact", "health", "protection"]
    assert form["method"] == "in_person" and form["witness"] == "coord1"
    assert form["signed_by"] == "Elif Demir (mother)"
    # Child protection does not see the whole form: not who recorded the answer.
    [seen] = listed(api, family, "cps1")
    assert seen["state"] == "approved" and seen["answered_by"] is None
    assert seen["method"] == "in_person"
    record = api.get(f"/api/v1/families/{family}", "cps1").get_json()
    assert "health" in record["fields"] and "contact" in record["fields"]
    [row] = audit_rows(app, "access_request.approve")
    assert row.actor == "coord1"
    assert json.loads(row.detail)["on_behalf_of_family"] is True
    # The name is sealed, never in clear.
    with app.extensions["onestory"].engine.connect() as conn:
        [blob] = [bytes(r[0]) for r in conn.execute(text(
            "SELECT answer_signed_by FROM access_requests"))]
    assert b"Elif" not in blob and "Elif" not in row.detail


def test_the_asking_agencys_own_coordinator_may_not_record_the_answer(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, _ = case
    req = ask(api, family, who="nurse1", fields=["social"]).get_json()["id"]
    with nothing_stored(app):
        refused = answer(api, family, req, "coord1", body=IN_PERSON)
        assert refused.status_code == 403, refused.get_json()
        assert "asked for this itself" in refused.get_json()["detail"]
    # Physiotherapy, once involved (and seeing the whole form), may.
    assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    declined = answer(api, family, req, "physiocoord", "decline",
                      {"signed_by": "Elif Demir", "method": "paper"})
    assert declined.status_code == 200, declined.get_json()
    assert declined.get_json()["state"] == "declined"
    assert listed(api, family, "nurse1")[0]["answered_by"] == "physiocoord"


def test_a_coordinator_without_the_whole_form_may_not_record(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, _ = case
    assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    assert api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
                    json={"agency": "physio", "field": "involvement"}).status_code == 200
    req = ask(api, family, who="nurse1", fields=["social"]).get_json()["id"]
    with nothing_stored(app):
        refused = answer(api, family, req, "physiocoord", body=IN_PERSON)
        assert refused.status_code == 403
        assert "whole consent form" in refused.get_json()["detail"]


def test_bad_input_is_422_naming_each_and_stores_nothing(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, receipt = case
    base = f"/api/v1/families/{family}/access-requests"
    with nothing_stored(app):
        bad = api.post(base, "physio1", json={"fields": [], "reason": "  "})
        assert bad.status_code == 422
        assert bad.headers["Content-Type"] == "application/problem+json"
        assert set(bad.get_json()["errors"]) == {"fields", "reason"}
        unknown = ask(api, family, fields=["health", "shoe_size"])  # 422 before 409
        assert unknown.status_code == 422
        assert unknown.get_json()["errors"] == {"fields": ["unknown field 'shoe_size'"]}
        extra = ask(api, family, urgency="high")
        assert extra.status_code == 422 and "urgency" in extra.get_json()["errors"]
        assert api.post(base, "physio1", json={"reason": REASON}).get_json()["errors"] == {
            "fields": ["Missing data for required field."]}
        assert ask(api, family, fields="contact").status_code == 422
        assert ask(api, family, reason="x" * 2001).status_code == 422
        assert api.post(base, "physio1", data="[]",
                        content_type="application/json").status_code == 400
        # An invisible family answers 404 even to a bad body.
        assert api.post(base, "ecec1", json={"fields": []}).status_code == 404
    req = ask(api, family).get_json()["id"]
    token = family_token(api, receipt)
    with nothing_stored(app):
        wrong = answer(api, family, req, token, body=IN_PERSON)  # the family sends nothing
        assert wrong.status_code == 422
        assert set(wrong.get_json()["errors"]) == {"signed_by", "method"}
        missing = answer(api, family, req, "coord1", body={})
        assert missing.status_code == 422
        assert set(missing.get_json()["errors"]) == {"signed_by", "method"}
        how = answer(api, family, req, "coord1", body={"signed_by": " ", "method": "phone"})
        assert set(how.get_json()["errors"]) == {"signed_by", "method"}
    assert listed(api, family, token)[0]["state"] == "pending"


def test_approving_without_a_form_in_force_is_409(
        app: Flask, api: Api, clock: Clock, case: tuple[str, dict[str, str]]) -> None:
    family, receipt = case
    clock.advance(days=366)  # the form ended; the health centre still works with the family
    req = ask(api, family, who="nurse1", fields=["health"]).get_json()["id"]
    token = family_token(api, receipt)
    with nothing_stored(app):
        refused = answer(api, family, req, token)
        assert refused.status_code == 409, refused.get_json()
        assert "no consent form is in force" in refused.get_json()["detail"]
    assert listed(api, family, token)[0]["state"] == "pending"
    # Declining needs no form.
    assert answer(api, family, req, token, "decline").get_json()["state"] == "declined"


def test_reasons_are_sealed_and_erasure_takes_requests(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, _ = case
    ask(api, family)
    with app.extensions["onestory"].engine.connect() as conn:
        [blob] = [bytes(r[0]) for r in conn.execute(text("SELECT reason FROM access_requests"))]
    assert b"reach the mother" not in blob
    erased = api.call("DELETE", f"/api/v1/families/{family}", "admin1",
                      json={"reason": "the family asked"})
    assert erased.status_code == 204
    assert count(app, AccessRequest) == 0


def test_answered_since_lists_an_agencys_answered_requests(
        app: Flask, api: Api, clock: Clock, case: tuple[str, dict[str, str]]) -> None:
    """What the worklist's `access_request.answered` is built on."""
    family, receipt = case
    approved = ask(api, family).get_json()["id"]
    pending = ask(api, family, who="cps1", fields=["health"]).get_json()["id"]
    clock.advance(hours=1)
    answer(api, family, approved, family_token(api, receipt))
    since = clock()
    clock.advance(hours=1)
    declined = ask(api, family, fields=["story"]).get_json()["id"]
    answer(api, family, declined, family_token(api, receipt), "decline")
    rt = app.extensions["onestory"]

    def answered(agency: str, since_: Any) -> list[tuple[str, str]]:
        with rt.sessions() as session:
            return [(r["id"], r["state"]) for r in access_requests.answered_since(
                session, agency, since_, clock())]

    assert answered("physio", T0) == [(declined, "declined"), (approved, "approved")]
    assert answered("physio", since + timedelta(seconds=1)) == [(declined, "declined")]
    assert answered("cps", T0) == []  # still pending
    assert pending
    # Once the family ended physiotherapy's part, it no longer exists for it.
    assert api.call("DELETE", f"/api/v1/families/{family}/involvements/physio",
                    family_token(api, receipt), json={}).status_code == 200
    assert answered("physio", T0) == []
