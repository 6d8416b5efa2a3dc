"""Every act leaves exactly one pseudonymous audit entry, committed with the act.

For each act - reads of the shared record, search, writes, referrals,
consent, the access log, family sign-in, tokens, erasure and every kind of
refusal - exactly one new entry appears (erasure: its two documented
steps), naming the right action, outcome, actor, agency, role, family and
reason, and carrying the client's X-Request-ID. No column of any audit row
ever holds a value: a name, an entry's text, a birth date, an address.

Atomicity: when the log cannot be appended to, the act fails with a 503
problem, returns no data and did not happen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

import audit.services
from audit.model import Action, AuditEntry, AuditHead
from audit.services import AuditUnavailable
from consent.tables import ConsentFormRow
from coordination import accounts
from coordination.model import ApiToken, Entry, Family, Involvement
from tests.conftest import Api, Clock, consent_body

NAME = "Aylin Demir"
BIRTH_DATE = "2019-03-14"
ADDRESS = "Storgata 12, 0155 Oslo"
NATIONAL_ID = "14031912345"
MEMBER = "Emir Demirel"
HEALTH_NOTE = "asthma, inhaler twice a day"
STORY_NOTE = "fled the flood in the spring and sleeps badly"
NEW_NOTE = "walks with a limp since the fall"
SIGNED_BY = "Guardian Name"
PURPOSE = "coordinated support from the family centre"
VALUES = (NAME, BIRTH_DATE, ADDRESS, NATIONAL_ID, MEMBER, HEALTH_NOTE, STORY_NOTE, NEW_NOTE,
          SIGNED_BY, PURPOSE, "Demir", "Storgata", "asthma", "inhaler")
PROBLEM = "application/problem+json"


# --- helpers ------------------------------------------------------------------------


def audit_rows(app: Flask) -> list[AuditEntry]:
    with app.extensions["onestory"].sessions() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def last_seq(app: Flask) -> int:
    with app.extensions["onestory"].sessions() as session:
        return int(session.scalar(select(func.coalesce(func.max(AuditEntry.seq), 0))))


def entries_after(app: Flask, seq: int) -> list[AuditEntry]:
    return [row for row in audit_rows(app) if row.seq > seq]


def one_entry_after(app: Flask, seq: int) -> AuditEntry:
    new = entries_after(app, seq)
    assert len(new) == 1, [(r.seq, r.action, r.reason) for r in new]
    return new[0]


def expect(entry: AuditEntry, **wanted: Any) -> None:
    got = {key: getattr(entry, key) for key in wanted}
    assert got == wanted


def split(names: str | None) -> list[str]:
    return names.split(",") if names else []


def assert_no_values(app: Flask, *extra: str) -> None:
    """No column of any audit row holds a value used in the test."""
    rows = audit_rows(app)
    assert rows
    columns = [c.key for c in AuditEntry.__table__.columns]
    for row in rows:
        for column in columns:
            text = str(getattr(row, column) or "").casefold()
            for value in (*VALUES, *extra):
                assert value.casefold() not in text, (row.seq, column, value)


def rid(request_id: str) -> dict[str, dict[str, str]]:
    return {"headers": {"X-Request-ID": request_id}}


def count(app: Flask, model: Any, *where: Any) -> int:
    with app.extensions["onestory"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)))


@dataclass
class Case:
    id: str
    receipt: dict[str, str]


@pytest.fixture
def case(api: Api) -> Case:
    """A family recorded by the health centre with every identifying attribute,
    two notes, and a form that lets physio know of it and read health."""
    family = api.new_family(
        "nurse1", display_name=NAME, birth_date=BIRTH_DATE, address=ADDRESS,
        national_id=NATIONAL_ID, languages=["tr", "nb"],
        members=[{"name": MEMBER, "relation": "child", "birth_date": BIRTH_DATE}])
    api.write(family, "health", HEALTH_NOTE)
    api.write(family, "story", STORY_NOTE)
    receipt = api.sign(family, {"physio": ["involvement", "health"]})["receipt"]
    return Case(family, receipt)


def family_token(api: Api, case: Case) -> str:
    response = api.post("/api/v1/family/session", json={
        "receipt_code": case.receipt["code"], "pin": case.receipt["pin"]})
    assert response.status_code == 201, response.get_json()
    token: str = response.get_json()["token"]
    return token


# --- reads ---------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "agency", "role"), [
    ("physio1", "physio", "practitioner"),
    ("nurse1", "health-centre", "practitioner"),
    ("coord1", "health-centre", "coordinator"),
])
def test_record_read_records_fields_shown_and_withheld_exactly(
        app: Flask, api: Api, case: Case, who: str, agency: str, role: str) -> None:
    before = last_seq(app)
    response = api.get(f"/api/v1/families/{case.id}", who, **rid(f"req-read-{who}"))
    assert response.status_code == 200
    body = response.get_json()
    entry = one_entry_after(app, before)
    expect(entry, action="record.read", outcome="ok", actor=who, agency_id=agency, role=role,
           family_id=case.id, reason=None, request_id=f"req-read-{who}")
    assert sorted(split(entry.shown)) == sorted(body["fields"])
    assert sorted(split(entry.withheld)) == sorted(body["withheld"])
    assert set(split(entry.shown)).isdisjoint(split(entry.withheld))
    assert len(split(entry.shown)) + len(split(entry.withheld)) == 8  # the whole catalogue
    if who == "physio1":
        assert "health" in split(entry.shown) and "story" in split(entry.withheld)
    assert_no_values(app)


def test_search_is_recorded_without_the_name_or_birth_date(
        app: Flask, api: Api, case: Case) -> None:
    before = last_seq(app)
    response = api.get("/api/v1/families", "nurse1", **rid("req-search"),
                       query_string={"name": NAME.upper(), "birth_date": BIRTH_DATE})
    assert response.status_code == 200
    assert [f["id"] for f in response.get_json()] == [case.id]
    entry = one_entry_after(app, before)
    expect(entry, action="family.search", outcome="ok", actor="nurse1",
           agency_id="health-centre", role="practitioner", family_id=None, reason=None,
           request_id="req-search")
    assert case.id in (entry.detail or "")
    assert_no_values(app, NAME.upper())


def test_family_create_is_recorded(app: Flask, api: Api) -> None:
    before = last_seq(app)
    response = api.post("/api/v1/families", "coord1", **rid("req-create"), json={
        "display_name": NAME, "birth_date": BIRTH_DATE, "address": ADDRESS,
        "national_id": NATIONAL_ID, "members": [{"name": MEMBER, "relation": "child"}]})
    assert response.status_code == 201, response.get_json()
    entry = one_entry_after(app, before)
    expect(entry, action="family.create", outcome="ok", actor="coord1",
           agency_id="health-centre", role="coordinator", family_id=response.get_json()["id"],
           reason=None, request_id="req-create")
    assert_no_values(app)


def test_entry_write_is_recorded(app: Flask, api: Api, case: Case) -> None:
    before = last_seq(app)
    response = api.post(f"/api/v1/families/{case.id}/entries", "nurse1", **rid("req-write"),
                        json={"field": "health", "value": NEW_NOTE})
    assert response.status_code == 201
    entry = one_entry_after(app, before)
    expect(entry, action="entry.write", outcome="ok", actor="nurse1",
           agency_id="health-centre", role="practitioner", family_id=case.id, reason=None,
           request_id="req-write")
    assert split(entry.shown) == ["health"]
    assert response.get_json()["id"] in (entry.detail or "")
    assert_no_values(app)


def test_referral_and_involvement_update_are_recorded(app: Flask, api: Api, case: Case) -> None:
    before = last_seq(app)
    response = api.post(f"/api/v1/families/{case.id}/involvements", "coord1",
                        **rid("req-refer"), json={"agency": "physio"})
    assert response.status_code == 201, response.get_json()
    entry = one_entry_after(app, before)
    expect(entry, action="involvement.refer", outcome="ok", actor="coord1",
           agency_id="health-centre", role="coordinator", family_id=case.id, reason=None,
           request_id="req-refer")
    assert "physio" in (entry.detail or "")

    before = last_seq(app)
    response = api.patch(f"/api/v1/families/{case.id}/involvements/physio", "physiocoord",
                         **rid("req-close"), json={"status": "closed"})
    assert response.status_code == 200, response.get_json()
    entry = one_entry_after(app, before)
    expect(entry, action="involvement.update", outcome="ok", actor="physiocoord",
           agency_id="physio", role="coordinator", family_id=case.id, reason=None,
           request_id="req-close")
    assert_no_values(app)


def test_consent_read_sign_history_are_recorded(app: Flask, api: Api, case: Case) -> None:
    before = last_seq(app)
    response = api.get(f"/api/v1/families/{case.id}/consent", "nurse1", **rid("req-consent"))
    assert response.status_code == 200
    expect(one_entry_after(app, before), action="consent.read", outcome="ok", actor="nurse1",
           agency_id="health-centre", role="practitioner", family_id=case.id, reason=None,
           request_id="req-consent")

    before = last_seq(app)
    response = api.put(f"/api/v1/families/{case.id}/consent", "coord1", **rid("req-sign"),
                       json=consent_body({"physio": ["health"], "ecec": ["education"]}))
    assert response.status_code == 201, response.get_json()
    expect(one_entry_after(app, before), action="consent.sign", outcome="ok", actor="coord1",
           agency_id="health-centre", role="coordinator", family_id=case.id, reason=None,
           request_id="req-sign")

    before = last_seq(app)
    response = api.get(f"/api/v1/families/{case.id}/consent/history", "coord1",
                       **rid("req-history"))
    assert response.status_code == 200
    assert len(response.get_json()) == 2
    expect(one_entry_after(app, before), action="consent.history", outcome="ok",
           actor="coord1", agency_id="health-centre", role="coordinator", family_id=case.id,
           reason=None, request_id="req-history")
    assert_no_values(app)


@pytest.mark.parametrize("by_family", [False, True])
def test_consent_revoke_is_recorded(app: Flask, api: Api, case: Case, by_family: bool) -> None:
    who = family_token(api, case) if by_family else "coord1"
    before = last_seq(app)
    response = api.post(f"/api/v1/families/{case.id}/consent/revoke", who,
                        **rid("req-revoke"), json={"agency": "physio", "field": "health"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["version"] == 2
    entry = one_entry_after(app, before)
    if by_family:
        expect(entry, actor="family", agency_id=None, role="family")
    else:
        expect(entry, actor="coord1", agency_id="health-centre", role="coordinator")
    expect(entry, action="consent.revoke", outcome="ok", family_id=case.id, reason=None,
           request_id="req-revoke")
    assert_no_values(app, *([who] if by_family else []))


@pytest.mark.parametrize("by_family", [False, True])
def test_access_log_read_is_recorded(app: Flask, api: Api, case: Case, by_family: bool) -> None:
    who = family_token(api, case) if by_family else "coord1"
    before = last_seq(app)
    response = api.get(f"/api/v1/families/{case.id}/access-log", who, **rid("req-log"))
    assert response.status_code == 200
    entry = one_entry_after(app, before)
    if by_family:
        expect(entry, actor="family", agency_id=None, role="family")
    else:
        expect(entry, actor="coord1", agency_id="health-centre", role="coordinator")
    expect(entry, action="access_log.read", outcome="ok", family_id=case.id, reason=None,
           request_id="req-log")
    assert_no_values(app, *([who] if by_family else []))


# --- sign-in, tokens, erasure ----------------------------------------------------------


def test_family_login_is_recorded(app: Flask, api: Api, case: Case) -> None:
    before = last_seq(app)
    response = api.post("/api/v1/family/session", **rid("req-login"), json={
        "receipt_code": case.receipt["code"], "pin": case.receipt["pin"]})
    assert response.status_code == 201
    token = response.get_json()["token"]
    expect(one_entry_after(app, before), action="login", outcome="ok", actor="family",
           agency_id=None, role="family", family_id=case.id, reason=None,
           request_id="req-login")
    assert_no_values(app, token, case.receipt["code"])


def test_failed_family_login_is_recorded(app: Flask, api: Api, case: Case) -> None:
    wrong = "000000" if case.receipt["pin"] != "000000" else "111111"
    before = last_seq(app)
    response = api.post("/api/v1/family/session", **rid("req-badpin"), json={
        "receipt_code": case.receipt["code"], "pin": wrong})
    assert response.status_code == 401
    assert response.mimetype == PROBLEM
    expect(one_entry_after(app, before), action="login.failed", outcome="denied",
           actor="family", agency_id=None, role="family", family_id=case.id,
           reason="wrong_code_or_pin", request_id="req-badpin")
    assert_no_values(app, case.receipt["code"])


def test_token_creation_is_recorded(app: Flask, api: Api, clock: Clock) -> None:
    before = last_seq(app)
    with app.extensions["onestory"].sessions() as session:
        token = accounts.create_token(session, "physiocoord", timedelta(days=1), clock())
    expect(one_entry_after(app, before), action="token.create", outcome="ok",
           actor="physiocoord", agency_id="physio", role="coordinator", family_id=None,
           reason=None, request_id=None)
    assert_no_values(app, token)


def erase(api: Api, family: str, request_id: str = "req-erase") -> Any:
    return api.call("DELETE", f"/api/v1/families/{family}", "admin1",
                    json={"reason": "the family asked to be forgotten"}, **rid(request_id))


def test_erasure_is_recorded(app: Flask, api: Api, case: Case) -> None:
    before = last_seq(app)
    assert erase(api, case.id).status_code == 204
    new = entries_after(app, before)
    # Erasure is recorded as its two documented steps: requested, then completed.
    assert [(e.action, e.outcome, e.reason) for e in new] == [
        ("family.erase", "ok", "requested"), ("family.erase", "ok", "completed")]
    for entry in new:
        expect(entry, actor="admin1", role="admin", family_id=case.id)
    assert_no_values(app)


def test_erasure_entries_carry_request_id_and_agency(app: Flask, api: Api, case: Case) -> None:
    before = last_seq(app)
    assert erase(api, case.id, "req-erase-42").status_code == 204
    new = entries_after(app, before)
    assert len(new) == 2
    for entry in new:
        expect(entry, request_id="req-erase-42", agency_id="oversight")


# --- refusals ------------------------------------------------------------------------


def test_refused_look_on_expired_form_is_recorded_as_expired(
        app: Flask, api: Api, case: Case, clock: Clock) -> None:
    assert api.get(f"/api/v1/families/{case.id}", "physio1").status_code == 200
    clock.advance(days=367)  # valid_until was a year after T0, counted through that day
    before = last_seq(app)
    response = api.get(f"/api/v1/families/{case.id}", "physio1", **rid("req-expired"))
    assert response.status_code == 404
    assert "expired" not in response.get_data(as_text=True)  # the reason is for the log only
    expect(one_entry_after(app, before), action="request.denied", outcome="denied",
           actor="physio1", agency_id="physio", role="practitioner", family_id=case.id,
           reason="expired", request_id="req-expired")
    assert_no_values(app)


def test_invisible_family_404_is_recorded_as_not_visible(
        app: Flask, api: Api, case: Case) -> None:
    before = last_seq(app)
    response = api.get(f"/api/v1/families/{case.id}", "ecec1", **rid("req-hidden"))
    assert response.status_code == 404
    missing = api.get("/api/v1/families/fam_does_not_exist", "ecec1")
    assert response.get_json() == missing.get_json()
    first, second = entries_after(app, before)
    expect(first, action="request.denied", outcome="denied", actor="ecec1", agency_id="ecec",
           role="practitioner", family_id=case.id, reason="not_visible",
           request_id="req-hidden")
    # Nothing in the answer tells the two apart; the log keeps the id asked for.
    expect(second, action="request.denied", outcome="denied", actor="ecec1",
           family_id="fam_does_not_exist", reason="absent")
    assert_no_values(app)


def test_401_on_a_family_keeps_the_id_in_the_detail_only(app: Flask, api: Api,
                                                          case: Case) -> None:
    """Anyone can send a request without a valid token: it does not go on the
    family's record (nor so into its "who looked"); the auditor finds the id
    in the detail."""
    before = last_seq(app)
    response = api.get(f"/api/v1/families/{case.id}/access-log", "os_not-a-real-token")
    assert response.status_code == 401
    entry = one_entry_after(app, before)
    expect(entry, action="request.denied", actor=None, family_id=None,
           reason="unauthenticated")
    assert json.loads(entry.detail or "{}")["path_family"] == case.id


@pytest.mark.parametrize("header", [None, "Bearer os_not-a-real-token"])
def test_401_is_recorded(app: Flask, api: Api, header: str | None) -> None:
    headers = {"X-Request-ID": "req-anon"}
    if header:
        headers["Authorization"] = header
    before = last_seq(app)
    response = api.get("/api/v1/agencies", headers=headers)
    assert response.status_code == 401
    assert response.headers["X-Request-ID"] == "req-anon"
    expect(one_entry_after(app, before), action="request.denied", outcome="denied",
           actor=None, agency_id=None, role=None, family_id=None, reason="unauthenticated",
           request_id="req-anon")


def test_403_role_refusal_is_recorded(app: Flask, api: Api, case: Case) -> None:
    before = last_seq(app)
    response = api.get(f"/api/v1/families/{case.id}", "auditor1", **rid("req-role"))
    assert response.status_code == 403
    entry = one_entry_after(app, before)
    # Refused for the role, before any look at the family: still an attempt
    # on that family, and on its record.
    expect(entry, action="request.denied", outcome="denied",
           actor="auditor1", agency_id="oversight", role="auditor", family_id=case.id,
           reason="role", request_id="req-role")
    assert "path_family" not in json.loads(entry.detail or "{}")
    assert_no_values(app)


def test_refused_who_looked_is_found_by_the_family_filter(app: Flask, api: Api,
                                                         case: Case) -> None:
    """A physiotherapist refused "Who looked" (a coordinator's page), on the
    API and on the staff page: both are in the log filtered by that family."""
    from tests.web import set_passwords, signed_in

    set_passwords(app)
    assert api.get(f"/api/v1/families/{case.id}/access-log", "physio1",
                   **rid("req-api-look")).status_code == 403
    page = signed_in(app, "physio1").get(f"/staff/families/{case.id}/access-log",
                                         headers={"X-Request-ID": "req-web-look"})
    assert page.status_code == 403
    found = api.get("/api/v1/audit", "auditor1", query_string={
        "family": case.id, "outcome": "denied"}).get_json()["items"]
    assert {(i["actor"], i["reason"], i["request_id"]) for i in found} == {
        ("physio1", "role", "req-api-look"), ("physio1", "role", "req-web-look")}


def test_409_refusal_of_a_family_act_is_recorded(app: Flask, api: Api, case: Case) -> None:
    """A referral the family has not agreed to (no involvement cell for the
    agency referred to) is refused with 409, changes nothing, and is on record."""
    before = last_seq(app)
    response = api.post(f"/api/v1/families/{case.id}/involvements", "coord1",
                        json={"agency": "ecec"}, **rid("req-refer"))
    assert response.status_code == 409
    expect(one_entry_after(app, before), action="request.denied", outcome="denied",
           actor="coord1", agency_id="health-centre", role="coordinator",
           family_id=case.id, reason="not_agreed", request_id="req-refer")
    assert count(app, Involvement, Involvement.family_id == case.id) == 1
    assert api.post(f"/api/v1/families/{case.id}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    before = last_seq(app)
    again = api.post(f"/api/v1/families/{case.id}/involvements", "coord1",
                     json={"agency": "physio"})  # already involved
    assert again.status_code == 409
    expect(one_entry_after(app, before), action="request.denied", family_id=case.id,
           reason="conflict")
    assert_no_values(app)
    # Not a look: the family's "who looked" leaves both out.
    looked = api.get(f"/api/v1/families/{case.id}/access-log", family_token(api, case))
    assert not [row for row in looked.get_json() if row["action"] == "request.denied"]


def test_409_refusal_on_a_staff_page_is_recorded(app: Flask, api: Api, case: Case) -> None:
    from tests.web import csrf_token, set_passwords, signed_in

    set_passwords(app)
    ref = api.post(f"/api/v1/families/{case.id}/referrals", "nurse1",
                   json={"to": "physio", "reason": "assess", "fields": []}).get_json()["id"]
    # The family takes back physiotherapy's `involvement` before it accepts.
    assert api.post(f"/api/v1/families/{case.id}/consent/revoke", family_token(api, case),
                    json={"agency": "physio", "field": "involvement"}).status_code == 200
    client = signed_in(app, "physiocoord")
    token = csrf_token(client.get("/staff/").get_data(as_text=True))
    before = last_seq(app)
    refused = client.post(f"/staff/referrals/{ref}/accept", data={"csrf_token": token})
    assert refused.status_code == 302  # back to the referral, saying nothing changed
    # (The route names a referral, not a family: the refusal names no family.)
    expect(one_entry_after(app, before), action="request.denied", outcome="denied",
           actor="physiocoord", family_id=None, reason="not_agreed")
    assert count(app, Involvement, Involvement.family_id == case.id) == 1


def test_403_not_involved_is_recorded(app: Flask, api: Api, case: Case) -> None:
    before = last_seq(app)
    response = api.post(f"/api/v1/families/{case.id}/entries", "physio1", **rid("req-np"),
                        json={"field": "health", "value": NEW_NOTE})
    assert response.status_code == 403
    expect(one_entry_after(app, before), action="request.denied", outcome="denied",
           actor="physio1", agency_id="physio", role="practitioner", family_id=case.id,
           reason="not_permitted", request_id="req-np")
    assert count(app, Entry, Entry.family_id == case.id) == 2
    assert_no_values(app)


def test_generated_request_id_when_the_client_sends_none_or_a_bad_one(
        app: Flask, api: Api, case: Case) -> None:
    for headers in ({}, {"X-Request-ID": "not ok; <script>"}):
        before = last_seq(app)
        response = api.get(f"/api/v1/families/{case.id}", "nurse1", headers=headers)
        assert response.status_code == 200
        entry = one_entry_after(app, before)
        assert entry.request_id
        assert entry.request_id == response.headers["X-Request-ID"]
        assert entry.request_id != headers.get("X-Request-ID")


def test_a_whole_case_leaves_no_value_in_the_log(
        app: Flask, api: Api, case: Case, clock: Clock) -> None:
    token = family_token(api, case)
    api.get("/api/v1/families", "nurse1", query_string={"name": NAME})
    api.get(f"/api/v1/families/{case.id}", "physio1")
    api.post(f"/api/v1/families/{case.id}/involvements", "coord1",
             json={"agency": "physio"})
    api.write(case.id, "health", NEW_NOTE, who="physio1")
    api.get(f"/api/v1/families/{case.id}/consent", token)
    api.get(f"/api/v1/families/{case.id}/consent/history", token)
    api.post(f"/api/v1/families/{case.id}/consent/revoke", token, json={})
    api.get(f"/api/v1/families/{case.id}/access-log", "coord1")
    api.get(f"/api/v1/families/{case.id}", "ecec1")
    clock.advance(days=1)
    assert erase(api, case.id).status_code == 204
    assert_no_values(app, token, case.receipt["code"])


# --- atomicity: no log, no act ------------------------------------------------------


@pytest.fixture
def broken_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Any]]:
    """Call it to make every append fail until the test's end of arrangement."""
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AuditUnavailable("test: the audit log is unavailable")

    with monkeypatch.context() as patch:
        yield lambda: patch.setattr(audit.services, "record", refuse)


def assert_unavailable(response: Any) -> str:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert set(body) >= {"type", "title", "status", "detail", "errors"}
    assert body["status"] == 503
    text: str = response.get_data(as_text=True)
    for value in VALUES:
        assert value.casefold() not in text.casefold(), value
    return text


def test_entry_write_fails_without_the_log(
        app: Flask, api: Api, case: Case, broken_log: Callable[[], Any]) -> None:
    before = last_seq(app)
    broken_log()
    assert_unavailable(api.post(f"/api/v1/families/{case.id}/entries", "nurse1",
                                json={"field": "health", "value": NEW_NOTE}))
    assert count(app, Entry, Entry.family_id == case.id) == 2
    assert last_seq(app) == before


def test_consent_sign_fails_without_the_log(
        app: Flask, api: Api, case: Case, broken_log: Callable[[], Any]) -> None:
    broken_log()
    text = assert_unavailable(api.put(
        f"/api/v1/families/{case.id}/consent", "coord1",
        json=consent_body({"ecec": ["education"]}, reissue_pin=True)))
    assert '"pin"' not in text and "receipt" not in text
    assert count(app, ConsentFormRow, ConsentFormRow.family_id == case.id) == 1


def test_consent_revoke_fails_without_the_log(
        app: Flask, api: Api, case: Case, broken_log: Callable[[], Any]) -> None:
    broken_log()
    assert_unavailable(api.post(f"/api/v1/families/{case.id}/consent/revoke", "coord1",
                                json={}))
    assert count(app, ConsentFormRow, ConsentFormRow.family_id == case.id) == 1


def test_family_create_fails_without_the_log(
        app: Flask, api: Api, broken_log: Callable[[], Any]) -> None:
    families = count(app, Family)
    broken_log()
    assert_unavailable(api.post("/api/v1/families", "nurse1", json={
        "display_name": NAME, "address": ADDRESS}))
    assert count(app, Family) == families


def test_referral_fails_without_the_log(
        app: Flask, api: Api, case: Case, broken_log: Callable[[], Any]) -> None:
    broken_log()
    assert_unavailable(api.post(f"/api/v1/families/{case.id}/involvements", "coord1",
                                json={"agency": "physio"}))
    assert count(app, Involvement, Involvement.family_id == case.id,
                 Involvement.agency_id == "physio") == 0


def test_family_login_fails_without_the_log(
        app: Flask, api: Api, case: Case, broken_log: Callable[[], Any]) -> None:
    broken_log()
    text = assert_unavailable(api.post("/api/v1/family/session", json={
        "receipt_code": case.receipt["code"], "pin": case.receipt["pin"]}))
    assert "token" not in text
    assert count(app, ApiToken, ApiToken.family_id == case.id) == 0


def test_erasure_fails_without_the_log(
        app: Flask, api: Api, case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AuditUnavailable("test: the audit log is unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(audit.services, "record", refuse)
        assert_unavailable(erase(api, case.id))
    assert count(app, Family, Family.id == case.id) == 1
    record = api.get(f"/api/v1/families/{case.id}", "nurse1")
    assert record.status_code == 200
    assert record.get_json()["display_name"] == NAME


@pytest.mark.parametrize("path", [
    "/api/v1/families/{fam}",
    "/api/v1/families/{fam}/consent",
    "/api/v1/families/{fam}/consent/history",
    "/api/v1/families/{fam}/access-log",
    "/api/v1/families?name=Aylin%20Demir",
])
def test_reads_return_nothing_without_the_log(
        app: Flask, api: Api, case: Case, broken_log: Callable[[], Any], path: str) -> None:
    before = last_seq(app)
    broken_log()
    text = assert_unavailable(api.get(path.format(fam=case.id), "coord1"))
    assert "fields" not in text and "grants" not in text and case.id not in text
    assert last_seq(app) == before


def test_a_missing_head_row_also_fails_closed(app: Flask, api: Api, case: Case,
                                              clock: Clock) -> None:
    """The other way the log can be unavailable: its head row is gone."""
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        head = session.get(AuditHead, 1)
        assert head is not None
        saved = (head.seq, head.hash, head.prev_hash)
        session.delete(head)
        session.commit()
    before = last_seq(app)
    try:
        assert_unavailable(api.post(f"/api/v1/families/{case.id}/entries", "nurse1",
                                    json={"field": "health", "value": NEW_NOTE}))
        text = assert_unavailable(api.get(f"/api/v1/families/{case.id}", "nurse1"))
        assert "fields" not in text and HEALTH_NOTE not in text
        assert count(app, Entry, Entry.family_id == case.id) == 2
        assert last_seq(app) == before  # no entry written without a head to follow
        with rt.sessions() as session, pytest.raises(AuditUnavailable):
            audit.services.record(session, audit.services.Event(action=Action.LOGIN), clock())
    finally:
        with rt.sessions() as session:
            session.add(AuditHead(id=1, seq=saved[0], hash=saved[1], prev_hash=saved[2]))
            session.commit()
    assert last_seq(app) == before
    assert api.get(f"/api/v1/families/{case.id}", "nurse1").status_code == 200
    assert one_entry_after(app, before).prev_hash == saved[1]
    assert audit.services.verify(rt.engine).ok
