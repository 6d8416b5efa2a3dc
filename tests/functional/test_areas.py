"""Areas: an agency's list (GET /api/v1/areas), a family's one area (given
when it is recorded or by PUT .../area), sealed in the database, shown with
the `contact` cell; minimal-data agencies' families only while their form
says they may be counted. On both databases."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from audit.model import AuditEntry
from coordination.casework import areas
from coordination.model import Family
from tests.conftest import Api, Clock

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
    # An expired form that said yes does not count either.
    api.sign(family, {"ngo": ["involvement", "contact"]}, who="ngocoord", statistics=True)
    clock.advance(days=400)
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
