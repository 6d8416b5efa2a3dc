"""The evaluator role reads reports only: every /api/v1 route of the OpenAPI
document (but the reports) and every staff, auditor and admin page refuses it
(403), and nothing it is answered holds family content. It is added like any
other role, on the command line and on the admin page. On both databases."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask

from coordination import accounts
from coordination.model import Staff
from coordination.roles import CASEWORK_ROLES, Role
from tests.cli import assert_ok, run
from tests.conftest import Api, Clock
from tests.web import csrf_token, set_passwords, signed_in

NAME = "Aylin Demir"
PATH_ARGUMENT = re.compile(r"\{(\w+)\}|<(?:[^:>]+:)?(\w+)>")


@pytest.fixture
def evaluator(app: Flask, api: Api, clock: Clock) -> dict[str, str]:
    """An evaluator of the oversight office, a family with content, and the ids
    a route may name."""
    with app.extensions["onestory"].sessions() as session:
        accounts.add_staff(session, "eval1", "oversight", "evaluator", None, clock())
        api.tokens["eval1"] = accounts.create_token(session, "eval1", timedelta(days=30),
                                                    clock())
    family = api.new_family("nurse1", display_name=NAME, birth_date="2024-03-14")
    api.write(family, "health", "Growth on track")
    api.sign(family, {"health-centre": ["involvement", "contact", "health"],
                      "physio": ["involvement", "health"]})
    referral = api.post(f"/api/v1/families/{family}/referrals", "coord1", json={
        "to": "physio", "reason": "exercises", "fields": ["health"]}).get_json()["id"]
    set_passwords(app)
    return {"family_id": family, "referral_id": referral, "agency_id": "physio",
            "request_id": "req_x", "grant_id": "dg_x", "hold_id": "ph_x",
            "access_id": "ea_x", "appointment_id": "ap_x", "seq": "1", "agency": "physio",
            "username": "nurse1"}


def _fill(path: str, ids: dict[str, str]) -> str:
    return PATH_ARGUMENT.sub(lambda m: ids[m.group(1) or m.group(2)], path)


def test_no_role_but_the_casework_roles_does_casework() -> None:
    assert Role.EVALUATOR not in CASEWORK_ROLES


def test_every_api_route_but_the_reports_refuses_an_evaluator(app: Flask, api: Api,
                                                             evaluator: dict[str, str]) -> None:
    doc = api.get("/api/v1/openapi.json").get_json()
    tried = 0
    for path, operations in doc["paths"].items():
        if path.startswith("/api/v1/reports"):
            continue
        for method, operation in operations.items():
            if operation.get("security") == []:
                continue  # no token taken (the document; the family's sign-in)
            response = api.call(method.upper(), _fill(path, evaluator), "eval1",
                                json={} if method.upper() in {"POST", "PUT", "PATCH",
                                                              "DELETE"} else None)
            assert response.status_code == 403, (method, path, response.get_json())
            assert NAME not in response.get_data(as_text=True)
            tried += 1
    assert tried >= 50, tried
    # The catalogue too, which every other staff role reads.
    for path in ("/api/v1/agencies", "/api/v1/fields", "/api/v1/areas"):
        assert api.get(path, "eval1").status_code == 403


def test_refusals_of_an_evaluator_are_on_record(app: Flask, api: Api,
                                                evaluator: dict[str, str]) -> None:
    family = evaluator["family_id"]
    assert api.get(f"/api/v1/families/{family}", "eval1").status_code == 403
    with app.extensions["onestory"].engine.connect() as conn:
        from sqlalchemy import text

        row = conn.execute(text("SELECT action, outcome, role, family_id, reason FROM audit_log "
                                "ORDER BY seq DESC LIMIT 1")).one()
    assert tuple(row) == ("request.denied", "denied", "evaluator", family, "role")


def _page_rules(app: Flask) -> list[tuple[str, str]]:
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in {"staff", "auditor", "admin"}:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            rules.append((method, rule.rule))
    return rules


def test_every_staff_auditor_and_admin_page_refuses_an_evaluator(
        app: Flask, evaluator: dict[str, str]) -> None:
    client = signed_in(app, "eval1")
    # The refusal page holds the sign-out form, with this session's CSRF token.
    token = csrf_token(client.get("/staff/").get_data(as_text=True))
    rules = _page_rules(app)
    assert len(rules) > 30
    for method, rule in rules:
        path = _fill(rule, evaluator)
        response = client.open(path, method=method,
                               data={"csrf_token": token} if method == "POST" else None)
        assert response.status_code == 403, (method, rule, response.status_code)
        assert NAME not in response.get_data(as_text=True), (method, rule)


# --- adding an evaluator -----------------------------------------------------------


def test_the_command_line_adds_an_evaluator(app: Flask, api: Api, cli_env: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert_ok(run(capsys, "user", "add", "eval2", "--agency", "oversight",
                  "--role", "evaluator"))
    with app.extensions["onestory"].sessions() as session:
        from sqlalchemy import select

        assert session.scalars(select(Staff.role).where(Staff.username == "eval2")).one() \
            == "evaluator"
    helped = run(capsys, "user", "add", "--help")
    assert "evaluator (reports only" in " ".join(helped.out.split())


def test_the_admin_page_offers_the_evaluator_role(app: Flask, api: Api) -> None:
    set_passwords(app)
    client = signed_in(app, "admin1")
    page = client.get("/admin/staff").get_data(as_text=True)
    assert '<option value="evaluator"' in page
    added = client.post("/admin/staff", data={
        "username": "eval3", "role": "evaluator", "sign_in": "none",
        "csrf_token": csrf_token(page)})
    assert added.status_code == 302, added.get_data(as_text=True)
    with app.extensions["onestory"].sessions() as session:
        from sqlalchemy import select

        assert session.scalars(select(Staff.role).where(Staff.username == "eval3")).one() \
            == "evaluator"
