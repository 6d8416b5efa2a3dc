"""Attacks on exceptional access (issue 11) from outside: what a family's
views tell of an agency a protection hold conceals, and what staff may do
with break-the-glass, duty grants and holds that they should not. On both
databases."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask

from coordination.model import ProtectionHold
from tests.conftest import Api, Clock
from tests.functional.test_coordination_attacks import _at_once
from tests.functional.test_duty_grants import act, propose
from tests.functional.test_emergency_access import allow_agency, open_glass
from tests.functional.test_emergency_access import case as emergency_case  # noqa: F401
from tests.functional.test_protection_holds import (  # noqa: F401
    CPS_NAMES,
    GRID,
    cps_case,
    place,
)
from tests.functional.test_referrals import ask
from tests.functional.test_revocation_truth import audit_rows, count, family_token
from tests.functional.test_web_family import _signed_in
from tests.unchanged import nothing_stored


def test_a_duty_grant_the_concealed_agency_proposed_or_approved_does_not_name_it(
        api: Api, cps_case: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    """Child protection (involved, its part concealed) proposes that the
    kindergarten sees `education`, and approves the health centre's grant
    for physiotherapy: the family reads both grants (they are not about
    child protection) but nothing says who proposed or approved them."""
    family, receipt = cps_case
    mine = propose(api, family, "cpscoord", agency="ecec", fields=["education"])
    assert mine.status_code == 201, mine.get_json()
    assert act(api, family, mine.get_json()["id"], "physiocoord").status_code == 200
    theirs = propose(api, family, "coord1", agency="physio", fields=["protection"])
    assert theirs.status_code == 201, theirs.get_json()
    approved = act(api, family, theirs.get_json()["id"], "cpscoord")
    assert approved.status_code == 200, approved.get_json()
    assert place(api, family).status_code == 201
    token = family_token(api, receipt)
    listed: list[dict[str, Any]] = api.get(f"/api/v1/families/{family}/duty-grants",
                                           token).get_json()
    assert sorted(g["agency"] for g in listed) == ["ecec", "physio"]
    seen = json.dumps(listed)
    for name in (*CPS_NAMES, "cpscoord"):
        assert name not in seen, seen


def test_breaking_the_glass_gives_no_standing_to_hide_it_behind_a_protection_hold(
        app: Flask, api: Api, clock: Clock, cps_case: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    """Child protection may break the glass and place holds. Its coordinator
    opens a family it has no part in by breaking the glass; that access does
    not let it place a hold, which would conceal its looks, the emergency
    access included, from the family that must be told of it."""
    allow_agency(app, clock, "cps")
    family = api.new_family("nurse1", display_name="Selin Kaya", birth_date="2023-05-02")
    receipt = api.sign(family, GRID)["receipt"]
    opened = api.post("/api/v1/emergency-access", "cpscoord", json={
        "name": "Selin Kaya", "birth_date": "2023-05-02", "legal_basis": "vital_interest",
        "reason": "Child found alone at night; need to know who looks after her."})
    assert opened.status_code == 201, opened.get_json()
    assert api.get(f"/api/v1/families/{family}", "cpscoord").status_code == 200
    with nothing_stored(app, reads=("record.read",)):
        refused = place(api, family)
        assert refused.status_code == 403, refused.get_json()
    assert count(app, ProtectionHold) == 0
    page = _signed_in(app, receipt).get("/family/consent").get_data(as_text=True)
    assert "Child protection" in page


def test_two_verdicts_sent_at_once_leave_one(
        app: Flask, api: Api, emergency_case: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    """Two reviews of one emergency access sent at once (the second perhaps
    to turn an `unjustified` into a `justified`): one is recorded, the other
    is a 409, and the verdict stored is the one answered 200 (three tries)."""
    for _ in range(3):
        opened = open_glass(api).get_json()
        answers = _at_once(app, api, [
            (f"/api/v1/emergency-access/{opened['id']}/review", "auditor1",
             {"verdict": verdict, "note": f"Found {verdict}."})
            for verdict in ("unjustified", "justified")])
        assert sorted(answers) == [200, 409], answers
        reviewed = {r["id"]: r for r in api.get("/api/v1/emergency-access?reviewed=true",
                                                "auditor1").get_json()}
        assert reviewed[opened["id"]]["verdict"] == ["unjustified", "justified"][
            answers.index(200)]
        assert len([r for r in audit_rows(app, "emergency.review")
                    if opened["id"] in (r.detail or "")]) == 1


def test_answers_a_concealed_agency_recorded_do_not_name_it_to_the_family(
        api: Api, cps_case: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    """Child protection's coordinator records the family's yes to the health
    centre's referral to the kindergarten and its yes to physiotherapy's
    access request; once child protection's part is concealed the family
    reads both, but nothing in them names child protection or its staff."""
    family, receipt = cps_case
    ref = ask(api, family, to="ecec", fields=["education"]).get_json()
    assert ref["state"] == "awaiting_family", ref
    agreed = api.post(f"/api/v1/families/{family}/referrals/{ref['id']}/agree", "cpscoord",
                      json={"signed_by": "Elif Demir", "method": "in_person"})
    assert agreed.status_code == 200, agreed.get_json()
    base = f"/api/v1/families/{family}/access-requests"
    asked = api.post(base, "physio1", json={"fields": ["contact"],
                                            "reason": "To book the first session."})
    assert asked.status_code == 201, asked.get_json()
    answered = api.post(f"{base}/{asked.get_json()['id']}/approve", "cpscoord",
                        json={"signed_by": "Elif Demir", "method": "in_person"})
    assert answered.status_code == 200, answered.get_json()
    assert place(api, family).status_code == 201
    token = family_token(api, receipt)
    one = api.get(f"/api/v1/referrals/{ref['id']}", token)
    assert one.status_code == 200, one.get_json()
    seen = json.dumps([api.get(f"/api/v1/families/{family}/{path}", token).get_json()
                       for path in ("referrals", "access-requests", "consent",
                                    "consent/history")] + [one.get_json()])
    assert ref["id"] in seen and asked.get_json()["id"] in seen
    for name in (*CPS_NAMES, "cpscoord"):
        assert name not in seen, [seen[max(0, m.start() - 120):m.start() + 30]
                                  for m in re.finditer(name, seen)]


def test_concealing_the_involvement_leaves_out_the_agencys_own_acts_too(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    """A hold concealing only child protection's involvement: its looks at
    the record and its notes would tell the family it takes part, so the
    family's access log and page leave them out as well."""
    family, receipt = cps_case
    api.get(f"/api/v1/families/{family}", "cps1")
    api.write(family, "protection", "Home visit booked.", who="cps1")
    assert place(api, family, conceal=["involvement"]).status_code == 201
    token = family_token(api, receipt)
    log = api.get(f"/api/v1/families/{family}/access-log", token).get_json()
    seen = json.dumps(log)
    assert any(item["agency"] == "health-centre" for item in log)
    for name in CPS_NAMES:
        assert name not in seen, seen
    page = _signed_in(app, receipt).get("/family/access-log").get_data(as_text=True)
    assert "Child protection" not in page


