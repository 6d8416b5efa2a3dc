"""Duty grants over the API (CONTRACT.md, "Exceptional access"): a
coordinator of an involved agency proposes cells for an agency on a legal
basis other than consent; a coordinator of a third agency approves; only
then, and only through its last day, the named agency sees those cells and
the family; the family's revocations do not end it and the family cannot
end the part it keeps; every refusal and failure mode."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from coordination import accounts
from coordination.model import DutyGrantRow
from tests.conftest import T0, Api, Clock
from tests.functional.test_revocation_truth import audit_rows, count, family_token
from tests.unchanged import nothing_stored

# The health centre records the form; physiotherapy may know who is
# involved; child protection is named nowhere on it.
GRID = {"health-centre": ["involvement", "health", "protection"],
        "physio": ["involvement", "health"]}
WHY = ("The child is on the child protection register: the children's centre must be "
       "informed (Working Together 2023).")


def body(**over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"agency": "cps", "fields": ["protection"],
                           "legal_basis": "legal_obligation", "justification": WHY,
                           "until": (T0.date() + timedelta(days=60)).isoformat()}
    out.update(over)
    return out


@pytest.fixture
def case(app: Flask, api: Api, clock: Clock) -> tuple[str, dict[str, str]]:
    """The family (health centre involved), a protection note, its form
    signed, and a coordinator at child protection."""
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        accounts.add_staff(session, "cpscoord", "cps", "coordinator", None, clock())
        api.tokens["cpscoord"] = accounts.create_token(session, "cpscoord",
                                                       timedelta(days=3650), clock())
    family = api.new_family("nurse1", display_name="Aylin Demir", birth_date="2024-03-14")
    api.write(family, "protection", "Bruising seen at the health visit.")
    api.write(family, "health", "Growth on track.")
    receipt: dict[str, str] = api.sign(family, GRID)["receipt"]
    return family, receipt


def propose(api: Api, family: str, who: str = "coord1", **over: Any) -> Any:
    return api.post(f"/api/v1/families/{family}/duty-grants", who, json=body(**over))


def act(api: Api, family: str, grant: str, who: str, what: str = "approve") -> Any:
    return api.post(f"/api/v1/families/{family}/duty-grants/{grant}/{what}", who, json={})


def in_force(api: Api, family: str, **over: Any) -> str:
    made = propose(api, family, **over)
    assert made.status_code == 201, made.get_json()
    grant: str = made.get_json()["id"]
    approved = act(api, family, grant, "physiocoord")
    assert approved.status_code == 200, approved.get_json()
    return grant


def record(api: Api, family: str, who: str = "cps1") -> Any:
    return api.get(f"/api/v1/families/{family}", who)


def test_in_force_only_once_a_third_agency_approves(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, _ = case
    assert record(api, family).status_code == 404  # the family does not exist for cps
    made = propose(api, family)
    assert made.status_code == 201, made.get_json()
    grant = made.get_json()
    assert grant["id"].startswith("duty_") and grant["state"] == "pending_approval"
    assert grant["fields"] == ["involvement", "protection"]  # involvement always added
    assert grant["in_force"] is False and grant["justification"] == WHY
    # Pending: nothing is shared, and the family still does not exist for cps.
    assert record(api, family).status_code == 404
    assert api.get("/api/v1/families", "cps1",
                   query_string={"name": "aylin"}).get_json() == []
    approved = act(api, family, grant["id"], "physiocoord")
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["state"] == "approved"
    assert approved.get_json()["decided_by"] == "physiocoord"
    shown = record(api, family)
    assert shown.status_code == 200
    got = shown.get_json()
    assert [e["value"] for e in got["fields"]["protection"]] == [
        "Bruising seen at the health visit."]
    assert "health" in got["withheld"] and "involvements" in got
    assert [f["id"] for f in api.get("/api/v1/families", "cps1",
                                     query_string={"name": "aylin"}).get_json()] == [family]
    # The read's audit says on which basis each cell was shown.
    read = audit_rows(app, "record.read")[-1]
    assert json.loads(read.detail)["basis"] == {"involvement": f"duty_grant:{grant['id']}",
                                                "protection": f"duty_grant:{grant['id']}"}
    # The justification is sealed under the family's key.
    with app.extensions["onestory"].engine.connect() as conn:
        stored = conn.scalar(text("SELECT justification FROM duty_grants"))
    assert WHY.encode() not in bytes(stored)
    assert [r.action for r in audit_rows(app, "duty_grant.propose")] == ["duty_grant.propose"]
    assert len(audit_rows(app, "duty_grant.approve")) == 1
    # Approved once: a second answer is a conflict.
    assert act(api, family, grant["id"], "physiocoord").status_code == 409
    assert act(api, family, grant["id"], "physiocoord", "reject").status_code == 409


def test_a_reading_by_consent_says_nothing_of_a_basis(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, _ = case
    assert record(api, family, "physio1").status_code == 200
    assert "basis" not in json.loads(audit_rows(app, "record.read")[-1].detail or "{}")


def test_who_may_approve(api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, _ = case
    grant = propose(api, family).get_json()["id"]
    # While the family does not exist for child protection, it cannot find the grant.
    assert act(api, family, grant, "cpscoord").status_code == 404
    # Once it may know of the family (by consent), it still may not approve its own.
    api.sign(family, {**GRID, "cps": ["involvement"]})
    # The proposer's agency and the named one may not approve; nor practitioners.
    for who, status in (("coord1", 403), ("cpscoord", 403), ("physio1", 403),
                        ("auditor1", 403)):
        assert act(api, family, grant, who).status_code == status, who
    assert "protection" in record(api, family).get_json()["withheld"]
    # An agency the family is not visible to cannot find it at all.
    assert act(api, family, grant, "ngocoord").status_code == 404
    rejected = act(api, family, grant, "physiocoord", "reject")
    assert rejected.status_code == 200 and rejected.get_json()["state"] == "rejected"
    assert act(api, family, grant, "physiocoord").status_code == 409
    assert "protection" in record(api, family).get_json()["withheld"]


def test_refusals_store_nothing(app: Flask, api: Api, case: tuple[str, dict[str, str]],
                                clock: Clock) -> None:
    family, receipt = case
    url = f"/api/v1/families/{family}/duty-grants"
    token = family_token(api, receipt)
    with nothing_stored(app):
        assert api.post(url, json=body()).status_code == 401
        assert api.post(url, "nobody-token", json=body()).status_code == 401
        assert api.post(url, "nurse1", json=body()).status_code == 403  # a practitioner
        assert api.post(url, "auditor1", json=body()).status_code == 403
        assert api.post(url, token, json=body()).status_code == 403
        # Visible but not involved: physiotherapy may not propose.
        assert api.post(url, "physiocoord", json=body()).status_code == 403
        assert api.post("/api/v1/families/fam_nope/duty-grants", "coord1",
                        json=body()).status_code == 404
    other = api.new_family("physio1", display_name="Other family")
    with nothing_stored(app):
        # Invisible: the same 404 as an absent family, even with a bad body.
        assert api.post(f"/api/v1/families/{other}/duty-grants", "coord1",
                        json={"bad": 1}).status_code == 404
        too_long = propose(api, family, until=(T0.date() + timedelta(days=91)).isoformat())
        assert too_long.status_code == 422
        assert too_long.content_type == "application/problem+json"
        assert list(too_long.get_json()["errors"]) == ["until"]
        past = propose(api, family, until=(T0.date() - timedelta(days=1)).isoformat())
        assert list(past.get_json()["errors"]) == ["until"]
        for over, key in (({"legal_basis": "consent"}, "legal_basis"),
                          ({"agency": "nowhere"}, "agency"),
                          ({"fields": ["protection", "secrets"]}, "fields"),
                          ({"fields": []}, "fields"),
                          ({"justification": "   "}, "justification"),
                          ({"until": "31.12.2026"}, "until"),
                          ({"colour": "red"}, "colour")):
            bad = propose(api, family, **over)
            assert bad.status_code == 422, over
            assert key in bad.get_json()["errors"], (over, bad.get_json())
        assert api.post(url, "coord1", data="not json",
                        content_type="application/json").status_code == 400
    assert propose(api, family, until=(T0.date() + timedelta(days=90)).isoformat()
                   ).status_code == 201
    assert count(app, DutyGrantRow) == 1


def test_ends_by_itself_and_outlives_revocation(
        app: Flask, api: Api, case: tuple[str, dict[str, str]], clock: Clock) -> None:
    family, receipt = case
    in_force(api, family, until=(T0.date() + timedelta(days=10)).isoformat())
    token = family_token(api, receipt)
    # A coordinator recording the family's wish to end its part: refused, saying why.
    recorded = api.call("DELETE", f"/api/v1/families/{family}/involvements/cps", "coord1",
                        json={"signed_by": "Elif Demir (mother)", "method": "paper"})
    assert recorded.status_code == 409 and "duty grant" in recorded.get_json()["detail"]
    # The family revokes everything: the duty grant stands.
    revoked = api.post(f"/api/v1/families/{family}/consent/revoke", token, json={})
    assert revoked.status_code == 200 and revoked.get_json()["grants"] == {}
    assert record(api, family).get_json()["fields"]["protection"]
    # Its part cannot be ended by the family while the grant stands.
    ended = api.call("DELETE", f"/api/v1/families/{family}/involvements/cps", token, json={})
    assert ended.status_code == 409
    assert "duty grant" in ended.get_json()["detail"]
    assert record(api, family).status_code == 200
    # Through its last day, then it ends by itself.
    clock.advance(days=10, hours=13, minutes=59)  # 23:59 on its last day
    assert record(api, family).status_code == 200
    clock.advance(minutes=1)
    assert record(api, family).status_code == 404
    token = family_token(api, receipt)  # a session is short-lived
    listed = api.get(f"/api/v1/families/{family}/duty-grants", token).get_json()
    assert [(g["state"], g["in_force"]) for g in listed] == [("ended", False)]
    # Ended, it no longer keeps anything: nothing left to end for cps.
    assert api.call("DELETE", f"/api/v1/families/{family}/involvements/cps", token,
                    json={}).status_code == 409


def test_who_reads_the_grants(api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, receipt = case
    grant = in_force(api, family)
    url = f"/api/v1/families/{family}/duty-grants"
    for who in ("coord1", "nurse1", "physiocoord", "cps1", "auditor1",
                family_token(api, receipt)):
        found = api.get(url, who)
        assert found.status_code == 200, who
        assert [(g["id"], g["justification"]) for g in found.get_json()] == [(grant, WHY)]
    # A practitioner of a third agency reads only its own agency's grants.
    assert api.get(url, "physio1").get_json() == []
    other = api.new_family("ecec1", display_name="Other")
    assert api.get(f"/api/v1/families/{other}/duty-grants", "cps1").status_code == 404
    assert api.get(url, "ecec1").status_code == 404
    assert api.get(url, "admin1").status_code == 403
    assert api.get(url).status_code == 401
    assert api.get("/api/v1/families/fam_nope/duty-grants", "auditor1").status_code == 404


def test_another_familys_token_sees_nothing(api: Api, case: tuple[str, dict[str, str]]
                                            ) -> None:
    family, _ = case
    grant = propose(api, family).get_json()["id"]
    other = api.new_family("nurse1", display_name="Other family")
    other_token = family_token(api, api.sign(other, {"physio": ["health"]})["receipt"])
    assert api.get(f"/api/v1/families/{family}/duty-grants", other_token).status_code == 404
    assert act(api, family, grant, other_token).status_code == 403
    # A grant of one family is not found under another.
    assert act(api, other, grant, "physiocoord").status_code == 404


def test_search_visibility_agrees_with_the_record(app: Flask, api: Api, clock: Clock) -> None:
    """The SQL form of the visibility rule (`casework.common._visible_to`)
    gives the same answers as the rule in Python, over duty grants."""
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        accounts.add_staff(session, "cpscoord", "cps", "coordinator", None, clock())
    short = (T0.date() + timedelta(days=3)).isoformat()

    def grant_for(f: str, agency: str = "cps", until: str | None = None,
                  then: str | None = "approve") -> None:
        made = propose(api, f, agency=agency, **({"until": until} if until else {}))
        assert made.status_code == 201, made.get_json()
        if then:
            assert act(api, f, made.get_json()["id"], "physiocoord", then).status_code == 200

    cases = {
        "nothing": lambda f: None,
        "approved": lambda f: grant_for(f),
        "pending": lambda f: grant_for(f, then=None),
        "rejected": lambda f: grant_for(f, then="reject"),
        "ended": lambda f: grant_for(f, until=short),
        "another agency": lambda f: grant_for(f, agency="ecec"),
        "approved, form revoked": lambda f: (grant_for(f), api.post(
            f"/api/v1/families/{f}/consent/revoke", "coord1", json={})),
        "form only": lambda f: api.sign(f, {**GRID, "cps": ["protection"]}),
    }
    ids = {}
    for name, arrange in cases.items():
        ids[name] = api.new_family("nurse1", display_name="Same Name")
        api.sign(ids[name], GRID)
        arrange(ids[name])
    clock.advance(days=5)  # past the ended grant's last day
    found = {f["id"] for f in api.get("/api/v1/families", "cps1",
                                      query_string={"name": "same name"}).get_json()}
    for name, family in ids.items():
        readable = record(api, family).status_code == 200
        assert (family in found) is readable, name
    assert found == {ids["approved"], ids["approved, form revoked"], ids["form only"]}
