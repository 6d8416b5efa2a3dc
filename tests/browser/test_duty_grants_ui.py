"""A duty grant on the family's page in Chromium: in Arabic, on a phone,
the family reads which service sees what because of the law, until when
and why, and that it cannot stop it; axe-core on the page, screenshot kept."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from playwright.sync_api import Page, expect

from tests.browser.helpers import axe_check, screenshot
from tests.conftest import Api
from tests.functional.test_duty_grants import WHY, act, propose

GRANTS = {"health-centre": ["involvement", "health", "protection"],
          "physio": ["involvement", "health"]}


def test_the_family_reads_a_duty_grant_in_arabic_on_a_phone(
        app: Flask, api: Api, page: Page, live_server: Callable[..., str]) -> None:
    family = api.new_family(display_name="Aylin Demir")
    receipt = api.sign(family, GRANTS)["receipt"]
    grant = propose(api, family).get_json()["id"]
    assert act(api, family, grant, "physiocoord").status_code == 200
    base = live_server()

    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(f"{base}/family/?lang=ar")
    page.locator("#f-receipt_code").fill(receipt["code"])
    page.locator("#f-pin").fill(receipt["pin"])
    page.locator("form button[type=submit]").click()
    section = page.locator("section.duty")
    expect(section.get_by_role("heading", name="مشاركة بحكم القانون")).to_be_visible()
    expect(section).to_contain_text("بحكم القانون، يمكن لـ")
    expect(section).to_contain_text("Child protection")
    expect(section).to_contain_text(WHY)
    expect(section).to_contain_text("لا يمكنكم إيقاف هذا.")
    assert page.locator("html").get_attribute("dir") == "rtl"
    # Nothing runs off the side of a phone screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    axe_check(page)
    screenshot(page, "70-family-duty-grant-ar-phone")
