"""Attacks on what coordination added (referrals, appointments, access
requests, the worklist) from outside: input a parser accepts but the clock
cannot hold, and what a referral's history tells an agency the form no
longer lets know who else works with the family. On both databases."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask

from coordination.model import AccessRequest, Appointment
from tests.conftest import Api
from tests.functional.test_referrals import GRID, ask
from tests.functional.test_revocation_truth import count, family_token
from tests.unchanged import nothing_stored
from tests.web import post_form, set_passwords, signed_in


@pytest.fixture
def case(api: Api) -> tuple[str, str]:
    """The family, its form signed, and the family's session token."""
    family = api.new_family("nurse1", display_name="Aylin Demir", birth_date="2024-03-14")
    receipt = api.sign(family, GRID)["receipt"]
    return family, family_token(api, receipt)


def accepted(api: Api, family: str) -> str:
    ref: str = ask(api, family).get_json()["id"]
    assert api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord",
                    json={}).status_code == 200
    return ref


# Read as UTC, these moments fall before the year 1 or after the year 9999.
OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("at", OUT_OF_RANGE)
def test_an_appointment_time_outside_the_calendar_in_utc_is_422(
        app: Flask, api: Api, case: tuple[str, str], at: str) -> None:
    family, _ = case
    ref = accepted(api, family)
    with nothing_stored(app):
        refused = api.post(f"/api/v1/referrals/{ref}/appointments", "physio1",
                           json={"at": at, "place": "Physio unit"})
        assert refused.status_code == 422, refused.get_json()
        assert set(refused.get_json()["errors"]) == {"at"}
    set_passwords(app)
    physio = signed_in(app, "physio1")
    with nothing_stored(app, reads=("referral.read",)):
        page = post_form(physio, f"/staff/referrals/{ref}",
                         f"/staff/referrals/{ref}/appointments",
                         {"at": at, "place": "Physio unit"})
        assert page.status_code == 422  # type: ignore[attr-defined]
    assert count(app, Appointment) == 0


@pytest.mark.parametrize("at", ["0252-03-01T10:00:00Z", "2025-11-20T10:00:00Z",
                                "2028-12-01T10:00:00Z"])
def test_an_appointment_far_from_today_is_a_typing_slip(
        app: Flask, api: Api, case: tuple[str, str], at: str) -> None:
    """A calendar moment, but more than a year back or two years ahead of
    today (2026-11-22): a 422 naming `at` on the API and the page, nothing
    stored; a year back and two years ahead are still booked."""
    family, _ = case
    ref = accepted(api, family)
    with nothing_stored(app):
        refused = api.post(f"/api/v1/referrals/{ref}/appointments", "physio1",
                           json={"at": at, "place": "Physio unit"})
        assert refused.status_code == 422, refused.get_json()
        assert set(refused.get_json()["errors"]) == {"at"}
    set_passwords(app)
    physio = signed_in(app, "physio1")
    with nothing_stored(app, reads=("referral.read",)):
        page = post_form(physio, f"/staff/referrals/{ref}",
                         f"/staff/referrals/{ref}/appointments",
                         {"at": at[:16], "place": "Physio unit"})
        assert page.status_code == 422  # type: ignore[attr-defined]
    booked = api.post(f"/api/v1/referrals/{ref}/appointments", "physio1",
                      json={"at": "2028-11-20T10:00:00Z", "place": "Physio unit"})
    assert booked.status_code == 201, booked.get_json()


