"""The family page through Flask's test client, on both databases: sign-in
with the receipt code and PIN (wrong, slowed down, expired, fixation), the
form as plain sentences, stopping to share (a cell, a column, everything;
each confirmed, each CSRF-protected), who looked, and the languages."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from coordination.web import CSP, FAMILY_COOKIE
from tests.conftest import Api, Clock
from tests.web import csrf_token

COOKIE = "onestory"
URLS = re.compile(r'(?:href|action|src)="([^"]*)"')
GRID = {
    "health-centre": ["involvement", "contact", "health"],
    "physio": ["involvement", "health"],
    "ecec": ["involvement", "education"],
}


def _case(api: Api) -> tuple[str, dict[str, str]]:
    family = api.new_family("nurse1", display_name="Aylin Demir")
    api.write(family, "health", "Growth on track; physiotherapy advised.")
    receipt: dict[str, str] = api.sign(family, GRID)["receipt"]
    return family, receipt


def _text(response: Any) -> str:
    """The page's text, tags dropped and spaces collapsed."""
    html = re.sub(r"</?(?:time|bdi|span)\b[^>]*>", "", response.get_data(as_text=True))
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _sign_in(client: FlaskClient, code: str, pin: str) -> Any:
    token = csrf_token(client.get("/family/").get_data(as_text=True))
    return client.post("/family/", data={"receipt_code": code, "pin": pin,
                                         "csrf_token": token})


def _signed_in(app: Flask, receipt: dict[str, str]) -> FlaskClient:
    client = app.test_client()
    response = _sign_in(client, receipt["code"], receipt["pin"])
    assert response.status_code == 302, _text(response)
    assert response.headers["Location"] == "/family/consent"
    return client


def _post(client: FlaskClient, page: str, action: str, data: dict[str, str]) -> Any:
    token = csrf_token(client.get(page).get_data(as_text=True))
    return client.post(action, data={**data, "csrf_token": token})


def _grants(api: Api, family: str) -> dict[str, list[str]]:
    grants: dict[str, list[str]] = api.get(f"/api/v1/families/{family}/consent",
                                           "coord1").get_json()["grants"]
    return grants


def _cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(COOKIE)
    return None if cookie is None else cookie.value


# --- signing in ---------------------------------------------------------------


def test_sign_in_page_has_labelled_fields(app: Flask) -> None:
    response = app.test_client().get("/family/?lang=en")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<label for="f-receipt_code">Receipt code</label>' in html
    assert '<label for="f-pin">PIN</label>' in html
    assert re.search(r'<button type="submit" class="primary">Sign in</button>', html)
    assert 'name="csrf_token"' in html
    assert '<html lang="en" dir="ltr">' in html


def test_sign_in_opens_the_form_in_plain_sentences(app: Flask, api: Api) -> None:
    _family, receipt = _case(api)
    client = _signed_in(app, receipt)
    page = client.get("/family/consent")
    assert page.status_code == 200
    text = _text(page)
    assert ("Physiotherapy can see: which services help you, and who your contact person "
            "is; health notes.") in text
    assert ("Kindergarten can see: which services help you, and who your contact person "
            "is; notes from kindergarten or school.") in text
    assert "Health centre can see:" in text
    assert "The form is valid until 22 November 2027." in text
    assert text.count("Stop sharing this") == 7
    assert "Stop sharing anything with Physiotherapy" in text
    assert "Stop all sharing" in text
    # Only the family's own links in the menu.
    assert "Your consent" in text and "Who looked" in text and "Sign out" in text
    assert "Find a family" not in text


def test_an_ended_form_says_so_and_offers_nothing_to_stop(app: Flask, api: Api,
                                                         clock: Clock) -> None:
    _family, receipt = _case(api)
    clock.advance(days=366)
    client = _signed_in(app, receipt)
    text = _text(client.get("/family/consent"))
    assert ("The form ended on 22 November 2027. Services can no longer see what other "
            "services wrote.") in text
    # What is still true after the end: the health centre works with the family.
    assert "Health centre works with your family and sees what it wrote itself." in text
    assert "can see:" not in text and "Stop sharing this" not in text


