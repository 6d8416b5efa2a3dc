"""Attacks on the consent path: PIN guessing in parallel and past the delay
cap, search as an existence oracle, referrals as an involvement oracle,
stale paper forms, and credentials that must die with a new PIN."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update

from consent.tables import ConsentReceipt
from coordination import accounts
from coordination.errors import NotAuthenticated, Throttled
from tests.conftest import Api, Clock, consent_body


def _receipt(api: Api) -> tuple[str, dict[str, str]]:
    family = api.new_family("nurse1")
    return family, api.sign(family, {"physio": ["health"]})["receipt"]


def _wrong(pin: str) -> str:
    return "999999" if pin != "999999" else "888888"


def test_many_failures_never_overflow_the_delay(app: Flask, api: Api, clock: Clock) -> None:
    family, receipt = _receipt(api)
    with app.extensions["onestory"].sessions() as session:
        session.execute(update(ConsentReceipt).where(ConsentReceipt.family_id == family)
                        .values(failed_attempts=10_000))
        session.commit()
    for _ in range(3):
        response = api.post("/api/v1/family/session", json={
            "receipt_code": receipt["code"], "pin": _wrong(receipt["pin"])})
        assert response.status_code in {401, 429}
        clock.advance(minutes=16)
    assert api.post("/api/v1/family/session", json={
        "receipt_code": receipt["code"], "pin": receipt["pin"]}).status_code == 201


def test_parallel_guesses_cannot_slip_past_the_delay(app: Flask, api: Api,
                                                     clock: Clock) -> None:
    family, receipt = _receipt(api)
    rt = app.extensions["onestory"]
    with rt.sessions() as session:  # the next failure starts the delay
        session.execute(update(ConsentReceipt).where(ConsentReceipt.family_id == family)
                        .values(failed_attempts=2))
        session.commit()
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def guess() -> None:
        with rt.sessions() as session:
            barrier.wait()
            try:
                accounts.open_family_session(session, receipt["code"], _wrong(receipt["pin"]),
                                             rt.settings.family_session_lifetime, clock())
            except Throttled:
                outcomes.append("slowed")
            except NotAuthenticated:
                outcomes.append("checked")

    threads = [threading.Thread(target=guess) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["checked"] + ["slowed"] * 5


def test_search_visibility_agrees_with_the_record(api: Api, clock: Clock) -> None:
    """The SQL form of the visibility rule gives the same answers as the rule."""
    cases = {
        "no form": lambda f: None,
        "granted": lambda f: api.sign(f, {"physio": ["health"]}),
        "other agency": lambda f: api.sign(f, {"ecec": ["health"]}),
        "expired": lambda f: api.sign(f, {"physio": ["health"]}, valid_until="2026-11-30"),
        "revoked": lambda f: (api.sign(f, {"physio": ["health"]}), api.post(
            f"/api/v1/families/{f}/consent/revoke", "coord1", json={"agency": "physio"})),
        "referred": lambda f: (api.sign(f, {"physio": ["involvement"]}), api.post(
            f"/api/v1/families/{f}/involvements", "coord1", json={"agency": "physio"}),
            api.post(f"/api/v1/families/{f}/consent/revoke", "coord1", json={})),
        "closed": lambda f: (api.sign(f, {"physio": ["involvement"]}), api.post(
            f"/api/v1/families/{f}/involvements", "coord1", json={"agency": "physio"}),
            api.post(f"/api/v1/families/{f}/consent/revoke", "coord1", json={}),
            api.patch(f"/api/v1/families/{f}/involvements/physio", "physiocoord",
                      json={"status": "closed"})),
    }
    ids = {}
    for name, arrange in cases.items():
        ids[name] = api.new_family("nurse1", display_name="Same Name")
        arrange(ids[name])
    clock.advance(days=10)  # past the expired form's last day
    found = {f["id"] for f in api.get("/api/v1/families", "physio1",
                                      query_string={"name": "same name"}).get_json()}
    for name, family in ids.items():
        readable = api.get(f"/api/v1/families/{family}", "physio1").status_code == 200
        assert (family in found) is readable, name
    assert found == {ids["granted"], ids["referred"]}


def test_referral_reveals_no_involvement_the_family_did_not_agree_to(api: Api) -> None:
    family = api.new_family("nurse1")
    api.sign(family, {"cps": ["involvement"], "physio": ["involvement", "health"]})
    for agency in ("cps", "physio"):
        api.post(f"/api/v1/families/{family}/involvements", "coord1", json={"agency": agency})
    api.sign(family, {"physio": ["health"]})  # cps may no longer be known of
    involved = api.post(f"/api/v1/families/{family}/involvements", "physiocoord",
                        json={"agency": "cps"})
    never = api.post(f"/api/v1/families/{family}/involvements", "physiocoord",
                     json={"agency": "ecec"})
    # Physiotherapy sees its own column only: it may not refer at all, and
    # the two answers are the same.
    assert involved.status_code == never.status_code == 403
    assert involved.get_json()["detail"] == never.get_json()["detail"]
    # An agency that sees the whole form is told only that the family has
    # not agreed, alike for both.
    involved = api.post(f"/api/v1/families/{family}/involvements", "coord1",
                        json={"agency": "cps"})
    never = api.post(f"/api/v1/families/{family}/involvements", "coord1",
                     json={"agency": "ecec"})
    assert involved.status_code == never.status_code == 409
    assert involved.get_json()["detail"].replace("cps", "X") == \
        never.get_json()["detail"].replace("ecec", "X")


def test_a_paper_form_signed_before_the_family_revoked_is_refused(api: Api,
                                                                  clock: Clock) -> None:
    family, receipt = _receipt(api)
    clock.advance(days=2)
    token = api.post("/api/v1/family/session", json={
        "receipt_code": receipt["code"], "pin": receipt["pin"]}).get_json()["token"]
    revoked = api.post(f"/api/v1/families/{family}/consent/revoke", token,
                       json={"agency": "physio"})
    assert revoked.status_code == 200
    stale = api.put(f"/api/v1/families/{family}/consent", "coord1",
                    json=consent_body({"physio": ["health"]}, signed_on="2026-11-22"))
    assert stale.status_code == 409
    assert "family changed its consent" in stale.get_json()["detail"]
    fresh = api.put(f"/api/v1/families/{family}/consent", "coord1",
                    json=consent_body({"physio": ["health"]}, signed_on="2026-11-24"))
    assert fresh.status_code == 201


@pytest.mark.parametrize("witness", ["nobody", "someone's neighbour"])
def test_witness_must_be_a_staff_member(api: Api, witness: str) -> None:
    family = api.new_family("nurse1")
    response = api.put(f"/api/v1/families/{family}/consent", "coord1",
                       json=consent_body({"physio": ["health"]}, witness=witness))
    assert response.status_code == 422
    assert "witness" in response.get_json()["errors"]


def test_a_new_pin_ends_open_family_sessions(api: Api) -> None:
    family, receipt = _receipt(api)
    token = api.post("/api/v1/family/session", json={
        "receipt_code": receipt["code"], "pin": receipt["pin"]}).get_json()["token"]
    assert api.get(f"/api/v1/families/{family}/consent", token).status_code == 200
    api.sign(family, {"physio": ["health"]}, reissue_pin=True)
    response: Any = api.get(f"/api/v1/families/{family}/consent", token)
    assert response.status_code == 401


# --- a real and an unknown receipt code answer alike -------------------------------

# Wrong PINs at these moments (seconds after the start): three free tries, a
# slowed-down fourth, a try once the wait has passed (which doubles it), and
# one long after.
ATTEMPTS_AT = [0, 0, 0, 0, 2, 2, 4, 1000, 1000]


def _unknown_code(real: str) -> str:
    return "ZZZZ-ZZZZ" if real != "ZZZZ-ZZZZ" else "YYYY-YYYY"


def _api_answers(api: Api, clock: Clock, code: str, pin: str) -> list[Any]:
    start = clock.now
    answers = []
    for at in ATTEMPTS_AT:
        clock.now = start + __import__("datetime").timedelta(seconds=at)
        response = api.post("/api/v1/family/session", json={"receipt_code": code, "pin": pin})
        answers.append((response.status_code, response.mimetype,
                        response.headers.get("Retry-After"),
                        response.headers.get("WWW-Authenticate"), response.get_json()))
    clock.now = start
    return answers


def test_a_real_and_an_unknown_receipt_code_answer_alike_on_the_api(api: Api,
                                                                    clock: Clock) -> None:
    """A guesser learns nothing from the answers: an unknown code slows down
    exactly like a real one (the same statuses, Retry-After and bodies)."""
    _family, receipt = _receipt(api)
    wrong = _wrong(receipt["pin"])
    real = _api_answers(api, clock, receipt["code"], wrong)
    unknown = _api_answers(api, clock, _unknown_code(receipt["code"]), wrong)
    assert [a[0] for a in real] == [401, 401, 401, 429, 401, 429, 401, 401, 429]
    assert unknown == real


def _page_answers(app: Flask, clock: Clock, code: str, pin: str) -> list[Any]:
    import re

    from tests.web import csrf_token

    start = clock.now
    client = app.test_client()
    answers = []
    for at in ATTEMPTS_AT:
        clock.now = start + __import__("datetime").timedelta(seconds=at)
        token = csrf_token(client.get("/family/").get_data(as_text=True))
        response = client.post("/family/", data={"receipt_code": code, "pin": pin,
                                                 "csrf_token": token})
        page = response.get_data(as_text=True).replace(code, "CODE")
        page = re.sub(r'name="csrf_token" value="[^"]+"', "", page)
        answers.append((response.status_code, response.headers.get("Retry-After"), page))
    clock.now = start
    return answers


def test_a_real_and_an_unknown_receipt_code_answer_alike_on_the_family_page(
        app: Flask, api: Api, clock: Clock) -> None:
    _family, receipt = _receipt(api)
    wrong = _wrong(receipt["pin"])
    real = _page_answers(app, clock, receipt["code"], wrong)
    unknown = _page_answers(app, clock, _unknown_code(receipt["code"]), wrong)
    assert [a[0] for a in real] == [401, 401, 401, 429, 401, 429, 401, 401, 429]
    assert unknown == real


def test_api_answers_holding_personal_data_are_never_stored(api: Api) -> None:
    """The family's token, the receipt's PIN, the record and the form are
    answers no browser or proxy may keep (refusals too: they name ids)."""
    family = api.new_family("nurse1")
    signed = api.put(f"/api/v1/families/{family}/consent", "coord1",
                     json=consent_body({"physio": ["health"]}))
    assert "receipt" in signed.get_json()
    session = api.post("/api/v1/family/session", json={
        "receipt_code": signed.get_json()["receipt"]["code"],
        "pin": signed.get_json()["receipt"]["pin"]})
    answers = [signed, session, api.get(f"/api/v1/families/{family}", "nurse1"),
               api.get(f"/api/v1/families/{family}/consent", "coord1"),
               api.get(f"/api/v1/families/{family}", "ecec1")]
    assert [a.status_code for a in answers] == [201, 201, 200, 200, 404]
    for answer in answers:
        assert answer.headers.get("Cache-Control") == "no-store"
