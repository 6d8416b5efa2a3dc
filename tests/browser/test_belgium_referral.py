"""The Belgian referral, end to end in Chromium (ISSUE 10, points 2 and 5):
the low-threshold NGO refers its family, known by a pseudonym only, to the
health centre; the family, on a phone in Turkish, agrees on its own page;
the health centre accepts and books an appointment with an interpreter;
the family misses it, a second one is booked and attended; the referral is
closed with feedback the NGO reads. Every page is checked with axe-core and
kept as a screenshot (staff at 1280 px, the family at 375 px in Turkish,
and once in Arabic)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from playwright.sync_api import Page, expect

from tests.browser.helpers import axe_check, screenshot, staff_sign_in
from tests.conftest import Api
from tests.web import set_passwords

PHONE = {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True}
REASON = "Mira's son coughs at night for weeks; please see him. The mother speaks Turkish."
FEEDBACK = "Seen on 3 December with an interpreter: asthma, inhaler given; check-up in March."


def test_belgium_referral(app: Flask, api: Api, live_server: Callable[..., str],
                          people: Callable[..., Page]) -> None:
    set_passwords(app)
    base = live_server()
    # The NGO records the family by a pseudonym only, and the form the family
    # signed with it (the NGO alone may see its contact route and story).
    family_id = api.new_family("ngo1", display_name="Mira", languages=["tr"])
    receipt = api.sign(family_id, {"ngo": ["involvement", "contact", "story"]},
                       who="ngocoord", signed_by="Mira", interpreter_language="tr")["receipt"]

    # 1. The NGO's coordinator refers the family to the health centre.
    ngo = people(viewport={"width": 1280, "height": 900})
    staff_sign_in(ngo, base, "ngocoord")
    ngo.goto(f"{base}/staff/families/{family_id}")
    ngo.get_by_role("link", name="Refer to another agency").click()
    expect(ngo.get_by_text("until the family agrees, nothing reaches that agency")).to_be_visible()
    ngo.get_by_label("Agency").select_option(label="Health centre")
    ngo.get_by_label("Why you refer the family").fill(REASON)
    ngo.get_by_label("The family's story").check()
    ngo.get_by_label("Urgency").select_option("soon")
    ngo.get_by_label("Interpreter language").fill("tr")
    ngo.get_by_label("Someone should accompany the family").check()
    axe_check(ngo)
    screenshot(ngo, "belgium-1-ngo-referral-form")
    ngo.get_by_role("button", name="Send the referral").click()
    expect(ngo.get_by_role("status")).to_contain_text("The family is asked first")
    expect(ngo.locator("#ref-state")).to_have_text("Waiting for the family's answer")
    axe_check(ngo)
    screenshot(ngo, "belgium-2-ngo-referral-waiting")
    referral_url = ngo.url

    # The health centre does not know of it yet.
    health = people(viewport={"width": 1280, "height": 900})
    staff_sign_in(health, base, "coord1")
    health.goto(f"{base}/staff/referrals?direction=in")
    expect(health.get_by_text("Mira")).to_have_count(0)

    # 2. The family, on its phone in Turkish, agrees.
    family = people(**PHONE)
    family.goto(f"{base}/family/")
    family.get_by_role("link", name="Türkçe").click()
    family.get_by_label("Makbuz kodu").fill(receipt["code"])
    family.get_by_label("PIN").fill(receipt["pin"])
    family.get_by_role("button", name="Giriş yap").click()
    expect(family.get_by_role("heading", name="Yardım istekleri: lütfen cevap verin")) \
        .to_be_visible()
    expect(family.locator("main")).to_contain_text(
        "Drop-in NGO, ailenize yardım etmesi için Health centre kurumuna başvurmak istiyor.")
    axe_check(family)
    screenshot(family, "belgium-3-family-request-tr-phone")
    family.get_by_role("link", name="Evet, kabul ediyorum").click()
    expect(family.locator("main")).to_contain_text("Evet derseniz Health centre şunları "
                                                   "görebilir:")
    axe_check(family)
    screenshot(family, "belgium-4-family-confirm-tr-phone")
    family.get_by_role("button", name="Evet, kabul ediyorum").click()
    expect(family.get_by_role("status")).to_contain_text("Evet dediniz.")
    axe_check(family)
    screenshot(family, "belgium-5-family-agreed-tr-phone")
    form = api.get(f"/api/v1/families/{family_id}/consent", "ngocoord").get_json()
    assert sorted(form["grants"]["health-centre"]) == ["involvement", "story"]

    # 3. The health centre accepts and books an appointment with an interpreter.
    health.goto(f"{base}/staff/referrals?direction=in")
    health.get_by_role("link", name="Mira").click()
    expect(health.locator("main")).to_contain_text(REASON)
    health.get_by_label("Contact worker").select_option("nurse1")
    axe_check(health)
    screenshot(health, "belgium-6-health-referral-to-accept")
    health.get_by_role("button", name="Accept the referral").click()
    expect(health.locator("#ref-state")).to_have_text("Accepted")

    def book(when: str) -> None:
        health.get_by_label("Date and time (UTC)").fill(when)
        health.get_by_label("Place").fill("Health centre, Kortrijksesteenweg 12, room 3")
        health.get_by_label("Interpreter language").fill("tr")
        health.get_by_label("Accompanied by").fill("Sofie from the NGO")
        health.get_by_role("button", name="Book the appointment").click()
        expect(health.locator("#ref-state")).to_have_text("Appointment booked")

    book("2026-11-26T09:30")
    axe_check(health)
    screenshot(health, "belgium-7-health-booked")

    # The family sees the appointment in Turkish, and once in Arabic.
    family.goto(f"{base}/family/consent")
    appointments = family.locator("ul.appointments")
    expect(appointments).to_contain_text("26 Kasım 2026")
    expect(appointments).to_contain_text("Yer: Health centre, Kortrijksesteenweg 12, room 3")
    expect(appointments).to_contain_text("Orada Türkçe bilen bir tercüman olacak.")
    axe_check(family)
    screenshot(family, "belgium-8-family-appointment-tr-phone")
    family.get_by_role("link", name="العربية").click()
    expect(family.locator("html")).to_have_attribute("dir", "rtl")
    expect(family.get_by_role("heading", name="مواعيدك")).to_be_visible()
    axe_check(family)
    screenshot(family, "belgium-9-family-appointment-ar-phone")
    family.get_by_role("link", name="Türkçe").click()

    # 4. Missed; a second appointment is booked and attended; closed with feedback.
    health.get_by_role("button", name="Missed").click()
    expect(health.locator("#ref-state")).to_have_text("Appointment missed")
    book("2026-12-03T09:00")
    health.get_by_label("Note").fill("Came with the interpreter.")
    health.get_by_role("button", name="Attended").click()
    expect(health.locator("#ref-state")).to_have_text("Appointment attended")
    health.get_by_label("What came of it").fill(FEEDBACK)
    health.get_by_role("button", name="Close the referral").click()
    expect(health.locator("#ref-state")).to_have_text("Closed")
    axe_check(health)
    screenshot(health, "belgium-10-health-closed")

    # 5. The NGO reads the feedback, with the whole history.
    ngo.goto(referral_url)
    expect(ngo.locator("#ref-state")).to_have_text("Closed")
    expect(ngo.locator("main")).to_contain_text(FEEDBACK)
    history = ngo.locator("ol.log li")
    expect(history).to_have_count(8)
    axe_check(ngo)
    screenshot(ngo, "belgium-11-ngo-reads-feedback")

    # The family sees who did what, in Turkish.
    family.goto(f"{base}/family/access-log")
    expect(family.locator("main")).to_contain_text("aileniz için bir randevu aldı")
    axe_check(family)
    screenshot(family, "belgium-12-family-who-looked-tr-phone")
