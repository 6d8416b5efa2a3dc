"""Breaking the glass in Chromium: at night a nurse reads a record with
withheld fields, learns what emergency access costs, opens it and sees the
banner with the time left; the auditor finds it in the queue and marks it
justified; the family reads it on a phone in Arabic. axe-core on each page,
screenshots kept."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from playwright.sync_api import Page, expect

from coordination import accounts
from tests.browser.helpers import axe_check, screenshot, staff_sign_in
from tests.conftest import Api, Clock
from tests.web import set_passwords

GRANTS = {"physio": ["involvement", "health", "household"],
          "health-centre": ["involvement", "contact"]}
REASON = "Child brought in unconscious at night; need allergies and medication."


def test_a_nurse_breaks_the_glass_the_auditor_reviews_the_family_reads_it(
        app: Flask, api: Api, clock: Clock, page: Page,
        live_server: Callable[..., str]) -> None:
    set_passwords(app)
    with app.extensions["onestory"].sessions() as session:
        accounts.set_agency_emergency_access(session, "health-centre", True, clock())
    family = api.new_family("physio1", display_name="Aylin Demir", birth_date="2024-03-14")
    api.write(family, "health", "Allergic to penicillin.", who="physio1")
    receipt = api.sign(family, GRANTS, who="physiocoord")["receipt"]
    base = live_server()

    staff_sign_in(page, base, "nurse1")
    page.goto(f"{base}/staff/families/{family}")
    offer = page.locator("section.emergency-offer")
    expect(offer).to_contain_text("an auditor reviews it")
    expect(offer).to_contain_text("the family sees it on its page")
    screenshot(page, "70-staff-record-emergency-offer")
    offer.get_by_role("link", name="Open emergency access").click()
    page.get_by_label("Whole name of the child or a family member").fill("Aylin Demir")
    page.get_by_label("That person's birth date").fill("2024-03-14")
    page.get_by_label("Why (at least 20 characters)").fill(REASON)
    page.get_by_label("Legal basis").select_option("vital_interest")
    axe_check(page)
    screenshot(page, "71-staff-emergency-form")
    page.get_by_role("button", name="Open emergency access").click()
    banner = page.locator("#emergency-banner")
    expect(banner).to_contain_text("Emergency access open: 2 h 00 min left")
    expect(page.locator("main")).to_contain_text("Allergic to penicillin.")
    axe_check(page)
    screenshot(page, "72-staff-record-emergency-banner")
    page.get_by_role("button", name="Sign out").click()

    staff_sign_in(page, base, "auditor1")
    page.goto(f"{base}/audit/")
    expect(page.locator("#emergency-waiting")).to_have_text("1")
    page.get_by_role("link", name="Review emergency accesses").click()
    expect(page.locator("main")).to_contain_text(REASON)
    page.get_by_label("Verdict").select_option("justified")
    page.get_by_label("Note").fill("A real emergency; the right basis.")
    axe_check(page)
    screenshot(page, "73-auditor-emergency-queue")
    page.get_by_role("button", name="Record the verdict").click()
    expect(page.get_by_text("No emergency access is waiting for review.")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(f"{base}/family/?lang=ar")
    page.locator("#f-receipt_code").fill(receipt["code"])
    page.locator("#f-pin").fill(receipt["pin"])
    page.locator("form button[type=submit]").click()
    section = page.locator("section.emergencies")
    expect(section).to_contain_text("فُتح في حالة طارئة")
    expect(section).to_contain_text("تحقق مدقق من ذلك ووجد أنه كان صائبًا.")
    axe_check(page)
    screenshot(page, "74-family-emergency-ar-phone")
