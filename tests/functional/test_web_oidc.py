"""Sign-in through an agency's OpenID Connect provider: configuration and the
failures that need no provider at all. The full flow against a real provider
(npm `oidc-provider`) is in tests/browser/test_web_oidc.py."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from coordination import accounts
from coordination.errors import Conflict, InvalidInput, NotFound
from coordination.model import Agency
from tests.cli import assert_ok, assert_one_line_failure, run
from tests.conftest import Api


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def configure(app: Flask, agency: str, issuer: str | None, client_id: str | None) -> None:
    with app.extensions["onestory"].sessions() as session:
        accounts.set_agency_provider(session, agency, issuer, client_id)


def failures(app: Flask) -> list[Any]:
    with app.extensions["onestory"].engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT actor, agency_id, reason, detail FROM audit_log "
            "WHERE action = 'login.failed' ORDER BY seq")))


def test_sign_in_page_offers_configured_agencies_only(app: Flask, api: Api) -> None:
    configure(app, "physio", "https://id.physio.example", "onestory")
    html = app.test_client().get("/sign-in").get_data(as_text=True)
    assert 'href="/sign-in/oidc/physio"' in html and "Sign in with Physiotherapy" in html
    assert "/sign-in/oidc/cps" not in html


@pytest.mark.parametrize("agency", ["cps", "no-such-agency", "BAD!"])
def test_agency_without_provider(app: Flask, api: Api, agency: str) -> None:
    response = app.test_client().get(f"/sign-in/oidc/{agency}")
    assert response.status_code == 404
    assert "does not offer sign-in" in response.get_data(as_text=True)


def test_unreachable_provider_is_a_clear_error_and_recorded(app: Flask, api: Api) -> None:
    configure(app, "physio", f"http://127.0.0.1:{free_port()}", "onestory")
    response = app.test_client().get("/sign-in/oidc/physio")
    assert response.status_code == 502
    assert "cannot be reached" in response.get_data(as_text=True)
    (row,) = failures(app)
    assert row.agency_id == "physio" and row.reason == "provider_unreachable"
    assert row.actor is None


def test_callback_without_a_started_sign_in_is_refused(app: Flask, api: Api) -> None:
    configure(app, "physio", "https://id.physio.example", "onestory")
    response = app.test_client().get("/sign-in/oidc/physio/callback?code=x&state=y")
    assert response.status_code == 400
    assert "start again" in response.get_data(as_text=True)


def test_callback_for_another_agency_than_started_is_refused(app: Flask, api: Api) -> None:
    configure(app, "physio", "https://id.physio.example", "onestory")
    configure(app, "ecec", "https://id.ecec.example", "onestory")
    client = app.test_client()
    with client.session_transaction() as session:
        session["oidc_agency"] = "ecec"
    response = client.get("/sign-in/oidc/physio/callback?code=x&state=y")
    assert response.status_code == 400


@pytest.mark.parametrize(("issuer", "client_id", "error"), [
    ("http://id.physio.example", "c", InvalidInput),  # plain http off this machine
    ("ftp://id.physio.example", "c", InvalidInput),
    ("https://id.physio.example?x=1", "c", InvalidInput),
    ("https://id.physio.example", "", InvalidInput),
])
def test_provider_configuration_is_validated(app: Flask, api: Api, issuer: str,
                                             client_id: str, error: type[Exception]) -> None:
    with app.extensions["onestory"].sessions() as session, pytest.raises(error):
        accounts.set_agency_provider(session, "physio", issuer, client_id)
    with app.extensions["onestory"].sessions() as session:
        agency = session.get(Agency, "physio")
        assert agency is not None and agency.oidc_issuer is None


def test_subject_links_are_unique_per_agency(app: Flask, api: Api) -> None:
    with app.extensions["onestory"].sessions() as session:
        accounts.link_provider_subject(session, "physio1", "alice")
        accounts.link_provider_subject(session, "nurse1", "alice")  # another agency: fine
        with pytest.raises(Conflict):
            accounts.link_provider_subject(session, "physiocoord", "alice")
        with pytest.raises(NotFound):
            accounts.link_provider_subject(session, "nobody", "bob")


def test_cli_configures_a_provider_and_links_a_user(
        app: Flask, api: Api, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert_ok(run(capsys, "agency", "oidc", "physio", "--issuer", "https://id.physio.example/",
                  "--client-id", "onestory"))
    assert_ok(run(capsys, "user", "link", "physio1", "--subject", "alice"))
    with app.extensions["onestory"].sessions() as session:
        agency = session.get(Agency, "physio")
        assert agency is not None
        assert (agency.oidc_issuer, agency.oidc_client_id) == (
            "https://id.physio.example", "onestory")
    assert_one_line_failure(run(capsys, "agency", "oidc", "physio", "--issuer", "http://x.example",
                                "--client-id", "c"))
    assert_one_line_failure(run(capsys, "agency", "oidc", "physio"))
    assert_one_line_failure(run(capsys, "user", "link", "nobody", "--subject", "x"))
    assert_ok(run(capsys, "agency", "oidc", "physio", "--remove"))
    assert_ok(run(capsys, "user", "link", "physio1", "--unlink"))


@pytest.mark.parametrize("failure", ["ValueError", "ConnectionError"])
def test_a_failed_token_exchange_is_refused_and_recorded(
        app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """Whatever else goes wrong between the provider's return and a validated
    ID token (a dropped connection, an answer that is not a token) is a
    refused, recorded sign-in, never a 500. Wrong ID tokens (issuer,
    audience, nonce, signature, expiry) come from a real provider in
    tests/browser/test_oidc_sign_in.py."""
    import requests
    from authlib.integrations.flask_client.apps import FlaskOAuth2App

    configure(app, "physio", "https://id.physio.example", "onestory")
    errors = {"ValueError": ValueError("x"), "ConnectionError": requests.ConnectionError()}
    seen: dict[str, Any] = {}

    def exchange(self: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise errors[failure]

    monkeypatch.setattr(FlaskOAuth2App, "authorize_access_token", exchange)
    client = app.test_client()
    with client.session_transaction() as session:
        session["oidc_agency"] = "physio"
    response = client.get("/sign-in/oidc/physio/callback?code=x&state=y")
    assert response.status_code == 401
    assert "did not succeed" in response.get_data(as_text=True)
    assert "claims_options" in seen
    (row,) = failures(app)
    assert row.agency_id == "physio" and row.reason.startswith("provider:")
