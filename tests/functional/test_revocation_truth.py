"""Revocation tells the truth: the form, its history and the access log as
each agency may read them; the family ending an agency's part (itself, or
through a coordinator); hiding looks from the family; who looked, in the
family's words."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from audit.model import HiddenFromFamily
from consent.tables import ConsentFormRow
from coordination import accounts
from coordination.errors import InvalidInput
from coordination.model import Involvement, Staff
from coordination.roles import Role
from tests.conftest import Api, Clock

# The Norway family's form: the health centre records it; physiotherapy may
# know of the family and see health notes; child protection sees protection
# notes only; the kindergarten sees education notes only.
GRID = {
    "health-centre": ["involvement", "contact", "health"],
    "physio": ["involvement", "health"],
    "cps": ["protection"],
    "ecec": ["education", "involvement"],
}
OTHERS = ("health-centre", "Health centre", "cps", "ecec", "Guardian Name", "coord1")


def count(app: Flask, model: Any, *where: Any) -> int:
    with app.extensions["onestory"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def audit_rows(app: Flask, action: str) -> list[Any]:
    with app.extensions["onestory"].engine.connect() as conn:
        return list(conn.execute(text("SELECT * FROM audit_log WHERE action = :a ORDER BY seq"),
                                 {"a": action}))


def family_token(api: Api, receipt: dict[str, str]) -> str:
    response = api.post("/api/v1/family/session", json={"receipt_code": receipt["code"],
                                                         "pin": receipt["pin"]})
    assert response.status_code == 201
    token: str = response.get_json()["token"]
    return token


@pytest.fixture
def case(api: Api) -> tuple[str, str]:
    """The family, physiotherapy involved through a referral, and the
    family's session token."""
    family = api.new_family("nurse1", display_name="Aylin Demir", birth_date="2024-03-14")
    api.write(family, "health", "Growth on track; physiotherapy advised.")
    receipt = api.sign(family, GRID)["receipt"]
    referred = api.post(f"/api/v1/families/{family}/involvements", "coord1",
                        json={"agency": "physio"})
    assert referred.status_code == 201
    api.write(family, "health", "Physio: walks with support.", who="physio1")
    return family, family_token(api, receipt)


def names_nobody_else(body: Any) -> None:
    dumped = json.dumps(body)
    for other in OTHERS:
        assert other not in dumped, other


def test_a_referred_agency_after_its_column_is_revoked_reads_only_its_own(
        api: Api, case: tuple[str, str]) -> None:
    """Today's breach: the family is told physiotherapy can no longer see
    anything, yet physiotherapy reads the guardian's name and every column."""
    family, token = case
    revoked = api.post(f"/api/v1/families/{family}/consent/revoke", token,
                       json={"agency": "physio"})
    assert revoked.status_code == 200
    form = api.get(f"/api/v1/families/{family}/consent", "physiocoord")
    assert form.status_code == 200
    body = form.get_json()
    assert body["grants"] == {} and body["view"] == "own_column"
    assert body["signed_by"] is None and body["witness"] is None
    assert body["purpose"] == "coordinated support from the family centre"
    assert body["valid_until"] == "2027-11-22" and body["legal_basis"] == "consent"
    names_nobody_else(body)
    # It still sees what it wrote itself, and nothing of the others'.
    record = api.get(f"/api/v1/families/{family}", "physio1").get_json()
    assert [e["value"] for e in record["fields"]["health"]] == ["Physio: walks with support."]
    assert record["partial"] == ["health"] and "involvements" not in record
    names_nobody_else({k: v for k, v in record.items() if k != "display_name"})


