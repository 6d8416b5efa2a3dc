"""The OpenAPI 3.1 document at /api/v1/openapi.json: complete, valid, built
from the schemas that validate each route, served to anyone and not audited.
(tests/functional/test_schemathesis.py holds a live server to it.)"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from sqlalchemy import func, select

from audit.model import AuditEntry
from coordination.api import load
from coordination.api.openapi import api_rules, build, openapi_path
from coordination.app import create_app
from coordination.config import Settings
from coordination.schemas import EntryIn, FamilyIn, StrictSchema
from tests.conftest import Api

DOCUMENT = "/api/v1/openapi.json"


def audit_count(app: Flask) -> int:
    with app.extensions["onestory"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)))


def undocumented(app: Flask, doc: dict[str, Any]) -> list[str]:
    missing = []
    for method, rule, _endpoint in api_rules(app):
        path, _parameters = openapi_path(rule)
        if method.lower() not in doc["paths"].get(path, {}):
            missing.append(f"{method} {path}")
    return missing


def test_served_to_anyone_and_not_audited(api: Api, app: Flask) -> None:
    before = audit_count(app)
    response = api.get(DOCUMENT)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json()["openapi"] == "3.1.0"
    # A token, even a wrong one, changes nothing: the document is public.
    assert api.get(DOCUMENT, "not-a-token").get_json() == response.get_json()
    assert audit_count(app) == before


def test_every_api_route_is_documented_and_the_document_is_openapi_3_1(api: Api,
                                                                       app: Flask) -> None:
    doc = api.get(DOCUMENT).get_json()
    assert undocumented(app, doc) == []
    documented = sum(len(ops) for ops in doc["paths"].values())
    assert documented == len(api_rules(app)) >= 17
    validate(doc, cls=OpenAPIV31SpecValidator)


def test_a_route_added_without_documentation_is_caught(settings: Settings) -> None:
    app = create_app(settings)
    try:
        extra = Blueprint("extra", __name__, url_prefix="/api/v1")
        extra.add_url_rule("/families/<id:family_id>/extra", "extra",
                           lambda family_id: jsonify({}), methods=["POST"])
        app.register_blueprint(extra)
        assert undocumented(app, build(app)) == ["POST /api/v1/families/{family_id}/extra"]
    finally:
        app.extensions["onestory"].dispose()


def test_bodies_and_queries_are_the_validating_schemas(api: Api) -> None:
    doc = api.get(DOCUMENT).get_json()
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/api/v1/families"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/FamilyIn"}
    family_in = schemas["FamilyIn"]
    assert set(family_in["properties"]) == set(FamilyIn().fields)
    assert family_in["required"] == ["display_name"]
    assert family_in["additionalProperties"] is False  # unknown keys are a 422
    assert family_in["properties"]["display_name"] == {
        "type": "string", "minLength": 1, "maxLength": 200}
    consent = schemas["ConsentIn"]["properties"]
    assert consent["method"]["enum"] == ["paper", "in_person", "family_portal"]
    assert consent["witness"]["type"] == ["string", "null"]
    search = doc["paths"]["/api/v1/families"]["get"]["parameters"]
    assert {(p["name"], p["in"], p["required"]) for p in search} == {
        ("name", "query", False), ("birth_date", "query", False)}
    audit = {p["name"] for p in doc["paths"]["/api/v1/audit"]["get"]["parameters"]}
    assert audit == {"family", "agency", "user", "action", "outcome", "since", "until",
                     "limit", "cursor"}


def test_load_refuses_a_schema_the_document_does_not_name(app: Flask) -> None:
    with app.test_request_context("/api/v1/families/fam_x/entries", method="POST"):
        assert load(EntryIn(), {"field": "health", "value": "v"}) == {
            "field": "health", "value": "v"}
        with pytest.raises(RuntimeError, match="write_entry validates with FamilyIn"):
            load(FamilyIn(), {"display_name": "x"})
    # A route without a document (one being added) still validates.
    with app.test_request_context("/healthz"):
        assert load(StrictSchema(), {}) == {}


def test_answers_errors_and_security(api: Api) -> None:
    doc = api.get(DOCUMENT).get_json()
    assert doc["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http",
                                                             "scheme": "bearer"}
    problem = {"$ref": "#/components/schemas/Problem"}
    assert set(doc["components"]["schemas"]["Problem"]["required"]) == {
        "type", "title", "status", "detail", "errors"}
    paths = doc["paths"]
    session = paths["/api/v1/family/session"]["post"]
    assert session["security"] == []
    assert sorted(session["responses"]) == ["201", "400", "401", "413", "422", "429", "503"]
    assert session["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    assert paths["/api/v1/openapi.json"]["get"]["security"] == []
    assert sorted(paths["/api/v1/openapi.json"]["get"]["responses"]) == ["200", "413"]
    put = paths["/api/v1/families/{family_id}/consent"]["put"]["responses"]
    assert sorted(put) == ["201", "400", "401", "403", "404", "409", "413", "422", "503"]
    assert put["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ConsentForm"}
    erase = paths["/api/v1/families/{family_id}"]["delete"]["responses"]
    assert "content" not in erase["204"]
    assert "409" in erase  # a second erasure of the same family
    assert sorted(paths["/api/v1/agencies"]["get"]["responses"]) == ["200", "401", "403",
                                                                     "413", "503"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status >= "400":
                    assert answer["content"] == {"application/problem+json": {
                        "schema": problem}}, (method, path, status)
                    assert answer["description"]


def test_a_method_a_route_does_not_take_is_405_naming_those_it_does(api: Api) -> None:
    """Found by schemathesis (unsupported_method): the 405 had no `Allow`."""
    response = api.call("DELETE", "/api/v1/agencies", "nurse1")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert response.get_json()["status"] == 405


def test_any_request_over_the_limit_is_413_as_documented(api: Api) -> None:
    doc = api.get(DOCUMENT).get_json()
    response = api.call("GET", DOCUMENT, data=b"x" * 70_000)
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert "413" in doc["paths"]["/api/v1/openapi.json"]["get"]["responses"]


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


def test_patterns_are_json_schema_regular_expressions(api: Api) -> None:
    """JSON Schema's patterns are ECMA-262: no Python-only `\\Z`, `\\A` or `(?P<`."""
    patterns = _patterns(api.get(DOCUMENT).get_json())
    assert r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$" in patterns
    for pattern in patterns:
        assert not any(python_only in pattern for python_only in (r"\Z", r"\A", "(?P<")), pattern
    # `$` lets a final newline through in Python; the schema still refuses it.
    for bad in (["tr\n"], ["x\n"]):
        response = api.post("/api/v1/families", "nurse1",
                             json={"display_name": "A", "languages": bad})
        assert response.status_code == 422
        assert response.get_json()["errors"] == {
            "languages.0": ["a language code such as 'tr', 'ar' or 'nb'"]}
    assert api.post("/api/v1/families", "nurse1",
                    json={"display_name": "A", "languages": ["tr", "nb-NO"]}).status_code == 201
