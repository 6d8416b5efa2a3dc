"""Typed entries through the API on SQLite and PostgreSQL (CONTRACT.md,
"Typed entries and counting consent"): written as {"field", "kind", "data"},
read back with `kind`, `data` and `value` in words, sealed in the database,
and every refusal a 422 that stores nothing."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from tests.conftest import Api
from tests.unchanged import nothing_stored

ATTENDANCE = {"attended": 40, "offered": 50, "from": "2026-09-01", "to": "2026-11-30"}
ATTENDANCE_WORDS = "Attended 40 of 50 sessions offered, 1 Sep 2026 to 30 Nov 2026"
NEEDS = {"codes": ["housing", "material_help"]}
NEEDS_WORDS = "Needs: housing, material help"


def entries_url(family: str) -> str:
    return f"/api/v1/families/{family}/entries"


def typed(api: Api, family: str, field: str, kind: str, data: Any, who: str = "nurse1") -> Any:
    return api.post(entries_url(family), who, json={"field": field, "kind": kind, "data": data})


def test_the_catalogue_says_the_kinds_each_field_takes(api: Api) -> None:
    kinds = {f["id"]: f["kinds"] for f in api.get("/api/v1/fields", "nurse1").get_json()}
    assert kinds["story"] == kinds["social"] == ["text", "needs"]
    assert kinds["health"] == kinds["education"] == ["text", "attendance"]
    assert kinds["contact"] == ["text"]


def test_typed_entries_round_trip(api: Api) -> None:
    family = api.new_family()
    written = typed(api, family, "education", "attendance", ATTENDANCE)
    assert written.status_code == 201, written.get_json()
    body = written.get_json()
    assert (body["field"], body["kind"], body["data"], body["value"]) == (
        "education", "attendance", ATTENDANCE, ATTENDANCE_WORDS)
    needs = typed(api, family, "social", "needs", NEEDS)
    assert needs.status_code == 201, needs.get_json()
    note = api.write(family, "story", "Came by on Tuesday.")
    assert (note["kind"], note["data"], note["value"]) == ("text", None, "Came by on Tuesday.")

    record = api.get(f"/api/v1/families/{family}", "nurse1").get_json()
    [education] = record["fields"]["education"]
    assert (education["kind"], education["data"], education["value"]) == (
        "attendance", ATTENDANCE, ATTENDANCE_WORDS)
    [social] = record["fields"]["social"]
    assert (social["kind"], social["data"], social["value"]) == ("needs", NEEDS, NEEDS_WORDS)
    [story] = record["fields"]["story"]
    assert (story["kind"], story["data"], story["value"]) == ("text", None, "Came by on Tuesday.")


def test_one_session_and_a_configured_code_read_in_words(api: Api, app: Flask) -> None:
    app.extensions["onestory"].settings.needs_codes = ("housing", "debt_advice")
    family = api.new_family()
    one = typed(api, family, "health", "attendance",
                {"attended": 0, "offered": 1, "from": "2026-11-02", "to": "2026-11-02"})
    assert one.get_json()["value"] == "Attended 0 of 1 session offered, 2 Nov 2026 to 2 Nov 2026"
    debt = typed(api, family, "story", "needs", {"codes": ["debt_advice"]})
    assert debt.get_json()["value"] == "Needs: debt advice"
    refused = typed(api, family, "story", "needs", {"codes": ["income"]})
    assert refused.status_code == 422
    assert "debt_advice" in refused.get_json()["errors"]["data.codes"][0]


def test_the_sealed_value_is_not_in_clear(api: Api, app: Flask) -> None:
    family = api.new_family()
    marker = {"attended": 37, "offered": 41, "from": "2026-09-03", "to": "2026-11-27"}
    entry = typed(api, family, "education", "attendance", marker).get_json()
    need = typed(api, family, "social", "needs", {"codes": ["pregnancy", "child_benefit"]}
                 ).get_json()
    with app.extensions["onestory"].engine.connect() as conn:
        rows = {r.id: (r.kind, bytes(r.value)) for r in conn.execute(text(
            "SELECT id, kind, value FROM entries WHERE family_id = :f"), {"f": family})}
    assert rows[entry["id"]][0] == "attendance" and rows[need["id"]][0] == "needs"
    for _kind, sealed in rows.values():
        for clear in (b"2026-09-03", b"2026-11-27", b"attended", b"pregnancy",
                      b"child_benefit", b"codes", b'"offered":41'):
            assert clear not in sealed and clear.hex().encode() not in sealed.lower()


@pytest.mark.parametrize(("field", "kind", "data", "key", "says"), [
    ("education", "attendance", {"rate": 80}, "data", "not a percentage"),
    ("education", "attendance", {"attended": "80%", "offered": 50, "from": "2026-09-01",
                                 "to": "2026-11-30"}, "data", "not a percentage"),
    ("education", "attendance", 0.8, "data", "number of sessions offered and the period"),
    ("education", "attendance", "80%", "data", "not a percentage"),
    ("education", "attendance", {**ATTENDANCE, "attended": 40.0}, "data", "not a percentage"),
    ("education", "attendance", {**ATTENDANCE, "attended": 51}, "data.attended", "more than"),
    ("education", "attendance", {**ATTENDANCE, "offered": 0}, "data.offered", "greater"),
    ("education", "attendance", {**ATTENDANCE, "attended": -1}, "data.attended", "greater"),
    ("education", "attendance", {**ATTENDANCE, "attended": True}, "data.attended", "whole"),
    ("education", "attendance", {**ATTENDANCE, "offered": "50"}, "data.offered", "whole"),
    ("education", "attendance", {**ATTENDANCE, "to": "2026-08-31"}, "data.to", "ends before"),
    ("education", "attendance", {**ATTENDANCE, "to": "2027-09-02"}, "data.to", "school year"),
    ("education", "attendance", {**ATTENDANCE, "school": "x"}, "data.school", "Unknown"),
    ("education", "attendance", {"attended": 40}, "data.offered", "required"),
    ("social", "needs", {"codes": []}, "data.codes", "at least one"),
    ("social", "needs", {"codes": ["housing", "housing"]}, "data.codes", "once"),
    ("social", "needs", {"codes": ["residence_documents"]}, "data.codes", "unknown code"),
    ("social", "needs", ["housing"], "data", '{"codes"'),
    ("social", "attendance", ATTENDANCE, "kind", "'social' takes 'text' or 'needs'"),
    ("contact", "needs", NEEDS, "kind", "'contact' takes 'text', not 'needs'"),
    ("education", "needs", NEEDS, "kind", "'education' takes 'text' or 'attendance'"),
    ("education", "text", ATTENDANCE, "kind", "Must be one of"),
])
def test_bad_typed_entries_are_422s_that_store_nothing(
        api: Api, app: Flask, field: str, kind: str, data: Any, key: str, says: str) -> None:
    family = api.new_family()
    with nothing_stored(app):
        response = typed(api, family, field, kind, data)
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert any(says in m for m in response.get_json()["errors"][key]), response.get_json()


@pytest.mark.parametrize(("body", "key"), [
    ({"field": "education", "value": "x", "kind": "attendance", "data": ATTENDANCE}, "value"),
    ({"field": "education", "value": "x", "data": ATTENDANCE}, "value"),
    ({"field": "education"}, "value"),
    ({"field": "education", "kind": "attendance"}, "data"),
    ({"field": "education", "data": ATTENDANCE}, "kind"),
    ({"field": "education", "kind": "attendance", "data": None}, "data"),
])
def test_text_or_typed_not_both_nor_neither(api: Api, app: Flask, body: dict[str, Any],
                                            key: str) -> None:
    family = api.new_family()
    with nothing_stored(app):
        response = api.post(entries_url(family), "nurse1", json=body)
    assert response.status_code == 422
    assert key in response.get_json()["errors"], response.get_json()


def test_minimal_data_agency_records_needs_under_story_only(api: Api, app: Flask) -> None:
    family = api.new_family("ngo1", display_name="Mira")
    written = typed(api, family, "story", "needs", {"codes": ["income", "childcare"]}, "ngo1")
    assert written.status_code == 201, written.get_json()
    assert written.get_json()["value"] == "Needs: income, childcare"
    with nothing_stored(app):
        other_field = typed(api, family, "social", "needs", NEEDS, "ngo1")
        attendance = typed(api, family, "story", "attendance", ATTENDANCE, "ngo1")
        health = typed(api, family, "health", "attendance", ATTENDANCE, "ngo1")
    assert other_field.status_code == attendance.status_code == health.status_code == 422
    assert "minimal-data" in other_field.get_json()["errors"]["field"][0]
    assert "minimal-data" in health.get_json()["errors"]["field"][0]
    assert "'story' takes 'text' or 'needs'" in attendance.get_json()["errors"]["kind"][0]
    [story] = api.get(f"/api/v1/families/{family}", "ngo1").get_json()["fields"]["story"]
    assert story["data"] == {"codes": ["income", "childcare"]}


def test_an_agency_not_involved_gets_the_404_before_any_422(api: Api, app: Flask) -> None:
    family = api.new_family()
    with nothing_stored(app):
        response = typed(api, family, "education", "attendance", {"rate": 80}, "ecec1")
    assert response.status_code == 404