def test_an_answered_request_carries_the_version_number_the_family_reads(
        api: Api, cps_case: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    """A coordinator took back one of child protection's cells (a version
    the family does not read while child protection's part is concealed);
    the family then said yes to physiotherapy's request. The request names
    the version the family reads as current, not one beyond it (a gap)."""
    family, receipt = cps_case
    assert api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
                    json={"agency": "cps", "field": "health"}).status_code == 200
    token = family_token(api, receipt)
    base = f"/api/v1/families/{family}/access-requests"
    asked = api.post(base, "physio1", json={"fields": ["contact"],
                                            "reason": "To book the first session."})
    assert asked.status_code == 201, asked.get_json()
    assert api.post(f"{base}/{asked.get_json()['id']}/approve", token,
                    json={}).status_code == 200
    assert place(api, family).status_code == 201
    current = api.get(f"/api/v1/families/{family}/consent", token).get_json()["version"]
    history = api.get(f"/api/v1/families/{family}/consent/history", token).get_json()
    assert sorted(v["version"] for v in history) == list(range(1, current + 1))
    [req] = api.get(base, token).get_json()
    assert req["version"] == current, (req["version"], current)


def test_the_familys_own_acts_answer_with_the_numbers_it_reads(
        api: Api, cps_case: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    """Child protection's part concealed after a version that changed only
    its cells: the family's own revocation and ending of a service answer
    with the version numbers the family reads, without a gap."""
    family, receipt = cps_case
    assert api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
                    json={"agency": "cps", "field": "health"}).status_code == 200
    assert place(api, family).status_code == 201
    token = family_token(api, receipt)
    before = api.get(f"/api/v1/families/{family}/consent", token).get_json()["version"]
    revoked = api.post(f"/api/v1/families/{family}/consent/revoke", token,
                       json={"agency": "physio", "field": "health"})
    assert revoked.status_code == 200, revoked.get_json()
    after = api.get(f"/api/v1/families/{family}/consent", token).get_json()["version"]
    assert after == before + 1
    assert "cps" not in json.dumps(revoked.get_json())
    assert revoked.get_json()["version"] == after, revoked.get_json()
    ended = api.call("DELETE", f"/api/v1/families/{family}/involvements/physio", token,
                     json={})
    assert ended.status_code == 200, ended.get_json()
    assert "cps" not in json.dumps(ended.get_json())
    last = api.get(f"/api/v1/families/{family}/consent", token).get_json()["version"]
    history = api.get(f"/api/v1/families/{family}/consent/history", token).get_json()
    assert sorted(v["version"] for v in history) == list(range(1, last + 1))


