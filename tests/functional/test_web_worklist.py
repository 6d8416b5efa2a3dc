"""The staff home page: after sign-in, the agency's worklist in sentences,
each with a link to where to act, and the family search beside it."""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask

from tests.conftest import Api, Clock
from tests.functional.test_referrals import GRID, ask
from tests.functional.test_revocation_truth import audit_rows, family_token
from tests.web import set_passwords, sign_in, signed_in


@pytest.fixture
def web(app: Flask, api: Api) -> Api:
    set_passwords(app)
    return api


def page_text(app: Flask, who: str, path: str = "/staff/") -> str:
    response = signed_in(app, who).get(path)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def test_staff_land_on_their_worklist(app: Flask, web: Api, clock: Clock) -> None:
    family = web.new_family("nurse1", display_name="Aylin Demir")
    web.sign(family, GRID, valid_until="2026-12-20")
    ref = ask(web, family).get_json()["id"]
    client = app.test_client()
    landed = sign_in(client, "physio1")
    assert landed.headers["Location"] == "/staff/"  # type: ignore[attr-defined]
    text = html.unescape(client.get("/staff/").get_data(as_text=True))
    assert "What to act on" in text
    assert ("Health centre referred Aylin Demir to your agency: accept or decline by "
            "2 December 2026.") in text
    assert f'href="/staff/referrals/{ref}"' in text and "Open the referral" in text
    assert 'role="search"' in text  # the search is still there
    # ... and, as on the search page, a birth date alone may be searched.
    start = text.index('role="search"')
    search_form = text[start:text.index("</form>", start)]
    assert " required" not in search_form and "Whole words" in search_form
    coordinator = page_text(app, "coord1")
    assert ("Aylin Demir's consent form ends on 20 December 2026: ask the family to sign a "
            "new one.") in coordinator
    assert f'href="/staff/families/{family}/consent"' in coordinator
    assert "referred Aylin Demir" not in coordinator  # the referrer has nothing to answer
    # The page read is on record like the API's.
    assert len(audit_rows(app, "worklist.read")) == 2
    assert ref


def test_nothing_to_act_on(app: Flask, web: Api) -> None:
    text = page_text(app, "ecec1")
    assert "Nothing to act on" in text and "What to act on" in text


def test_an_ended_part_names_no_family(app: Flask, web: Api) -> None:
    family = web.new_family("nurse1", display_name="Aylin Demir")
    token = family_token(web, web.sign(family, GRID)["receipt"])
    ref = ask(web, family).get_json()["id"]
    assert web.post(f"/api/v1/referrals/{ref}/accept", "physiocoord", json={}).status_code == 200
    assert web.call("DELETE", f"/api/v1/families/{family}/involvements/physio", token,
                    json={}).status_code == 200
    text = page_text(app, "physio1")
    assert (f"A family ended your agency's part on 22 November 2026 (family {family}): it no "
            "longer appears for you.") in text
    assert "Aylin" not in text
    assert not re.search(rf'href="[^"]*{family}', text)


def test_searching_still_works_from_home(app: Flask, web: Api) -> None:
    web.new_family("nurse1", display_name="Aylin Demir")
    text = page_text(app, "nurse1", "/staff/?name=Aylin+Demir")
    assert "1 family found" in text


@pytest.mark.parametrize("who", ["auditor1"])
def test_other_roles_have_no_worklist(app: Flask, web: Api, who: str) -> None:
    response = signed_in(app, who).get("/staff/")
    assert response.status_code == 403
    assert audit_rows(app, "worklist.read") == []
