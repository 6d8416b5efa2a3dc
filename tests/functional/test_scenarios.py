"""The two scenarios of DOMAIN.md, through the JSON API, on both databases."""

from __future__ import annotations

from tests.conftest import Api


def test_norway_family_centre(api: Api) -> None:
    family = api.new_family("nurse1", display_name="Aylin Demir", birth_date="2024-03-14",
                            address="Storgata 12, Oslo", languages=["tr", "nb"])
    api.write(family, "health", "Growth on track; physiotherapy advised.")
    api.write(family, "contact", "Mother's mobile +47 400 00 000")

    # Before any form, physiotherapy cannot know the family exists.
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404

    form = api.sign(family, {
        "health-centre": ["involvement", "contact", "health"],
        "physio": ["involvement", "health"],
        "ecec": ["involvement", "education"],
    }, interpreter_language="tr")
    assert form["version"] == 1
    assert form["grants"]["physio"] == ["health", "involvement"]
    assert set(form["receipt"]) == {"code", "pin"}

    # The physiotherapist sees the health notes but not the contact details.
    response = api.get(f"/api/v1/families/{family}", "physio1")
    assert response.status_code == 200
    record = response.get_json()
    assert record["display_name"] == "Aylin Demir"
    assert [e["value"] for e in record["fields"]["health"]] == [
        "Growth on track; physiotherapy advised."]
    assert record["fields"]["health"][0]["agency"] == "health-centre"
    assert record["fields"]["health"][0]["author"] == "nurse1"
    assert "contact" in record["withheld"]
    assert "contact" not in record["fields"]
    assert "address" not in record and "birth_date" not in record
    assert "Mother" not in response.get_data(as_text=True)
    assert [i["agency"] for i in record["involvements"]] == ["health-centre"]

    # The family revokes physiotherapy's column through its own session.
    session = api.post("/api/v1/family/session", json={
        "receipt_code": form["receipt"]["code"], "pin": form["receipt"]["pin"]})
    assert session.status_code == 201
    family_token = session.get_json()["token"]
    revoked = api.post(f"/api/v1/families/{family}/consent/revoke", family_token,
                       json={"agency": "physio"})
    assert revoked.status_code == 200
    assert revoked.get_json()["version"] == 2
    assert "physio" not in revoked.get_json()["grants"]

    # The physiotherapist's very next look is refused.
    refused = api.get(f"/api/v1/families/{family}", "physio1")
    assert refused.status_code == 404
    assert refused.mimetype == "application/problem+json"

    history = api.get(f"/api/v1/families/{family}/consent/history", family_token).get_json()
    assert [(h["version"], h["change"], h["changed_by"]) for h in history] == [
        (1, "signed", "coord1"), (2, "revoke column physio", "family")]


def test_belgian_minimal_data_ngo(api: Api) -> None:
    family = api.new_family("ngo1", display_name="Mira", languages=["bg"])
    api.write(family, "contact", "Aunt's phone +32 470 00 00 00", who="ngo1")

    refused = api.post("/api/v1/families", "ngo1",
                       json={"display_name": "Mira", "birth_date": "2025-07-01"})
    assert refused.status_code == 422
    assert "birth_date" in refused.get_json()["errors"]

    entry = api.post(f"/api/v1/families/{family}/entries", "ngo1",
                     json={"field": "health", "value": "born 2025-07-01"})
    assert entry.status_code == 422
    assert "field" in entry.get_json()["errors"]

    # No statutory agency can find or open the family ...
    for who in ("nurse1", "cps1", "physio1"):
        assert api.get("/api/v1/families", who, query_string={"name": "Mira"}).get_json() == []
        assert api.get(f"/api/v1/families/{family}", who).status_code == 404

    # ... unless the family grants it.
    api.sign(family, {"health-centre": ["involvement", "contact"]}, who="ngocoord")
    found = api.get("/api/v1/families", "nurse1", query_string={"name": "mira"}).get_json()
    assert found == [{"id": family, "display_name": "Mira"}]
    record = api.get(f"/api/v1/families/{family}", "nurse1").get_json()
    assert record["fields"]["contact"][0]["value"] == "Aunt's phone +32 470 00 00 00"
    assert api.get(f"/api/v1/families/{family}", "cps1").status_code == 404


def test_nul_characters_are_refused_not_500(api: Api) -> None:
    family = api.new_family("nurse1")
    api.sign(family, {"physio": ["involvement"]})
    cases = [
        ("GET", "/api/v1/families/fam%00x", None, 404),
        ("POST", f"/api/v1/families/{family}/involvements", {"agency": "phy\x00sio"}, 422),
        ("POST", f"/api/v1/families/{family}/consent/revoke", {"agency": "a\x00"}, 422),
        ("POST", "/api/v1/families", {"display_name": "x\x00y"}, 422),
        ("PATCH", f"/api/v1/families/{family}/involvements/health-centre",
         {"contact_worker": "\x00"}, 422),
    ]
    for method, path, body, status in cases:
        response = api.call(method, path, "coord1", json=body)
        assert response.status_code == status, (path, response.get_json())
        assert response.mimetype == "application/problem+json"
