"""Areas: an agency's list (GET /api/v1/areas), a family's one area (given
when it is recorded or by PUT .../area), sealed in the database, shown with
the `contact` cell; minimal-data agencies' families only while their form
says they may be counted. On both databases."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from audit.model import AuditEntry
from coordination.casework import areas
from coordination.model import Family
from tests.cli import assert_ok, assert_one_line_failure, run
from tests.conftest import Api, Clock
from tests.web import csrf_token, set_passwords, signed_in

AREAS = {
    "health-centre": {"A1": "North", "A2": "South"},
    "physio": {"A1": "Nord", "P9": "Harbour"},
    "ngo": {"N1": "Old town"},
}


@pytest.fixture
def with_areas(app: Flask, api: Api, clock: Clock) -> Api:
    with app.extensions["onestory"].sessions() as session:
        for agency, listed in AREAS.items():
            areas.set_agency_areas(session, agency, listed, [], clock())
    return api


def _families(app: Flask) -> int:
    with app.extensions["onestory"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Family)) or 0)


def _stored_area(app: Flask, family_id: str) -> bytes | None:
    with app.extensions["onestory"].engine.connect() as conn:
        value = conn.execute(text("SELECT area FROM families WHERE id = :id"),
                             {"id": family_id}).scalar()
    return None if value is None else bytes(value)


def _audits(app: Flask, action: str) -> list[AuditEntry]:
    with app.extensions["onestory"].sessions() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                    .order_by(AuditEntry.seq)))


def _area(api: Api, family_id: str, who: str) -> Any:
    response = api.get(f"/api/v1/families/{family_id}", who)
    assert response.status_code == 200, response.get_json()
    return response.get_json().get("area")


def test_staff_read_their_own_agencys_areas(with_areas: Api) -> None:
    api = with_areas
    assert api.get("/api/v1/areas", "nurse1").get_json() == [
        {"code": "A1", "name": "North"}, {"code": "A2", "name": "South"}]
    assert api.get("/api/v1/areas", "physiocoord").get_json() == [
        {"code": "A1", "name": "Nord"}, {"code": "P9", "name": "Harbour"}]
    assert api.get("/api/v1/areas", "ecec1").get_json() == []
    for who in ("auditor1", "admin1"):
        assert api.get("/api/v1/areas", who).status_code == 403


def test_a_family_recorded_with_an_area_carries_it_sealed(app: Flask, with_areas: Api) -> None:
    api = with_areas
    family = api.new_family("nurse1", display_name="Aylin Demir", area="A1")
    assert _area(api, family, "nurse1") == {"code": "A1", "name": "North"}
    stored = _stored_area(app, family)
    assert stored is not None and b"A1" not in stored
    rt = app.extensions["onestory"]
    assert rt.vault.for_family(family).open("families", "area", family, stored) == "A1"
    # Bound to its column and row: moved elsewhere, it does not open.
    other = api.new_family("nurse1", display_name="Other")
    with pytest.raises(Exception):  # noqa: B017 - any refusal to open will do
        rt.vault.for_family(other).open("families", "area", other, stored)


@pytest.mark.parametrize("area", ["Z9", "a1", "", 7, None, ["A1"]])
def test_an_area_not_on_the_agencys_list_records_nothing(app: Flask, with_areas: Api,
                                                         area: Any) -> None:
    before = _families(app)
    response = with_areas.post("/api/v1/families", "nurse1",
                               json={"display_name": "Aylin Demir", "area": area})
    assert response.status_code == 422
    assert "area" in response.get_json()["errors"]
    if area in ("Z9", "a1"):
        assert "one of A1, A2" in response.get_json()["errors"]["area"][0]
    assert _families(app) == before


def test_an_agency_without_areas_is_told_so(app: Flask, with_areas: Api) -> None:
    response = with_areas.post("/api/v1/families", "ecec1",
                               json={"display_name": "Aylin Demir", "area": "A1"})
    assert response.status_code == 422
    assert "has no areas" in response.get_json()["errors"]["area"][0]


def test_set_change_and_clear_an_area_audited_without_the_code(app: Flask,
                                                              with_areas: Api) -> None:
    api = with_areas
    family = api.new_family("nurse1")
    path = f"/api/v1/families/{family}/area"
    answer = api.put(path, "nurse1", json={"area": "A2"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"area": {"code": "A2", "name": "South"}}
    assert _area(api, family, "coord1") == {"code": "A2", "name": "South"}
    assert api.put(path, "coord1", json={"area": None}).get_json() == {"area": None}
    assert _area(api, family, "nurse1") is None
    assert _stored_area(app, family) is None
    entries = _audits(app, "family.area")
    assert [(e.family_id, e.actor, e.detail) for e in entries] == [
        (family, "nurse1", '{"set":true}'), (family, "coord1", '{"set":false}')]


@pytest.mark.parametrize("body", [{}, {"area": 5}, {"area": ""}, {"area": "Z9"},
                                  {"area": "A1", "more": 1}, {"area": "x" * 33}])
def test_bad_input_changes_nothing(app: Flask, with_areas: Api, body: dict[str, Any]) -> None:
    api = with_areas
    family = api.new_family("nurse1", area="A1")
    before = _stored_area(app, family)
    response = api.put(f"/api/v1/families/{family}/area", "nurse1", json=body)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    assert _stored_area(app, family) == before
    assert _audits(app, "family.area") == []


def test_other_agencies_roles_and_lists(app: Flask, with_areas: Api) -> None:
    api = with_areas
    family = api.new_family("nurse1", area="A1")
    path = f"/api/v1/families/{family}/area"
    # Not visible to physiotherapy: the same 404 as no family at all.
    assert api.put(path, "physio1", json={"area": "P9"}).status_code == 404
    assert api.put("/api/v1/families/fam_nope/area", "physio1",
                   json={"area": "P9"}).status_code == 404
    for who in ("auditor1", "admin1"):
        assert api.put(path, who, json={"area": "A1"}).status_code == 403
    # Granted cells but not involved: may read, not change.
    api.sign(family, {"health-centre": ["involvement", "contact"], "physio": ["health"]})
    assert api.put(path, "physio1", json={"area": "P9"}).status_code == 403
    # Without `contact`, the area is not shown.
    assert _area(api, family, "physio1") is None
    api.sign(family, {"health-centre": ["involvement", "contact"],
                      "physio": ["health", "contact"]})
    # With it, named as the reader's own list names the code.
    assert _area(api, family, "physio1") == {"code": "A1", "name": "Nord"}
    assert _area(api, family, "nurse1") == {"code": "A1", "name": "North"}
    assert _stored_area(app, family) is not None


def test_an_involved_agency_gives_an_area_from_its_own_list(with_areas: Api) -> None:
    api = with_areas
    family = api.new_family("nurse1")
    api.sign(family, {"health-centre": ["involvement"], "physio": ["involvement"]})
    assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    path = f"/api/v1/families/{family}/area"
    refused = api.put(path, "physio1", json={"area": "A2"})  # health's code, not physio's
    assert refused.status_code == 422
    assert "one of A1, P9" in refused.get_json()["errors"]["area"][0]
    assert api.put(path, "physio1", json={"area": "P9"}).status_code == 200
    assert _area(api, family, "nurse1") == {"code": "P9", "name": "Harbour"}


# --- minimal-data agencies' families ---------------------------------------------


def test_minimal_data_family_cannot_be_recorded_with_an_area(app: Flask,
                                                            with_areas: Api) -> None:
    before = _families(app)
    response = with_areas.post("/api/v1/families", "ngo1",
                               json={"display_name": "K.", "area": "N1"})
    assert response.status_code == 422
    assert '"statistics": true' in response.get_json()["errors"]["area"][0]
    assert _families(app) == before


def test_minimal_data_family_carries_an_area_only_while_counted(app: Flask, with_areas: Api,
                                                               clock: Clock) -> None:
    api = with_areas
    family = api.new_family("ngo1", display_name="K.")
    path = f"/api/v1/families/{family}/area"
    # No form yet, then a form that does not say yes: refused, saying why.
    for _ in range(2):
        refused = api.put(path, "ngo1", json={"area": "N1"})
        assert refused.status_code == 422
        assert '"statistics": true' in refused.get_json()["errors"]["area"][0]
        assert _stored_area(app, family) is None
        api.sign(family, {"ngo": ["involvement", "story", "contact"]}, who="ngocoord")
    receipt = api.sign(family, {"ngo": ["involvement", "story", "contact"]}, who="ngocoord",
                       statistics=True, reissue_pin=True)["receipt"]
    assert api.put(path, "ngo1", json={"area": "N1"}).status_code == 200
    assert _area(api, family, "ngo1") == {"code": "N1", "name": "Old town"}
    # A revocation carries the answer over: the area stays.
    revoked = api.post(f"/api/v1/families/{family}/consent/revoke", "ngocoord",
                       json={"agency": "ngo", "field": "story"})
    assert revoked.status_code == 200 and revoked.get_json()["statistics"] is True
    assert _stored_area(app, family) is not None
    # The family says no: the area goes in the same change.
    token = api.post("/api/v1/family/session", json={
        "receipt_code": receipt["code"], "pin": receipt["pin"]}).get_json()["token"]
    from coordination.casework import counting
    rt = app.extensions["onestory"]
    actor = rt_actor(app, token, clock)
    with rt.sessions() as session:
        counting.set_counting(session, rt.vault, actor, family, False, clock())
    assert _stored_area(app, family) is None
    assert _area(api, family, "ngo1") is None
    assert '"area_cleared":true' in (_audits(app, "consent.statistics")[-1].detail or "")
    # A newly signed form that says no also drops it.
    api.sign(family, {"ngo": ["involvement", "contact"]}, who="ngocoord", statistics=True)
    assert api.put(path, "ngo1", json={"area": "N1"}).status_code == 200
    api.sign(family, {"ngo": ["involvement", "contact"]}, who="ngocoord")
    assert _stored_area(app, family) is None
    # An expired form that said yes does not count either: the area is not
    # shown, and cannot be set again.
    api.sign(family, {"ngo": ["involvement", "contact"]}, who="ngocoord", statistics=True)
    assert api.put(path, "ngo1", json={"area": "N1"}).status_code == 200
    clock.advance(days=400)
    assert _area(api, family, "ngo1") is None
    assert api.put(path, "ngo1", json={"area": "N1"}).status_code == 422


def test_a_family_recorded_by_an_ordinary_agency_needs_no_counting_answer(
        with_areas: Api) -> None:
    family = with_areas.new_family("nurse1", area="A2")
    with_areas.sign(family, {"health-centre": ["involvement", "contact"]})
    assert _area(with_areas, family, "nurse1") == {"code": "A2", "name": "South"}


def rt_actor(app: Flask, token: str, clock: Clock) -> Any:
    from coordination import accounts

    with app.extensions["onestory"].sessions() as session:
        return accounts.authenticate(session, token, clock())


# --- the agency's list -------------------------------------------------------------


def test_the_list_is_changed_whole_or_not_at_all(app: Flask, api: Api, clock: Clock) -> None:
    from coordination.errors import InvalidInput, NotFound

    with app.extensions["onestory"].sessions() as session:
        listed = areas.set_agency_areas(session, "physio", {"A1": " Nord  side "}, [], clock())
        assert [(a.code, a.name) for a in listed] == [("A1", "Nord side")]
        for add, remove in (({"bad code": "X"}, []), ({"B2": ""}, []), ({"B2": "B"}, ["Z"]),
                            ({"B2": "x" * 201}, [])):
            with pytest.raises(InvalidInput):
                areas.set_agency_areas(session, "physio", add, remove, clock())
            session.rollback()
        with pytest.raises(NotFound):
            areas.set_agency_areas(session, "nowhere", {"A": "B"}, [], clock())
        listed = areas.set_agency_areas(session, "physio", {"A1": "Renamed"}, [], clock())
        assert [(a.code, a.name) for a in listed] == [("A1", "Renamed")]
        assert areas.set_agency_areas(session, "physio", {}, ["A1"], clock()) == []


# --- on the command line ------------------------------------------------------------


def _listed(app: Flask, agency: str) -> list[tuple[str, str]]:
    with app.extensions["onestory"].sessions() as session:
        return [(a.code, a.name) for a in areas.agency_areas(session, agency)]


def test_the_command_line_sets_an_agencys_areas(app: Flask, api: Api,
                                                cli_env: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    done = run(capsys, "agency", "set", "physio", "--area", "0301-01=Gamle Oslo",
               "--area", "0301-02=Grünerløkka")
    assert_ok(done)
    assert "agency physio areas: 0301-01=Gamle Oslo; 0301-02=Grünerløkka" in done.out
    assert_ok(run(capsys, "agency", "set", "physio", "--area", "0301-01=Old Oslo",
                  "--remove-area", "0301-02"))
    assert _listed(app, "physio") == [("0301-01", "Old Oslo")]
    added = run(capsys, "agency", "add", "school", "--name", "School", "--kind", "school",
                "--area", "S1=Hill")
    assert_ok(added)
    assert _listed(app, "school") == [("S1", "Hill")]
    with app.extensions["onestory"].sessions() as session:
        assert session.scalars(select(AuditEntry.detail).where(
            AuditEntry.action == "agency.areas", AuditEntry.agency_id == "physio")).all() == [
            '{"removed":[],"set":["0301-01","0301-02"]}',
            '{"removed":["0301-02"],"set":["0301-01"]}']


@pytest.mark.parametrize("args", [
    ("--area", "no-equals"), ("--area", "=Name"), ("--area", "A1="),
    ("--area", "bad code=Name"), ("--remove-area", "ZZ"),
    ("--area", "A1=One", "--remove-area", "A1"), ("--area", f"A1={'x' * 201}"),
])
def test_bad_areas_are_a_one_line_error_and_change_nothing(
        app: Flask, api: Api, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    assert_ok(run(capsys, "agency", "set", "physio", "--area", "P1=Pier"))
    message = assert_one_line_failure(run(capsys, "agency", "set", "physio", *args))
    assert "area" in message
    assert _listed(app, "physio") == [("P1", "Pier")]


def test_an_unknown_agency_is_a_one_line_error(api: Api, cli_env: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    message = assert_one_line_failure(run(capsys, "agency", "set", "nowhere", "--area", "A=B"))
    assert "no agency 'nowhere'" in message


# --- on the staff pages -------------------------------------------------------------


def _page_text(response: Any) -> str:
    html = re.sub(r"</?(?:bdi|span|strong)\b[^>]*>", "", response.get_data(as_text=True))
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_new_family_form_offers_the_agencys_areas(app: Flask, with_areas: Api) -> None:
    set_passwords(app)
    client = signed_in(app, "nurse1")
    form = client.get("/staff/families/new").get_data(as_text=True)
    assert re.findall(r'<option value="([^"]*)"', form) == ["", "A1", "A2"]
    before = _families(app)
    bad = client.post("/staff/families/new", data={"display_name": "Aylin Demir", "area": "Z9",
                                                   "csrf_token": csrf_token(form)})
    assert bad.status_code == 422
    assert "is not one of your agency's areas" in _page_text(bad)
    assert _families(app) == before
    done = client.post("/staff/families/new", data={"display_name": "Aylin Demir",
                                                    "area": "A2",
                                                    "csrf_token": csrf_token(form)})
    assert done.status_code == 302
    family = done.headers["Location"].rsplit("/", 1)[1]
    assert _area(with_areas, family, "nurse1") == {"code": "A2", "name": "South"}
    assert "South (A2)" in _page_text(client.get(f"/staff/families/{family}"))


def test_the_record_page_changes_the_area(app: Flask, with_areas: Api) -> None:
    set_passwords(app)
    family = with_areas.new_family("nurse1", area="A1")
    client = signed_in(app, "nurse1")
    page = client.get(f"/staff/families/{family}").get_data(as_text=True)
    assert re.search(r'<option value="A1" selected>', page)
    token = csrf_token(page)
    changed = client.post(f"/staff/families/{family}/area", data={"area": "A2",
                                                                 "csrf_token": token})
    assert changed.status_code == 302
    assert _area(with_areas, family, "nurse1") == {"code": "A2", "name": "South"}
    for bad in ("Z9", "x" * 40):
        refused = client.post(f"/staff/families/{family}/area",
                              data={"area": bad, "csrf_token": token}, follow_redirects=True)
        assert refused.status_code == 200
        assert "The area was not changed" in _page_text(refused)
        assert _area(with_areas, family, "nurse1") == {"code": "A2", "name": "South"}
    cleared = client.post(f"/staff/families/{family}/area", data={"area": "",
                                                                 "csrf_token": token})
    assert cleared.status_code == 302 and _stored_area(app, family) is None
    # Another agency that cannot see the family: the same 404 as none.
    other = signed_in(app, "cps1")
    other_token = csrf_token(other.get("/staff/families/new").get_data(as_text=True))
    assert other.post(f"/staff/families/{family}/area",
                      data={"area": "A1", "csrf_token": other_token}).status_code == 404


def test_a_minimal_data_agency_is_told_why_it_cannot_give_an_area(app: Flask,
                                                                  with_areas: Api) -> None:
    set_passwords(app)
    client = signed_in(app, "ngo1")
    form = client.get("/staff/families/new").get_data(as_text=True)
    assert 'name="area"' not in form
    family = with_areas.new_family("ngo1", display_name="K.")
    page = client.get(f"/staff/families/{family}").get_data(as_text=True)
    refused = client.post(f"/staff/families/{family}/area",
                          data={"area": "N1", "csrf_token": csrf_token(page)},
                          follow_redirects=True)
    assert refused.status_code == 200
    assert '"statistics": true' in _page_text(refused)
    assert _stored_area(app, family) is None


def test_the_family_reads_who_changed_its_area(app: Flask, with_areas: Api) -> None:
    api = with_areas
    family = api.new_family("nurse1")
    receipt = api.sign(family, {"health-centre": ["involvement", "contact"]})["receipt"]
    assert api.put(f"/api/v1/families/{family}/area", "nurse1",
                   json={"area": "A1"}).status_code == 200
    client = app.test_client()
    token = csrf_token(client.get("/family/").get_data(as_text=True))
    client.post("/family/", data={"receipt_code": receipt["code"], "pin": receipt["pin"],
                                  "csrf_token": token})
    log = _page_text(client.get("/family/access-log"))
    assert "wrote down which area your family lives in, or removed it." in log
    assert "A1" not in log and "North" not in log
