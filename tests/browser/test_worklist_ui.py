"""The staff home page in Chromium, on the demo's data: coord1 (health
centre) and ngocoord1 (the NGO) land on what to act on, each item a sentence
and a link; one with nothing to act on says so. Screenshots at 1280 px."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from coordination import demo
from tests.browser.helpers import axe_check, screenshot
from tests.browser.test_staff_ui import script_errors, staff_sign_in
from tests.conftest import Clock


@pytest.fixture
def base(app: Flask, clock: Clock, live_server: Callable[..., str]) -> str:
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        demo.seed(session, rt.vault, clock())
    return live_server()


def sign_in(page: Page, base: str, username: str) -> None:
    staff_sign_in(page, base, username, demo.demo_password(username))
    expect(page).to_have_url(f"{base}/staff/")


def test_coordinators_land_on_their_worklist(page: Page, base: str) -> None:
    sign_in(page, base, "coord1")
    expect(page.get_by_role("heading", name="What to act on")).to_be_visible()
    items = page.locator(".worklist-items li")
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_contain_text("Harbour drop-in (low-threshold NGO) referred Yana "
                                         "to your agency: accept or decline by")
    expect(items.nth(1)).to_contain_text("Yana comes to your agency on")
    expect(items.nth(2)).to_contain_text("Mira's consent form ends on")
    axe_check(page)
    screenshot(page, "30-worklist-coord1")
    items.nth(2).get_by_role("link", name="Open the consent form").click()
    expect(page.get_by_role("heading", name="Consent form")).to_be_visible()
    page.go_back()
    # The search is still on the home page.
    page.get_by_label("Name").fill("Mira")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name="Mira")).to_be_visible()
    assert script_errors(page) == []


def test_the_ngo_follows_its_referrals(page: Page, base: str) -> None:
    sign_in(page, base, "ngocoord1")
    items = page.locator(".worklist-items li")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("Yana has an appointment with Family centre health "
                                         "station on")
    items.nth(0).get_by_role("link", name="Open the referral").click()
    expect(page.get_by_role("heading", name="Referral of Yana")).to_be_visible()
    expect(page.get_by_role("heading", name="Appointments")).to_be_visible()
    page.go_back()
    axe_check(page)
    screenshot(page, "31-worklist-ngocoord1")


def test_nothing_to_act_on(page: Page, base: str) -> None:
    sign_in(page, base, "ecec1")
    expect(page.get_by_text("Nothing to act on")).to_be_visible()
    axe_check(page)
    screenshot(page, "32-worklist-empty")
