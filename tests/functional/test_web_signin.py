"""Staff sign-in to the web UI: every failure mode, sessions, CSRF and headers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text, update

from audit.model import Action
from coordination.model import Entry, Staff, WebSession
from coordination.web import CSP
from tests.conftest import Api, Clock, audit_fails_for
from tests.web import csrf_token, password_of, post_form, set_passwords, sign_in, signed_in

TEMPLATES = Path(__file__).resolve().parents[2] / "coordination" / "templates"


@pytest.fixture
def web(app: Flask, api: Api) -> Api:
    set_passwords(app)
    return api


def audit_rows(app: Flask, action: Action) -> list[Any]:
    with app.extensions["onestory"].engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT actor, agency_id, role, reason, outcome, detail FROM audit_log "
            "WHERE action = :a ORDER BY seq"), {"a": action.value}))


def test_sign_in_page_has_labelled_fields(app: Flask, web: Api) -> None:
    page = app.test_client().get("/sign-in").get_data(as_text=True)
    assert re.search(r'<label for="f-username">Username', page)
    assert re.search(r'<label for="f-password">Password', page)
    assert 'id="f-username"' in page and 'id="f-password"' in page
    assert re.search(r'<button type="submit" class="primary">Sign in</button>', page)


@pytest.mark.parametrize(("username", "home"), [
    ("physio1", "/staff/"), ("coord1", "/staff/"), ("auditor1", "/audit/"),
    ("admin1", "/admin/staff"),
])
def test_sign_in_goes_home_and_is_recorded(app: Flask, web: Api, username: str,
                                           home: str) -> None:
    client = app.test_client()
    response = sign_in(client, username)
    assert response.status_code == 302
    assert response.headers["Location"] == home
    assert client.get(home).status_code == 200
    (row,) = audit_rows(app, Action.LOGIN)
    assert row.actor == username and row.outcome == "ok"
    assert '"via":"password"' in row.detail


def test_session_cookie_flags(app: Flask, web: Api) -> None:
    client = app.test_client()
    response = sign_in(client, "nurse1")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


@pytest.mark.parametrize(("username", "password", "reason", "named"), [
    ("nurse1", "wrong-password", "wrong_password", True),
    ("nobody", "whatever-it-is", "unknown_user", False),
    ("nurse1", "", None, False),  # a form error, no attempt made
])
def test_failed_sign_in(app: Flask, web: Api, username: str, password: str,
                        reason: str | None, named: bool) -> None:
    client = app.test_client()
    token = csrf_token(client.get("/sign-in").get_data(as_text=True))
    response = client.post("/sign-in", data={"username": username, "password": password,
                                             "csrf_token": token})
    page = response.get_data(as_text=True)
    assert response.status_code in {401, 422}
    assert client.get("/staff/").status_code == 302  # not signed in
    failures = audit_rows(app, Action.LOGIN_FAILED)
    if reason is None:
        assert response.status_code == 422 and "password" in page
        assert failures == []
        return
    assert "The username or password is not right." in page
    (row,) = failures
    assert row.reason == reason and row.outcome == "denied"
    # A typed name that is no user is never written down (it could be anything).
    assert row.actor == (username if named else None)
    assert "nobody" not in str(row)


def test_deactivated_staff_cannot_sign_in_and_session_ends(app: Flask, web: Api) -> None:
    client = signed_in(app, "nurse1")
    with app.extensions["onestory"].sessions() as session:
        session.execute(update(Staff).where(Staff.username == "nurse1").values(active=False))
        session.commit()
    assert client.get("/staff/").status_code == 302
    response = sign_in(app.test_client(), "nurse1")
    assert response.status_code == 401
    assert audit_rows(app, Action.LOGIN_FAILED)[-1].reason == "inactive"


def test_lockout_after_repeated_failures(app: Flask, web: Api, clock: Clock) -> None:
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, "nurse1", "wrong-password").status_code == 401
    # Locked now, even with the right password.
    locked = sign_in(client, "nurse1")
    assert locked.status_code == 429
    assert "locked" in locked.get_data(as_text=True)
    assert int(locked.headers["Retry-After"]) > 0
    assert audit_rows(app, Action.LOGIN_FAILED)[-1].reason == "locked_out"
    # Another user is not affected by nurse1's lock.
    assert sign_in(app.test_client(), "coord1").status_code == 302
    clock.advance(minutes=16)
    assert sign_in(client, "nurse1").status_code == 302


def test_failures_spread_over_time_do_not_lock(app: Flask, web: Api, clock: Clock) -> None:
    client = app.test_client()
    for _ in range(8):
        assert sign_in(client, "nurse1", "wrong-password").status_code == 401
        clock.advance(minutes=4)
    # Eight failures, but never five within 15 minutes: no lock.
    assert sign_in(client, "nurse1").status_code == 302


def test_lockout_of_a_client_address(app: Flask, web: Api) -> None:
    client = app.test_client()
    for i in range(20):
        assert sign_in(client, f"guess{i}", "wrong-password").status_code == 401
    # Every username is locked from this address now.
    assert sign_in(client, "coord1").status_code == 429
    # From another address the same user signs in.
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert sign_in(other, "coord1").status_code == 302


def test_sign_in_needs_csrf_token(app: Flask, web: Api) -> None:
    client = app.test_client()
    client.get("/sign-in")
    response = client.post("/sign-in", data={"username": "nurse1",
                                             "password": password_of("nurse1")})
    assert response.status_code == 400
    assert "nothing was changed" in response.get_data(as_text=True)
    assert client.get("/staff/").status_code == 302
    assert audit_rows(app, Action.LOGIN) == []


def test_csrf_token_of_another_session_is_refused(app: Flask, web: Api, api: Api) -> None:
    family_id = api.new_family()
    victim = signed_in(app, "nurse1")
    attacker = app.test_client()
    foreign = csrf_token(attacker.get("/sign-in").get_data(as_text=True))
    response = victim.post(f"/staff/families/{family_id}/entries",
                           data={"field": "health", "value": "forged", "csrf_token": foreign})
    assert response.status_code == 400
    assert "forged" not in api.get(f"/api/v1/families/{family_id}", "nurse1").get_data(
        as_text=True)


def test_sign_out_ends_the_session_for_good(app: Flask, web: Api) -> None:
    client = signed_in(app, "nurse1")
    cookie = client.get_cookie("onestory")
    assert cookie is not None
    response = post_form(client, "/staff/", "/sign-out", {})
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert client.get("/staff/").status_code == 302
    (row,) = audit_rows(app, Action.LOGOUT)
    assert row.actor == "nurse1" and row.reason is None
    # Replaying the old cookie does not bring the session back.
    client.set_cookie("onestory", cookie.value)
    response = client.get("/staff/")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_sign_out_needs_csrf_token(app: Flask, web: Api) -> None:
    client = signed_in(app, "nurse1")
    assert client.post("/sign-out").status_code == 400
    assert client.get("/staff/").status_code == 200


def test_idle_timeout(app: Flask, web: Api, clock: Clock) -> None:
    client = signed_in(app, "nurse1")
    for _ in range(3):  # activity keeps the session alive
        clock.advance(minutes=25)
        assert client.get("/staff/").status_code == 200
    clock.advance(minutes=31)
    response = client.get("/staff/")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]
    (row,) = audit_rows(app, Action.LOGOUT)
    assert row.reason == "idle"
    clock.advance(minutes=1)
    assert client.get("/staff/").status_code == 302


def test_absolute_lifetime(app: Flask, web: Api, clock: Clock) -> None:
    client = signed_in(app, "nurse1")
    for _ in range(25):
        clock.advance(minutes=29)
        if client.get("/staff/").status_code != 200:
            break
    assert client.get("/staff/").status_code == 302
    assert audit_rows(app, Action.LOGOUT)[-1].reason == "expired"


def test_session_is_stored_only_as_a_hash(app: Flask, web: Api) -> None:
    client = signed_in(app, "nurse1")
    with app.extensions["onestory"].sessions() as session:
        (stored,) = session.scalars(select(WebSession.token_hash))
    cookie = client.get_cookie("onestory")
    assert cookie is not None and stored not in cookie.value and len(stored) == 64


def test_session_fixation(app: Flask, web: Api) -> None:
    client = app.test_client()
    client.get("/sign-in")
    before = client.get_cookie("onestory")
    sign_in(client, "nurse1")
    after = client.get_cookie("onestory")
    assert after is not None and (before is None or before.value != after.value)


def test_tampered_cookie_is_not_a_session(app: Flask, web: Api) -> None:
    client = signed_in(app, "nurse1")
    cookie = client.get_cookie("onestory")
    assert cookie is not None
    client.set_cookie("onestory", cookie.value[:-3] + ("AAA" if cookie.value[-3:] != "AAA"
                                                       else "BBB"))
    assert client.get("/staff/").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x",
                                    "/\\evil.example", "javascript:alert(1)"])
def test_no_open_redirect_after_sign_in(app: Flask, web: Api, target: str) -> None:
    response = sign_in(app.test_client(), "nurse1", next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/"


def test_next_page_after_sign_in(app: Flask, web: Api) -> None:
    client = app.test_client()
    first = client.get("/staff/families/new")
    assert first.status_code == 302
    assert "next=/staff/families/new" in first.headers["Location"]
    response = sign_in(client, "nurse1", next="/staff/families/new")
    assert response.headers["Location"] == "/staff/families/new"


@pytest.mark.parametrize(("username", "path"), [
    ("auditor1", "/staff/"),
    ("admin1", "/staff/families/new"),
    ("nurse1", "/audit/"),
    ("coord1", "/audit/verify"),
])
def test_wrong_role_is_refused_and_recorded(app: Flask, web: Api, username: str,
                                            path: str) -> None:
    client = signed_in(app, username)
    response = client.get(path)
    assert response.status_code == 403
    assert "text/html" in response.headers["Content-Type"]
    denied = audit_rows(app, Action.REQUEST_DENIED)
    assert denied and denied[-1].actor == username and denied[-1].reason == "role"


def test_wrong_agency_sees_no_family_and_is_recorded(app: Flask, web: Api, api: Api) -> None:
    family_id = api.new_family(display_name="Hidden Marker Family")
    client = signed_in(app, "physio1")
    response = client.get(f"/staff/families/{family_id}")
    assert response.status_code == 404
    assert "Hidden Marker" not in response.get_data(as_text=True)
    denied = audit_rows(app, Action.REQUEST_DENIED)
    assert denied[-1].actor == "physio1" and denied[-1].reason == "not_visible"


def test_pages_send_security_headers(app: Flask, web: Api) -> None:
    client = signed_in(app, "nurse1")
    for path in ["/sign-in", "/staff/", "/staff/families/new", "/family/"]:
        response = client.get(path)
        assert response.headers["Content-Security-Policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"


def test_no_inline_script_or_style_in_templates() -> None:
    """The CSP forbids inline code; a template that had some would break."""
    for template in TEMPLATES.rglob("*.html"):
        source = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", source), template
        assert not re.search(r"\son[a-z]+\s*=", source), template
        assert not re.search(r"\sstyle\s*=", source), template
        assert "<style" not in source, template


def test_api_is_not_affected_by_csrf(app: Flask, web: Api, api: Api) -> None:
    """The API answers bearer tokens only: a browser's signed-in cookie opens
    nothing there (so a forged cross-site request has nothing to ride on),
    and a bearer request needs no CSRF token, cookie or not."""
    family_id = api.new_family()
    browser = signed_in(app, "nurse1")
    assert browser.get(f"/staff/families/{family_id}").status_code == 200  # the cookie works
    entries = f"/api/v1/families/{family_id}/entries"
    cookie_only = [
        (browser.get(f"/api/v1/families/{family_id}"), 401),
        (browser.post(entries, json={"field": "health", "value": "by cookie"}), 401),
        # What a cross-site HTML form can send: not JSON, refused before the token.
        (browser.post(entries, data={"field": "health", "value": "by cookie"}), 400),
    ]
    for response, status in cookie_only:
        assert response.status_code == status, response.get_data(as_text=True)
        assert response.mimetype == "application/problem+json"
    bearer = {"Authorization": f"Bearer {api.tokens['nurse1']}"}
    written = browser.post(entries, json={"field": "health", "value": "by bearer"},
                           headers=bearer)  # the same browser, its cookie sent too
    assert written.status_code == 201, written.get_data(as_text=True)
    assert api.client.post(entries, json={"field": "health", "value": "no cookie"},
                           headers=bearer).status_code == 201
    with app.extensions["onestory"].sessions() as session:
        authors = session.scalars(select(Entry.author_id).where(Entry.family_id == family_id))
        assert len(list(authors)) == 2  # the two bearer writes, none by cookie


def test_behind_a_trusted_proxy(app: Flask, web: Api, settings: Any, clock: Clock) -> None:
    """With ONESTORY_TRUSTED_PROXIES the proxy's X-Forwarded-For is the client
    address that lockout counts, and X-Forwarded-Proto https makes pages send
    HSTS; without it those headers are ignored."""
    import dataclasses

    from coordination.app import create_app

    attacker = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    someone_else = {"X-Forwarded-For": "198.51.100.2", "X-Forwarded-Proto": "https"}
    assert "Strict-Transport-Security" not in app.test_client().get(
        "/sign-in", headers=attacker).headers
    proxied = create_app(dataclasses.replace(settings, trusted_proxies=1), clock=clock)
    try:
        client = proxied.test_client()
        assert "Strict-Transport-Security" in client.get("/sign-in", headers=attacker).headers

        def attempt(username: str, password: str, headers: dict[str, str]) -> int:
            page = client.get("/sign-in", headers=headers).get_data(as_text=True)
            # Over https Flask-WTF also wants a same-site Referer, as browsers send.
            return client.post("/sign-in", headers={**headers, "Referer":
                                                    "https://localhost/sign-in"}, data={
                "username": username, "password": password,
                "csrf_token": csrf_token(page)}).status_code

        for i in range(20):
            assert attempt(f"guess{i}", "wrong-password", attacker) == 401
        assert attempt("coord1", password_of("coord1"), attacker) == 429
        assert attempt("coord1", password_of("coord1"), someone_else) == 302
    finally:
        proxied.extensions["onestory"].dispose()


def test_parallel_guesses_cannot_slip_past_the_lockout(app: Flask, web: Api,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """25 wrong sign-ins for one username at once: no more than five are ever
    checked, the rest are refused as locked (on PostgreSQL, too, where the
    requests really run side by side), and the username is locked after."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from coordination import signin

    original = signin._check_password
    counter = {"checks": 0}
    lock = threading.Lock()

    def slow_check(staff: Any, password: str) -> bool:
        with lock:
            counter["checks"] += 1
        threading.Event().wait(0.05)  # widen the window a race would need
        return original(staff, password)

    monkeypatch.setattr(signin, "_check_password", slow_check)
    pages = []
    for _ in range(25):
        client = app.test_client()
        pages.append((client, csrf_token(client.get("/sign-in").get_data(as_text=True))))
    barrier = threading.Barrier(25)

    def attempt(i: int) -> int:
        client, token = pages[i]
        barrier.wait(timeout=30)
        return client.post("/sign-in", data={"username": "nurse1", "password": "wrong",
                                             "csrf_token": token}).status_code

    with ThreadPoolExecutor(max_workers=25) as pool:
        codes = list(pool.map(attempt, range(25)))
    assert codes.count(401) == 5 and counter["checks"] == 5, (codes, counter)
    assert codes.count(429) == 20, codes
    # After the dust settles the username is locked, the right password included.
    assert sign_in(app.test_client(), "nurse1").status_code == 429


