"""No free text in clear: a contact worker is an active staff member of the
agency, named only by that agency (API and staff pages); a new consent form's
legal basis is consent, while versions recorded before keep their text."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from consent.tables import ConsentFormRow
from coordination import accounts
from coordination.model import Involvement
from tests.conftest import Api, Clock, consent_body
from tests.web import post_form, set_passwords, signed_in

GRANTS = {"health-centre": ["involvement", "health"], "physio": ["involvement", "health"]}


def involvements(api: Api, family: str, who: str = "coord1") -> dict[str, Any]:
    body = api.get(f"/api/v1/families/{family}", who).get_json()
    return {i["agency"]: i["contact_worker"] for i in body["involvements"]}


def refer_physio(api: Api) -> str:
    family = api.new_family("nurse1")
    api.sign(family, GRANTS)
    made = api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "physio"})
    assert made.status_code == 201, made.get_json()
    return family


def rows(app: Flask) -> list[tuple[Any, ...]]:
    with app.extensions["onestory"].sessions() as session:
        return sorted(tuple(r) for r in session.execute(select(
            Involvement.family_id, Involvement.agency_id, Involvement.status,
            Involvement.contact_worker_id, Involvement.updated_at)))


def last_audit(app: Flask) -> Any:
    with app.extensions["onestory"].engine.connect() as conn:
        return conn.execute(text("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1")).one()


# --- the API ----------------------------------------------------------------------------


def test_the_creator_is_its_agencys_contact_worker(api: Api) -> None:
    family = api.new_family("nurse1")
    api.sign(family, GRANTS)
    assert involvements(api, family) == {"health-centre": "nurse1"}


@pytest.mark.parametrize("worker", ["physio1", "physiocoord", "coord1", "nobody"])
def test_a_referral_naming_a_contact_worker_is_422_whatever_its_value(
        api: Api, app: Flask, worker: str) -> None:
    family = api.new_family("nurse1")
    api.sign(family, GRANTS)
    before = rows(app)
    response = api.post(f"/api/v1/families/{family}/involvements", "coord1",
                        json={"agency": "physio", "contact_worker": worker})
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["contact_worker"]
    assert "only physio itself names its contact worker" in \
        response.get_json()["errors"]["contact_worker"][0]
    assert rows(app) == before  # not referred


def test_the_agency_names_and_clears_its_own_contact_worker(api: Api, app: Flask) -> None:
    family = refer_physio(api)
    assert involvements(api, family)["physio"] is None
    path = f"/api/v1/families/{family}/involvements/physio"
    named = api.patch(path, "physiocoord", json={"contact_worker": "physio1"})
    assert named.status_code == 200, named.get_json()
    assert named.get_json()["contact_worker"] == "physio1"
    entry = last_audit(app)
    assert entry.action == "involvement.update" and json.loads(entry.detail)[
        "contact_worker"] == "physio1"
    assert involvements(api, family)["physio"] == "physio1"
    assert involvements(api, family, "physio1")["physio"] == "physio1"
    cleared = api.patch(path, "physiocoord", json={"contact_worker": None})
    assert cleared.status_code == 200 and cleared.get_json()["contact_worker"] is None
    assert involvements(api, family)["physio"] is None


@pytest.mark.parametrize("worker", ["nurse1", "nobody", "Physio1", "physio1 ", "deactivated"])
def test_only_an_active_staff_member_of_that_agency_is_named(
        api: Api, app: Flask, clock: Clock, worker: str) -> None:
    family = refer_physio(api)
    path = f"/api/v1/families/{family}/involvements/physio"
    assert api.patch(path, "physiocoord", json={"contact_worker": "physio1"}).status_code == 200
    with app.extensions["onestory"].sessions() as session:
        accounts.add_staff(session, "deactivated", "physio", "practitioner", None, clock())
        accounts.deactivate_staff(session, "deactivated", None, clock())
    before = rows(app)
    response = api.patch(path, "physiocoord", json={"contact_worker": worker})
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["contact_worker"]
    assert "not an active staff member of physio" in \
        response.get_json()["errors"]["contact_worker"][0]
    assert rows(app) == before
    # With a valid status too, nothing of the body is applied.
    both = api.patch(path, "physiocoord", json={"status": "closed", "contact_worker": worker})
    assert both.status_code == 422 and rows(app) == before


def test_another_agency_cannot_name_anyones_contact_worker(api: Api, app: Flask) -> None:
    family = refer_physio(api)
    before = rows(app)
    for worker in ("physio1", "coord1"):
        response = api.patch(f"/api/v1/families/{family}/involvements/physio", "coord1",
                             json={"contact_worker": worker})
        assert response.status_code == 403
    assert rows(app) == before


def test_a_deactivated_contact_worker_is_handed_over_or_cleared(
        api: Api, app: Flask, clock: Clock) -> None:
    family = refer_physio(api)
    api.patch(f"/api/v1/families/{family}/involvements/physio", "physiocoord",
              json={"contact_worker": "physio1"})
    with app.extensions["onestory"].sessions() as session:
        done = accounts.deactivate_staff(session, "physio1", "physiocoord", clock())
    assert done.contact_worker_changes == 1
    assert involvements(api, family) == {"health-centre": "nurse1", "physio": "physiocoord"}
    with app.extensions["onestory"].sessions() as session:
        accounts.deactivate_staff(session, "nurse1", None, clock())
    assert involvements(api, family) == {"health-centre": None, "physio": "physiocoord"}
    assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 401


# --- legal basis ------------------------------------------------------------------------


@pytest.mark.parametrize("basis", ["vital_interest", "public_task", "legal_obligation",
                                   "contract", "legitimate_interest"])
def test_a_new_form_on_another_legal_basis_is_refused(api: Api, app: Flask,
                                                      basis: str) -> None:
    family = api.new_family("nurse1")
    api.sign(family, GRANTS)
    response = api.put(f"/api/v1/families/{family}/consent", "coord1",
                       json=consent_body(GRANTS, legal_basis=basis))
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["legal_basis"]
    assert "are duty grants" in response.get_json()["errors"]["legal_basis"][0]
    with app.extensions["onestory"].sessions() as session:
        assert session.scalar(select(func.count()).select_from(ConsentFormRow)) == 1


def test_versions_recorded_before_keep_their_legal_basis(api: Api, app: Flask) -> None:
    family = api.new_family("nurse1")
    api.sign(family, GRANTS)
    with app.extensions["onestory"].engine.begin() as conn:  # as recorded before the rule
        conn.execute(text("UPDATE consent_forms SET legal_basis = 'public_task'"))
    revoked = api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
                       json={"agency": "physio", "field": "health"})
    assert revoked.get_json()["legal_basis"] == "public_task"  # the form it derives from
    assert api.sign(family, GRANTS)["legal_basis"] == "consent"
    history = api.get(f"/api/v1/families/{family}/consent/history", "coord1").get_json()
    assert [v["legal_basis"] for v in history] == ["public_task", "public_task", "consent"]


# --- staff pages ------------------------------------------------------------------------


@pytest.fixture
def web(app: Flask, api: Api) -> Api:
    set_passwords(app)
    return api


def options(html: str, name: str) -> list[tuple[str, bool]]:
    select_ = re.search(rf'<select id="f-{name}" name="{name}".*?</select>', html, re.S)
    assert select_ is not None, f"no select named {name}"
    return [(value, bool(chosen)) for value, chosen in
            re.findall(r'<option value="([^"]*)"( selected)?>', select_.group(0))]


def test_the_record_page_offers_the_agencys_active_staff(app: Flask, web: Api,
                                                         clock: Clock) -> None:
    family = refer_physio(web)
    with app.extensions["onestory"].sessions() as session:
        accounts.add_staff(session, "gone", "physio", "practitioner", None, clock())
        accounts.deactivate_staff(session, "gone", None, clock())
    client = signed_in(app, "physiocoord")
    page = f"/staff/families/{family}"
    html = client.get(page).get_data(as_text=True)
    # Its own active staff, nobody chosen yet (the first, "None", shows).
    assert options(html, "contact_worker") == [("", False), ("physio1", False),
                                               ("physiocoord", False)]
    action = f"/staff/families/{family}/contact-worker"
    done = post_form(client, page, action, {"contact_worker": "physio1"})
    assert done.status_code == 302  # type: ignore[attr-defined]
    assert involvements(web, family)["physio"] == "physio1"
    html = client.get(page).get_data(as_text=True)
    assert ("physio1", True) in options(html, "contact_worker")
    assert "physio1 is now your agency" in html
    # A name from outside the list changes nothing, and says why.
    before = rows(app)
    for worker in ("nurse1", "gone", "nobody"):
        refused = post_form(client, page, action, {"contact_worker": worker})
        assert refused.status_code == 302  # type: ignore[attr-defined]
        html = client.get(page).get_data(as_text=True)
        assert "The contact worker was not changed" in html
        assert "not an active staff member of physio" in html
    assert rows(app) == before
    cleared = post_form(client, page, action, {"contact_worker": ""})
    assert cleared.status_code == 302  # type: ignore[attr-defined]
    assert involvements(web, family)["physio"] is None


def test_practitioners_and_other_agencies_do_not_set_it(app: Flask, web: Api) -> None:
    family = refer_physio(web)
    html = signed_in(app, "physio1").get(f"/staff/families/{family}").get_data(as_text=True)
    assert 'name="contact_worker"' not in html
    before = rows(app)
    page, action = f"/staff/families/{family}", f"/staff/families/{family}/contact-worker"
    practitioner = post_form(signed_in(app, "physio1"), page, action,
                             {"contact_worker": "physio1"})
    assert practitioner.status_code == 403  # type: ignore[attr-defined]
    # The health centre's coordinator sets only the health centre's own.
    client = signed_in(app, "coord1")
    assert [v for v, _ in options(client.get(page).get_data(as_text=True),
                                  "contact_worker")] == ["", "coord1", "nurse1"]
    post_form(client, page, action, {"contact_worker": "physio1"})
    assert "not an active staff member of health-centre" in client.get(page).get_data(
        as_text=True)
    assert rows(app) == before


def test_the_referral_form_has_no_free_text_contact_worker(app: Flask, web: Api) -> None:
    family = web.new_family("nurse1")
    web.sign(family, GRANTS)
    client = signed_in(app, "coord1")
    referral = client.get(f"/staff/families/{family}/referrals/new").get_data(as_text=True)
    assert 'name="to"' in referral  # the referral form itself
    # The referrer never names the other agency's contact worker: the receiving
    # agency picks one of its own staff when it accepts.
    assert 'name="contact_worker"' not in referral


def test_the_consent_form_page_offers_no_other_legal_basis(app: Flask, web: Api) -> None:
    family = web.new_family("nurse1")
    html = signed_in(app, "coord1").get(f"/staff/families/{family}/consent/new").get_data(
        as_text=True)
    assert 'name="legal_basis"' not in html
    for other in ("vital_interest", "public_task", "legal_obligation", "Vital interest"):
        assert other not in html
    assert "duty grant" in html
