"""The Norway scenario of DOMAIN.md, end to end in Chromium, four people in
four browser profiles: the coordinator records the joint form, the
physiotherapist sees the health notes but not the contact details, the
family revokes physiotherapy's column on its own page, the
physiotherapist's next look is refused, and the auditor sees both looks
and verifies the chain. Every page is checked with axe-core and kept as a
screenshot."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Flask
from playwright.sync_api import Page, expect

from tests.browser.helpers import axe_check, screenshot, staff_sign_in
from tests.conftest import Api
from tests.web import set_passwords


def test_norway_scenario(app: Flask, api: Api, live_server: Callable[..., str],
                         people: Callable[..., Page]) -> None:
    set_passwords(app)
    base = live_server()
    family_id = api.new_family(display_name="Aylin Demir", birth_date="2024-03-14")
    api.write(family_id, "health", "Emir: growth on track; physiotherapy advised.")
    api.write(family_id, "contact", "Mother's mobile: +47 400 00 000")

    # 1. The coordinator records the signed joint form.
    coordinator = people()
    staff_sign_in(coordinator, base, "coord1")
    coordinator.goto(f"{base}/staff/families/{family_id}/consent/new")
    grants = {"Health centre": ["Involvement", "Contact details", "Health"],
              "Physiotherapy": ["Involvement", "Health"],
              "Kindergarten": ["Involvement", "Education and care"]}
    for agency, rows in grants.items():
        for row in rows:
            coordinator.get_by_label(f"{agency} may see {row}", exact=True).check()
    coordinator.get_by_label("Signed by").fill("Aylin Demir")
    coordinator.get_by_label("Interpreter language").fill("tr")
    coordinator.get_by_label("Purpose").fill("coordinated support from the family centre")
    coordinator.get_by_role("button", name="Record the form").click()
    expect(coordinator.get_by_role("heading", name="Your consent receipt")).to_be_visible()
    code = coordinator.locator("#receipt-code").inner_text()
    pin = coordinator.locator("#receipt-pin").inner_text()
    axe_check(coordinator)
    screenshot(coordinator, "norway-1-receipt")
    coordinator.goto(f"{base}/staff/families/{family_id}/consent")
    axe_check(coordinator)
    screenshot(coordinator, "norway-1b-consent-form")

    # 2. The physiotherapist sees the health notes, not the contact details.
    physio = people()
    staff_sign_in(physio, base, "physio1")
    physio.get_by_label("Name").fill("Aylin Demir")
    physio.get_by_label("Birth date").fill("2024-03-14")
    physio.get_by_role("button", name="Search").click()
    physio.get_by_role("link", name="Aylin Demir").click()
    health = physio.locator("#field-health")
    expect(health).to_contain_text("growth on track")
    expect(health).to_contain_text("Written by nurse1")
    contact = physio.locator("#field-contact")
    expect(contact).to_contain_text("Not shared with your agency")
    expect(physio.get_by_text("+47 400 00 000")).to_have_count(0)
    axe_check(physio)
    screenshot(physio, "norway-2-physio-record")
    record_url = physio.url

    # 3. The family revokes physiotherapy's column on its own page, on a phone.
    family = people(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    family.goto(f"{base}/family/")
    family.get_by_label("Receipt code").fill(code)
    family.get_by_label("PIN").fill(pin)
    family.get_by_role("button", name="Sign in").click()
    expect(family.get_by_text("can see:").first).to_be_visible()
    expect(family.get_by_text("health notes").first).to_be_visible()
    axe_check(family)
    screenshot(family, "norway-3-family-consent-phone")
    family.get_by_role("link", name="Stop sharing anything with Physiotherapy").click()
    expect(family.get_by_role("button", name="Yes, stop sharing")).to_be_visible()
    expect(family.locator("main")).to_contain_text("Physiotherapy")
    axe_check(family)
    screenshot(family, "norway-3b-family-confirm")
    family.get_by_role("button", name="Yes, stop sharing").click()
    expect(family.get_by_role("status").first).to_be_visible()
    form = api.get(f"/api/v1/families/{family_id}/consent", "coord1").get_json()
    assert "physio" not in form["grants"]
    assert set(form["grants"]) == {"health-centre", "ecec"}

    # 4. The physiotherapist's next look is refused.
    response = physio.goto(record_url)
    assert response is not None and response.status == 404
    expect(physio.get_by_role("heading", name="Not found")).to_be_visible()
    expect(physio.get_by_text("growth on track")).to_have_count(0)
    axe_check(physio)
    screenshot(physio, "norway-4-physio-refused")

    # The family sees who looked, the refused look included.
    family.goto(f"{base}/family/access-log")
    expect(family.locator("main")).to_contain_text("Physiotherapy")
    axe_check(family)
    screenshot(family, "norway-5-family-who-looked")

    # The coordinator sees the new version in the history, and who looked.
    coordinator.goto(f"{base}/staff/families/{family_id}/consent/history")
    expect(coordinator.get_by_role("heading", name="Version 2: revoke column physio")) \
        .to_be_visible()
    axe_check(coordinator)
    screenshot(coordinator, "norway-5b-consent-history")
    coordinator.goto(f"{base}/staff/families/{family_id}/access-log")
    expect(coordinator.locator("tr.denied")).to_have_count(1)
    axe_check(coordinator)
    screenshot(coordinator, "norway-5c-staff-who-looked")

    # 5. The auditor sees both looks and verifies the log.
    auditor = people()
    staff_sign_in(auditor, base, "auditor1")
    auditor.get_by_label("Family id").fill(family_id)
    auditor.get_by_label("User").fill("physio1")
    auditor.get_by_role("button", name="Show entries").click()
    rows = auditor.locator("tbody tr")
    expect(rows.filter(has_text="record.read")).to_have_count(1)
    refused = rows.filter(has_text="request.denied")
    expect(refused).to_have_count(1)
    expect(refused).to_have_class(re.compile(r"\bdenied\b"))
    expect(refused).to_contain_text("refused")
    expect(auditor.get_by_text("growth on track")).to_have_count(0)
    expect(auditor.get_by_text("Aylin")).to_have_count(0)
    axe_check(auditor)
    screenshot(auditor, "norway-6-auditor-log")
    auditor.get_by_role("link", name="Verify the log").first.click()
    expect(auditor.get_by_text("The log is intact")).to_be_visible()
    axe_check(auditor)
    screenshot(auditor, "norway-7-auditor-verified")