def test_history_hides_other_columns_signers_and_authors(api: Api,
                                                         case: tuple[str, str]) -> None:
    family, token = case
    api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
             json={"agency": "cps", "field": "protection"})
    api.post(f"/api/v1/families/{family}/consent/revoke", token, json={"agency": "physio"})
    history = api.get(f"/api/v1/families/{family}/consent/history", "physiocoord").get_json()
    assert [(h["version"], h["view"]) for h in history] == [
        (1, "full"), (2, "full"), (3, "own_column")]
    # Versions granting physiotherapy `involvement` show everything ...
    assert history[1]["change"] == "revoke cell cps/protection"
    assert history[1]["changed_by"] == "coord1" and history[1]["signed_by"] == "Guardian Name"
    # ... the last one shows its own column, and the family's change.
    assert history[2]["change"] == "revoke column physio"
    assert history[2]["changed_by"] == "family"
    assert history[2]["grants"] == {} and history[2]["signed_by"] is None
    names_nobody_else(history[2])


def test_a_version_naming_another_agency_says_only_that_it_changed(
        api: Api, case: tuple[str, str]) -> None:
    family, token = case
    api.post(f"/api/v1/families/{family}/consent/revoke", token, json={"agency": "physio"})
    api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
             json={"agency": "ecec", "field": "education"})
    history = api.get(f"/api/v1/families/{family}/consent/history", "physiocoord").get_json()
    last = history[-1]
    assert last["change"] == "changed" and last["changed_by"] is None
    names_nobody_else(last)


def test_the_recorder_reads_the_whole_form_without_the_involvement_cell(
        api: Api, case: tuple[str, str]) -> None:
    family, token = case
    api.post(f"/api/v1/families/{family}/consent/revoke", token,
             json={"agency": "health-centre", "field": "involvement"})
    form = api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()
    assert form["view"] == "full" and form["signed_by"] == "Guardian Name"
    assert set(form["grants"]) == {"health-centre", "physio", "cps", "ecec"}


def test_the_access_log_shows_an_agency_without_the_full_view_its_own_looks(
        api: Api, case: tuple[str, str]) -> None:
    family, token = case
    api.get(f"/api/v1/families/{family}", "nurse1")
    api.post(f"/api/v1/families/{family}/consent/revoke", token, json={"agency": "physio"})
    log = api.get(f"/api/v1/families/{family}/access-log", "physiocoord").get_json()
    assert log and {row["agency"] for row in log} == {"physio"}
    names_nobody_else(log)
    full = api.get(f"/api/v1/families/{family}/access-log", "coord1").get_json()
    assert {"health-centre", "physio"} <= {row["agency"] for row in full}


def test_revoke_and_put_answers_follow_the_view(api: Api, case: tuple[str, str]) -> None:
    family, token = case
    api.post(f"/api/v1/families/{family}/consent/revoke", token,
             json={"agency": "physio", "field": "involvement"})
    answer = api.post(f"/api/v1/families/{family}/consent/revoke", "physiocoord",
                      json={"agency": "physio", "field": "health"})
    assert answer.status_code == 200
    assert answer.get_json()["view"] == "own_column" and answer.get_json()["grants"] == {}
    names_nobody_else(answer.get_json())
    # A coordinator without the full view records a newly signed form: the
    # version it recorded is its own to read in full.
    put = api.sign(family, {"physio": ["health"], "ecec": ["education"]}, who="physiocoord")
    assert put["view"] == "full" and put["grants"] == {"ecec": ["education"],
                                                       "physio": ["health"]}


@pytest.mark.parametrize("body", [{}, {"agency": "ecec"}, {"agency": "cps", "field": "protection"},
                                  {"field": "health"}, {"agency": "ngo"}])
def test_without_the_full_view_a_coordinator_revokes_only_in_its_own_column(
        app: Flask, api: Api, case: tuple[str, str], body: dict[str, str]) -> None:
    """Whether a version is written would tell it whether others hold cells."""
    family, token = case
    api.post(f"/api/v1/families/{family}/consent/revoke", token,
             json={"agency": "physio", "field": "involvement"})
    refused = api.post(f"/api/v1/families/{family}/consent/revoke", "physiocoord", json=body)
    assert refused.status_code == 403
    assert count(app, ConsentFormRow) == 2


# --- ending an agency's part -------------------------------------------------------------


