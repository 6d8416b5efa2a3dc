"""Helpers for tests of the web UI through Flask's test client."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from coordination import accounts
from coordination.model import Staff

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ONCE = re.compile(r'name="once" value="([^"]+)"')


def password_of(username: str) -> str:
    return f"{username}-password"


def set_passwords(app: Flask) -> None:
    """Give every staff member the password `password_of(username)`."""
    with app.extensions["onestory"].sessions() as session:
        for staff in session.scalars(select(Staff)):
            staff.password_hash = accounts.password_hasher.hash(password_of(staff.username))
        session.commit()


def csrf_token(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: FlaskClient, username: str, password: str | None = None,
            **extra: str) -> object:
    token = csrf_token(client.get("/sign-in").get_data(as_text=True))
    return client.post("/sign-in", data={"username": username,
                                         "password": password or password_of(username),
                                         "csrf_token": token, **extra})


def signed_in(app: Flask, username: str) -> FlaskClient:
    """A client with `username` signed in (passwords set by `set_passwords`)."""
    client = app.test_client()
    response = sign_in(client, username)
    assert response.status_code == 302, response.get_data(as_text=True)  # type: ignore[attr-defined]
    return client


def post_form(client: FlaskClient, page: str, action: str, data: dict[str, object]) -> object:
    """Load `page` for its CSRF token (and one-time form key, if it has one),
    then post `data` to `action`."""
    html = client.get(page).get_data(as_text=True)
    once = ONCE.search(html)
    extra = {"once": once.group(1)} if once else {}
    return client.post(action, data={**extra, **data, "csrf_token": csrf_token(html)})
