"""Referral pages for staff: the form from the family's record, the lists
in and out, one referral with its history, and each act on it, shown only
to who may make it; CSRF, form errors naming the field, nothing changed on
bad input; on both databases."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from coordination.model import Appointment, Referral, ReferralEvent
from tests.conftest import Api
from tests.functional.test_revocation_truth import count, family_token
from tests.unchanged import nothing_stored
from tests.web import csrf_token, post_form, set_passwords, signed_in

# Physiotherapy may know of the family and see health notes; the
# kindergarten is named nowhere; child protection sees protection notes only.
GRID = {
    "health-centre": ["involvement", "contact", "health", "protection"],
    "physio": ["involvement", "health"],
    "cps": ["protection"],
}
REASON = "Walks late for her age; please assess gross motor skills."


@pytest.fixture
def case(app: Flask, api: Api) -> tuple[str, str]:
    set_passwords(app)
    family = api.new_family("nurse1", display_name="Aylin Demir", birth_date="2024-03-14")
    receipt = api.sign(family, GRID)["receipt"]
    return family, family_token(api, receipt)


def html(response: Any) -> str:
    text: str = response.get_data(as_text=True)
    return text


def main(response: Any) -> str:
    return html(response).split("<main", 1)[1].split("</main>", 1)[0]


def refer(client: FlaskClient, family: str, **data: Any) -> Any:
    data.setdefault("to", "physio")
    data.setdefault("reason", REASON)
    data.setdefault("fields", ["health"])
    data.setdefault("urgency", "routine")
    data.setdefault("csrf_token", csrf_token(html(client.get("/staff/families/new"))))
    return client.post(f"/staff/families/{family}/referrals", data=data)


# A form shown again with its errors reads the form's grid (on record).
SHOWN_AGAIN = ("consent.read",)
# The referral page, loaded for its form or shown again with errors, is a look.
PAGE = ("referral.read",)


def made(api: Api, family: str, to: str = "physio", fields: list[str] | None = None) -> str:
    response = api.post(f"/api/v1/families/{family}/referrals", "nurse1",
                        json={"to": to, "reason": REASON, "fields": fields or ["health"]})
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


def state(api: Api, ref: str) -> str:
    return str(api.get(f"/api/v1/referrals/{ref}", "coord1").get_json()["state"])


def act(client: FlaskClient, ref: str, path: str, data: dict[str, Any]) -> Any:
    return post_form(client, f"/staff/referrals/{ref}", f"/staff/referrals/{ref}{path}", data)


# --- the referral form ----------------------------------------------------------------


def test_the_form_offers_only_agencies_the_family_could_be_referred_to(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    client = signed_in(app, "nurse1")  # practitioners refer too
    record = main(client.get(f"/staff/families/{family}"))
    assert f"/staff/families/{family}/referrals/new" in record
    page = main(client.get(f"/staff/families/{family}/referrals/new"))
    offered = re.findall(r'<option value="([^"]+)"', page.split('name="to"', 1)[1].split(
        "</select>", 1)[0])
    # Not its own agency, not physiotherapy (already involved); known agencies only.
    assert offered == ["cps", "oversight", "ngo", "ecec"] or set(offered) == {
        "cps", "oversight", "ngo", "ecec"}
    assert "the family is asked first" in page.lower()
    assert "until the family agrees, nothing reaches that agency" in page
    # What the form already allows each, for the sentence to be checked against.
    assert "Child protection: may already see Child protection" in page
    assert "Kindergarten: nothing yet" in page
    for field in ("reason", "fields", "urgency", "interpreter_language", "accompany"):
        assert f'name="{field}"' in page


def test_a_referral_the_form_allows_is_sent_else_the_family_is_asked(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    client = signed_in(app, "nurse1")
    sent = refer(client, family, interpreter_language="tr", accompany="yes", urgency="soon")
    assert sent.status_code == 302, html(sent)
    ref = sent.headers["Location"].rsplit("/", 1)[1]
    page = main(client.get(f"/staff/referrals/{ref}"))
    assert "Sent to Physiotherapy: the family&#39;s consent form already lets" in page
    body = api.get(f"/api/v1/referrals/{ref}", "coord1").get_json()
    assert body["state"] == "sent" and body["interpreter_language"] == "tr"
    assert body["accompany"] is True and body["urgency"] == "soon"
    asked = refer(client, family, to="ecec", fields=["education", "health"])
    assert asked.status_code == 302, html(asked)
    ref2 = asked.headers["Location"].rsplit("/", 1)[1]
    page = main(client.get(f"/staff/referrals/{ref2}"))
    assert "The family is asked first whether Kindergarten may know of it" in page
    assert "nothing reaches Kindergarten until the family agrees" in page
    assert state(api, ref2) == "awaiting_family"


@pytest.mark.parametrize(("data", "named"), [
    ({"reason": ""}, "reason"),
    ({"fields": ["health", "shoe_size"]}, "fields"),
    ({"to": "health-centre"}, "to"),          # its own agency
    ({"to": "nowhere"}, "to"),
    ({"urgency": "asap"}, "urgency"),
    ({"interpreter_language": "Turkish"}, "interpreter_language"),
    ({"respond_by": "2026-11-01"}, "respond_by"),
])
def test_bad_referrals_name_the_field_and_store_nothing(
        app: Flask, api: Api, case: tuple[str, str], data: dict[str, Any], named: str) -> None:
    family, _ = case
    client = signed_in(app, "nurse1")
    with nothing_stored(app, SHOWN_AGAIN):
        response = refer(client, family, **data)
    assert response.status_code == 422
    page = main(response)
    assert "The referral was not recorded" in page
    assert f'href="#f-{named}"' in page
    assert count(app, Referral) == 0


def test_an_agency_already_involved_is_refused_on_the_form(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    client = signed_in(app, "coord1")
    with nothing_stored(app, SHOWN_AGAIN):
        response = refer(client, family, to="physio")
    assert response.status_code == 422 and "already works with the family" in main(response)
    assert count(app, Referral) == 0


def test_who_may_not_refer(app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    # Child protection sees the family but is not involved: 403; the auditor: 403.
    cps = signed_in(app, "cps1")
    assert cps.get(f"/staff/families/{family}/referrals/new").status_code == 403
    token = csrf_token(html(cps.get(f"/staff/families/{family}")))
    auditor, ecec, client = (signed_in(app, u) for u in ("auditor1", "ecec1", "nurse1"))
    with nothing_stored(app, PAGE):
        refused = cps.post(f"/staff/families/{family}/referrals", data={
            "to": "ecec", "reason": REASON, "csrf_token": token})
        assert refused.status_code == 403
        assert auditor.get(f"/staff/families/{family}/referrals/new").status_code == 403
        # The kindergarten does not see the family at all: 404.
        assert ecec.get(f"/staff/families/{family}/referrals/new").status_code == 404
        # No CSRF token: nothing done.
        assert client.post(f"/staff/families/{family}/referrals", data={
            "to": "ecec", "reason": REASON}).status_code == 400
    assert count(app, Referral) == 0


# --- lists and the referral page ----------------------------------------------------


def test_lists_in_and_out(app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    sent = made(api, family)
    waiting = made(api, family, fields=["contact"])
    physio = main(signed_in(app, "physiocoord").get("/staff/referrals?direction=in"))
    assert f"/staff/referrals/{sent}" in physio and "Aylin Demir" in physio
    assert waiting not in physio  # the family has not agreed yet
    out = main(signed_in(app, "coord1").get("/staff/referrals?direction=out"))
    assert sent in out and waiting in out
    assert "Waiting for the family" in out
    bad = signed_in(app, "coord1").get("/staff/referrals?direction=sideways")
    assert bad.status_code == 422 and 'href="#f-direction"' in main(bad)


def forms(page: str) -> set[str]:
    return set(re.findall(r'action="/staff/[^"]*/(accept|decline|withdraw|close|appointments|'
                          r'answer)[^"]*"', page))


def test_each_act_is_shown_only_to_who_may_make_it(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    sent = made(api, family)
    waiting = made(api, family, fields=["contact"])
    assert forms(main(signed_in(app, "physiocoord").get(f"/staff/referrals/{sent}"))) == {
        "accept", "decline"}
    assert forms(main(signed_in(app, "physio1").get(f"/staff/referrals/{sent}"))) == set()
    assert forms(main(signed_in(app, "coord1").get(f"/staff/referrals/{sent}"))) == {
        "withdraw"}
    assert forms(main(signed_in(app, "nurse1").get(f"/staff/referrals/{sent}"))) == set()
    assert forms(main(signed_in(app, "coord1").get(f"/staff/referrals/{waiting}"))) == {
        "withdraw", "answer"}
    # Another agency, and the receiving one before the family agreed: as absent.
    assert signed_in(app, "cps1").get(f"/staff/referrals/{sent}").status_code == 404
    assert signed_in(app, "physiocoord").get(f"/staff/referrals/{waiting}").status_code == 404
    assert signed_in(app, "physiocoord").get(
        "/staff/referrals/ref_00000000000000000000").status_code == 404


def test_the_whole_way_through_the_pages(app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = made(api, family)
    physiocoord = signed_in(app, "physiocoord")
    accepted = act(physiocoord, ref, "/accept", {"contact_worker": "physio1"})
    assert accepted.status_code == 302, html(accepted)
    assert state(api, ref) == "accepted"
    physio = signed_in(app, "physio1")
    page = main(physio.get(f"/staff/referrals/{ref}"))
    assert forms(page) == {"appointments"}
    # Bad booking input names each field and stores nothing.
    with nothing_stored(app, PAGE):
        bad = act(physio, ref, "/appointments", {"at": "tuesday", "place": " ",
                                                 "interpreter_language": "Turkish"})
    assert bad.status_code == 422
    for name in ("at", "place", "interpreter_language"):
        assert f'href="#f-{name}"' in main(bad)
    assert count(app, Appointment) == 0 and state(api, ref) == "accepted"
    booked = act(physio, ref, "/appointments", {"at": "2026-11-26T09:30", "place": "Room 4",
                                                "interpreter_language": "tr",
                                                "accompanied_by": "Health visitor"})
    assert booked.status_code == 302, html(booked)
    [apt] = api.get(f"/api/v1/referrals/{ref}", "coord1").get_json()["appointments"]
    assert apt["at"] == "2026-11-26T09:30:00Z" and apt["place"] == "Room 4"
    page = main(physio.get(f"/staff/referrals/{ref}"))
    assert forms(page) == {"appointments"}  # the outcome form posts to the appointment
    assert f"/appointments/{apt['id']}" in page
    with nothing_stored(app, PAGE):
        assert act(physio, ref, f"/appointments/{apt['id']}",
                   {"outcome": "done"}).status_code == 422
    assert act(physio, ref, f"/appointments/{apt['id']}",
               {"outcome": "missed", "note": "Nobody came."}).status_code == 302
    assert state(api, ref) == "missed"
    assert act(physio, ref, "/appointments", {"at": "2026-12-03T09:00",
                                              "place": "Room 4"}).status_code == 302
    second = api.get(f"/api/v1/referrals/{ref}", "coord1").get_json()["appointments"][1]
    assert act(physio, ref, f"/appointments/{second['id']}",
               {"outcome": "attended"}).status_code == 302
    before = count(app, ReferralEvent)
    assert act(physio, ref, "/close", {"outcome_note": "   "}).status_code == 422
    assert count(app, ReferralEvent) == before
    closed = act(physio, ref, "/close", {"outcome_note": "Weekly sessions until March."})
    assert closed.status_code == 302 and state(api, ref) == "closed"
    # The referrer reads the outcome on the referral page, with its history.
    page = main(signed_in(app, "coord1").get(f"/staff/referrals/{ref}"))
    assert "Weekly sessions until March." in page and "Nobody came." in page
    assert page.count("<li>") >= 6  # sent, accepted, booked, missed, booked, attended, closed
    assert forms(page) == set()


def test_wrong_side_wrong_role_and_no_csrf_change_nothing(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = made(api, family)
    coord1 = signed_in(app, "coord1")
    nurse = signed_in(app, "nurse1")
    physio = signed_in(app, "physio1")
    physiocoord, cps = signed_in(app, "physiocoord"), signed_in(app, "cps1")
    token = csrf_token(html(physiocoord.get("/staff/")))
    with nothing_stored(app, PAGE):
        assert act(coord1, ref, "/accept", {}).status_code == 403  # the referrer
        assert act(physio, ref, "/accept", {}).status_code == 403  # a practitioner
        assert act(nurse, ref, "/appointments", {"at": "2026-11-26T09:30",
                                                 "place": "Room 4"}).status_code == 403
        assert act(physiocoord, ref, "/withdraw", {"reason": "Not ours."}).status_code == 403
        assert cps.post(f"/staff/referrals/{ref}/appointments",
                        data={}).status_code == 400  # no CSRF token
        # Another session's token is no token for this one.
        assert physio.post(f"/staff/referrals/{ref}/decline",
                           data={"reason": "x", "csrf_token": token}).status_code == 400
    assert count(app, ReferralEvent) == 1 and state(api, ref) == "sent"


def test_decline_withdraw_and_a_state_that_does_not_fit(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = made(api, family)
    physiocoord = signed_in(app, "physiocoord")
    with nothing_stored(app, PAGE):
        empty = act(physiocoord, ref, "/decline", {"reason": ""})
    assert empty.status_code == 422 and 'href="#f-reason"' in main(empty)
    assert act(physiocoord, ref, "/decline", {"reason": "No capacity."}).status_code == 302
    assert state(api, ref) == "declined"
    # Accepting now does not fit: a message, nothing changed.
    before = count(app, ReferralEvent)
    again = act(physiocoord, ref, "/accept", {})
    assert again.status_code == 302
    assert "Nothing was changed" in main(physiocoord.get(f"/staff/referrals/{ref}"))
    assert count(app, ReferralEvent) == before
    other = made(api, family)
    assert act(signed_in(app, "coord1"), other, "/withdraw",
               {"reason": "The family moved."}).status_code == 302
    assert state(api, other) == "withdrawn"
    assert "The family moved." in main(physiocoord.get(f"/staff/referrals/{other}"))


def test_recording_the_familys_answer_given_in_person(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = made(api, family, to="ecec", fields=["education"])
    coord1 = signed_in(app, "coord1")
    path = f"/families/{family}/referrals/{ref}/answer"
    with nothing_stored(app, PAGE):
        bad = post_form(coord1, f"/staff/referrals/{ref}", f"/staff{path}",
                        {"signed_by": "", "method": "email", "answer": "maybe"})
    assert bad.status_code == 422
    for name in ("signed_by", "method", "answer"):
        assert f'href="#f-{name}"' in main(bad)
    nurse = signed_in(app, "nurse1")
    with nothing_stored(app, PAGE):
        assert post_form(nurse, f"/staff/referrals/{ref}", f"/staff{path}",
                         {"signed_by": "Ayşe", "method": "in_person",
                          "answer": "agree"}).status_code == 403
    done = post_form(coord1, f"/staff/referrals/{ref}", f"/staff{path}",
                     {"signed_by": "Ayşe Demir", "method": "in_person", "answer": "agree"})
    assert done.status_code == 302 and state(api, ref) == "sent"
    form = api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()
    assert form["signed_by"] == "Ayşe Demir" and form["method"] == "in_person"
    assert "education" in form["grants"]["ecec"]


def test_the_family_sees_referral_acts_in_who_looked(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, token = case
    ref = made(api, family)
    signed_in(app, "physiocoord").get(f"/staff/referrals/{ref}")
    act(signed_in(app, "physiocoord"), ref, "/accept", {})
    rows = api.get(f"/api/v1/families/{family}/access-log", token).get_json()
    actions = [r["action"] for r in rows]
    for expected in ("referral.create", "referral.read", "referral.accept"):
        assert expected in actions, actions
    created = next(r for r in rows if r["action"] == "referral.create")
    assert created["about_agency"] == "physio"


# --- the family's page ----------------------------------------------------------------


@pytest.fixture
def family_case(app: Flask, api: Api) -> tuple[str, dict[str, str]]:
    set_passwords(app)
    family = api.new_family("nurse1", display_name="Aylin Demir", birth_date="2024-03-14")
    receipt: dict[str, str] = api.sign(family, GRID)["receipt"]
    return family, receipt


def family_client(app: Flask, receipt: dict[str, str]) -> FlaskClient:
    from tests.functional.test_web_family import _signed_in

    return _signed_in(app, receipt)


def text(response: Any) -> str:
    from tests.functional.test_web_family import _text

    return _text(response)


def test_the_family_agrees_after_a_confirmation_saying_what_changes(
        app: Flask, api: Api, family_case: tuple[str, dict[str, str]]) -> None:
    family, receipt = family_case
    ref = made(api, family, to="ecec", fields=["education"])
    client = family_client(app, receipt)
    page = text(client.get("/family/consent"))
    assert "Requests for help: please answer" in page
    assert "Health centre wants to ask Kindergarten to help your family." in page
    assert REASON in page
    ask = f"/family/referrals/{ref}/agree"
    confirm = text(client.get(ask))
    assert ("If you say yes, Kindergarten can see: which services help you, and who your "
            "contact person is; notes from kindergarten or school. Your consent form gets a "
            "new version that says so.") in confirm
    version = api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()["version"]
    # No CSRF token, or not confirmed: nothing changes (the question is shown again).
    with nothing_stored(app, (*PAGE, "consent.read")):
        assert client.post(ask, data={"confirmed": "1"}).status_code == 400
        token = csrf_token(html(client.get(ask)))
        assert client.post(ask, data={"csrf_token": token}).status_code == 200
    done = client.post(ask, data={"confirmed": "1", "csrf_token": token})
    assert done.status_code == 302
    after = text(client.get("/family/consent"))
    assert ("You said yes. Kindergarten can now see: which services help you, and who your "
            "contact person is; notes from kindergarten or school. The request went to "
            "Kindergarten.") in after
    assert "Requests for help" not in after
    # True: a new version grants exactly those cells, and the request is sent.
    form = api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()
    assert form["version"] == version + 1
    assert sorted(form["grants"]["ecec"]) == ["education", "involvement"]
    assert state(api, ref) == "sent"
    # Answering again: nothing changes, and the family is told so.
    again = client.post(ask, data={"confirmed": "1", "csrf_token": token})
    assert again.status_code == 302
    assert "already answered" in text(client.get("/family/consent"))


def test_the_family_refuses_and_the_agency_is_not_told(
        app: Flask, api: Api, family_case: tuple[str, dict[str, str]]) -> None:
    family, receipt = family_case
    ref = made(api, family, to="ecec", fields=["education"])
    client = family_client(app, receipt)
    ask = f"/family/referrals/{ref}/refuse"
    assert ("If you say no, Kindergarten does not hear about your family from this request. "
            "Nothing else changes.") in text(client.get(ask))
    token = csrf_token(html(client.get(ask)))
    version = api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()["version"]
    assert client.post(ask, data={"confirmed": "1", "csrf_token": token}).status_code == 302
    assert "You said no. Kindergarten was not told about your family." in text(
        client.get("/family/consent"))
    assert state(api, ref) == "declined_by_family"
    assert api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()[
        "version"] == version
    assert api.get("/api/v1/referrals", "ecec1").get_json() == []


def test_a_referral_not_the_familys_is_not_found(
        app: Flask, api: Api, family_case: tuple[str, dict[str, str]]) -> None:
    family, receipt = family_case
    other = api.new_family("nurse1", display_name="Other")
    api.sign(other, GRID)
    theirs = made(api, other, to="ecec", fields=["education"])
    client = family_client(app, receipt)
    assert client.get(f"/family/referrals/{theirs}/agree").status_code == 404
    assert client.get("/family/referrals/ref_00000000000000000000/agree").status_code == 404
    assert client.get(f"/family/referrals/{theirs}/maybe").status_code == 404
    assert state(api, theirs) == "awaiting_family"


@pytest.mark.parametrize(("lang", "words"), [
    ("en", ["Your appointments", "26 November 2026, 09:30", "With: Physiotherapy",
            "Where: Physio unit, room 4", "An interpreter for Turkish will be there.",
            "Going with you: Health visitor"]),
    ("tr", ["Randevularınız", "Kurum: Physiotherapy", "Yer: Physio unit, room 4",
            "Orada Türkçe bilen bir tercüman olacak.", "Sizinle gelecek kişi: Health visitor"]),
    # (A Latin place in an Arabic sentence keeps its own direction: isolated.)
    ("ar", ["مواعيدك", "المكان: \u2068Physio unit, room 4\u2069", "سيكون هناك مترجم للغة"]),
])
def test_the_family_sees_its_booked_appointments_in_its_language(
        app: Flask, api: Api, family_case: tuple[str, dict[str, str]], lang: str,
        words: list[str]) -> None:
    family, receipt = family_case
    ref = made(api, family)
    api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord", json={})
    assert api.post(f"/api/v1/referrals/{ref}/appointments", "physio1", json={
        "at": "2026-11-26T09:30:00Z", "place": "Physio unit, room 4",
        "interpreter_language": "tr", "accompanied_by": "Health visitor"}).status_code == 201
    client = family_client(app, receipt)
    page = text(client.get(f"/family/consent?lang={lang}"))
    for expected in words:
        assert expected in page, (lang, expected)


def test_a_cancelled_appointment_takes_the_referral_back_to_booking(
        app: Flask, api: Api, case: tuple[str, str]) -> None:
    family, _ = case
    ref = made(api, family)
    assert api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord", json={}).status_code == 200
    physio = signed_in(app, "physio1")
    assert act(physio, ref, "/appointments", {"at": "2026-11-26T09:30",
                                              "place": "Room 4"}).status_code == 302
    [apt] = api.get(f"/api/v1/referrals/{ref}", "coord1").get_json()["appointments"]
    cancelled = act(physio, ref, f"/appointments/{apt['id']}",
                    {"outcome": "cancelled", "note": "The therapist is ill."})
    assert cancelled.status_code == 302 and state(api, ref) == "accepted"
    page = main(physio.get(f"/staff/referrals/{ref}"))
    assert "Cancelled: The therapist is ill." in page and forms(page) == {"appointments"}
    assert "Book the appointment" in page


def test_the_family_reads_referral_acts_in_its_words(
        app: Flask, api: Api, family_case: tuple[str, dict[str, str]]) -> None:
    family, receipt = family_case
    ref = made(api, family)
    assert api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord", json={}).status_code == 200
    assert api.post(f"/api/v1/referrals/{ref}/appointments", "physio1", json={
        "at": "2026-11-26T09:30:00Z", "place": "Room 4"}).status_code == 201
    page = text(family_client(app, receipt).get("/family/access-log"))
    for sentence in ("Health centre (practitioner) asked Physiotherapy to help your family.",
                     "Physiotherapy (coordinator) said yes: it will help your family.",
                     "Physiotherapy (practitioner) booked an appointment for your family."):
        assert sentence in page, sentence
