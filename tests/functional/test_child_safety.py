"""Issue 11's child-safety scenario (UK): child protection opens an
investigation on a family that has not consented to share with it. A duty
grant, approved by a coordinator of a third agency, lets it see
`involvement` and `protection` for 60 days; it places a protection hold; the
family's API views and page show nothing of child protection while the
auditor sees all of it; once the hold is lifted the family sees the grant and
the past looks."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from sqlalchemy import text

from coordination import accounts
from tests.conftest import Api, Clock
from tests.functional.test_duty_grants import case, in_force, record  # noqa: F401
from tests.functional.test_protection_holds import place
from tests.functional.test_revocation_truth import family_token
from tests.functional.test_web_family import _signed_in as family_client

CPS = ("cps", "Child protection", "child-protection")


def _family_views(api: Api, family: str, token: str) -> str:
    views = [api.get(f"/api/v1/families/{family}/{path}", token).get_json()
             for path in ("consent", "consent/history", "access-log", "duty-grants",
                          "referrals", "access-requests")]
    return json.dumps(views)


def test_a_duty_grant_under_a_protection_hold(
        app: Flask, api: Api, clock: Clock, case: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    family, receipt = case
    with app.extensions["onestory"].sessions() as session:
        accounts.set_protection_holds(session, "cps", True, clock())
    grant = in_force(api, family, fields=["involvement", "protection"])
    hold = place(api, family, conceal=["involvement", "entries", "access"])
    assert hold.status_code == 201, hold.get_json()
    read = record(api, family, "cps1")
    assert read.status_code == 200
    # Child protection also breaks the glass (to read the health notes): the
    # family is not told while the hold conceals child protection's looks.
    with app.extensions["onestory"].sessions() as session:
        accounts.set_agency_emergency_access(session, "cps", True, clock())
    opened = api.post("/api/v1/emergency-access", "cps1", json={
        "name": "Aylin Demir", "birth_date": "2024-03-14", "legal_basis": "legal_obligation",
        "reason": "Investigation opened today; the health notes are needed at once."})
    assert opened.status_code == 201, opened.get_json()
    assert "Bruising seen at the health visit." in json.dumps(read.get_json())
    token = family_token(api, receipt)
    seen = _family_views(api, family, token)
    for name in CPS:
        assert name not in seen, (name, seen[max(0, seen.find(name) - 300):seen.find(name) + 100])
    # Ending child protection's part answers as for an agency with no part at
    # all: no 409 telling of the duty grant that keeps it involved.
    ended = api.call("DELETE", f"/api/v1/families/{family}/involvements/cps", token, json={})
    never = api.call("DELETE", f"/api/v1/families/{family}/involvements/ecec", token, json={})
    assert ended.status_code == never.status_code == 409
    assert ended.get_json()["detail"] == never.get_json()["detail"].replace("'ecec'", "'cps'")
    page = family_client(app, receipt).get("/family/consent").get_data(as_text=True)
    for name in CPS:
        assert name not in page, (name, page[max(0, page.find(name) - 300):page.find(name) + 100])
    assert "emergency" not in page
    # The auditor sees the grant, the hold and child protection's look.
    grants = api.get(f"/api/v1/families/{family}/duty-grants", "auditor1").get_json()
    assert [g["id"] for g in grants] == [grant]
    holds = api.get("/api/v1/protection-holds", "auditor1").get_json()
    assert [h["agency"] for h in holds] == ["cps"]
    # Lifted: the family sees the grant and the look it could not see before.
    lifted = api.call("DELETE", f"/api/v1/families/{family}/protection-holds/"
                      f"{hold.get_json()['id']}", "cpscoord", json={})
    assert lifted.status_code == 200, lifted.get_json()
    token = family_token(api, receipt)
    listed: list[dict[str, Any]] = api.get(f"/api/v1/families/{family}/duty-grants",
                                           token).get_json()
    assert [g["agency"] for g in listed] == ["cps"]
    log = json.dumps(api.get(f"/api/v1/families/{family}/access-log", token).get_json())
    assert "cps" in log
    page = family_client(app, receipt).get("/family/consent").get_data(as_text=True)
    assert "Child protection" in page and "opened your whole record in an emergency" in page


def test_an_emergency_at_night_reviewed_and_refused_by_configuration(
        app: Flask, api: Api, clock: Clock) -> None:
    """Issue 11's emergency scenario: a health practitioner at night breaks
    the glass for a child its agency had no consent for, reads the record,
    the auditor marks it justified and the family is told; the same attempt
    by a kindergarten worker is refused by configuration (its agency may not
    break the glass), on record all the same."""
    # Physiotherapy records the family and its form; the health centre and
    # the kindergarten are named nowhere on it.
    family = api.new_family("physio1", display_name="Aylin Demir", birth_date="2024-03-14")
    api.write(family, "health", "Allergic to penicillin.", who="physio1")
    receipt: dict[str, str] = api.sign(family, {"physio": ["involvement", "health"]},
                                       who="physiocoord")["receipt"]
    with app.extensions["onestory"].sessions() as session:
        accounts.set_agency_emergency_access(session, "health-centre", True, clock())
    clock.advance(hours=16)  # 02:00 the next night
    body = {"name": "Aylin Demir", "birth_date": "2024-03-14", "legal_basis": "vital_interest",
            "reason": "Brought in unconscious at night; we need her allergies and medication."}
    assert record(api, family, "ecec1").status_code == 404
    assert record(api, family, "nurse1").status_code == 404
    refused = api.post("/api/v1/emergency-access", "ecec1", json=body)
    assert refused.status_code == 403, refused.get_json()
    assert record(api, family, "ecec1").status_code == 404
    opened = api.post("/api/v1/emergency-access", "nurse1", json=body)
    assert opened.status_code == 201, opened.get_json()
    access = opened.get_json()
    read = record(api, family, "nurse1")
    assert read.status_code == 200
    assert "Allergic to penicillin." in json.dumps(read.get_json())
    # The auditor reviews it: justified.
    queue = api.get("/api/v1/emergency-access?reviewed=false", "auditor1").get_json()
    assert [q["id"] for q in queue] == [access["id"]] and queue[0]["reads"]
    done = api.post(f"/api/v1/emergency-access/{access['id']}/review", "auditor1",
                    json={"verdict": "justified", "note": "A real emergency at night."})
    assert done.status_code == 200, done.get_json()
    # The family is told, with the verdict; the kindergarten's refused attempt
    # is on the audit log (who, when), though it named no family.
    page = family_client(app, receipt).get("/family/consent").get_data(as_text=True)
    assert "opened your whole record in an emergency" in page
    assert "found it was right to do so" in page
    with app.extensions["onestory"].engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(text(
            "SELECT actor, action, outcome, detail FROM audit_log "
            "WHERE actor IN ('ecec1', 'nurse1') "
            "AND (action LIKE 'emergency.%' OR outcome = 'denied') ORDER BY seq"))]
    routes = [(actor, action, outcome, json.loads(detail or "{}").get("route"))
              for actor, action, outcome, detail in rows]
    assert ("ecec1", "request.denied", "denied", "api.open_emergency_access") in routes
    assert routes[-1][:3] == ("nurse1", "emergency.open", "ok")
