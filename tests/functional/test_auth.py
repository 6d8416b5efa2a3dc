"""Every failure mode on the way in: no token, bad token, expired, revoked,
deactivated, wrong role, wrong agency, a family token used beyond its family."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from coordination import accounts
from coordination.model import ApiToken, Staff
from tests.conftest import Api, Clock, consent_body

FAMILY = "{fam}"
# (method, path, who may use the route at all)
ROUTES = [
    ("GET", "/api/v1/agencies", {"practitioner", "coordinator", "auditor", "admin"}),
    ("GET", "/api/v1/fields", {"practitioner", "coordinator", "auditor", "admin"}),
    ("POST", "/api/v1/families", {"practitioner", "coordinator"}),
    ("GET", "/api/v1/families?name=x", {"practitioner", "coordinator"}),
    ("GET", "/api/v1/families/{fam}", {"practitioner", "coordinator"}),
    ("POST", "/api/v1/families/{fam}/entries", {"practitioner", "coordinator"}),
    ("POST", "/api/v1/families/{fam}/involvements", {"coordinator"}),
    ("PATCH", "/api/v1/families/{fam}/involvements/health-centre", {"coordinator"}),
    ("GET", "/api/v1/families/{fam}/consent", {"practitioner", "coordinator", "family"}),
    ("PUT", "/api/v1/families/{fam}/consent", {"coordinator"}),
    ("POST", "/api/v1/families/{fam}/consent/revoke", {"coordinator", "family"}),
    ("GET", "/api/v1/families/{fam}/consent/history", {"coordinator", "family"}),
    ("GET", "/api/v1/families/{fam}/access-log", {"coordinator", "family"}),
    ("GET", "/api/v1/audit", {"auditor"}),
    ("GET", "/api/v1/audit/verify", {"auditor"}),
]
USERS = {"practitioner": "nurse1", "coordinator": "coord1", "auditor": "auditor1",
         "admin": "admin1"}


def _family_session(api: Api) -> tuple[str, str]:
    family = api.new_family("nurse1", display_name="Aylin Demir")
    receipt = api.sign(family, {"physio": ["health"]})["receipt"]
    response = api.post("/api/v1/family/session",
                        json={"receipt_code": receipt["code"], "pin": receipt["pin"]})
    assert response.status_code == 201
    return family, response.get_json()["token"]


def _assert_problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.get_json()  # type: ignore[attr-defined]
    assert response.mimetype == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.get_json()  # type: ignore[attr-defined]
    assert set(body) >= {"type", "title", "status", "detail", "errors"}
    assert body["status"] == status
    return body


@pytest.mark.parametrize(("method", "path", "_roles"), ROUTES)
@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer os_not-a-real-token",
     "Token abc"],
)
def test_no_or_unknown_token_is_401(
    api: Api, method: str, path: str, _roles: set[str], header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    response = api.call(method, path.format(fam="fam_0"), headers=headers, json=body)
    problem = _assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert problem["detail"] == "a valid bearer token is required"


# A route of each kind, called by someone its role lets in: the credential alone decides.
CREDENTIAL_ROUTES = [("/api/v1/agencies", "nurse1"), ("/api/v1/audit", "auditor1"),
                     ("/api/v1/audit/verify", "auditor1")]


@pytest.mark.parametrize(("path", "who"), CREDENTIAL_ROUTES)
def test_expired_token_is_refused_from_the_moment_it_expires(app: Flask, api: Api,
                                                              clock: Clock, path: str,
                                                              who: str) -> None:
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        token = accounts.create_token(session, who, timedelta(hours=1), clock())
    assert api.get(path, token).status_code == 200
    clock.advance(minutes=59, seconds=59)
    assert api.get(path, token).status_code == 200
    clock.advance(seconds=1)
    _assert_problem(api.get(path, token), 401)


@pytest.mark.parametrize(("path", "who"), CREDENTIAL_ROUTES)
def test_revoked_token_is_refused(app: Flask, api: Api, clock: Clock, path: str,
                                  who: str) -> None:
    assert api.get(path, who).status_code == 200
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        session.execute(update(ApiToken).where(
            ApiToken.token_hash == accounts.hash_token(api.tokens[who])
        ).values(revoked_at=clock()))
        session.commit()
    _assert_problem(api.get(path, who), 401)


@pytest.mark.parametrize(("path", "who"), CREDENTIAL_ROUTES)
def test_deactivated_staff_token_is_refused(app: Flask, api: Api, path: str,
                                            who: str) -> None:
    assert api.get(path, who).status_code == 200
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        session.execute(update(Staff).where(Staff.username == who).values(active=False))
        session.commit()
    _assert_problem(api.get(path, who), 401)


def test_tokens_are_stored_only_hashed(app: Flask, api: Api) -> None:
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        stored = set(session.scalars(select(ApiToken.token_hash)))
    assert not set(api.tokens.values()) & stored
    assert accounts.hash_token(api.tokens["nurse1"]) in stored


def test_role_change_applies_to_existing_tokens(app: Flask, api: Api) -> None:
    """Only the owner's current agency and role apply, not those at issue."""
    family = api.new_family("nurse1")
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        session.execute(update(Staff).where(Staff.username == "nurse1").values(role="auditor"))
        session.commit()
    _assert_problem(api.get(f"/api/v1/families/{family}", "nurse1"), 403)


