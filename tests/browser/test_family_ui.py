"""The family page in Chromium: signing in with the receipt, the page in
Arabic (right to left), revoking one cell with confirmation, and the
receipt's PIN slowing down after wrong guesses."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from tests.browser.helpers import axe_check, screenshot
from tests.conftest import Api

GRANTS = {"health-centre": ["involvement", "health"], "physio": ["involvement", "health"]}


@pytest.fixture
def receipt(api: Api) -> tuple[str, dict[str, str]]:
    family_id = api.new_family(display_name="Aylin Demir")
    form = api.sign(family_id, GRANTS)
    return family_id, form["receipt"]


def family_sign_in(page: Page, base: str, code: str, pin: str) -> None:
    page.goto(f"{base}/family/")
    page.get_by_label("Receipt code").fill(code)
    page.get_by_label("PIN").fill(pin)
    page.get_by_role("button", name="Sign in").click()


def test_family_page_in_arabic(page: Page, live_server: Callable[..., str],
                               receipt: tuple[str, dict[str, str]]) -> None:
    base = live_server()
    _family_id, secret = receipt
    page.goto(f"{base}/family/")
    page.get_by_role("link", name="العربية").click()
    html = page.locator("html")
    expect(html).to_have_attribute("lang", "ar")
    expect(html).to_have_attribute("dir", "rtl")
    axe_check(page)
    screenshot(page, "20-family-sign-in-ar")
    page.locator("#f-receipt_code").fill(secret["code"])
    page.locator("#f-pin").fill(secret["pin"])
    page.locator("form button[type=submit]").click()
    expect(html).to_have_attribute("dir", "rtl")
    main = page.locator("main")
    # Arabic script on the page, and the agencies' names as recorded.
    assert any("\u0600" <= ch <= "\u06ff" for ch in main.inner_text())
    expect(main).to_contain_text("Physiotherapy")
    # Right to left: the heading starts at the right edge of the page.
    box = page.locator("h1").first.bounding_box()
    width = page.viewport_size["width"] if page.viewport_size else 1280
    assert box is not None and box["x"] + box["width"] > width / 2
    axe_check(page)
    screenshot(page, "21-family-consent-ar")
    page.set_viewport_size({"width": 375, "height": 740})
    screenshot(page, "22-family-consent-ar-phone")


def test_family_revokes_one_cell(page: Page, api: Api, live_server: Callable[..., str],
                                 receipt: tuple[str, dict[str, str]]) -> None:
    base = live_server()
    family_id, secret = receipt
    family_sign_in(page, base, secret["code"], secret["pin"])
    physio = page.get_by_role("region", name="Physiotherapy")
    physio.get_by_role("link", name="Stop sharing this: health notes").click()
    expect(page.get_by_role("button", name="Yes, stop sharing")).to_be_visible()
    screenshot(page, "23-family-confirm-cell")
    page.get_by_role("link", name="No, go back").click()
    assert api.get(f"/api/v1/families/{family_id}/consent", "coord1").get_json()[
        "grants"]["physio"] == ["health", "involvement"]
    physio.get_by_role("link", name="Stop sharing this: health notes").click()
    page.get_by_role("button", name="Yes, stop sharing").click()
    grants = api.get(f"/api/v1/families/{family_id}/consent", "coord1").get_json()["grants"]
    assert grants["physio"] == ["involvement"]
    assert grants["health-centre"] == ["health", "involvement"]
    axe_check(page)
    screenshot(page, "24-family-after-revoking")


def test_wrong_pins_slow_the_receipt_down(page: Page, live_server: Callable[..., str],
                                          receipt: tuple[str, dict[str, str]],
                                          app: Flask) -> None:
    base = live_server()
    _family_id, secret = receipt
    wrong = "000000" if secret["pin"] != "000000" else "111111"
    for _ in range(3):
        family_sign_in(page, base, secret["code"], wrong)
        expect(page.get_by_role("alert")).to_be_visible()
    family_sign_in(page, base, secret["code"], secret["pin"])
    expect(page.get_by_role("alert")).to_contain_text("minute")
    axe_check(page)
    screenshot(page, "25-family-slowed-down")
