"""Attacks on what coordination added (referrals, appointments, access
requests, the worklist) from outside: input a parser accepts but the clock
cannot hold, and what a referral's history tells an agency the form no
longer lets know who else works with the family. On both databases."""

from __future__ import annotations

import pytest
from flask import Flask

from coordination.model import Appointment
from tests.conftest import Api
from tests.functional.test_referrals import GRID, ask
from tests.functional.test_revocation_truth import count, family_token
from tests.unchanged import nothing_stored
from tests.web import post_form, set_passwords, signed_in


@pytest.fixture
def case(api: Api) -> tuple[str, str]:
    """The family, its form signed, and the family's session token."""
    family = api.new_family("nurse1", display_name="Aylin Demir", birth_date="2024-03-14")
    receipt = api.sign(family, GRID)["receipt"]
    return family, family_token(api, receipt)


def accepted(api: Api, family: str) -> str:
    ref: str = ask(api, family).get_json()["id"]
    assert api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord",
                    json={}).status_code == 200
    return ref


# Read as UTC, these moments fall before the year 1 or after the year 9999.
OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("at", OUT_OF_RANGE)
def test_an_appointment_time_outside_the_calendar_in_utc_is_422(
        app: Flask, api: Api, case: tuple[str, str], at: str) -> None:
    family, _ = case
    ref = accepted(api, family)
    with nothing_stored(app):
        refused = api.post(f"/api/v1/referrals/{ref}/appointments", "physio1",
                           json={"at": at, "place": "Physio unit"})
        assert refused.status_code == 422, refused.get_json()
        assert set(refused.get_json()["errors"]) == {"at"}
    set_passwords(app)
    physio = signed_in(app, "physio1")
    with nothing_stored(app, reads=("referral.read",)):
        page = post_form(physio, f"/staff/referrals/{ref}",
                         f"/staff/referrals/{ref}/appointments",
                         {"at": at, "place": "Physio unit"})
        assert page.status_code == 422  # type: ignore[attr-defined]
    assert count(app, Appointment) == 0

