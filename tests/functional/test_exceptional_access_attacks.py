"""Attacks on exceptional access (issue 11) from outside: what a family's
views tell of an agency a protection hold conceals, and what staff may do
with break-the-glass, duty grants and holds that they should not. On both
databases."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Api
from tests.functional.test_duty_grants import act, propose
from tests.functional.test_protection_holds import (  # noqa: F401
    CPS_NAMES,
    cps_case,
    place,
)
from tests.functional.test_revocation_truth import family_token


def test_a_duty_grant_the_concealed_agency_proposed_or_approved_does_not_name_it(
        api: Api, cps_case: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    """Child protection (involved, its part concealed) proposes that the
    kindergarten sees `education`, and approves the health centre's grant
    for physiotherapy: the family reads both grants (they are not about
    child protection) but nothing says who proposed or approved them."""
    family, receipt = cps_case
    mine = propose(api, family, "cpscoord", agency="ecec", fields=["education"])
    assert mine.status_code == 201, mine.get_json()
    assert act(api, family, mine.get_json()["id"], "physiocoord").status_code == 200
    theirs = propose(api, family, "coord1", agency="physio", fields=["protection"])
    assert theirs.status_code == 201, theirs.get_json()
    approved = act(api, family, theirs.get_json()["id"], "cpscoord")
    assert approved.status_code == 200, approved.get_json()
    assert place(api, family).status_code == 201
    token = family_token(api, receipt)
    listed: list[dict[str, Any]] = api.get(f"/api/v1/families/{family}/duty-grants",
                                           token).get_json()
    assert sorted(g["agency"] for g in listed) == ["ecec", "physio"]
    seen = json.dumps(listed)
    for name in (*CPS_NAMES, "cpscoord"):
        assert name not in seen, seen
