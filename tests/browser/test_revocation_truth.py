"""Revocation tells the truth, in Chromium: the family, on a phone, stops
sharing with physiotherapy (which still works with it through a referral),
then ends physiotherapy's part; after each step the test checks, as
physiotherapy, that every sentence the family read is true. Every new or
changed page is kept as a screenshot (the family in Turkish and Arabic at
375 px, staff at 1280 px)."""

from __future__ import annotations

import json
from collections.abc import Callable

from flask import Flask
from playwright.sync_api import Page, expect

from tests.browser.helpers import axe_check, screenshot, staff_sign_in
from tests.conftest import Api
from tests.web import set_passwords

GRID = {
    "health-centre": ["involvement", "contact", "health"],
    "physio": ["involvement", "health"],
    "cps": ["protection"],
    "ecec": ["involvement", "education"],
}
# What physiotherapy must not read once the family stopped sharing with it.
OTHERS = ("Health centre", "health-centre", "Kindergarten", "ecec", "cps", "Aylin Demir (mother)",
          "Growth on track", "coord1", "nurse1")




def main_text(page: Page) -> str:
    return page.locator("main").inner_text()


def test_the_family_stops_sharing_then_ends_a_part_and_each_sentence_is_true(
        app: Flask, api: Api, live_server: Callable[..., str],
        people: Callable[..., Page]) -> None:
    set_passwords(app)
    base = live_server()
    family_id = api.new_family(display_name="Aylin Demir", birth_date="2024-03-14")
    api.write(family_id, "health", "Growth on track; physiotherapy advised.")
    receipt = api.sign(family_id, GRID, signed_by="Aylin Demir (mother)")["receipt"]
    assert api.post(f"/api/v1/families/{family_id}/involvements", "coord1",
                    json={"agency": "physio"}).status_code == 201
    api.write(family_id, "health", "Physio: walks with support.", who="physio1")

    # The family signs in on a phone.
    family = people(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    family.goto(f"{base}/family/")
    family.get_by_label("Receipt code").fill(receipt["code"])
    family.get_by_label("PIN").fill(receipt["pin"])
    family.get_by_role("button", name="Sign in").click()
    card = family.get_by_role("region", name="Physiotherapy")
    expect(card.get_by_role("link", name="End the part of Physiotherapy")).to_be_visible()
    expect(family.locator("main")).to_contain_text(
        "Physiotherapy works with your family and sees what it wrote itself.")

    # 1. It stops sharing anything with physiotherapy; the confirmation says
    # physiotherapy will still work with the family.
    card.get_by_role("link", name="Stop sharing anything with Physiotherapy").click()
    expect(family.locator("main")).to_contain_text(
        "Physiotherapy will still work with your family and see what it wrote itself.")
    axe_check(family)
    screenshot(family, "truth-1-family-confirm-column-en")
    family.get_by_role("button", name="Yes, stop sharing").click()
    said = family.get_by_role("status").first.inner_text()
    assert said == ("Physiotherapy can no longer see what other services share about your "
                    "family. Physiotherapy still works with your family and sees what it "
                    "wrote itself.")
    axe_check(family)
    screenshot(family, "truth-2-family-after-column-en")

    # True, as physiotherapy reads it: only what it wrote itself ...
    record = api.get(f"/api/v1/families/{family_id}", "physio1").get_json()
    assert [e["value"] for e in record["fields"]["health"]] == ["Physio: walks with support."]
    assert "involvements" not in record  # nor who else is involved
    form = api.get(f"/api/v1/families/{family_id}/consent", "physiocoord").get_json()
    assert form["grants"] == {} and form["signed_by"] is None
    for route in ("consent", "consent/history", "access-log"):
        body = api.get(f"/api/v1/families/{family_id}/{route}", "physiocoord").get_json()
        last = body[-1] if route == "consent/history" else body
        for other in OTHERS:
            assert other not in json.dumps(last), (route, other)
    # ... and it still works with the family: it writes a note and reads it back.
    api.write(family_id, "story", "Physio: next session on Monday.", who="physio1")

    # The same, on the staff pages physiotherapy's coordinator uses.
    physio = people(viewport={"width": 1280, "height": 900})
    staff_sign_in(physio, base, "physiocoord")
    for route, name in (("", "record"), ("/consent", "consent"),
                        ("/consent/history", "history"), ("/access-log", "who-looked"),
                        ("/consent/new", "new-form-blank")):
        physio.goto(f"{base}/staff/families/{family_id}{route}")
        text = main_text(physio)
        if route == "/consent/history":
            text = text.split("Version 1:", 1)[0]  # version 1 granted it `involvement`
        for other in ("Aylin Demir (mother)", "Growth on track", "coord1", "nurse1"):
            assert other not in text, (route, other)
        if route == "/consent/new":
            expect(physio.locator("input[name=cell]:checked")).to_have_count(0)
        axe_check(physio)
        screenshot(physio, f"truth-3-physio-{name}")

    # 2. In Turkish, then Arabic, the family ends physiotherapy's part.
    family.goto(f"{base}/family/consent?lang=tr")
    expect(family.locator("html")).to_have_attribute("lang", "tr")
    axe_check(family)
    screenshot(family, "truth-4-family-consent-tr")
    family.get_by_role("link", name="Physiotherapy ile çalışmayı bitir").click()
    expect(family.locator("main")).to_contain_text("Physiotherapy artık ailenizle çalışmayacak.")
    axe_check(family)
    screenshot(family, "truth-5-family-confirm-end-tr")
    family.goto(f"{base}/family/end?agency=physio&lang=ar")
    expect(family.locator("html")).to_have_attribute("dir", "rtl")
    axe_check(family)
    screenshot(family, "truth-6-family-confirm-end-ar")
    family.get_by_role("button", name="نعم، أنهِ دورها").click()
    ended = family.get_by_role("status").first.inner_text()
    assert "لم يعد لـ" in ended and "Physiotherapy" in ended
    axe_check(family)
    screenshot(family, "truth-7-family-after-ending-ar")
    family.goto(f"{base}/family/consent?lang=en")
    expect(family.get_by_role("region", name="Physiotherapy")).to_have_count(0)

    # True, as physiotherapy reads it: the family no longer exists for it.
    for route in ("", "/consent", "/consent/history", "/access-log"):
        assert api.get(f"/api/v1/families/{family_id}{route}", "physiocoord").status_code == 404
    assert api.get("/api/v1/families?name=Aylin+Demir", "physio1").get_json() == []
    response = physio.goto(f"{base}/staff/families/{family_id}")
    assert response is not None and response.status == 404
    physio.goto(f"{base}/staff/?name=Aylin+Demir")
    expect(physio.locator("main")).not_to_contain_text(family_id)
    screenshot(physio, "truth-8-physio-search-finds-nothing")

    # The family's list of who looked, in Turkish and Arabic.
    for lang in ("tr", "ar"):
        family.goto(f"{base}/family/access-log?lang={lang}")
        axe_check(family)
        screenshot(family, f"truth-9-family-who-looked-{lang}")
    # The coordinator who recorded the form sees the whole history.
    coordinator = people(viewport={"width": 1280, "height": 900})
    staff_sign_in(coordinator, base, "coord1")
    coordinator.goto(f"{base}/staff/families/{family_id}/consent/history")
    expect(coordinator.get_by_role("heading", name="Version 3: end part physio")).to_be_visible()
    axe_check(coordinator)
    screenshot(coordinator, "truth-10-coordinator-history")
    # Recording the family's wish on its behalf: the page asks who and how.
    coordinator.goto(f"{base}/staff/families/{family_id}/consent")
    coordinator.get_by_role("link", name="End the part of Kindergarten").click()
    expect(coordinator.get_by_role("heading", name="End Kindergarten's part?")).to_be_visible()
    axe_check(coordinator)
    screenshot(coordinator, "truth-11-coordinator-end-part")
