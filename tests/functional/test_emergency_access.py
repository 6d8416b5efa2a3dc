"""Breaking the glass over the API (CONTRACT.md, "Exceptional access"): only
practitioners and coordinators of allowed agencies; the body checked before
any matching; exactly one person or a 404 saying nothing more; every
attempt audited and limited per user; for the caller alone, never
minimal-data agencies' entries, until it expires; the auditor's review."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from coordination import accounts
from coordination.model import EmergencyAccess
from tests.conftest import Api, Clock
from tests.functional.test_revocation_truth import audit_rows, count, family_token

REASON = "Child brought in unconscious at night; need allergies and medication."
BODY = {"name": "Aylin Demir", "birth_date": "2024-03-14", "reason": REASON,
        "legal_basis": "vital_interest"}
# Physiotherapy records the family; the drop-in NGO (minimal data) is
# involved and writes a note; the health centre is named nowhere.
GRID = {"physio": ["involvement", "health", "contact", "household", "story"],
        "ngo": ["involvement", "story"]}


def allow_agency(app: Flask, clock: Clock, *slugs: str) -> None:
    with app.extensions["onestory"].sessions() as session:
        for slug in slugs:
            accounts.set_agency_emergency_access(session, slug, True, clock())


@pytest.fixture
def case(app: Flask, api: Api, clock: Clock) -> tuple[str, dict[str, str]]:
    allow_agency(app, clock, "health-centre", "cps")
    family = api.new_family("physio1", display_name="Aylin Demir", birth_date="2024-03-14",
                            address="Storgata 1",
                            members=[{"name": "Elif Demir", "relation": "mother",
                                      "birth_date": "1990-02-01"}])
    api.write(family, "health", "Allergic to penicillin.", who="physio1")
    receipt: dict[str, str] = api.sign(family, GRID, who="physiocoord")["receipt"]
    referred = api.post(f"/api/v1/families/{family}/involvements", "physiocoord",
                        json={"agency": "ngo"})
    assert referred.status_code == 201, referred.get_json()
    api.write(family, "story", "Sleeps at the shelter on Tuesdays.", who="ngo1")
    return family, receipt


def open_glass(api: Api, who: str = "nurse1", **body: Any) -> Any:
    return api.post("/api/v1/emergency-access", who, json={**BODY, **body})


def test_the_caller_reads_the_whole_record_but_minimal_data_entries(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, _ = case
    assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 404
    opened = open_glass(api)
    assert opened.status_code == 201, opened.get_json()
    out = opened.get_json()
    assert set(out) == {"id", "family_id", "expires_at"}
    assert out["family_id"] == family and out["id"].startswith("emg_")
    assert out["expires_at"] == "2026-11-22T12:00:00Z"  # two hours by default
    record = api.get(f"/api/v1/families/{family}", "nurse1").get_json()
    assert [e["value"] for e in record["fields"]["health"]] == ["Allergic to penicillin."]
    assert record["address"] == "Storgata 1" and record["members"][0]["name"] == "Elif Demir"
    # The NGO's note is never shown: the field is there, its entry withheld.
    assert record["fields"]["story"] == [] and "story" in record["partial"]
    assert "Shelter" not in json.dumps(record) and "shelter" not in json.dumps(record)
    assert record["withheld"] == []
    reads = [r for r in audit_rows(app, "record.read") if r.actor == "nurse1"]
    assert json.loads(reads[-1].detail)["basis"] == f"emergency:{out['id']}"
    opens = audit_rows(app, "emergency.open")
    assert opens[-1].family_id == family and opens[-1].outcome == "ok"
    # The reason is sealed, not stored in clear.
    with app.extensions["onestory"].sessions() as session:
        row = session.get(EmergencyAccess, out["id"])
        assert row is not None and row.reason is not None
        assert REASON.encode() not in row.reason


def test_a_member_matches_by_whole_name_and_birth_date_and_search_finds_it(
        api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, _ = case
    assert open_glass(api, name="  elif   DEMIR ", birth_date="1990-02-01"
                      ).get_json()["family_id"] == family
    found = api.get("/api/v1/families?name=Demir", "nurse1").get_json()
    assert [f["id"] for f in found] == [family]


def test_a_colleague_of_the_caller_sees_nothing_more(
        api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, _ = case
    assert open_glass(api).status_code == 201
    assert api.get(f"/api/v1/families/{family}", "coord1").status_code == 404
    assert api.get("/api/v1/families?name=Demir", "coord1").get_json() == []


def test_the_access_ends_by_itself(api: Api, clock: Clock,
                                   case: tuple[str, dict[str, str]]) -> None:
    family, _ = case
    assert open_glass(api).status_code == 201
    clock.advance(hours=1, minutes=59)
    assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 200
    clock.advance(minutes=1)
    assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 404


@pytest.mark.parametrize("who, status", [(None, 401), ("auditor1", 403), ("admin1", 403),
                                         ("ecec1", 403), ("physio1", 403)])
def test_who_may_not_break_the_glass(app: Flask, api: Api, case: tuple[str, dict[str, str]],
                                     who: str | None, status: int) -> None:
    # Even with a bad body: the refusal comes first, and nothing is matched.
    for body in (BODY, {**BODY, "reason": "short"}):
        response = api.post("/api/v1/emergency-access", who, json=body)
        assert response.status_code == status, response.get_json()
    assert count(app, EmergencyAccess) == 0


def test_a_bad_body_answers_alike_whether_or_not_the_person_exists(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    answers = []
    for name in ("Aylin Demir", "Nobody Known"):
        response = open_glass(api, name=name, reason="too short")
        assert response.status_code == 422
        answers.append(response.get_json())
    assert answers[0] == answers[1] and set(answers[0]["errors"]) == {"reason"}
    for bad, key in (({"legal_basis": "consent"}, "legal_basis"),
                     ({"birth_date": "14.03.2024"}, "birth_date"),
                     ({"name": "--"}, "name"), ({"extra": 1}, "extra"),
                     ({"reason": " " * 30}, "reason")):
        response = open_glass(api, **bad)
        assert response.status_code == 422 and key in response.get_json()["errors"]
    assert count(app, EmergencyAccess) == 0


def test_no_person_and_two_people_answer_alike(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    for _ in range(2):
        api.new_family("physio1", display_name="Kaya", birth_date="2020-01-01",
                       members=[{"name": "Ali Kaya", "relation": "child",
                                 "birth_date": "2015-05-05"}])
    none = open_glass(api, name="Ali Kaya", birth_date="2015-05-06")
    two = open_glass(api, name="Ali Kaya", birth_date="2015-05-05")
    part = open_glass(api, name="Demir")  # a part of a name is not the whole name
    assert none.status_code == two.status_code == part.status_code == 404
    assert none.get_json() == two.get_json() == part.get_json()
    refused = [r for r in audit_rows(app, "emergency.open") if r.outcome == "denied"]
    assert len(refused) == 3 and {r.reason for r in refused} == {"no_single_match"}
    assert all(r.family_id is None for r in refused)
    # Who, when, the basis claimed: never the name, birth date or reason typed.
    assert all(set(json.loads(r.detail)) == {"attempt", "legal_basis"} for r in refused)
    with app.extensions["onestory"].sessions() as session:
        attempts = session.query(EmergencyAccess).all()
        assert len(attempts) == 3
        assert all(a.family_id is None and a.reason is None for a in attempts)


def test_attempts_are_limited_per_user(app: Flask, api: Api, clock: Clock,
                                       case: tuple[str, dict[str, str]]) -> None:
    for _ in range(5):
        assert open_glass(api, name="Nobody Known").status_code == 404
    throttled = open_glass(api)
    assert throttled.status_code == 429
    assert throttled.mimetype == "application/problem+json"
    assert int(throttled.headers["Retry-After"]) > 0
    assert audit_rows(app, "emergency.open")[-1].reason == "throttled"
    # A colleague has a limit of their own.
    assert open_glass(api, "coord1").status_code == 201
    clock.advance(hours=1)
    assert open_glass(api).status_code == 201


def test_the_time_box_is_configurable(app: Flask, api: Api, clock: Clock,
                                      case: tuple[str, dict[str, str]]) -> None:
    from datetime import timedelta
    app.extensions["onestory"].settings.emergency_duration = timedelta(hours=24)
    assert open_glass(api).get_json()["expires_at"] == "2026-11-23T10:00:00Z"


def test_the_family_sees_it_and_the_auditor_reviews_it(
        app: Flask, api: Api, clock: Clock, case: tuple[str, dict[str, str]]) -> None:
    family, receipt = case
    opened = open_glass(api).get_json()
    api.get(f"/api/v1/families/{family}", "nurse1")
    token = family_token(api, receipt)
    log = api.get(f"/api/v1/families/{family}/access-log", token).get_json()
    assert any(i["action"] == "emergency.open" and i["agency"] == "health-centre"
               for i in log)
    assert any(i["action"] == "record.read" and i["agency"] == "health-centre" for i in log)
    assert api.get("/api/v1/emergency-access", "nurse1").status_code == 403
    queue = api.get("/api/v1/emergency-access?reviewed=false", "auditor1").get_json()
    assert [q["id"] for q in queue] == [opened["id"]]
    assert queue[0]["reason"] == REASON and queue[0]["opened_by"] == "nurse1"
    assert queue[0]["reads"][0]["shown"] and queue[0]["verdict"] is None
    path = f"/api/v1/emergency-access/{opened['id']}/review"
    assert api.post(path, "nurse1", json={"verdict": "justified", "note": "x"}
                    ).status_code == 403
    bad = api.post(path, "auditor1", json={"verdict": "fine", "note": ""})
    assert bad.status_code == 422 and set(bad.get_json()["errors"]) == {"verdict", "note"}
    assert api.post("/api/v1/emergency-access/emg_unknown/review", "auditor1",
                    json={"verdict": "fine"}).status_code == 404
    done = api.post(path, "auditor1", json={"verdict": "justified",
                                            "note": "A real emergency; the right basis."})
    assert done.status_code == 200 and done.get_json()["verdict"] == "justified"
    again = api.post(path, "auditor1", json={"verdict": "unjustified", "note": "no"})
    assert again.status_code == 409
    assert api.get("/api/v1/emergency-access", "auditor1").get_json() == []
    reviewed = api.get("/api/v1/emergency-access?reviewed=true", "auditor1").get_json()
    assert reviewed[0]["note"] == "A real emergency; the right basis."
    assert api.get("/api/v1/emergency-access?reviewed=maybe", "auditor1").status_code == 422


def test_the_agencys_coordinators_see_it_in_their_worklist_until_reviewed(
        api: Api, case: tuple[str, dict[str, str]]) -> None:
    opened = open_glass(api).get_json()
    items = api.get("/api/v1/worklist", "coord1").get_json()
    mine = [i for i in items if i["kind"] == "emergency.unreviewed"]
    assert [(i["ref"], i["display_name"], i["href"]) for i in mine] == [
        (opened["id"], None, None)]
    assert not [i for i in api.get("/api/v1/worklist", "nurse1").get_json()
                if i["kind"] == "emergency.unreviewed"]
    assert not [i for i in api.get("/api/v1/worklist", "physiocoord").get_json()
                if i["kind"] == "emergency.unreviewed"]
    api.post(f"/api/v1/emergency-access/{opened['id']}/review", "auditor1",
             json={"verdict": "justified", "note": "A real emergency."})
    assert not [i for i in api.get("/api/v1/worklist", "coord1").get_json()
                if i["kind"] == "emergency.unreviewed"]


def test_the_cli_allows_and_stops_an_agency(
        app: Flask, api: Api, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.cli import assert_ok, assert_one_line_failure, run
    api.new_family("physio1", display_name="Aylin Demir", birth_date="2024-03-14")
    assert open_glass(api, "ecec1").status_code == 403
    result = run(capsys, "agency", "set", "ecec", "--emergency-access", "on")
    assert_ok(result)
    assert result.out.strip() == "agency ecec emergency access: on"
    assert open_glass(api, "ecec1").status_code == 201
    assert_ok(run(capsys, "agency", "set", "ecec", "--emergency-access", "off"))
    assert open_glass(api, "ecec1").status_code == 403
    added = run(capsys, "agency", "add", "er", "--name", "Emergency room", "--kind", "health",
                "--emergency-access")
    assert_ok(added)
    assert "may break the glass" in added.out
    with app.extensions["onestory"].sessions() as session:
        from coordination.model import Agency
        agency = session.get(Agency, "er")
        assert agency is not None and agency.emergency_access
    assert "no agency 'nowhere'" in assert_one_line_failure(
        run(capsys, "agency", "set", "nowhere", "--emergency-access", "on"))
    assert_one_line_failure(run(capsys, "agency", "set", "ecec", "--emergency-access", "yes"))
    assert [json.loads(r.detail)["allowed"] for r in audit_rows(app, "agency.emergency_access")
            ] == [True, False]


def test_the_demo_allows_the_health_centre_and_child_protection(app: Flask,
                                                               clock: Clock) -> None:
    from sqlalchemy import select

    from coordination import demo
    from coordination.model import Agency
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        demo.seed(session, rt.vault, clock())
        allowed = set(session.scalars(select(Agency.id).where(Agency.emergency_access)))
    assert allowed == {"health-centre", "child-protection"}


@pytest.mark.parametrize("variable, value", [
    ("ONESTORY_EMERGENCY_HOURS", "25"), ("ONESTORY_EMERGENCY_HOURS", "0"),
    ("ONESTORY_EMERGENCY_HOURS", "two"), ("ONESTORY_EMERGENCY_ATTEMPTS_PER_HOUR", "0")])
def test_the_time_box_and_limit_are_checked_at_start_up(variable: str, value: str) -> None:
    from coordination.config import ConfigError, load_settings
    with pytest.raises(ConfigError, match=variable):
        load_settings({variable: value})


def test_the_time_box_and_limit_come_from_the_environment() -> None:
    from datetime import timedelta

    from coordination.config import load_settings
    settings = load_settings({"ONESTORY_EMERGENCY_HOURS": "24",
                              "ONESTORY_EMERGENCY_ATTEMPTS_PER_HOUR": "3"})
    assert settings.emergency_duration == timedelta(hours=24)
    assert settings.emergency_attempts_per_hour == 3
    assert load_settings({}).emergency_duration == timedelta(hours=2)


def test_erasing_the_family_erases_its_emergency_accesses(
        app: Flask, api: Api, case: tuple[str, dict[str, str]]) -> None:
    family, _ = case
    assert open_glass(api).status_code == 201
    erased = api.call("DELETE", f"/api/v1/families/{family}", "admin1",
                      json={"reason": "The family asked to be forgotten."})
    assert erased.status_code == 204, erased.get_json()
    assert count(app, EmergencyAccess, EmergencyAccess.family_id == family) == 0
    assert api.get("/api/v1/emergency-access", "auditor1").get_json() == []
