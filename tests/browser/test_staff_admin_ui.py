"""The admin's staff page, a hand-over as the family then reads it (phone
size, Turkish and Arabic), and the entry form's readers, in Chromium, with
screenshots."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from coordination import accounts
from tests.browser.helpers import (
    artefacts_dir,
    axe_check,
    console_errors,
    screenshot,
    staff_sign_in,
)
from tests.conftest import Api, Clock
from tests.web import set_passwords

GRID = {"health-centre": ["involvement", "contact", "health"],
        "physio": ["involvement", "health"], "ecec": ["involvement", "education"]}
PHONE = {"viewport": {"width": 375, "height": 812}}


@pytest.fixture
def case(app: Flask, api: Api, clock: Clock) -> dict[str, str]:
    with app.extensions["onestory"].sessions() as session:
        accounts.add_staff(session, "nurse2", "health-centre", "practitioner", None, clock(),
                           "Sigrid Haugen")
        accounts.add_staff(session, "hcadmin", "health-centre", "admin", None, clock(),
                           "Marit Dahl")
        accounts.set_agency_names(session, "health-centre", {
            "tr": "Aile merkezi sağlık istasyonu", "ar": "المحطة الصحية في مركز الأسرة"},
            clock())
        api.tokens["nurse2"] = accounts.create_token(session, "nurse2", timedelta(days=9),
                                                     clock())
    set_passwords(app)
    family = api.new_family("nurse1", display_name="Aylin Demir")
    api.write(family, "health", "Growth on track; physiotherapy advised.")
    receipt: dict[str, str] = api.sign(family, GRID)["receipt"]
    return {"family": family, **receipt}


def _family_page(person: Callable[..., Page], base: str, case: dict[str, str],
                 lang: str) -> Page:
    page = person(**PHONE)
    page.goto(f"{base}/family/?lang={lang}")
    page.locator("#f-receipt_code").fill(case["code"])
    page.locator("#f-pin").fill(case["pin"])
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(f"{base}/family/consent")
    return page


def test_admin_hands_over_and_the_family_reads_its_new_contact_person(
        page: Page, people: Callable[..., Page], live_server: Callable[..., str],
        case: dict[str, str]) -> None:
    base = live_server()
    staff_sign_in(page, base, "hcadmin")
    expect(page.get_by_role("heading", name="Staff of Health centre")).to_be_visible()
    axe_check(page)
    screenshot(page, "admin-staff-1280")
    page.get_by_role("link", name="Deactivate nurse1").click()
    page.get_by_label("Hand their families over to").select_option("nurse2")
    axe_check(page)
    screenshot(page, "admin-deactivate-1280")
    page.get_by_role("button", name="Deactivate nurse1").click()
    expect(page.get_by_text("nurse1 is deactivated")).to_be_visible()
    page.get_by_role("button", name="Reset password of nurse2").click()
    expect(page.locator("code.secret")).to_have_text(re.compile(r"^\S{16,}$"))
    screenshot(page, "admin-password-1280")
    assert console_errors(page) == []

    turkish = _family_page(people, base, case, "tr")
    helping = turkish.locator("section.helping")
    expect(helping).to_contain_text("Size kimler yardım ediyor")
    expect(helping).to_contain_text("Aile merkezi sağlık istasyonu")
    expect(helping).to_contain_text("İletişim kişiniz: Sigrid Haugen, 22 Kasım 2026 "
                                    "tarihinden beri")
    helping.scroll_into_view_if_needed()
    screenshot(turkish, "family-helping-tr-375")
    helping.screenshot(path=str(artefacts_dir() / "family-helping-tr-375-section.png"))
    arabic = _family_page(people, base, case, "ar")
    helping = arabic.locator("section.helping")
    expect(helping).to_contain_text("المحطة الصحية في مركز الأسرة")
    expect(helping).to_contain_text("Sigrid Haugen")
    axe_check(arabic)
    screenshot(arabic, "family-helping-ar-375")
    helping.screenshot(path=str(artefacts_dir() / "family-helping-ar-375-section.png"))


def test_entry_form_shows_who_will_read_each_field(page: Page, live_server: Callable[..., str],
                                                   case: dict[str, str]) -> None:
    base = live_server()
    staff_sign_in(page, base, "coord1")
    page.goto(f"{base}/staff/families/{case['family']}")
    readers = page.locator("#entry-readers")
    expect(readers.locator("#readers-health")).to_contain_text("Your agency, Physiotherapy")
    expect(readers.locator("#readers-story")).to_contain_text(
        "the family shares this field with no other agency")
    expect(page.get_by_label("Field")).to_have_value("contact")
    # With the script (CSP: from this site only), the chosen field's readers
    # are said beside it as well.
    chosen = page.locator("#readers-chosen")
    expect(chosen).to_have_text("Read by: Only your agency: the family shares this field "
                                "with no other agency.")
    page.get_by_label("Field").select_option("health")
    expect(chosen).to_have_text("Read by: Your agency, Physiotherapy")
    expect(readers.locator("#readers-health")).to_have_class("chosen")
    axe_check(page)
    readers.scroll_into_view_if_needed()
    screenshot(page, "entry-readers-1280")
    assert console_errors(page) == []
