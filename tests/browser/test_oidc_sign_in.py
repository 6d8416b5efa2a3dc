"""Staff sign-in through an agency's own OpenID Connect provider, in Chromium,
against a real provider (npm `oidc-provider`) started on loopback: the
authorization code flow with PKCE, the provider's user matched to a staff
member, unknown users refused, and every outcome on the audit log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import text, update

from coordination import accounts
from coordination.model import Staff
from tests.browser.helpers import OidcProvider, axe_check, provider_sign_in, screenshot
from tests.conftest import Api


@pytest.fixture(params=["127.0.0.1", "localhost"])
def physio_provider(app: Flask, api: Api, live_server: Callable[..., str],
                    oidc_provider: Callable[..., OidcProvider],
                    request: pytest.FixtureRequest) -> tuple[str, OidcProvider]:
    """The agency's provider on the same site as OneStory, and on another
    site (`localhost`), as a real agency's is: the return from it must
    still carry the sign-in state (SameSite=Lax, not Strict)."""
    base = live_server()
    provider = oidc_provider([f"{base}/sign-in/oidc/physio/callback"], host=request.param)
    with app.extensions["onestory"].sessions() as session:
        accounts.set_agency_provider(session, "physio", provider.issuer, provider.client_id)
        accounts.link_provider_subject(session, "physio1", "alice")
        accounts.link_provider_subject(session, "nurse1", "bob")  # another agency's user
    return base, provider


def audit(app: Flask, action: str) -> list[Any]:
    with app.extensions["onestory"].engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT actor, agency_id, reason, detail FROM audit_log WHERE action = :a "
            "ORDER BY seq"), {"a": action}))


def start(page: Page, base: str) -> None:
    page.goto(f"{base}/sign-in")
    page.get_by_role("link", name="Sign in with Physiotherapy").click()


def test_oidc_sign_in(page: Page, app: Flask, physio_provider: tuple[str, OidcProvider]) -> None:
    base, provider = physio_provider
    page.goto(f"{base}/sign-in")
    axe_check(page)
    screenshot(page, "10-sign-in-with-agency")
    with page.expect_request(lambda r: r.url.startswith(provider.issuer + "/auth?")) as asked:
        page.get_by_role("link", name="Sign in with Physiotherapy").click()
    # PKCE: the product sent an S256 code challenge (and a nonce for the ID token).
    authorization = asked.value.url
    assert "code_challenge_method=S256" in authorization and "code_challenge=" in authorization
    assert "nonce=" in authorization and "state=" in authorization
    page.wait_for_url(lambda url: url.startswith(provider.issuer))
    screenshot(page, "11-agency-provider-login")
    provider_sign_in(page, "alice")
    expect(page).to_have_url(f"{base}/staff/")
    expect(page.get_by_text("physio1 · practitioner · physio")).to_be_visible()
    (row,) = audit(app, "login")
    assert row.actor == "physio1" and '"via":"oidc"' in row.detail
    page.get_by_role("button", name="Sign out").click()
    assert audit(app, "logout")[-1].actor == "physio1"


@pytest.mark.parametrize("login", ["mallory", "bob"])
def test_unknown_provider_user_is_refused(page: Page, app: Flask, login: str,
                                          physio_provider: tuple[str, OidcProvider]) -> None:
    base, _provider = physio_provider
    start(page, base)
    provider_sign_in(page, login)
    expect(page.get_by_role("alert")).to_contain_text("you have no OneStory account there")
    axe_check(page)
    screenshot(page, f"12-oidc-refused-{login}")
    page.goto(f"{base}/staff/")
    expect(page).to_have_url(f"{base}/sign-in?next=/staff/")
    (row,) = audit(app, "login.failed")
    assert row.reason == "unknown_subject" and row.agency_id == "physio"
    assert row.actor is None and login not in str(row)


def test_replayed_callback_is_refused(page: Page, app: Flask,
                                      physio_provider: tuple[str, OidcProvider]) -> None:
    base, _provider = physio_provider
    start(page, base)
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if "/callback?" in r.url else None)
    provider_sign_in(page, "alice")
    expect(page).to_have_url(f"{base}/staff/")
    page.get_by_role("button", name="Sign out").click()
    # The same code and state again: the sign-in state was used up.
    page.goto(callbacks[0])
    expect(page.get_by_role("alert")).to_contain_text("could not be completed")
    assert len(audit(app, "login")) == 1


def sessions_of(app: Flask, username: str) -> int:
    with app.extensions["onestory"].engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM web_sessions JOIN staff ON staff.id = web_sessions.staff_id "
            "WHERE staff.username = :u"), {"u": username}).scalar_one())


def test_deactivated_user_does_not_sign_in_through_the_provider(
        page: Page, app: Flask, physio_provider: tuple[str, OidcProvider]) -> None:
    """The provider still knows alice and vouches for her; OneStory does not
    let the deactivated staff member linked to her in."""
    base, _provider = physio_provider
    with app.extensions["onestory"].sessions() as session:
        session.execute(update(Staff).where(Staff.username == "physio1").values(active=False))
        session.commit()
    start(page, base)
    provider_sign_in(page, "alice")
    expect(page.get_by_role("alert")).to_contain_text("you have no OneStory account there")
    page.goto(f"{base}/staff/")
    expect(page).to_have_url(f"{base}/sign-in?next=/staff/")
    (row,) = audit(app, "login.failed")
    assert (row.actor, row.agency_id, row.reason) == ("physio1", "physio", "inactive")
    assert audit(app, "login") == []
    assert sessions_of(app, "physio1") == 0


@pytest.mark.parametrize(("misbehave", "reason"), [
    ("iss", "provider:invalid_claim"),  # issued by another issuer
    ("aud", "provider:invalid_claim"),  # for another client
    ("nonce", "provider:missing_claim"),  # the nonce not echoed
    ("expired", "provider:expired_token"),
    ("signature", "provider:bad_signature"),  # a key not in the provider's JWKS
])
def test_a_wrong_id_token_from_the_provider_is_refused_and_recorded(
        page: Page, app: Flask, api: Api, live_server: Callable[..., str],
        oidc_provider: Callable[..., OidcProvider], misbehave: str, reason: str) -> None:
    """The real provider, made to hand out a wrong ID token at its token
    endpoint: the sign-in is refused (401), on record, and opens no session."""
    base = live_server()
    provider = oidc_provider([f"{base}/sign-in/oidc/physio/callback"], misbehave=misbehave)
    with app.extensions["onestory"].sessions() as session:
        accounts.set_agency_provider(session, "physio", provider.issuer, provider.client_id)
        accounts.link_provider_subject(session, "physio1", "alice")
    start(page, base)
    with page.expect_response(lambda r: "/sign-in/oidc/physio/callback" in r.url) as answer:
        provider_sign_in(page, "alice")
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_contain_text("Your agency's sign-in did not succeed")
    assert f"MISBEHAVED {misbehave}" in provider.log()  # the provider did hand it out
    (row,) = audit(app, "login.failed")
    assert (row.actor, row.agency_id, row.reason) == (None, "physio", reason)
    assert audit(app, "login") == []
    assert sessions_of(app, "physio1") == 0
    page.goto(f"{base}/staff/")
    expect(page).to_have_url(f"{base}/sign-in?next=/staff/")
