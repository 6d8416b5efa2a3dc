"""A sign-in checks its password or PIN outside any transaction on SQLite
(`coordination.accounts.attempt_in_turn`): what others write meanwhile (a
re-issued receipt, a reset password, an erasure) and a failure after the
check must never let anyone in or lose a guess that was checked."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import select

import consent.services as consent_store
from coordination.model import ApiToken
from tests.conftest import Api

WAIT = 10.0  # seconds a step may take before the test fails (never reached when it works)
MEANWHILE = 1.5  # how long a check waits for a write of another request to end


def _meanwhile(write: Callable[[], None]) -> tuple[threading.Event, threading.Thread]:
    """Start `write` (another request) and wait a little for it to end: on
    PostgreSQL it may wait for the sign-in's locks instead (then it ends after)."""
    done = threading.Event()

    def run() -> None:
        write()
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    done.wait(MEANWHILE)
    return done, thread


def _family_with_receipt(api: Api) -> tuple[str, str, str]:
    family = api.new_family("nurse1")
    receipt = api.sign(family, {"physio": ["health"]})["receipt"]
    return family, receipt["code"], receipt["pin"]


def test_a_receipt_reissued_while_its_pin_is_checked_lets_no_one_in(
        app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Staff re-issue a family's receipt (the old one may be in the wrong
    hands: that also ends the family's sessions) while someone signs in with
    the old code and PIN: either the sign-in came first and its session is
    ended with the others, or it is refused. No session outlives the re-issue."""
    family, code, pin = _family_with_receipt(api)
    verify = consent_store._verify
    reissued: list[threading.Thread] = []

    def racing(pin_hash: str, given: str) -> bool:
        _, thread = _meanwhile(lambda: api.sign(family, {"physio": ["health"]},
                                                reissue_pin=True))
        reissued.append(thread)
        return verify(pin_hash, given)

    monkeypatch.setattr(consent_store, "_verify", racing)
    response = app.test_client().post("/api/v1/family/session",
                                      json={"receipt_code": code, "pin": pin})
    reissued[0].join(WAIT)
    assert response.status_code in (201, 401)
    with app.extensions["onestory"].sessions() as session:
        open_tokens = session.scalars(select(ApiToken).where(
            ApiToken.family_id == family, ApiToken.revoked_at.is_(None))).all()
    assert open_tokens == [], "a session opened with a receipt re-issued meanwhile"
