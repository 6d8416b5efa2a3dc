"""The demo's data (`onestory seed-demo`): the Belgian referral played
through the use cases, and worklists for coord1 and ngocoord1 out of the box."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from coordination import accounts, demo
from tests.conftest import Clock

PERSONAS = ("coord1", "nurse1", "ngocoord1", "physio1", "ecec1")


@pytest.fixture
def seeded(app: Flask, clock: Clock) -> tuple[demo.DemoData, dict[str, str]]:
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        data = demo.seed(session, rt.vault, clock())
        tokens = {u: accounts.create_token(session, u, timedelta(days=1), clock())
                  for u in PERSONAS}
    return data, tokens


def get(app: Flask, token: str, path: str) -> Any:
    response = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_coord1_and_ngocoord1_have_things_to_act_on(
        app: Flask, seeded: tuple[demo.DemoData, dict[str, str]]) -> None:
    data, tokens = seeded
    mira, yana = data.families["belgium"], data.families["belgium2"]
    worklists = {u: get(app, tokens[u], "/api/v1/worklist") for u in PERSONAS}
    assert [(i["kind"], i["family_id"]) for i in worklists["coord1"]] == [
        ("referral.to_answer", yana), ("appointment.upcoming", yana),
        ("consent.renew", mira)]
    assert worklists["nurse1"] == worklists["coord1"]
    assert [(i["kind"], i["family_id"], i["direction"]) for i in worklists["ngocoord1"]] == [
        ("appointment.upcoming", yana, "out"), ("consent.renew", mira, None)]
    assert worklists["physio1"] == [] and worklists["ecec1"] == []
    [upcoming] = [i for i in worklists["coord1"] if i["kind"] == "appointment.upcoming"]
    assert upcoming["display_name"] == "Yana" and upcoming["agency"] == "harbour"


def test_the_belgian_referral_as_both_agencies_read_it(
        app: Flask, seeded: tuple[demo.DemoData, dict[str, str]]) -> None:
    data, tokens = seeded
    mira = data.families["belgium"]
    [ref] = get(app, tokens["ngocoord1"], f"/api/v1/families/{mira}/referrals")
    assert (ref["from"], ref["to"], ref["state"]) == ("harbour", "health-centre", "closed")
    assert [(a["outcome"], a["interpreter_language"]) for a in ref["appointments"]] == [
        ("missed", "bg"), ("attended", "bg")]
    detail = get(app, tokens["ngocoord1"], f"/api/v1/referrals/{ref['id']}")
    assert [step["state"] for step in detail["history"]] == [
        "awaiting_family", "sent", "accepted", "booked", "missed", "booked", "attended",
        "closed"]
    assert detail["history"][1]["by"] == "family"  # the family agreed first
    assert "vaccinations" in detail["history"][-1]["note"]  # the feedback reaches the NGO
    # The family is known by a pseudonym only, and now to the health centre too.
    record = get(app, tokens["coord1"], f"/api/v1/families/{mira}")
    assert record["display_name"] == "Mira" and "birth_date" not in record
    assert get(app, tokens["physio1"], "/api/v1/families?name=Mira") == []


def test_the_demo_is_on_the_audit_log_in_order(
        app: Flask, seeded: tuple[demo.DemoData, dict[str, str]]) -> None:
    with app.extensions["onestory"].engine.connect() as conn:
        from sqlalchemy import text

        rows = list(conn.execute(text("SELECT at, action FROM audit_log ORDER BY seq")))
    actions = [r.action for r in rows]
    for action in ("referral.create", "referral.agree", "referral.accept",
                   "appointment.book", "appointment.outcome", "referral.close"):
        assert action in actions
    assert [r.at for r in rows] == sorted(r.at for r in rows)  # oldest first
