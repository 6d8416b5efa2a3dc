"""The shared record's rules: fields, partial, withheld, involvements, the
family's own attributes, authorship, expiry, and search visibility."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.conftest import Api, Clock

CATALOGUE = ["involvement", "contact", "household", "story", "health", "education", "social",
             "protection"]


def record(api: Api, family: str, who: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/families/{family}", who)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_every_field_is_either_shown_or_withheld(api: Api) -> None:
    family = api.new_family("nurse1")
    api.write(family, "health", "h1")
    api.sign(family, {"physio": ["health", "story"]})
    body = record(api, family, "physio1")
    assert sorted(body["fields"]) + sorted(body["withheld"]) == sorted(
        ["health", "story"]) + sorted(set(CATALOGUE) - {"health", "story"})
    assert not set(body["fields"]) & set(body["withheld"])
    assert body["fields"]["story"] == []  # granted but empty
    assert set(body["partial"]) <= set(body["fields"])
    assert "involvements" not in body  # involvement not granted


def test_own_entries_are_partial_when_the_field_is_not_granted(api: Api, clock: Clock) -> None:
    family = api.new_family("nurse1")
    api.sign(family, {"physio": ["involvement"]})
    api.post(f"/api/v1/families/{family}/involvements", "coord1", json={"agency": "physio"})
    api.write(family, "story", "told by the nurse", who="nurse1")
    clock.advance(minutes=1)
    api.write(family, "story", "told to the physio", who="physio1")
    body = record(api, family, "physio1")
    assert [e["value"] for e in body["fields"]["story"]] == ["told to the physio"]
    assert body["partial"] == ["story"]
    assert "told by the nurse" not in str(body)
    # Granting the row shows both, and the field is no longer partial.
    api.sign(family, {"physio": ["involvement", "story"]})
    body = record(api, family, "physio1")
    assert [e["value"] for e in body["fields"]["story"]] == ["told by the nurse",
                                                             "told to the physio"]
    assert body["partial"] == []


def test_family_attributes_follow_their_cells(api: Api) -> None:
    family = api.new_family(
        "nurse1", display_name="Aylin Demir", birth_date="2024-03-14", address="Storgata 12",
        national_id="14032412345", languages=["tr"],
        members=[{"name": "Emir", "relation": "child", "birth_date": "2024-03-14"}])
    own = record(api, family, "nurse1")  # the recording agency sees what it recorded
    assert own["birth_date"] == "2024-03-14"
    assert own["address"] == "Storgata 12"
    assert own["national_id"] == "14032412345"
    assert own["members"] == [{"name": "Emir", "relation": "child",
                               "birth_date": "2024-03-14"}]
    assert own["languages"] == ["tr"]

    api.sign(family, {"physio": ["health"], "ecec": ["household"], "cps": ["contact"]})
    physio = record(api, family, "physio1")
    assert physio["display_name"] == "Aylin Demir"
    for key in ("birth_date", "address", "national_id", "members", "languages"):
        assert key not in physio
    ecec = record(api, family, "ecec1")
    assert ecec["birth_date"] == "2024-03-14" and ecec["members"][0]["name"] == "Emir"
    assert "address" not in ecec and "national_id" not in ecec
    cps = record(api, family, "cps1")
    assert cps["address"] == "Storgata 12"
    assert "birth_date" not in cps and "national_id" not in cps


def test_involvements_only_with_the_involvement_cell(api: Api) -> None:
    family = api.new_family("nurse1")
    api.sign(family, {"physio": ["involvement"], "ecec": ["health"]})
    involvements = record(api, family, "physio1")["involvements"]
    assert involvements == [{"agency": "health-centre", "status": "active",
                             "since": "2026-11-22", "contact_worker": "nurse1"}]
    assert "involvements" not in record(api, family, "ecec1")


def test_expired_form_withholds_and_hides(api: Api, clock: Clock) -> None:
    family = api.new_family("nurse1")
    api.write(family, "health", "h1")
    api.sign(family, {"physio": ["health"], "health-centre": ["health"]},
             valid_until="2026-12-31")
    assert record(api, family, "physio1")["fields"]["health"][0]["value"] == "h1"
    clock.advance(days=40)  # 2027-01-01
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404
    nurse = record(api, family, "nurse1")  # involved: still visible, own entries only
    assert nurse["partial"] == ["health"]
    assert "health" not in nurse["withheld"]


def test_revocation_takes_effect_on_the_next_request(api: Api) -> None:
    family = api.new_family("nurse1")
    api.write(family, "health", "h1")
    api.sign(family, {"physio": ["health", "story"]})
    assert "health" in record(api, family, "physio1")["fields"]
    api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
             json={"agency": "physio", "field": "health"})
    body = record(api, family, "physio1")
    assert "health" in body["withheld"]
    assert "h1" not in str(body)


def test_search_finds_only_visible_families(api: Api) -> None:
    seen = api.new_family("nurse1", display_name="Aylin  DEMIR", birth_date="2024-03-14")
    hidden = api.new_family("nurse1", display_name="Aylin Demir", birth_date="2024-03-14")
    api.sign(seen, {"physio": ["involvement"]})
    query = {"name": "aylin demir", "birth_date": "2024-03-14"}
    assert api.get("/api/v1/families", "physio1", query_string=query).get_json() == [
        {"id": seen, "display_name": "Aylin  DEMIR"}]
    both = api.get("/api/v1/families", "nurse1", query_string=query).get_json()
    assert {f["id"] for f in both} == {seen, hidden}
    assert api.get("/api/v1/families", "nurse1", query_string={
        "name": "aylin demir", "birth_date": "2024-03-15"}).get_json() == []
    assert api.get("/api/v1/families", "nurse1",
                   query_string={"name": "Ayli"}).get_json() == []  # a word, not a prefix
    assert [f["id"] for f in api.get("/api/v1/families", "physio1",
                                     query_string={"name": "Aylin"}).get_json()] == [seen]


def test_search_counts_the_form_through_its_last_day(api: Api, clock: Clock) -> None:
    """`valid_until` counts through that whole day, in search as in a read."""
    family = api.new_family("nurse1", display_name="Aylin Demir", birth_date="2024-03-14")
    api.sign(family, {"physio": ["involvement"]}, valid_until="2026-12-31")
    query = {"name": "Aylin Demir", "birth_date": "2024-03-14"}

    def found() -> list[str]:
        response = api.get("/api/v1/families", "physio1", query_string=query)
        assert response.status_code == 200, response.get_json()
        return [f["id"] for f in response.get_json()]

    clock.now = datetime(2026, 12, 31, 0, 0, tzinfo=UTC)  # the last day begins
    assert found() == [family]
    clock.now = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)  # and ends
    assert found() == [family]
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200
    clock.advance(seconds=1)  # 2027-01-01: the form is no longer in force
    assert found() == []
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404


def test_closed_involvement_no_longer_makes_visible(api: Api) -> None:
    family = api.new_family("nurse1")
    response = api.patch(f"/api/v1/families/{family}/involvements/health-centre", "coord1",
                         json={"status": "closed"})
    assert response.status_code == 200
    assert response.get_json()["status"] == "closed"
    assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 404