def test_a_referrals_history_names_no_agency_the_reader_may_not_know_takes_part(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    """Physiotherapy's coordinator records the family's yes to the health
    centre's referral to the kindergarten; the family then takes back the
    kindergarten's `involvement` cell (it keeps education). The
    kindergarten no longer sees who else works with the family, so the
    referral's history tells it that the family said yes, not through
    whom; the health centre, seeing the whole form, still reads who."""
    family, token = case
    assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    ref = ask(api, family, to="ecec", fields=["education"]).get_json()
    assert ref["state"] == "awaiting_family"
    agreed = api.post(f"/api/v1/families/{family}/referrals/{ref['id']}/agree", "physiocoord",
                      json={"signed_by": "Elif Demir", "method": "in_person"})
    assert agreed.status_code == 200, agreed.get_json()
    assert api.post(f"/api/v1/families/{family}/consent/revoke", token,
                    json={"agency": "ecec", "field": "involvement"}).status_code == 200
    assert "involvements" not in api.get(f"/api/v1/families/{family}", "ecec1").get_json()

    def history(who: str) -> list[tuple[str, str, str | None]]:
        found = api.get(f"/api/v1/referrals/{ref['id']}", who)
        assert found.status_code == 200, found.get_json()
        return [(h["state"], h["by"], h["agency"]) for h in found.get_json()["history"]]

    assert history("ecec1") == [("awaiting_family", "nurse1", "health-centre"),
                                ("sent", "family", None)]
    assert history("nurse1") == [("awaiting_family", "nurse1", "health-centre"),
                                 ("sent", "physiocoord", "physio")]
    set_passwords(app)
    page = signed_in(app, "ecec1").get(f"/staff/referrals/{ref['id']}").get_data(as_text=True)
    assert "physiocoord" not in page and "Physiotherapy" not in page


def test_who_looked_does_not_tell_the_receiving_agency_of_a_referral_it_may_not_see(
        api: Api, case: tuple[str, str]) -> None:
    """Physiotherapy works with the family and reads its whole form. The
    health centre asks to refer the family to physiotherapy for its contact
    details too, which the form does not allow: the family is asked first,
    and refuses. Physiotherapy never learns of that referral: not from the
    referral routes (404), and not from the family's log of who did what."""
    family, token = case
    assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    ref = ask(api, family, to="physio", fields=["contact"]).get_json()
    assert ref["state"] == "awaiting_family"
    assert api.get(f"/api/v1/referrals/{ref['id']}", "physiocoord").status_code == 404

    def about_referrals(who: str) -> list[tuple[str, str | None]]:
        log = api.get(f"/api/v1/families/{family}/access-log", who)
        assert log.status_code == 200, log.get_json()
        return [(item["action"], item.get("about_agency")) for item in log.get_json()
                if item["action"].startswith("referral.")]

    assert about_referrals("physiocoord") == []
    assert api.post(f"/api/v1/families/{family}/referrals/{ref['id']}/refuse", "coord1",
                    json={"signed_by": "Elif Demir", "method": "in_person"}).status_code == 200
    assert about_referrals("physiocoord") == []
    # The referring agency reads both steps.
    assert about_referrals("coord1") == [("referral.refuse", None),
                                         ("referral.create", "physio")]
    # A referral the family agrees to reaches physiotherapy, log and all.
    sent = ask(api, family, to="physio", fields=["household"]).get_json()
    assert api.post(f"/api/v1/families/{family}/referrals/{sent['id']}/agree", token,
                    json={}).status_code == 200
    assert about_referrals("physiocoord") == [("referral.create", "physio")]


def _at_once(app: Flask, api: Api, calls: list[tuple[str, str, dict[str, Any]]]) -> list[int]:
    """POST each (path, who, body) from its own thread and client, all
    released together; the status codes in the order given."""
    start = threading.Barrier(len(calls))

    def post(call: tuple[str, str, dict[str, Any]]) -> int:
        path, who, body = call
        client = app.test_client()
        start.wait()
        return client.post(path, json=body, headers={
            "Authorization": f"Bearer {api.tokens.get(who, who)}"}).status_code

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(post, calls))


def test_requests_and_answers_sent_at_once_keep_one_pending_and_one_answer(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    """Two colleagues asking at once leave one pending request; the family
    approving while a coordinator records a decline leave one answer and at
    most one new form version (PostgreSQL waits on the family's lock;
    SQLite runs the later write again on what the first left)."""
    family, token = case
    base = f"/api/v1/families/{family}/access-requests"
    asked = _at_once(app, api, [
        (base, "physio1", {"fields": ["contact"], "reason": "To book the first session."}),
        (base, "physiocoord", {"fields": ["household"], "reason": "To know who comes."})])
    assert sorted(asked) == [201, 409]
    assert count(app, AccessRequest) == 1
    [req] = api.get(base, "physio1").get_json()
    answered = _at_once(app, api, [
        (f"{base}/{req['id']}/approve", token, {}),
        (f"{base}/{req['id']}/decline", "coord1",
         {"signed_by": "Elif Demir", "method": "in_person"})])
    assert sorted(answered) == [200, 409]
    [after] = api.get(base, "physio1").get_json()
    form = api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()
    if after["state"] == "approved":
        assert form["version"] == 2
        assert set(req["fields"]) <= set(form["grants"]["physio"])  # whichever was asked
    else:
        assert after["state"] == "declined" and form["version"] == 1