def path(family: str, agency: str = "physio") -> str:
    return f"/api/v1/families/{family}/involvements/{agency}"


def test_the_family_ends_an_agencys_part(app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, token = case
    ended = api.call("DELETE", path(family), token, json={})
    assert ended.status_code == 200, ended.get_json()
    body = ended.get_json()
    assert body["agency"] == "physio" and body["involvement_closed"] is True
    assert body["form"]["version"] == 2 and "physio" not in body["form"]["grants"]
    assert "physio" not in body["form"]["involved"]
    assert count(app, ConsentFormRow) == 2  # one new version for both
    for route in ("", "/consent", "/consent/history", "/access-log"):
        assert api.get(f"/api/v1/families/{family}{route}", "physiocoord").status_code == 404
    assert api.get("/api/v1/families?name=Aylin", "physio1").get_json() == []
    assert api.post(f"/api/v1/families/{family}/entries", "physio1",
                    json={"field": "health", "value": "x"}).status_code == 404
    history = api.get(f"/api/v1/families/{family}/consent/history", token).get_json()
    assert (history[-1]["change"], history[-1]["changed_by"], history[-1]["method"]) == (
        "end part physio", "family", "family_portal")
    [entry] = audit_rows(app, "involvement.end")
    assert entry.actor == "family" and "on_behalf_of_family" not in (entry.detail or "")
    # Nothing left to end: a replay changes nothing.
    again = api.call("DELETE", path(family), token, json={})
    assert again.status_code == 409 and count(app, ConsentFormRow) == 2


def test_a_coordinator_records_the_familys_wish(app: Flask, api: Api,
                                                case: tuple[str, str]) -> None:
    family, _token = case
    ended = api.call("DELETE", path(family), "coord1",
                     json={"signed_by": "Aylin Demir", "method": "in_person"})
    assert ended.status_code == 200, ended.get_json()
    history = api.get(f"/api/v1/families/{family}/consent/history", "coord1").get_json()
    last = history[-1]
    assert (last["change"], last["changed_by"], last["signed_by"], last["method"],
            last["witness"]) == ("end part physio", "coord1", "Aylin Demir", "in_person",
                                 "coord1")
    [entry] = audit_rows(app, "involvement.end")
    detail = json.loads(entry.detail)
    assert detail["on_behalf_of_family"] is True and detail["agency"] == "physio"
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404
    # A paper signed before the family's wish cannot bring the agency back.
    stale = api.put(f"/api/v1/families/{family}/consent", "coord1",
                    json={**_body(GRID), "signed_on": "2026-11-21"})
    assert stale.status_code == 409


def _body(grants: dict[str, list[str]]) -> dict[str, Any]:
    from tests.conftest import consent_body
    return consent_body(grants)


def test_ending_an_agency_with_cells_only(app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, token = case
    assert api.get(f"/api/v1/families/{family}", "cps1").status_code == 200
    assert api.call("DELETE", path(family, "cps"), token, json={}).status_code == 200
    assert api.get(f"/api/v1/families/{family}", "cps1").status_code == 404


def test_ending_without_any_form_closes_the_involvement(app: Flask, api: Api) -> None:
    family = api.new_family("nurse1")
    ended = api.call("DELETE", path(family, "health-centre"), "coord1",
                     json={"signed_by": "Parent", "method": "paper"})
    assert ended.status_code == 200 and ended.get_json()["form"] is None
    assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 404


@pytest.mark.parametrize(("body", "key"), [
    ({}, "signed_by"),
    ({"signed_by": "Aylin Demir"}, "method"),
    ({"method": "paper"}, "signed_by"),
    ({"signed_by": "   ", "method": "paper"}, "signed_by"),
    ({"signed_by": "Aylin Demir", "method": "family_portal"}, "method"),
    ({"signed_by": "Aylin Demir", "method": "paper", "reason": "x"}, "reason"),
    ({"signed_by": 7, "method": "paper"}, "signed_by"),
    ({"signed_by": "A" * 201, "method": "paper"}, "signed_by"),
])
def test_a_coordinators_bad_body_is_refused_and_nothing_changes(
        app: Flask, api: Api, case: tuple[str, str], body: dict[str, Any], key: str) -> None:
    family, _token = case
    response = api.call("DELETE", path(family), "coord1", json=body)
    assert response.status_code == 422 and key in response.get_json()["errors"]
    assert count(app, ConsentFormRow) == 1
    assert count(app, Involvement, Involvement.status == "active") == 2


@pytest.mark.parametrize(("who", "agency", "body", "status"), [
    ("physio1", "physio", {"signed_by": "A", "method": "paper"}, 403),     # practitioner
    ("auditor1", "physio", {"signed_by": "A", "method": "paper"}, 403),    # auditor
    ("ngocoord", "physio", {"signed_by": "A", "method": "paper"}, 404),    # family not visible
    ("unknown-token", "physio", {"signed_by": "A", "method": "paper"}, 401),
    ("coord1", "nowhere", {"signed_by": "A", "method": "paper"}, 422),     # unknown agency
    ("coord1", "ngo", {"signed_by": "A", "method": "paper"}, 409),         # nothing to end
])
def test_who_may_not_end_a_part(app: Flask, api: Api, case: tuple[str, str], who: str,
                                agency: str, body: dict[str, Any], status: int) -> None:
    family, _token = case
    response = api.call("DELETE", path(family, agency), who, json=body)
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert count(app, ConsentFormRow) == 1
    assert count(app, Involvement, Involvement.status == "active") == 2


def test_a_coordinator_without_the_full_view_ends_only_its_own_part(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    """Otherwise 200 or 409 would tell it whether another agency takes part."""
    family, token = case
    api.post(f"/api/v1/families/{family}/consent/revoke", token, json={"agency": "physio"})
    for agency in ("ecec", "ngo", "health-centre"):
        refused = api.call("DELETE", path(family, agency), "physiocoord",
                           json={"signed_by": "A", "method": "paper"})
        assert refused.status_code == 403, agency
    bad = api.call("DELETE", path(family, "ecec"), "physiocoord", json={})
    assert bad.status_code == 403  # 403 before 422: the body is not even looked at
    assert count(app, ConsentFormRow) == 2
    own = api.call("DELETE", path(family, "physio"), "physiocoord",
                   json={"signed_by": "Aylin Demir", "method": "paper"})
    assert own.status_code == 200
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404


def test_another_familys_token_cannot_end_anything(app: Flask, api: Api,
                                                   case: tuple[str, str]) -> None:
    family, _token = case
    other = api.new_family("nurse1", display_name="Other Family")
    other_token = family_token(api, api.sign(other, {"physio": ["health"]})["receipt"])
    assert api.call("DELETE", path(family), other_token, json={}).status_code == 404
    # The family itself sends no signer: it is the family.
    _fam, token = case
    refused = api.call("DELETE", path(family), token,
                       json={"signed_by": "Someone", "method": "paper"})
    assert refused.status_code == 422
    assert api.call("DELETE", path(family), token, data="not json",
                    content_type="application/json").status_code == 400
    assert count(app, ConsentFormRow) == 2


def test_an_expired_family_session_cannot_end_anything(app: Flask, api: Api, clock: Clock,
                                                      case: tuple[str, str]) -> None:
    family, token = case
    clock.advance(hours=1)
    assert api.call("DELETE", path(family), token, json={}).status_code == 401
    assert count(app, ConsentFormRow) == 1


# --- hiding looks from the family ----------------------------------------------------------


def test_a_coordinator_hides_only_its_own_agencys_looks(app: Flask, api: Api,
                                                        case: tuple[str, str]) -> None:
    family, _token = case
    api.get(f"/api/v1/families/{family}", "cps1")
    cps_look = audit_rows(app, "record.read")[-1]
    assert cps_look.agency_id == "cps"
    refused = api.post(f"/api/v1/families/{family}/access-log/{cps_look.seq}/hide",
                       "physiocoord", json={})
    assert refused.status_code == 403
    assert count(app, HiddenFromFamily) == 0
    api.get(f"/api/v1/families/{family}", "physio1")
    own = audit_rows(app, "record.read")[-1]
    assert api.post(f"/api/v1/families/{family}/access-log/{own.seq}/hide", "physiocoord",
                    json={}).status_code == 201
    assert count(app, HiddenFromFamily) == 1


# --- who looked, as the family reads it -----------------------------------------------------


def test_who_looked_tells_own_notes_referrals_and_groups_repeats(
        api: Api, clock: Clock) -> None:
    family = api.new_family("nurse1")
    api.write(family, "health", "Growth on track.")
    receipt = api.sign(family, GRID)["receipt"]
    api.post(f"/api/v1/families/{family}/involvements", "coord1", json={"agency": "physio"})
    api.write(family, "health", "Physio: walks with support.", who="physio1")
    api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
             json={"agency": "physio", "field": "health"})
    for _ in range(4):
        clock.advance(minutes=5)
        api.get(f"/api/v1/families/{family}", "physio1")
    clock.advance(days=1)
    api.get(f"/api/v1/families/{family}", "physio1")
    token = family_token(api, receipt)
    log = api.get(f"/api/v1/families/{family}/access-log", token).get_json()
    looks = [row for row in log if row["action"] == "record.read"]
    assert [(row["at"][:10], row["times"]) for row in looks] == [
        ("2026-11-23", 1), ("2026-11-22", 4)]
    assert looks[1]["fields_own"] == ["health"] and "health" not in looks[1]["fields_shown"]
    [referral] = [row for row in log if row["action"] == "involvement.refer"]
    assert referral["about_agency"] == "physio"
    assert referral["about_agency_name"] == "Physiotherapy"
    # Staff see every look, one by one.
    staff = api.get(f"/api/v1/families/{family}/access-log", "coord1").get_json()
    assert len([r for r in staff if r["action"] == "record.read"]) == 5


def test_a_coordinator_who_sees_but_is_not_involved_may_not_end_a_part(app: Flask,
                                                                       api: Api) -> None:
    family = api.new_family("nurse1")
    api.sign(family, {"physio": ["health"]})
    assert api.get(f"/api/v1/families/{family}", "physiocoord").status_code == 200
    refused = api.call("DELETE", path(family, "physio"), "physiocoord",
                       json={"signed_by": "A", "method": "paper"})
    assert refused.status_code == 403
    assert count(app, ConsentFormRow) == 1
    # The refusal is on the family's record, as every refusal is.
    [denied] = [r for r in audit_rows(app, "request.denied") if r.family_id == family]
    assert denied.agency_id == "physio"


def test_the_recorder_without_the_involvement_cell_ends_only_its_own_part(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    """It reads the whole grid, not who is involved: ending physiotherapy's
    part would tell it (200 and `involvement_closed`, or 409)."""
    family, token = case
    api.post(f"/api/v1/families/{family}/consent/revoke", token,
             json={"agency": "health-centre", "field": "involvement"})
    refused = api.call("DELETE", path(family, "physio"), "coord1",
                       json={"signed_by": "A", "method": "paper"})
    assert refused.status_code == 403
    assert count(app, ConsentFormRow) == 2
    # Revoking in a column it can read is still its to record.
    revoked = api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
                       json={"agency": "physio", "field": "health"})
    assert revoked.status_code == 200 and revoked.get_json()["version"] == 3


def test_an_expired_form_no_longer_shows_an_agency_everything(api: Api, clock: Clock,
                                                              case: tuple[str, str]) -> None:
    family, _token = case
    clock.advance(days=365, hours=13, minutes=59)  # 22 November 2027, 23:59: the last minute
    assert api.get(f"/api/v1/families/{family}/consent", "physiocoord").get_json()[
        "view"] == "full"
    clock.advance(minutes=1)
    form = api.get(f"/api/v1/families/{family}/consent", "physiocoord").get_json()
    assert form["view"] == "own_column" and form["signed_by"] is None
    assert form["grants"] == {"physio": ["health", "involvement"]}
    names_nobody_else(form)
    log = api.get(f"/api/v1/families/{family}/access-log", "physiocoord").get_json()
    assert {row["agency"] for row in log} == {"physio"}
    # The health centre recorded the form: it still reads all of it.
    assert api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()["view"] == "full"


# --- found by attacking issue 9 from outside -------------------------------------------------


@pytest.mark.parametrize("name", ["family", "Family", "FAMILY"])
def test_no_staff_member_may_be_named_family(app: Flask, clock: Clock, name: str) -> None:
    """History and the family's "who looked" name the family `family`: a
    staff member of that name would pass for the family (its looks left out
    of what the family is shown, its forms read as the family's own)."""
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        accounts.add_agency(session, "physio", "Physiotherapy", "health", False, clock())
        with pytest.raises(InvalidInput) as refused:
            accounts.add_staff(session, name, "physio", "practitioner", None, clock())
        assert "username" in refused.value.errors
    assert count(app, Staff) == 0


def test_who_looked_tells_the_family_a_staff_member_named_family(
        app: Flask, api: Api, case: tuple[str, str], clock: Clock) -> None:
    """A database from before the name was reserved: the family still reads
    that person's looks (staff are told apart from the family by role)."""
    family, token = case
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        session.add(Staff(username="family", agency_id="physio", role=Role.PRACTITIONER,
                          password_hash=None, active=True, created_at=clock()))
        session.commit()
        staff_token = accounts.create_token(session, "family", timedelta(days=1), clock())
    assert api.get(f"/api/v1/families/{family}", staff_token).status_code == 200
    log = api.get(f"/api/v1/families/{family}/access-log", token).get_json()
    assert log[0]["action"] == "record.read" and log[0]["role"] == "practitioner"
    assert log[0]["agency"] == "physio"


def test_hiding_another_agencys_look_tells_a_reader_of_its_own_column_nothing(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    """Without the full view an agency sees only its own looks: asking to
    hide another agency's entry answers as for an entry that does not exist
    (a 403 would tell it that someone else acted on the family, and when)."""
    family, token = case
    api.post(f"/api/v1/families/{family}/consent/revoke", token, json={"agency": "physio"})
    api.get(f"/api/v1/families/{family}", "cps1")
    cps_look = audit_rows(app, "record.read")[-1]
    assert cps_look.agency_id == "cps"
    other = api.post(f"/api/v1/families/{family}/access-log/{cps_look.seq}/hide",
                     "physiocoord", json={})
    absent = api.post(f"/api/v1/families/{family}/access-log/{cps_look.seq + 1000}/hide",
                      "physiocoord", json={})
    assert other.status_code == absent.status_code == 422
    assert (other.get_json()["errors"]["seq"][0].replace(str(cps_look.seq), "N")
            == absent.get_json()["errors"]["seq"][0].replace(str(cps_look.seq + 1000), "N"))
    assert count(app, HiddenFromFamily) == 0


@pytest.mark.parametrize("to", ["ecec", "cps", "health-centre"])
def test_an_agency_that_may_not_see_who_takes_part_cannot_probe_it_by_referring(
        app: Flask, api: Api, case: tuple[str, str], to: str) -> None:
    """After the family stops sharing with physiotherapy, physiotherapy
    still works with it, but may not learn who else does: a referral's
    answer (201, 409 not agreed, 409 already involved) would tell it each
    agency's involvement cell and part. Every agency alike is refused, and
    nothing is stored."""
    family, token = case
    api.post(f"/api/v1/families/{family}/consent/revoke", token, json={"agency": "physio"})
    before = count(app, Involvement)
    answer = api.post(f"/api/v1/families/{family}/involvements", "physiocoord",
                      json={"agency": to})
    assert answer.status_code == 403
    names_nobody_else(answer.get_json())
    assert to not in json.dumps(answer.get_json())
    assert count(app, Involvement) == before
