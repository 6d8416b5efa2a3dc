"""The family page says plainly which service sees what because of the law,
until when and why, and that the family cannot stop it (in English and
Arabic); only while the grant is in force."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from tests.conftest import T0, Api, Clock
from tests.functional.test_duty_grants import WHY, act, propose
from tests.functional.test_web_family import _sign_in, _signed_in, _text

GRID = {"health-centre": ["involvement", "health", "protection"],
        "physio": ["involvement", "health"]}


def _case(api: Api) -> tuple[str, dict[str, str], str]:
    family = api.new_family("nurse1", display_name="Aylin Demir")
    receipt: dict[str, str] = api.sign(family, GRID)["receipt"]
    grant = propose(api, family).get_json()["id"]
    return family, receipt, grant


def test_the_family_reads_the_grant_in_force_and_that_it_cannot_stop_it(
        app: Flask, api: Api, clock: Clock) -> None:
    family, receipt, grant = _case(api)
    client = _signed_in(app, receipt)
    assert "because of the law" not in _text(client.get("/family/consent"))  # pending
    assert act(api, family, grant, "physiocoord").status_code == 200
    page = _text(client.get("/family/consent"))
    last = (T0.date() + timedelta(days=60)).strftime("%-d %B %Y")
    assert "Because of the law, Child protection can see this until" in page
    assert f"until {last}: " in page
    assert f"Why: {WHY}" in page.replace("“", "").replace("”", "").replace('"', "")
    assert "You cannot stop this. It stays even if you stop sharing with Child protection." \
        in page
    # True: all sharing is revoked, and the grant (and its sentence) stays.
    assert api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
                    json={}).status_code == 200
    assert "Because of the law, Child protection can see this" in _text(
        client.get("/family/consent"))
    # After its last day it ends by itself, and the page no longer says it.
    clock.advance(days=61)
    client = _signed_in(app, receipt)
    assert "Because of the law" not in _text(client.get("/family/consent"))


def test_in_arabic(app: Flask, api: Api) -> None:
    family, receipt, grant = _case(api)
    assert act(api, family, grant, "physiocoord").status_code == 200
    client = app.test_client()
    client.get("/family/?lang=ar")
    assert _sign_in(client, receipt["code"], receipt["pin"]).status_code == 302
    html = client.get("/family/consent").get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in html
    assert "مشاركة بحكم القانون" in html
    assert "بحكم القانون، يمكن لـ \u2068Child protection\u2069 أن ترى هذا حتى" in html
    assert "لا يمكنكم إيقاف هذا." in html
    assert WHY in html.replace("&#39;", "'")

