"""Staff pages in Chromium: sign-in, keyboard use, the Belgian minimal-data
scenario, CSRF and lockout as a browser meets them; axe-core on each page
and a screenshot of each kept as an artefact."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from tests.browser.helpers import axe_check, console_errors, screenshot
from tests.conftest import Api
from tests.web import password_of, set_passwords


@pytest.fixture
def base(app: Flask, api: Api, live_server: Callable[..., str]) -> str:
    set_passwords(app)
    return live_server()


def script_errors(page: Page) -> list[str]:
    """Console errors other than the browser's note of a 4xx answer (a form
    error is answered 422 on purpose)."""
    return [e for e in console_errors(page) if "the server responded with a status of 4" not in e]


def staff_sign_in(page: Page, base: str, username: str, password: str | None = None) -> None:
    page.goto(f"{base}/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password or password_of(username))
    page.get_by_role("button", name="Sign in").click()


def test_staff_sign_in_with_the_keyboard(page: Page, base: str) -> None:
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/sign-in")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    axe_check(page)
    screenshot(page, "01-staff-sign-in")
    # Skip link first, then the fields, then the button: all by keyboard.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_label("Username").focus()
    page.keyboard.type("nurse1")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(password_of("nurse1"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/staff/")
    expect(page.get_by_text("nurse1 · practitioner · health-centre")).to_be_visible()
    # The focused control is visibly outlined.
    page.get_by_label("Name").focus()
    outline = page.get_by_label("Name").evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline == "solid"
    axe_check(page)
    screenshot(page, "02-staff-search")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(f"{base}/staff/")
    expect(page).to_have_url(f"{base}/sign-in?next=/staff/")
    assert script_errors(page) == []


def test_wrong_password_then_lockout(page: Page, base: str) -> None:
    for _ in range(5):
        staff_sign_in(page, base, "nurse1", "not-the-password")
        expect(page.get_by_role("alert")).to_contain_text("username or password is not right")
    staff_sign_in(page, base, "nurse1")
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
    axe_check(page)
    screenshot(page, "03-staff-locked-out")


def test_a_form_without_its_csrf_token_changes_nothing(page: Page, base: str,
                                                       api: Api) -> None:
    family_id = api.new_family(display_name="Aylin Demir")
    staff_sign_in(page, base, "nurse1")
    page.goto(f"{base}/staff/families/{family_id}")
    page.locator("input[name=csrf_token]").first.evaluate("e => e.value = 'forged'")
    for token in page.locator("form[action$='/entries'] input[name=csrf_token]").all():
        token.evaluate("e => e.value = 'forged'")
    page.get_by_label("Field").select_option("story")
    page.get_by_label("Entry (free text)").fill("This must not be saved")
    page.get_by_role("button", name="Save the entry").click()
    expect(page.get_by_role("heading", name="Please try again")).to_be_visible()
    record = api.get(f"/api/v1/families/{family_id}", "nurse1").get_json()
    assert "story" in record["withheld"]  # no entry of its own was written


def test_belgian_minimal_data_scenario(page: Page, base: str, api: Api) -> None:
    staff_sign_in(page, base, "ngo1")
    page.get_by_role("link", name="Record a family").click()
    expect(page.get_by_text("Your agency works in minimal-data mode")).to_be_visible()
    axe_check(page)
    page.get_by_label("Name").fill("Mira")
    page.get_by_label("Birth date").fill("2026-07-01")
    page.get_by_role("button", name="Record the family").click()
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("a minimal-data agency records only display_name")
    axe_check(page)
    screenshot(page, "04-minimal-data-refused")
    page.get_by_label("Birth date").fill("")
    page.get_by_label("Languages").fill("bg")
    page.get_by_role("button", name="Record the family").click()
    expect(page.get_by_role("heading", name="Mira")).to_be_visible()
    page.get_by_label("Field").select_option("contact")
    page.get_by_label("Entry (free text)").fill("Aunt's phone: +32 470 00 00 00")
    page.get_by_role("button", name="Save the entry").click()
    expect(page.get_by_text("Aunt's phone: +32 470 00 00 00")).to_be_visible()
    axe_check(page)
    screenshot(page, "05-minimal-data-record")
    # No statutory agency finds the family.
    page.get_by_role("button", name="Sign out").click()
    staff_sign_in(page, base, "nurse1")
    page.get_by_label("Name").fill("Mira")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name="Nothing matched")).to_be_visible()
    assert script_errors(page) == []


def test_record_consent_grid_and_print_receipt(page: Page, base: str, api: Api) -> None:
    family_id = api.new_family(display_name="Aylin Demir")
    staff_sign_in(page, base, "coord1")
    page.goto(f"{base}/staff/families/{family_id}/consent/new")
    axe_check(page)
    page.get_by_label("Physiotherapy may see Health").check()
    page.get_by_label("Physiotherapy may see Involvement").check()
    page.get_by_label("Signed by").fill("Aylin Demir")
    page.get_by_label("Purpose").fill("coordinated support from the family centre")
    screenshot(page, "06-consent-grid")
    page.get_by_role("button", name="Record the form").click()
    expect(page.get_by_role("heading", name="Your consent receipt")).to_be_visible()
    expect(page.get_by_text("Physiotherapy can see:")).to_be_visible()
    axe_check(page)
    screenshot(page, "07-receipt")
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.locator("#receipt-pin")).to_be_visible()
    screenshot(page, "08-receipt-print")


def test_contact_worker_is_picked_from_the_agencys_staff(page: Page, base: str,
                                                          api: Api) -> None:
    family_id = api.new_family(display_name="Aylin Demir")
    api.sign(family_id, {"health-centre": ["involvement"]})
    staff_sign_in(page, base, "coord1")
    page.goto(f"{base}/staff/families/{family_id}")
    picker = page.get_by_role("combobox", name="Contact worker")
    assert picker.evaluate("e => e.tagName") == "SELECT"  # a list, not free text
    assert picker.locator("option").all_inner_texts() == ["None", "coord1", "nurse1"]
    axe_check(page)
    picker.select_option("coord1")
    page.get_by_role("button", name="Save the contact worker").click()
    expect(page.get_by_text("coord1 is now your agency's contact worker")).to_be_visible()
    screenshot(page, "09-contact-worker")
    involved = api.get(f"/api/v1/families/{family_id}", "nurse1").get_json()["involvements"]
    assert [i["contact_worker"] for i in involved] == ["coord1"]
    assert script_errors(page) == []
