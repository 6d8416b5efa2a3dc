"""The test OpenID Connect provider, driven as the product's sign-in will drive it:
authlib's Flask client (discovery, authorization code with PKCE S256, ID token
validation) in a throwaway app, and a person in Chromium signing in on the
provider's development pages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.flask_client import OAuth
from flask import Flask, Response, session, url_for
from markupsafe import escape
from playwright.sync_api import Page, expect

from tests.browser.helpers import OidcProvider, provider_sign_in

Start = Callable[..., OidcProvider]


def relying_party() -> tuple[Flask, OAuth]:
    """An app that signs its users in at an OpenID Connect provider registered later."""
    app = Flask("relying_party")
    app.secret_key = "relying-party-test-key"
    oauth = OAuth(app)

    @app.get("/login")
    def login() -> Any:
        return oauth.agency.authorize_redirect(url_for("callback", _external=True))

    @app.get("/callback")
    def callback() -> Response:
        token = oauth.agency.authorize_access_token()  # checks state, the ID token, nonce
        session["user"] = token["userinfo"]["sub"]
        claims = json.dumps(dict(token["userinfo"]), sort_keys=True)
        page = (f"<!doctype html><html lang=en><meta charset=utf-8><title>Signed in</title>"
                f"<main><h1>Signed in</h1><pre id=claims>{escape(claims)}</pre></main></html>")
        return Response(page, headers={"Content-Security-Policy": "script-src 'self'"})

    return app, oauth


def register(oauth: OAuth, provider: OidcProvider) -> None:
    client_kwargs = {"scope": "openid profile email", "code_challenge_method": "S256"}
    if provider.client_secret is None:
        # What authlib picks by itself for a client without a secret; said here so
        # it does not depend on that.
        client_kwargs["token_endpoint_auth_method"] = "none"
    oauth.register("agency", server_metadata_url=provider.metadata_url,
                   client_id=provider.client_id, client_secret=provider.client_secret,
                   client_kwargs=client_kwargs)


def test_discovery_says_what_the_product_relies_on(oidc_provider: Start) -> None:
    provider = oidc_provider(["http://127.0.0.1:9/callback"])
    assert provider.issuer.startswith("http://127.0.0.1:")
    metadata = requests.get(provider.metadata_url, timeout=10).json()
    assert metadata["issuer"] == provider.issuer
    assert metadata["authorization_endpoint"].startswith(provider.issuer + "/")
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert {"openid", "profile", "email"} <= set(metadata["scopes_supported"])
    assert {"sub", "preferred_username", "email"} <= set(metadata["claims_supported"])
    assert "none" in metadata["token_endpoint_auth_methods_supported"]


def test_an_authorization_request_without_pkce_is_refused(oidc_provider: Start) -> None:
    redirect = "http://127.0.0.1:9/callback"
    provider = oidc_provider([redirect])
    metadata = requests.get(provider.metadata_url, timeout=10).json()
    response = requests.get(metadata["authorization_endpoint"], allow_redirects=False,
                            timeout=10, params={
                                "client_id": provider.client_id, "response_type": "code",
                                "scope": "openid", "redirect_uri": redirect, "state": "s"})
    assert response.status_code in (302, 303)
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    error = parse_qs(location.query)
    assert error["error"] == ["invalid_request"]
    assert "PKCE" in error["error_description"][0]


@pytest.mark.parametrize(("host", "secret"), [
    ("127.0.0.1", None),  # a public client, as agencies' providers are set up in OneStory
    ("localhost", "s3cret-for-tests"),  # confidential, and on another site than the app
], ids=["public-same-site", "confidential-cross-site"])
def test_sign_in_with_authorization_code_and_pkce(page: Page, oidc_provider: Start,
                                                  live_server: Callable[..., str], host: str,
                                                  secret: str | None) -> None:
    app, oauth = relying_party()
    base = live_server(app)
    provider = oidc_provider([f"{base}/callback"], client_id="onestory-test",
                             client_secret=secret, host=host)
    register(oauth, provider)
    authorization_requests: list[str] = []
    page.on("request", lambda r: authorization_requests.append(r.url)
            if r.url.startswith(provider.issuer + "/auth") else None)

    page.goto(f"{base}/login")
    expect(page).to_have_url(re.compile(re.escape(provider.issuer) + "/interaction/"))
    provider_sign_in(page, "nurse1")

    expect(page.get_by_role("heading", name="Signed in")).to_be_visible()
    assert page.url.startswith(f"{base}/callback?")
    claims = json.loads(page.locator("#claims").inner_text())
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == "onestory-test"
    assert claims["sub"] == "nurse1"
    assert claims["preferred_username"] == "nurse1"
    assert claims["email"] == "nurse1@example.test"
    query = parse_qs(urlsplit(authorization_requests[0]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["nonce"] and query["state"]

    # A second sign-in in the same browser: the provider remembers the session
    # and the grant, so the browser comes straight back signed in.
    page.goto(f"{base}/login")
    expect(page.get_by_role("heading", name="Signed in")).to_be_visible()
    assert page.url.startswith(f"{base}/callback?")
