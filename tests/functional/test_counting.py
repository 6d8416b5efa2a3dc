"""Counting consent: the form's "statistics" answer (default no), carried over
by every path that writes a new form version, shown in every view of the
form, and changed by the family itself on its page. On both databases."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from audit.model import AuditEntry
from consent.tables import ConsentFormRow
from coordination.casework import counting
from coordination.errors import NotPermitted
from tests.conftest import Api, Clock, consent_body
from tests.web import csrf_token, set_passwords, sign_in

GRID = {"health-centre": ["involvement", "contact", "health"],
        "physio": ["involvement", "health"]}


def _form(api: Api, family: str, who: str = "coord1") -> dict[str, Any]:
    response = api.get(f"/api/v1/families/{family}/consent", who)
    assert response.status_code == 200, response.get_json()
    form: dict[str, Any] = response.get_json()
    return form


def _versions(app: Flask, family: str) -> list[tuple[int, bool, str]]:
    with app.extensions["onestory"].sessions() as session:
        return [(r.version, r.statistics, r.change) for r in session.scalars(
            select(ConsentFormRow).where(ConsentFormRow.family_id == family)
            .order_by(ConsentFormRow.version))]


def _family_token(api: Api, receipt: dict[str, str]) -> str:
    opened = api.post("/api/v1/family/session", json={"receipt_code": receipt["code"],
                                                      "pin": receipt["pin"]})
    assert opened.status_code == 201, opened.get_json()
    token: str = opened.get_json()["token"]
    return token


def test_the_answer_defaults_to_no_and_is_shown_in_every_view(api: Api) -> None:
    family = api.new_family()
    signed = api.sign(family, GRID)
    assert signed["statistics"] is False
    assert _form(api, family)["statistics"] is False
    assert api.sign(family, GRID, statistics=True)["statistics"] is True
    assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    assert api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
                    json={"agency": "physio", "field": "involvement"}).status_code == 200
    # Every reader sees it, with the full view or its own column only.
    assert _form(api, family, "physio1")["view"] == "own_column"
    assert _form(api, family, "physio1")["statistics"] is True
    history = api.get(f"/api/v1/families/{family}/consent/history", "coord1").get_json()
    assert [v["statistics"] for v in history] == [False, True, True]


@pytest.mark.parametrize("value", ["yes", 1, None, "true"])
def test_anything_but_true_or_false_records_nothing(app: Flask, api: Api, value: Any) -> None:
    family = api.new_family()
    response = api.put(f"/api/v1/families/{family}/consent", "coord1",
                       json=consent_body(GRID, statistics=value))
    assert response.status_code == 422
    assert "statistics" in response.get_json()["errors"]
    assert _versions(app, family) == []


def test_every_new_version_carries_the_answer_over(app: Flask, api: Api) -> None:
    family = api.new_family()
    receipt = api.sign(family, {**GRID, "ecec": ["involvement"]}, statistics=True)["receipt"]
    token = _family_token(api, receipt)
    base = f"/api/v1/families/{family}"
    # A coordinator's revocation, and the family's own.
    assert api.post(f"{base}/consent/revoke", "coord1",
                    json={"agency": "physio", "field": "health"}).status_code == 200
    assert api.post(f"{base}/consent/revoke", token, json={"field": "contact"}
                    ).status_code == 200
    # An access request the family approves.
    asked = api.post(f"{base}/access-requests", "physio1",
                     json={"fields": ["health"], "reason": "follow-up of the exercises"})
    assert asked.status_code == 201, asked.get_json()
    approved = api.post(f"{base}/access-requests/{asked.get_json()['id']}/approve", token,
                        json={})
    assert approved.status_code == 200, approved.get_json()
    # A referral the family agrees to.
    assert api.post(f"{base}/involvements", "coord1", json={"agency": "ecec"}
                    ).status_code == 201
    referred = api.post(f"{base}/referrals", "coord1", json={
        "to": "cps", "reason": "support at home", "fields": ["health"]})
    assert referred.status_code == 201, referred.get_json()
    agreed = api.post(f"{base}/referrals/{referred.get_json()['id']}/agree", token, json={})
    assert agreed.status_code == 200, agreed.get_json()
    # The family ends a service's part.
    assert api.call("DELETE", f"{base}/involvements/ecec", token, json={}).status_code == 200
    versions = _versions(app, family)
    assert len(versions) == 6, versions
    assert all(statistics for _, statistics, _ in versions), versions
    assert _form(api, family)["statistics"] is True
    # The family reads its own answer through the API too.
    assert api.get(f"{base}/consent", token).get_json()["statistics"] is True


def test_forms_recorded_before_the_question_count_as_no(app: Flask, api: Api) -> None:
    family = api.new_family()
    api.sign(family, GRID)
    with app.extensions["onestory"].engine.connect() as conn:
        default = conn.execute(select(ConsentFormRow.statistics)).scalars().all()
    assert default == [False]


def test_only_the_family_gives_its_answer_here(app: Flask, api: Api, clock: Clock) -> None:
    family = api.new_family()
    api.sign(family, GRID)
    rt = app.extensions["onestory"]
    from coordination import accounts

    with rt.sessions() as session:
        actor = accounts.authenticate(session, api.tokens["coord1"], clock())
        with pytest.raises(NotPermitted):
            counting.set_counting(session, rt.vault, actor, family, True, clock())
    assert [s for _, s, _ in _versions(app, family)] == [False]


# --- on the family's page ---------------------------------------------------------


def _text(response: Any) -> str:
    html = re.sub(r"</?(?:time|bdi|span)\b[^>]*>", "", response.get_data(as_text=True))
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _family_client(app: Flask, receipt: dict[str, str]) -> FlaskClient:
    client = app.test_client()
    token = csrf_token(client.get("/family/").get_data(as_text=True))
    assert client.post("/family/", data={"receipt_code": receipt["code"], "pin": receipt["pin"],
                                         "csrf_token": token}).status_code == 302
    return client


def test_the_family_page_says_it_and_the_family_changes_it(app: Flask, api: Api) -> None:
    family = api.new_family()
    receipt = api.sign(family, GRID)["receipt"]
    client = _family_client(app, receipt)
    page = _text(client.get("/family/consent"))
    assert "Your family is not counted in any numbers." in page
    assert "Totals never show your name, and small numbers are hidden." in page
    # A confirmation step first: nothing changes on the way.
    ask = client.get("/family/counting/yes")
    assert ask.status_code == 200 and "Are you sure?" in _text(ask)
    assert len(_versions(app, family)) == 1
    token = csrf_token(ask.get_data(as_text=True))
    unconfirmed = client.post("/family/counting/yes", data={"csrf_token": token})
    assert unconfirmed.status_code == 302 and len(_versions(app, family)) == 1
    done = client.post("/family/counting/yes", data={"csrf_token": token, "confirmed": "1"})
    assert done.status_code == 302
    assert _versions(app, family)[-1] == (2, True, "statistics yes")
    assert _form(api, family)["statistics"] is True
    page = _text(client.get("/family/consent"))
    assert "You said yes: your family is counted in numbers without names." in page
    with app.extensions["onestory"].sessions() as session:
        entry = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "consent.statistics")).one()
    assert entry.family_id == family and entry.actor == "family"
    assert json.loads(entry.detail or "{}")["counted"] is True
    # The same answer again writes no version.
    client.post("/family/counting/yes", data={"csrf_token": token, "confirmed": "1"})
    assert len(_versions(app, family)) == 2
    client.post("/family/counting/no", data={"csrf_token": token, "confirmed": "1"})
    assert _versions(app, family)[-1] == (3, False, "statistics no")
    # A paper form signed before the family's answer is refused, as for its other changes.
    stale = api.put(f"/api/v1/families/{family}/consent", "coord1",
                    json=consent_body(GRID, signed_on="2020-01-01"))
    assert stale.status_code == 409


def test_the_family_page_in_other_languages(app: Flask, api: Api) -> None:
    family = api.new_family()
    receipt = api.sign(family, GRID)["receipt"]
    client = _family_client(app, receipt)
    english = _text(client.get("/family/consent"))
    for lang in ("nb", "tr", "ar"):
        page = _text(client.get(f"/family/consent?lang={lang}"))
        assert "Your family is not counted in any numbers." not in page, lang
        assert page != english


def test_a_family_without_a_form_is_told_nothing_changed(app: Flask, api: Api) -> None:
    family = api.new_family()
    receipt = api.sign(family, GRID)["receipt"]
    client = _family_client(app, receipt)
    token = csrf_token(client.get("/family/counting/no").get_data(as_text=True))
    # Nothing to change: "no" when the form already says no.
    client.post("/family/counting/no", data={"csrf_token": token, "confirmed": "1"})
    with app.extensions["onestory"].sessions() as session:
        assert session.scalar(select(func.count()).select_from(ConsentFormRow)) == 1
    assert client.get("/family/counting/maybe").status_code == 404



def test_an_ended_form_is_counted_in_nothing_and_offers_no_change(app: Flask, api: Api,
                                                                   clock: Clock) -> None:
    """Reports count only families whose form is in force: once it has ended,
    the page says the family is not counted (even if it said yes) and the
    answer cannot be changed on it (it would change nothing)."""
    family = api.new_family()
    receipt = api.sign(family, GRID, statistics=True)["receipt"]
    clock.advance(days=400)
    client = _family_client(app, receipt)
    page = _text(client.get("/family/consent"))
    assert "Your form has ended, so your family is not counted in any numbers." in page
    assert "You said yes" not in page and "/family/counting/" not in page
    ask = client.get("/family/counting/no")
    assert ask.status_code == 302 and ask.headers["Location"].endswith("/family/consent")
    token = csrf_token(client.get("/family/consent").get_data(as_text=True))
    done = client.post("/family/counting/no", data={"csrf_token": token, "confirmed": "1"})
    assert done.status_code == 302 and len(_versions(app, family)) == 1
    assert "ask one of the services for a new form" in _text(client.get("/family/consent"))

# --- on the staff pages -------------------------------------------------------------


def test_staff_record_the_answer_unticked_by_default(app: Flask, api: Api) -> None:
    set_passwords(app)
    family = api.new_family()
    client = app.test_client()
    sign_in(client, "coord1")
    blank = client.get(f"/staff/families/{family}/consent/new").get_data(as_text=True)
    assert "May the family be counted in anonymous statistics?" in blank
    box = re.search(r'<input type="checkbox" name="statistics"[^>]*>', blank)
    assert box and "checked" not in box.group(0)
    page = client.get(f"/staff/families/{family}/consent/new").get_data(as_text=True)
    data = {"cell": ["health-centre:involvement"], "signed_by": "Guardian",
            "signed_on": "2026-11-22", "method": "paper", "purpose": "support",
            "valid_until": "2027-11-22", "receipt_language": "en", "statistics": "1",
            "csrf_token": csrf_token(page),
            "once": re.search(r'name="once" value="([^"]+)"', page).group(1)}  # type: ignore
    assert client.post(f"/staff/families/{family}/consent/new", data=data).status_code == 201
    assert _form(api, family)["statistics"] is True
    shown = _text(client.get(f"/staff/families/{family}/consent"))
    assert "The family may be counted in anonymous statistics." in shown
    history = _text(client.get(f"/staff/families/{family}/consent/history"))
    assert "The family may be counted in anonymous statistics." in history
