"""Access requests in Chromium: child protection asks from the record page,
the family reads the request on a phone in Turkish and approves it after
the confirmation page; axe-core on each page, screenshots kept."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from playwright.sync_api import Page, expect

from tests.browser.helpers import axe_check, screenshot, staff_sign_in
from tests.conftest import Api
from tests.web import set_passwords

GRANTS = {"health-centre": ["involvement", "contact", "health"], "cps": ["protection"]}


def test_an_agency_asks_and_the_family_approves_on_a_phone(
        app: Flask, api: Api, page: Page, live_server: Callable[..., str]) -> None:
    set_passwords(app)
    family = api.new_family(display_name="Aylin Demir")
    api.write(family, "health", "Bruise on the left arm, explained by a fall.")
    receipt = api.sign(family, GRANTS)["receipt"]
    base = live_server()

    staff_sign_in(page, base, "cps1")
    page.goto(f"{base}/staff/families/{family}")
    expect(page.get_by_role("heading", name="Ask the family to see more")).to_be_visible()
    page.get_by_label("Health", exact=True).check()
    page.get_by_label("Why your agency needs it").fill("To follow up a bruise seen at school.")
    axe_check(page)
    screenshot(page, "60-staff-ask-to-see-more")
    page.get_by_role("button", name="Ask the family").click()
    expect(page.get_by_text("Asked the family to let your agency see: Health.")
           ).to_be_visible()
    axe_check(page)
    screenshot(page, "61-staff-access-requests")
    page.get_by_role("button", name="Sign out").click()

    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(f"{base}/family/?lang=tr")
    page.locator("#f-receipt_code").fill(receipt["code"])
    page.locator("#f-pin").fill(receipt["pin"])
    page.locator("form button[type=submit]").click()
    main = page.locator("main")
    expect(main).to_contain_text("Child protection şunları görmek istiyor: sağlık notları.")
    expect(main).to_contain_text("To follow up a bruise seen at school.")
    axe_check(page)
    screenshot(page, "62-family-access-request-tr-phone")
    page.get_by_role("link", name="Evet de").click()
    expect(main).to_contain_text(
        "Evet derseniz, Child protection bundan sonra şunları görebilecek: sağlık notları.")
    axe_check(page)
    screenshot(page, "63-family-access-request-confirm-tr-phone")
    page.get_by_role("button", name="Evet, görmelerine izin ver").click()
    expect(main).to_contain_text("Child protection artık şunları görebilir: sağlık notları.")
    screenshot(page, "64-family-access-request-approved-tr-phone")
    record = api.get(f"/api/v1/families/{family}", "cps1").get_json()
    assert [e["value"] for e in record["fields"]["health"]] == [
        "Bruise on the left arm, explained by a fall."]
