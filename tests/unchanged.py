"""`nothing_stored`: a refused request leaves the case as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import text

# Everything a consent or referral route could store about a family.
CASE_TABLES = ("families", "family_members", "involvements", "entries", "consent_forms",
               "consent_cells", "consent_receipts", "api_tokens", "access_requests", "referrals",
               "referral_events", "appointments", "duty_grants")


def _case_state(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    with app.extensions["onestory"].engine.connect() as conn:
        return {table: [tuple(row) for row in conn.execute(text(
            f"SELECT * FROM {table} ORDER BY 1"))] for table in CASE_TABLES}  # noqa: S608


@contextmanager
def nothing_stored(app: Flask, reads: tuple[str, ...] = ()) -> Iterator[None]:
    """The requests inside change no row of the case (no form version, cell,
    receipt, involvement, entry, referral, appointment), and put nothing but
    refusals (and the looks named in `reads`, such as a page shown again
    with its errors) on record."""
    before = _case_state(app)
    with app.extensions["onestory"].engine.connect() as conn:
        last = conn.scalar(text("SELECT coalesce(max(seq), 0) FROM audit_log"))
    yield
    assert _case_state(app) == before
    with app.extensions["onestory"].engine.connect() as conn:
        logged = list(conn.execute(text(
            "SELECT action, outcome FROM audit_log WHERE seq > :last"), {"last": last}))
    allowed = {("request.denied", "denied"), *((action, "ok") for action in reads)}
    assert {tuple(row) for row in logged} <= allowed, logged