def test_code_is_accepted_in_lower_case_and_without_the_hyphen(app: Flask, api: Api) -> None:
    _family, receipt = _case(api)
    client = app.test_client()
    response = _sign_in(client, receipt["code"].replace("-", "").lower(), receipt["pin"])
    assert response.status_code == 302


@pytest.mark.parametrize("wrong", ["pin", "code", "both"])
def test_a_wrong_code_or_pin_gets_one_answer(app: Flask, api: Api, wrong: str) -> None:
    _family, receipt = _case(api)
    code = "ZZZZ-ZZZZ" if wrong in {"code", "both"} else receipt["code"]
    pin = "000000" if receipt["pin"] != "000000" else "111111"
    pin = pin if wrong in {"pin", "both"} else receipt["pin"]
    client = app.test_client()
    response = _sign_in(client, code, pin)
    assert response.status_code == 401
    assert "The code or PIN is not right." in _text(response)
    assert client.get("/family/consent").status_code == 302


@pytest.mark.parametrize(("data", "missing"), [
    ({"receipt_code": "", "pin": "123456"}, "Please type the receipt code from your paper."),
    ({"receipt_code": "ABCD-EFGH", "pin": "  "}, "Please type the PIN from your paper."),
])
def test_an_empty_field_is_named(app: Flask, data: dict[str, str], missing: str) -> None:
    client = app.test_client()
    response = _post(client, "/family/", "/family/", data)
    assert response.status_code == 422
    assert missing in _text(response)
    assert 'aria-invalid="true"' in response.get_data(as_text=True)


def test_an_overlong_code_is_simply_not_right(app: Flask) -> None:
    response = _post(app.test_client(), "/family/", "/family/",
                     {"receipt_code": "A" * 40, "pin": "123456"})
    assert response.status_code == 401
    assert "The code or PIN is not right." in _text(response)


def test_repeated_wrong_pins_slow_the_code_down(app: Flask, api: Api, clock: Clock) -> None:
    _family, receipt = _case(api)
    wrong = "000000" if receipt["pin"] != "000000" else "111111"
    client = app.test_client()
    for _ in range(3):
        assert _sign_in(client, receipt["code"], wrong).status_code == 401
    # Even the right PIN waits now: nothing tells a guesser which was right.
    slowed = _sign_in(client, receipt["code"], receipt["pin"])
    assert slowed.status_code == 429
    assert int(slowed.headers["Retry-After"]) >= 1
    assert ("There were too many wrong tries. Please wait about 1 minute, then try again."
            in _text(slowed))
    assert client.get("/family/consent").status_code == 302
    # Each further failure doubles the wait.
    for _ in range(7):
        clock.advance(seconds=int(slowed.headers["Retry-After"]))
        slowed = _sign_in(client, receipt["code"], wrong)
        assert slowed.status_code == 401
        slowed = _sign_in(client, receipt["code"], receipt["pin"])
        assert slowed.status_code == 429
    assert int(slowed.headers["Retry-After"]) > 120
    assert "Please wait about 3 minutes, then try again." in _text(slowed)
    clock.advance(seconds=int(slowed.headers["Retry-After"]))
    assert _sign_in(client, receipt["code"], receipt["pin"]).status_code == 302


def test_sign_in_starts_a_fresh_session(app: Flask, api: Api) -> None:
    _family, receipt = _case(api)
    client = app.test_client()
    client.get("/family/?lang=tr")
    before = _cookie(client)
    assert before is not None
    response = _sign_in(client, receipt["code"], receipt["pin"])
    assert response.status_code == 302
    after = _cookie(client)
    assert after is not None and after != before
    # The cookie from before sign-in opens nothing; the language choice is kept.
    stale = app.test_client()
    stale.set_cookie(COOKIE, before)
    assert stale.get("/family/consent").status_code == 302
    assert '<html lang="tr" dir="ltr">' in client.get("/family/consent").get_data(as_text=True)