def test_sign_out_ends_the_session_even_when_it_cannot_be_recorded(
        app: Flask, web: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ending access is never refused: with the audit log failing, sign-out
    still ends the session (server-side and the cookie) and says it failed."""
    import audit.services

    client = signed_in(app, "nurse1")
    cookie = client.get_cookie("onestory")
    assert cookie is not None
    token = csrf_token(client.get("/staff/").get_data(as_text=True))
    real = audit.services.record
    audit_fails_for(monkeypatch, Action.LOGOUT)
    response = client.post("/sign-out", data={"csrf_token": token})
    assert response.status_code == 503
    monkeypatch.setattr(audit.services, "record", real)
    assert client.get("/staff/").status_code == 302
    client.set_cookie("onestory", cookie.value)
    assert client.get("/staff/").status_code == 302
    with app.extensions["onestory"].sessions() as session:
        assert session.scalars(select(WebSession.ended_at)).one() is not None


def test_signing_in_again_ends_the_session_before(app: Flask, web: Api) -> None:
    client = signed_in(app, "nurse1")
    old = client.get_cookie("onestory")
    assert old is not None
    # A sign-in form left open in another tab, sent while signed in.
    token = csrf_token(client.get("/staff/").get_data(as_text=True))
    response = client.post("/sign-in", data={"username": "coord1", "csrf_token": token,
                                             "password": password_of("coord1")})
    assert response.status_code == 302
    assert "coord1" in client.get("/staff/").get_data(as_text=True)
    (row,) = audit_rows(app, Action.LOGOUT)
    assert row.actor == "nurse1"
    replay = app.test_client()
    replay.set_cookie("onestory", old.value)
    assert replay.get("/staff/").status_code == 302


def test_only_trusted_host_names_are_answered(settings: Any, clock: Clock) -> None:
    """Links (the provider's return address, the receipt's family page) are
    built from the Host header, so production names the hosts it answers to."""
    import dataclasses

    from coordination.app import create_app

    app = create_app(dataclasses.replace(settings, trusted_hosts=["onestory.example.org"]),
                     clock=clock)
    try:
        client = app.test_client()
        assert client.get("/sign-in", headers={"Host": "evil.example"}).status_code == 400
        assert client.get("/sign-in",
                          headers={"Host": "onestory.example.org"}).status_code == 200
    finally:
        app.extensions["onestory"].dispose()