@pytest.mark.parametrize(("method", "path", "roles"), ROUTES)
@pytest.mark.parametrize("role", ["practitioner", "coordinator", "auditor", "admin", "family"])
def test_role_matrix(api: Api, method: str, path: str, roles: set[str], role: str) -> None:
    family, family_token = _family_session(api)
    who = family_token if role == "family" else USERS[role]
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    response = api.call(method, path.format(fam=family), who, json=body)
    if role in roles:
        # Let in: whatever the (empty) body or the family's state then make of
        # it, never a refusal of the role, of the credential, or a server error.
        assert response.status_code < 500, response.get_data(as_text=True)
        assert response.status_code != 401
        if response.status_code == 403:
            assert response.get_json()["type"] != "urn:onestory:problem:role-not-permitted"
    else:
        problem = _assert_problem(response, 403)
        assert problem["type"] == "urn:onestory:problem:role-not-permitted"


def test_role_check_comes_before_visibility(api: Api) -> None:
    # An auditor learns nothing about whether a family exists.
    family = api.new_family("nurse1")
    for path in (f"/api/v1/families/{family}", "/api/v1/families/fam_missing"):
        _assert_problem(api.get(path, "auditor1"), 403)


@pytest.mark.parametrize("who", ["auditor1", "admin1"])
def test_auditor_and_admin_read_no_family_content(api: Api, who: str) -> None:
    family = api.new_family("nurse1", display_name="Secret Name")
    api.write(family, "health", "marker-health-note")
    api.sign(family, {"oversight": ["involvement", "health", "contact"]})
    for method, path, _ in ROUTES:
        if method != "GET":
            continue
        response = api.get(path.format(fam=family).replace("name=x", "name=Secret Name"), who)
        text = response.get_data(as_text=True)
        assert "marker-health-note" not in text
        assert "Secret Name" not in text


def test_wrong_agency_is_not_found_and_identical_to_missing(api: Api) -> None:
    family = api.new_family("nurse1", display_name="Aylin Demir")
    hidden = api.get(f"/api/v1/families/{family}", "physio1")
    missing = api.get("/api/v1/families/fam_does_not_exist", "physio1")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.get_json() == missing.get_json()
    for sub in ("consent", "consent/history", "access-log"):
        assert api.get(f"/api/v1/families/{family}/{sub}", "physiocoord").get_json() == \
            api.get(f"/api/v1/families/fam_nope/{sub}", "physiocoord").get_json()


class TestFamilyToken:
    def test_reaches_only_its_own_family(self, api: Api) -> None:
        family, token = _family_session(api)
        other = api.new_family("nurse1", display_name="Other Family")
        api.sign(other, {"physio": ["health"]})
        assert api.get(f"/api/v1/families/{family}/consent", token).status_code == 200
        for sub in ("consent", "consent/history", "access-log"):
            _assert_problem(api.get(f"/api/v1/families/{other}/{sub}", token), 404)
        _assert_problem(api.post(f"/api/v1/families/{other}/consent/revoke", token, json={}),
                        404)

    def test_cannot_read_the_record_or_write(self, api: Api) -> None:
        family, token = _family_session(api)
        _assert_problem(api.get(f"/api/v1/families/{family}", token), 403)
        _assert_problem(api.post(f"/api/v1/families/{family}/entries", token,
                                 json={"field": "story", "value": "x"}), 403)
        _assert_problem(api.put(f"/api/v1/families/{family}/consent", token,
                                json=consent_body({})), 403)
        _assert_problem(api.get("/api/v1/agencies", token), 403)

    def test_expires(self, api: Api, clock: Clock) -> None:
        family, token = _family_session(api)
        clock.advance(minutes=15)
        _assert_problem(api.get(f"/api/v1/families/{family}/consent", token), 401)