def test_signed_in_family_goes_straight_to_its_form(app: Flask, api: Api) -> None:
    _family, receipt = _case(api)
    client = _signed_in(app, receipt)
    response = client.get("/family/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/family/consent"


@pytest.mark.parametrize("path", ["/family/consent", "/family/access-log",
                                  "/family/consent/revoke?agency=physio"])
def test_pages_need_a_signed_in_family(app: Flask, path: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == "/family/"


def test_an_expired_session_goes_back_to_sign_in(app: Flask, api: Api, clock: Clock) -> None:
    _family, receipt = _case(api)
    client = _signed_in(app, receipt)
    clock.advance(minutes=15)
    response = client.get("/family/consent")
    assert response.status_code == 302
    assert response.headers["Location"] == "/family/"
    page = client.get("/family/")
    assert page.status_code == 200
    assert "Your time on the family page has ended. Please sign in again." in _text(page)
    # The dead token is gone from the session: the next visit is quiet.
    assert "has ended" not in _text(client.get("/family/"))


@pytest.mark.parametrize("token", ["fs_not-a-real-token", "nurse1", 42])
def test_an_unknown_or_staff_token_is_not_a_family_session(
        app: Flask, api: Api, token: object) -> None:
    client = app.test_client()
    with client.session_transaction() as session:
        session[FAMILY_COOKIE] = api.tokens.get(str(token), token)
    response = client.get("/family/consent")
    assert response.status_code == 302
    assert response.headers["Location"] == "/family/"


def test_sign_out_ends_the_session_everywhere(app: Flask, api: Api) -> None:
    _family, receipt = _case(api)
    client = _signed_in(app, receipt)
    signed_in_cookie = _cookie(client)
    assert signed_in_cookie is not None
    response = _post(client, "/family/consent", "/family/sign-out", {})
    assert response.status_code == 302
    assert response.headers["Location"] == "/family/"
    assert "You are signed out." in _text(client.get("/family/"))
    assert client.get("/family/consent").status_code == 302
    # A copy of the signed-in cookie no longer works either.
    copy = app.test_client()
    copy.set_cookie(COOKIE, signed_in_cookie)
    assert copy.get("/family/consent").status_code == 302


def test_sign_out_needs_a_post(app: Flask, api: Api) -> None:
    _family, receipt = _case(api)
    client = _signed_in(app, receipt)
    assert client.get("/family/sign-out").status_code == 405
    assert client.get("/family/consent").status_code == 200


# --- stopping to share --------------------------------------------------------


def test_stop_sharing_one_cell_after_confirming(app: Flask, api: Api) -> None:
    family, receipt = _case(api)
    client = _signed_in(app, receipt)
    ask = client.get("/family/consent/revoke?agency=physio&field=health")
    assert ask.status_code == 200
    assert "Are you sure? Physiotherapy will no longer see health notes." in _text(ask)
    assert "Yes, stop sharing" in _text(ask) and "No, go back" in _text(ask)
    assert _grants(api, family)["physio"] == ["health", "involvement"]  # not yet

    done = client.post("/family/consent/revoke", data={
        "agency": "physio", "field": "health", "confirmed": "1",
        "csrf_token": csrf_token(ask.get_data(as_text=True))})
    assert done.status_code == 302
    assert done.headers["Location"] == "/family/consent"
    assert _grants(api, family)["physio"] == ["involvement"]
    page = _text(client.get("/family/consent"))
    # What changed, and what did not.
    assert ("Physiotherapy can no longer see health notes. Physiotherapy can still see: "
            "which services help you, and who your contact person is. Physiotherapy also "
            "still sees what it wrote itself.") in page
    assert ("Physiotherapy can see: which services help you, and who your contact person "
            "is.") in page
    # The health centre's column is untouched.
    assert _grants(api, family)["health-centre"] == ["contact", "health", "involvement"]


def test_stop_sharing_a_column_refuses_the_physiotherapist(app: Flask, api: Api) -> None:
    family, receipt = _case(api)
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200
    client = _signed_in(app, receipt)
    ask = client.get("/family/consent/revoke?agency=physio")
    assert ("Are you sure? Physiotherapy will no longer see anything about your family."
            in _text(ask))
    done = client.post("/family/consent/revoke", data={
        "agency": "physio", "confirmed": "1",
        "csrf_token": csrf_token(ask.get_data(as_text=True))})
    assert done.status_code == 302
    assert "physio" not in _grants(api, family)
    # Physiotherapy is not involved: with its column gone, nothing is left.
    assert ("Physiotherapy can no longer see anything about your family."
            in _text(client.get("/family/consent")))
    # The physiotherapist's very next look is refused, as if there were no family.
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404


def test_stop_all_sharing(app: Flask, api: Api) -> None:
    family, receipt = _case(api)
    client = _signed_in(app, receipt)
    ask = client.get("/family/consent/revoke")
    assert ("Are you sure? No service will see what other services share about your family "
            "any more. Health centre still works with your family and sees what it wrote "
            "itself. Health centre saved the form you signed, so it still sees the whole form."
            in _text(ask))
    done = client.post("/family/consent/revoke", data={
        "confirmed": "1", "csrf_token": csrf_token(ask.get_data(as_text=True))})
    assert done.status_code == 302
    assert _grants(api, family) == {}
    page = _text(client.get("/family/consent"))
    assert ("No service can see what other services share about your family now. Health "
            "centre still works with your family and sees what it wrote itself.") in page
    assert "No service can see anything now." not in page
    # The health centre still works with the family: the page says so, and
    # offers to end its part.
    assert "Health centre works with your family and sees what it wrote itself." in page
    assert "End the part of Health centre" in page
    assert "Stop all sharing" not in page
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404
    # Asking again finds nothing left to stop.
    again = _text(client.get("/family/consent/revoke"))
    assert "No service can see anything now. There is nothing to stop." in again
    assert "Yes, stop sharing" not in again


def test_a_post_without_the_yes_only_asks(app: Flask, api: Api) -> None:
    family, receipt = _case(api)
    client = _signed_in(app, receipt)
    response = _post(client, "/family/consent", "/family/consent/revoke",
                     {"agency": "physio"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/family/consent/revoke?agency=physio"
    assert "physio" in _grants(api, family)


@pytest.mark.parametrize("query", ["agency=nowhere", "agency=physio&field=shoe-size",
                                   "field=shoe-size", "agency=" + "x" * 65])
def test_an_unknown_choice_changes_nothing(app: Flask, api: Api, query: str) -> None:
    family, receipt = _case(api)
    client = _signed_in(app, receipt)
    ask = client.get(f"/family/consent/revoke?{query}")
    assert ask.status_code == 422
    assert ("We do not know this service or this kind of information. Nothing was changed."
            in _text(ask))
    data = dict(pair.split("=") for pair in query.split("&"))
    done = _post(client, "/family/consent", "/family/consent/revoke",
                 {**data, "confirmed": "1"})
    assert done.status_code == 422
    assert _grants(api, family) == {a: sorted(f) for a, f in GRID.items()}


@pytest.mark.parametrize("token", [None, "", "not-the-token"])
def test_a_post_without_the_csrf_token_changes_nothing(app: Flask, api: Api,
                                                       token: str | None) -> None:
    family, receipt = _case(api)
    client = _signed_in(app, receipt)
    data = {"agency": "physio", "confirmed": "1"}
    if token is not None:
        data["csrf_token"] = token
    response = client.post("/family/consent/revoke", data=data)
    assert response.status_code == 400
    assert "nothing was changed" in _text(response)
    assert "physio" in _grants(api, family)
    # Sign-out and sign-in are protected the same way.
    assert client.post("/family/sign-out").status_code == 400
    assert client.get("/family/consent").status_code == 200
    assert app.test_client().post("/family/", data={
        "receipt_code": receipt["code"], "pin": receipt["pin"]}).status_code == 400


# --- who looked ---------------------------------------------------------------


def test_who_looked_in_short_sentences(app: Flask, api: Api, clock: Clock) -> None:
    family, receipt = _case(api)
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200
    client = _signed_in(app, receipt)
    ask = client.get("/family/consent/revoke?agency=physio")
    client.post("/family/consent/revoke", data={
        "agency": "physio", "confirmed": "1",
        "csrf_token": csrf_token(ask.get_data(as_text=True))})
    clock.advance(minutes=5)
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404

    page = client.get("/family/access-log")
    assert page.status_code == 200
    text = _text(page)
    assert "Who looked at your information" in text
    assert ("22 November 2026, 10:00: Physiotherapy (practitioner) looked at your record. "
            "They saw: which services help you, and who your contact person is; "
            "health notes.") in text
    assert ("22 November 2026, 10:05: Physiotherapy (practitioner) tried to look and was "
            "refused.") in text
    assert "Health centre (coordinator) saved the consent form you signed." in text
    assert ("Health centre (practitioner) wrote a note. The note is about: health notes."
            in text)
    assert "not shown" not in text and "display_name" not in text
    # Newest first; the family's own acts are not listed.
    assert text.index("10:05") < text.index("10:00")
    assert "(family)" not in text and "Growth on track" not in text


def test_who_looked_before_anyone_looked(app: Flask, api: Api) -> None:
    family = api.new_family("nurse1", display_name="Aylin Demir")
    receipt = api.sign(family, {"physio": ["health"]})["receipt"]
    client = _signed_in(app, receipt)
    text = _text(client.get("/family/access-log"))
    assert "Health centre (practitioner) added your family." in text


# --- languages ----------------------------------------------------------------


@pytest.mark.parametrize(("lang", "direction", "words"), [
    ("nb", "ltr", ["Kvitteringskode", "Logg inn"]),
    ("tr", "ltr", ["Makbuz kodu", "Giriş yap"]),
    ("ar", "rtl", ["رمز الإيصال", "تسجيل الدخول"]),
])
def test_the_sign_in_page_in_each_language(app: Flask, lang: str, direction: str,
                                           words: list[str]) -> None:
    client = app.test_client()
    html = client.get(f"/family/?lang={lang}").get_data(as_text=True)
    assert f'<html lang="{lang}" dir="{direction}">' in html
    for word in words:
        assert word in html
    assert re.search(rf'hreflang="{lang}" aria-current="true"', html)
    assert html.count('aria-current="true"') == 1
    # The choice is kept for the next page.
    assert f'<html lang="{lang}" dir="{direction}">' in client.get("/family/").get_data(
        as_text=True)


def test_arabic_family_page_reads_right_to_left(app: Flask, api: Api) -> None:
    family, receipt = _case(api)
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200
    client = app.test_client()
    client.get("/family/?lang=ar")
    response = _sign_in(client, receipt["code"], receipt["pin"])
    assert response.status_code == 302
    html = client.get("/family/consent").get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in html
    assert "ملاحظات صحية" in html  # health notes
    assert "أوقف كل المشاركة" in html  # stop all sharing
    # Latin agency names keep their own direction inside Arabic sentences.
    assert "\u2068Physiotherapy\u2069" in html
    log = client.get("/family/access-log").get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in log
    assert "نوفمبر" in log  # the month, in Arabic
    # Switching back keeps the page and the session.
    back = client.get("/family/consent?lang=en").get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in back and "Stop all sharing" in back


def test_language_links_keep_the_question_on_the_page(app: Flask, api: Api) -> None:
    _family, receipt = _case(api)
    client = _signed_in(app, receipt)
    html = client.get("/family/consent/revoke?agency=physio&lang=en").get_data(as_text=True)
    assert 'href="/family/consent/revoke?agency=physio&amp;lang=nb"' in html
    norsk = client.get("/family/consent/revoke?agency=physio&lang=nb")
    assert norsk.status_code == 200
    assert "Physiotherapy" in _text(norsk) and 'lang="nb"' in norsk.get_data(as_text=True)


def test_errors_are_shown_in_the_familys_language(app: Flask, api: Api) -> None:
    _family, receipt = _case(api)
    client = _signed_in(app, receipt)
    response = client.get("/family/consent/revoke?agency=nowhere&lang=tr")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert '<html lang="tr" dir="ltr">' in html
    assert "Hiçbir şey değişmedi." in html


# --- the whole site's rules ---------------------------------------------------


def _every_page(app: Flask, api: Api) -> tuple[list[Any], str, dict[str, str]]:
    """Every family page (and its answers to failures), as the family sees them."""
    family, receipt = _case(api)
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200
    client = app.test_client()
    seen = [client.get("/family/"), client.get("/family/consent"),
            _sign_in(client, receipt["code"], "999999" if receipt["pin"] != "999999"
                     else "888888")]
    seen.append(_sign_in(client, receipt["code"], receipt["pin"]))
    for path in ["/family/consent", "/family/access-log",
                 "/family/consent/revoke?agency=physio&field=health",
                 "/family/consent/revoke?agency=physio", "/family/consent/revoke",
                 "/family/consent/revoke?agency=nowhere", "/family/?lang=ar"]:
        seen.append(client.get(path))
    seen.append(client.post("/family/consent/revoke", data={"agency": "physio"}))
    seen.append(_post(client, "/family/consent", "/family/consent/revoke",
                      {"agency": "physio", "confirmed": "1"}))
    seen.append(client.get("/family/consent"))
    seen.append(_post(client, "/family/consent", "/family/sign-out", {}))
    seen.append(client.get("/family/"))
    return seen, family, receipt


def test_every_page_sends_the_security_headers(app: Flask, api: Api) -> None:
    seen, _family, _receipt = _every_page(app, api)
    statuses = {r.status_code for r in seen}
    assert {200, 302, 400, 401, 422} <= statuses
    for response in seen:
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["X-Frame-Options"] == "DENY"
        if response.mimetype == "text/html":
            assert response.headers["Cache-Control"] == "no-store"
            assert "<script>" not in response.get_data(as_text=True)  # CSP: no inline


def test_no_code_pin_or_family_value_in_any_url(app: Flask, api: Api) -> None:
    seen, family, receipt = _every_page(app, api)
    secrets = [receipt["code"], receipt["code"].replace("-", ""), receipt["pin"], family,
               "Aylin", "Demir", "receipt_code", "pin="]
    urls = []
    for response in seen:
        urls.append(response.request.url if hasattr(response, "request") else "")
        urls.append(response.headers.get("Location", ""))
        urls.extend(unescape(u) for u in URLS.findall(response.get_data(as_text=True)))
    assert len(urls) > 50
    for url in urls:
        for secret in secrets:
            assert secret.lower() not in url.lower(), (secret, url)


def test_times_in_the_configured_time_zone(app: Flask, api: Api, settings: Any,
                                           clock: Clock) -> None:
    """ONESTORY_TIMEZONE: a family in Oslo reads Oslo time (UTC+1 in November)."""
    import dataclasses

    from coordination.app import create_app

    family, receipt = _case(api)
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200
    oslo = create_app(dataclasses.replace(settings, timezone="Europe/Oslo"), clock=clock)
    try:
        text = _text(_signed_in(oslo, receipt).get("/family/access-log"))
        assert "22 November 2026, 11:00: Physiotherapy (practitioner) looked" in text
    finally:
        oslo.extensions["onestory"].dispose()


@pytest.mark.parametrize("query", ["endpoint=x", "_method=POST", "_external=1",
                                   "_anchor=x", "_scheme=javascript"])
def test_odd_query_arguments_do_not_steer_the_language_links(app: Flask, api: Api,
                                                             query: str) -> None:
    response = app.test_client().get(f"/family/?{query}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'href="/family/?lang=nb"' in html
    assert "javascript" not in html.split("<main", 1)[0]


# --- what the family reads after a change is true ----------------------------------


def _referred(api: Api) -> tuple[str, dict[str, str]]:
    """The case, with physiotherapy involved through a referral and a note of its own."""
    family, receipt = _case(api)
    assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    api.write(family, "health", "Physio: walks with support.", who="physio1")
    return family, receipt


def test_stopping_a_cell_says_the_agency_still_works_with_the_family(app: Flask,
                                                                    api: Api) -> None:
    family, receipt = _referred(api)
    client = _signed_in(app, receipt)
    page = _text(client.get("/family/consent"))
    assert "Physiotherapy works with your family and sees what it wrote itself." in page
    ask = client.get("/family/consent/revoke?agency=physio")
    assert ("Physiotherapy will no longer see what other services share about your family. "
            "Physiotherapy will still work with your family and see what it wrote itself. "
            "To end that too, choose “End the part of Physiotherapy” on your page."
            in _text(ask))
    done = _post(client, "/family/consent/revoke?agency=physio&field=health",
                 "/family/consent/revoke",
                 {"agency": "physio", "field": "health", "confirmed": "1"})
    assert done.status_code == 302
    said = _text(client.get("/family/consent"))
    assert ("Physiotherapy can no longer see health notes. Physiotherapy can still see: "
            "which services help you, and who your contact person is. Physiotherapy still "
            "works with your family and sees what it wrote itself.") in said
    # True of what physiotherapy then sees: its own note, nobody else's.
    record = api.get(f"/api/v1/families/{family}", "physio1").get_json()
    assert [e["value"] for e in record["fields"]["health"]] == ["Physio: walks with support."]


@pytest.mark.parametrize(("lang", "asked", "done"), [
    ("en", "Physiotherapy will no longer work with your family. It will not find your "
           "family any more, and will not see anything about it.",
     "Physiotherapy no longer has any part in your family's record."),
    ("tr", "Physiotherapy artık ailenizle çalışmayacak.",
     "Physiotherapy artık ailenizin kaydında hiçbir rol almıyor."),
    ("ar", "لن تعمل \u2068Physiotherapy\u2069 مع عائلتك بعد الآن.",
     "لم يعد لـ \u2068Physiotherapy\u2069 أي دور في ملف عائلتك."),
])
def test_the_family_ends_an_agencys_part_after_confirming(app: Flask, api: Api, lang: str,
                                                          asked: str, done: str) -> None:
    family, receipt = _referred(api)
    client = _signed_in(app, receipt)
    client.get(f"/family/consent?lang={lang}")
    page = client.get("/family/consent").get_data(as_text=True)
    assert "/family/end?agency=physio" in page
    ask = client.get("/family/end?agency=physio")
    assert ask.status_code == 200 and asked in _text(ask)
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200  # not yet
    unconfirmed = _post(client, "/family/end?agency=physio", "/family/end",
                        {"agency": "physio"})
    assert unconfirmed.status_code == 302
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200
    ended = _post(client, "/family/end?agency=physio", "/family/end",
                  {"agency": "physio", "confirmed": "1"})
    assert ended.status_code == 302 and ended.headers["Location"] == "/family/consent"
    assert done in _text(client.get("/family/consent"))
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404
    assert api.get("/api/v1/families?name=Aylin", "physio1").get_json() == []
    # Asked again: nothing to end, nothing written.
    again = client.get("/family/end?agency=physio")
    assert "/family/end" not in again.get_data(as_text=True).split("<main", 1)[1]


@pytest.mark.parametrize("query", ["agency=nowhere", "agency=" + "x" * 65, ""])
def test_ending_an_unknown_agency_changes_nothing(app: Flask, api: Api, query: str) -> None:
    family, receipt = _referred(api)
    client = _signed_in(app, receipt)
    assert client.get(f"/family/end?{query}").status_code == 422
    data = dict(pair.split("=") for pair in query.split("&") if pair)
    assert _post(client, "/family/consent", "/family/end",
                 {**data, "confirmed": "1"}).status_code == 422
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200


def test_ending_needs_the_csrf_token(app: Flask, api: Api) -> None:
    family, receipt = _referred(api)
    client = _signed_in(app, receipt)
    response = client.post("/family/end", data={"agency": "physio", "confirmed": "1"})
    assert response.status_code == 400
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200


def test_who_looked_reads_true(app: Flask, api: Api, clock: Clock) -> None:
    family, receipt = _referred(api)
    _post(_signed_in(app, receipt), "/family/consent", "/family/consent/revoke",
          {"agency": "physio", "field": "health", "confirmed": "1"})
    for _ in range(4):
        clock.advance(minutes=5)
        api.get(f"/api/v1/families/{family}", "physio1")
    client = _signed_in(app, receipt)
    text = _text(client.get("/family/access-log"))
    assert ("Physiotherapy (practitioner) looked at your record 4 times on 22 November. "
            "They saw: which services help you, and who your contact person is. They looked "
            "at what they wrote themselves: health notes.") in text
    assert "Health centre (coordinator) sent your family to Physiotherapy." in text
    # Once its part is ended, physiotherapy's refused looks that day are one line too.
    _post(client, "/family/end?agency=physio", "/family/end",
          {"agency": "physio", "confirmed": "1"})
    for _ in range(2):
        assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404
    text = _text(client.get("/family/access-log"))
    assert ("Physiotherapy (practitioner) tried to look 2 times on 22 November and was "
            "refused.") in text
    client.get("/family/access-log?lang=tr")
    turkish = _text(client.get("/family/access-log"))
    assert "Physiotherapy (uzman) 22 Kasım günü kaydınıza 4 kez baktı." in turkish, turkish


def test_a_refused_change_does_not_read_as_a_look(app: Flask, api: Api, clock: Clock) -> None:
    """A role refused a write (a practitioner recording a form, writing a
    referral) tried to change something, not to look: the family reads
    which, in each language, and the two are never one line."""
    family, receipt = _case(api)
    assert api.put(f"/api/v1/families/{family}/consent", "physio1",
                   json={}).status_code == 403
    assert api.post(f"/api/v1/families/{family}/involvements", "physio1",
                    json={"agency": "ecec"}).status_code == 403
    clock.advance(minutes=5)
    assert api.get(f"/api/v1/families/{family}/consent/history",
                   "physio1").status_code == 403
    token = api.post("/api/v1/family/session", json={"receipt_code": receipt["code"],
                                                     "pin": receipt["pin"]}).get_json()["token"]
    log = api.get(f"/api/v1/families/{family}/access-log", token).get_json()
    refused = [(row["what"], row["times"]) for row in log if row["refused"]]
    assert refused == [("tried to look and was refused", 1),
                       ("tried to change something and was refused", 2)]
    client = _signed_in(app, receipt)
    text = _text(client.get("/family/access-log"))
    assert ("22 November 2026, 10:05: Physiotherapy (practitioner) tried to look and was "
            "refused.") in text
    assert ("Physiotherapy (practitioner) tried to change something 2 times on 22 November "
            "and was refused.") in text
    for lang in ("nb", "tr", "ar"):
        client.get(f"/family/access-log?lang={lang}")
        translated = _text(client.get("/family/access-log"))
        assert "tried to change" not in translated and "tried to look" not in translated


def test_after_the_form_ended_a_revocation_promises_nothing_that_is_not_so(
        app: Flask, api: Api, clock: Clock) -> None:
    """Once the form is past its last day no cell is shared: the message
    after stopping one must not say the agency can still see the others."""
    family, receipt = _case(api)
    clock.advance(days=366)
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404
    client = _signed_in(app, receipt)
    response = _post(client, "/family/consent/revoke?agency=physio&field=health",
                     "/family/consent/revoke",
                     {"agency": "physio", "field": "health", "confirmed": "1"})
    assert response.status_code == 302
    text = _text(client.get("/family/consent"))
    assert "Physiotherapy can no longer see health notes." in text
    assert "can still see" not in text and "still sees what it wrote" not in text
    # And it is so: physiotherapy does not find the family.
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404