NOT_ANY: list[Any] = [None, 1, 1.5, True, [], {}, "\x00" * 3, "é" * 5000]
NOT_A_DAY: list[Any] = [*NOT_ANY, "", "0001-01-01", "9999-12-31", "2026-02-30", "2026-1-1",
                        "20261122", "2026-11-22T00:00:00Z", "٢٠٢٦-١١-٢٢"]


def test_malformed_bodies_on_every_new_route_are_422_naming_the_field(
        app: Flask, api: Api, clock: Clock, cps_case: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    """Wrong types, nulls, NULs, long text and days outside the calendar or
    the allowed range: each a 422 naming that key (an unknown key too),
    never a 500, and nothing stored."""
    allow_agency(app, clock, "health-centre")
    family, _ = cps_case
    api.new_family("nurse1", display_name="Zed Probe", birth_date="2024-03-14")
    emg = api.post("/api/v1/emergency-access", "nurse1", json={
        "name": "Zed Probe", "birth_date": "2024-03-14", "reason": "x" * 30,
        "legal_basis": "vital_interest"})
    assert emg.status_code == 201, emg.get_json()
    grant = propose(api, family, "coord1", agency="ecec", fields=["education"]).get_json()["id"]
    hold = place(api, family, conceal=["access"]).get_json()["id"]
    routes: list[tuple[str, str, dict[str, Any], dict[str, list[Any]]]] = [
        ("/api/v1/emergency-access", "nurse1",
         {"name": "Nobody Here", "birth_date": "2024-03-14", "reason": "x" * 30,
          "legal_basis": "vital_interest"},
         {"name": NOT_ANY, "birth_date": [*NOT_ANY, "2026-02-30", "20261122"],
          "reason": [*NOT_ANY, "too short"], "legal_basis": [*NOT_ANY, "consent"]}),
        (f"/api/v1/emergency-access/{emg.get_json()['id']}/review", "auditor1",
         {"verdict": "justified", "note": "Clear."},
         {"verdict": [*NOT_ANY, "fine"], "note": [*NOT_ANY, " "]}),
        (f"/api/v1/families/{family}/duty-grants", "coord1",
         {"agency": "ecec", "fields": ["education"], "legal_basis": "legal_obligation",
          "justification": "Required by law.", "until": "2026-12-20"},
         {"agency": [*NOT_ANY, "nowhere"], "fields": [*NOT_ANY, ["nothing"], [1]],
          "legal_basis": [*NOT_ANY, "consent"], "justification": NOT_ANY,
          "until": NOT_A_DAY}),
        (f"/api/v1/families/{family}/duty-grants/{grant}/approve", "physiocoord", {}, {}),
        (f"/api/v1/families/{family}/protection-holds", "cpscoord",
         {"conceal": ["access"], "reason": "Because.", "review_on": "2026-12-20"},
         {"conceal": [*NOT_ANY, ["everything"]], "reason": NOT_ANY, "review_on": NOT_A_DAY}),
        (f"/api/v1/families/{family}/protection-holds/{hold}/renew", "cpscoord",
         {"review_on": "2026-12-21"}, {"review_on": NOT_A_DAY}),
    ]
    with nothing_stored(app, reads=("emergency.open",)):
        for path, who, good, bad in routes:
            for key, values in {**bad, "extra": NOT_ANY}.items():
                for value in values:
                    answer = api.post(path, who, json={**good, key: value})
                    assert answer.status_code == 422, (path, key, value, answer.status_code)
                    assert answer.headers["Content-Type"].startswith("application/problem+json")
                    named = answer.get_json()["errors"]
                    assert any(k == key or k.startswith(f"{key}.") for k in named), (
                        path, key, named)
