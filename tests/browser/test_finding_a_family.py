"""Finding a family in Chromium: a word of a member's name finds it, an empty
result suggests other searches, and recording a family the agency can already
see warns first and records only on confirmation; axe-core on each page and a
screenshot of each."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from tests.browser.helpers import axe_check, screenshot
from tests.browser.test_staff_ui import script_errors, staff_sign_in
from tests.conftest import Api
from tests.web import set_passwords


@pytest.fixture
def base(app: Flask, api: Api, live_server: Callable[..., str]) -> str:
    set_passwords(app)
    return live_server()


def test_find_by_a_word_and_be_warned_before_recording_again(page: Page, base: str,
                                                             api: Api) -> None:
    family_id = api.new_family(
        "nurse1", display_name="Aylin Demir", birth_date="2024-03-14",
        members=[{"name": "Emir Demir", "relation": "child", "birth_date": "2024-03-14"}])
    staff_sign_in(page, base, "nurse1")

    # The child's first name, typed in capitals with a Turkish İ, finds the family.
    page.get_by_label("Name").fill("EMİR")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name="1 family found")).to_be_visible()
    expect(page.get_by_role("link", name="Aylin Demir")).to_be_visible()
    axe_check(page)
    screenshot(page, "search-1-a-word-of-a-member")

    # Part of a word finds nothing, and the page suggests other searches.
    page.get_by_label("Name").fill("Dem")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name="Nothing matched")).to_be_visible()
    expect(page.locator("#nothing-matched")).to_contain_text("a single word of the name")
    expect(page.locator("#nothing-matched").get_by_role("link")).to_have_count(0)
    axe_check(page)
    screenshot(page, "search-2-nothing-matched")

    # Recording the same name and birth date warns first, with a link to the family.
    page.goto(f"{base}/staff/families/new")
    page.get_by_label("Name").fill("aylin demir")
    page.get_by_label("Birth date").fill("2024-03-14")
    page.get_by_role("button", name="Record the family").click()
    warning = page.locator("#possible-duplicate")
    expect(warning).to_contain_text("can already see a family with this name and birth date")
    expect(warning.get_by_role("link", name="Aylin Demir")).to_have_attribute(
        "href", f"/staff/families/{family_id}")
    axe_check(page)
    screenshot(page, "search-3-possible-duplicate")
    # Another family after all: recorded on confirmation.
    page.get_by_role("button", name="Record a new family anyway").click()
    expect(page.get_by_text("Recorded aylin demir.")).to_be_visible()
    assert not page.url.endswith(family_id)
    assert script_errors(page) == []
