"""Issue 12's pages in Chromium as their users meet them: the family page's
needs and attendance in words and its answer about being counted in
anonymous numbers (with the confirmation page) on a 375 px phone in
English, Norwegian, Turkish and Arabic (right to left), nothing wider than the screen;
the staff entry form with its kinds, the record with typed entries and the
area, the new-family form's area, the consent form's statistics question,
and the reports page as evaluator and coordinator, at 1280 px. Screenshots
in tests/browser/artefacts/ (70-…)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from coordination import demo, demo_population
from coordination.casework import areas
from tests.browser.helpers import artefacts_dir, axe_check, screenshot
from tests.browser.test_family_ui import family_sign_in
from tests.browser.test_reports_ui import run, table_cells
from tests.browser.test_staff_ui import script_errors, staff_sign_in
from tests.conftest import Api, Clock
from tests.web import set_passwords

PHONE = {"width": 375, "height": 740}
AREAS = {"A1": "North Hill", "A2": "Docklands"}
GRANTS = {"health-centre": ["involvement", "story", "health"],
          "physio": ["involvement", "health"]}

# What sticks out of the page's width (either side, any direction), but for
# what is placed wholly outside on purpose (the skip link until focused).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.right > 0 && r.left < width
      && (r.right > width + 1 || r.left < -1);
  }).map(e => e.tagName + (e.id ? '#' + e.id : '') + ' ' + (e.textContent || '').trim()
    .slice(0, 40));
  return {scroll: document.documentElement.scrollWidth, width, wide};
}"""


def section_shot(page: Page, selector: str, name: str) -> None:
    """The part of the page a test looks at, at its real size (the full page
    on a phone is too tall to read once scaled down)."""
    page.locator(selector).screenshot(path=str(artefacts_dir() / f"{name}.png"))


def assert_fits(page: Page) -> None:
    seen = page.evaluate(OVERFLOW)
    assert seen["scroll"] <= seen["width"] and seen["wide"] == [], seen


@pytest.fixture
def family(app: Flask, api: Api, clock: Clock) -> tuple[str, dict[str, str]]:
    with app.extensions["onestory"].sessions() as session:
        areas.set_agency_areas(session, "health-centre", AREAS, [], clock())
    family_id = api.new_family(display_name="Aylin Demir", area="A1")
    form = api.sign(family_id, GRANTS, statistics=True)
    for body in ({"field": "story", "kind": "needs",
                  "data": {"codes": ["housing", "income", "childcare"]}},
                 {"field": "health", "kind": "attendance",
                  "data": {"attended": 7, "offered": 10, "from": "2025-09-01",
                           "to": "2025-12-19"}}):
        response = api.post(f"/api/v1/families/{family_id}/entries", "nurse1", json=body)
        assert response.status_code == 201, response.get_json()
    api.write(family_id, "story", "Moved here in August; the flat is too small.")
    return family_id, form["receipt"]


# What the family reads, per language: the entries in words, the answer, what
# the numbers are, and what saying no does (on the confirmation page).
SAYS = {
    "en": ("Needs: housing, income, and childcare.",
           "Attended 7 of 10 sessions offered, from 1 September 2025 to 19 December 2025.",
           "You said yes: your family is counted in numbers without names.",
           "They never show your name, and small numbers are hidden.",
           "From now on, your family is left out of all numbers, also numbers about past "
           "months."),
    "nb": ("Behov: bolig, inntekt og barnepass.",
           "Møtte 7 av 10 tilbudte timer",
           "Dere har sagt ja: familien deres telles med i tall uten navn.",
           "De viser aldri navnet deres, og små tall skjules.",
           "Fra nå av er familien deres holdt utenfor alle tall, også tall om tidligere "
           "måneder."),
    "tr": ("İhtiyaçlar: konut, gelir ve çocuk bakımı.",
           "1 Eylül 2025 ile 19 Aralık 2025 arasında sunulan 10 oturumun 7 tanesine katıldı.",
           "Evet dediniz: aileniz isimsiz sayılara dahil ediliyor.",
           "Adınızı asla göstermezler ve küçük sayılar gizlenir.",
           "Bundan sonra aileniz hiçbir sayıya dahil edilmez"),
    "ar": ("الاحتياجات: السكن والدخل ورعاية الأطفال.",
           "حضر 7 من أصل 10 من الجلسات المقدّمة",
           "قلتم نعم: تُحتسب عائلتكم في أرقام بدون أسماء.",
           "لا تُظهر اسمكم أبدًا، وتُخفى الأرقام الصغيرة.",
           "من الآن فصاعدًا، لن تُحتسب عائلتكم في أي أرقام"),
}
LANGUAGES = {"en": "English", "nb": "Norsk", "tr": "Türkçe", "ar": "العربية"}


def test_the_family_reads_its_needs_attendance_and_counting_on_a_phone(
        page: Page, live_server: Callable[..., str],
        family: tuple[str, dict[str, str]]) -> None:
    base = live_server()
    family_id, secret = family
    page.set_viewport_size(PHONE)
    family_sign_in(page, base, secret["code"], secret["pin"])
    html, main = page.locator("html"), page.locator("main")
    for lang, name in LANGUAGES.items():
        page.get_by_role("link", name=name, exact=True).click()
        expect(html).to_have_attribute("lang", lang)
        needs, attendance, answer, never, left_out = SAYS[lang]
        entries = page.locator("section.typed-entries")
        expect(entries).to_contain_text(needs)
        expect(entries).to_contain_text(attendance)
        expect(page.locator("#counting-answer")).to_have_text(answer)
        expect(main).to_contain_text(never)
        if lang == "ar":  # right to left: the headings end at the right edge
            expect(html).to_have_attribute("dir", "rtl")
            box = page.locator("#counting-title").bounding_box()
            assert box is not None and box["x"] + box["width"] > PHONE["width"] - 20
        assert_fits(page)
        axe_check(page)
        screenshot(page, f"70-family-entries-counting-{lang}-phone")
        section_shot(page, "section:has(#counting-title)", f"71-family-counting-{lang}-phone")
        section_shot(page, "section.typed-entries", f"72-family-entries-{lang}-phone")
        page.locator("section:has(#counting-title) a.button").click()
        expect(main).to_contain_text(left_out)
        assert_fits(page)
        axe_check(page)
        screenshot(page, f"73-family-counting-confirm-no-{lang}-phone")
        page.go_back()
    # English again: saying no, then yes, each after its confirmation.
    page.get_by_role("link", name="English", exact=True).click()
    page.get_by_role("link", name="Do not count my family").click()
    page.get_by_role("button", name="Yes, do not count my family").click()
    expect(page.get_by_text("Saved: your family is not counted in any numbers.")).to_be_visible()
    expect(page.locator("#counting-answer")).to_have_text(
        "Your family is not counted in any numbers.")
    assert_fits(page)
    screenshot(page, "74-family-not-counted-en-phone")
    page.get_by_role("link", name="Yes, count my family").click()
    expect(main).to_contain_text("only in totals that never show your name")
    screenshot(page, "75-family-counting-confirm-yes-en-phone")
    page.get_by_role("button", name="Yes, count my family").click()
    expect(page.locator("#counting-answer")).to_have_text(SAYS["en"][2])


@pytest.fixture
def base(app: Flask, api: Api, live_server: Callable[..., str],
         family: tuple[str, dict[str, str]]) -> str:
    set_passwords(app)
    return live_server()


def test_staff_write_typed_entries_and_see_the_area(page: Page, base: str,
                                                    family: tuple[str, dict[str, str]]) -> None:
    family_id, _secret = family
    staff_sign_in(page, base, "nurse1")
    page.goto(f"{base}/staff/families/{family_id}")
    area = page.locator("section:has(#area-title)")
    expect(area).to_contain_text("North Hill (A1)")
    expect(page.get_by_label("Change the area")).to_have_value("A1")
    expect(page.locator("main")).to_contain_text("Needs: housing, income, childcare")
    expect(page.locator("main")).to_contain_text(
        "Attended 7 of 10 sessions offered, 1 Sep 2025 to 19 Dec 2025")
    axe_check(page)
    screenshot(page, "76-staff-record-typed-entries-area")

    # The kinds: only the chosen kind's inputs are shown.
    kinds = page.locator("#f-kind")
    attendance, needs = page.locator("#f-data"), page.locator("#f-data-codes")
    expect(attendance).to_be_hidden()
    expect(needs).to_be_hidden()
    page.get_by_label("Field", exact=True).select_option(label="Health")
    # Only the kinds the chosen field takes can be chosen.
    expect(kinds.get_by_label("Needs")).to_be_disabled()
    kinds.get_by_label("Attendance (sessions attended of sessions offered)").check()
    expect(attendance).to_be_visible()
    expect(needs).to_be_hidden()
    expect(page.get_by_label("Entry (free text)")).to_be_hidden()
    page.get_by_label("Sessions attended", exact=True).fill("25")
    page.get_by_label("Sessions offered", exact=True).fill("20")
    page.get_by_label("From", exact=True).fill("2026-09-01")
    page.get_by_label("To", exact=True).fill("2026-10-30")
    section_shot(page, "section:has(#add-title)", "77-staff-entry-attendance")
    page.get_by_role("button", name="Save the entry").click()
    expect(page.locator("#f-data")).to_contain_text("cannot be more than the sessions offered")
    expect(attendance).to_be_visible()  # the chosen kind stays chosen, with its error
    expect(page.locator(".error-summary")).to_contain_text(
        "Sessions attended: cannot be more than the sessions offered")
    section_shot(page, "main", "78-staff-entry-attendance-error")
    page.get_by_label("Sessions attended", exact=True).fill("16")
    page.get_by_role("button", name="Save the entry").click()
    expect(page.locator("main")).to_contain_text(
        "Attended 16 of 20 sessions offered, 1 Sep 2026 to 30 Oct 2026")

    page.get_by_label("Field", exact=True).select_option(label="The family's story")
    expect(kinds.get_by_label("Attendance (sessions attended of sessions offered)")
           ).to_be_disabled()
    kinds.get_by_label("Needs").check()
    expect(needs).to_be_visible()
    expect(attendance).to_be_hidden()
    needs.get_by_label("parenting").check()
    needs.get_by_label("training").check()
    axe_check(page)
    section_shot(page, "section:has(#add-title)", "79-staff-entry-needs")
    page.get_by_role("button", name="Save the entry").click()
    expect(page.locator("main")).to_contain_text("Needs: parenting, training")
    assert script_errors(page) == []

    page.goto(f"{base}/staff/families/new")
    expect(page.get_by_label("Area")).to_have_value("")
    options = page.get_by_label("Area").locator("option").all_inner_texts()
    assert options[0] == "Not given" and sorted(options[1:]) == [
        "Docklands (A2)", "North Hill (A1)"], options
    axe_check(page)
    screenshot(page, "80-staff-new-family-area")


def test_the_coordinator_records_the_statistics_answer(page: Page, base: str,
                                                      family: tuple[str, dict[str, str]]
                                                      ) -> None:
    family_id, _secret = family
    staff_sign_in(page, base, "coord1")
    page.goto(f"{base}/staff/families/{family_id}/consent")
    expect(page.locator(".statistics-answer")).to_contain_text(
        "The family may be counted in anonymous statistics.")
    page.goto(f"{base}/staff/families/{family_id}/consent/new")
    box = page.get_by_label("May the family be counted in anonymous statistics?")
    expect(box).not_to_be_checked()  # a new form starts at no: the family says yes anew
    expect(page.locator("main")).to_contain_text("Tick only if the family said yes on the form.")
    axe_check(page)
    screenshot(page, "81-staff-consent-form-statistics")


@pytest.fixture
def population(app: Flask, clock: Clock, live_server: Callable[..., str]) -> str:
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        demo.seed(session, rt.vault, clock(), population=demo_population.FAMILIES)
    return live_server()


def test_the_reports_page_for_evaluator_and_coordinator(page: Page, population: str) -> None:
    base = population
    for who, shot in (("eval1", "82-reports-evaluator"), ("coord1", "83-reports-coordinator")):
        staff_sign_in(page, base, who, demo.demo_password(who))
        page.goto(f"{base}/reports/")
        first = page.get_by_label("From month").input_value()
        last = page.get_by_label("To month").input_value()
        run(page, "Needs", first, last, "Area")
        rows = table_cells(page)
        assert len(rows) >= 3 and any(cell.isdigit() for row in rows for cell in row[1:])
        table = page.locator("table.report-table")
        # Every column fits the page at 1280 px: no sideways scrolling for the figures.
        assert page.evaluate("""() => { const s = document.querySelector('.table-scroll');
            return s.scrollWidth <= s.clientWidth; }""")
        expect(table.locator("thead")).to_contain_text("Housing")
        own = page.locator("#own-agency")
        if who == "coord1":  # a coordinator is told whose families it sees
            expect(own).to_contain_text("only the families your agency works with")
        else:
            expect(own).to_have_count(0)
        # The month fields are as wide as the others, in the page's font.
        widths = page.evaluate("""() => ['#f-from', '#f-report'].map(
            s => document.querySelector(s).getBoundingClientRect().width)""")
        assert widths[0] >= widths[1] - 1, widths
        chart = page.locator(".report-chart img")
        chart.scroll_into_view_if_needed()
        page.wait_for_function("""() => { const i = document.querySelector('.report-chart img');
            return i.complete && i.naturalWidth > 300; }""")
        expect(page.locator("#legend")).to_contain_text(
            "Families without an area are counted in the last row, Unknown (no area "
            "recorded).")
        assert rows[-1][0] == "Unknown (no area recorded)"
        axe_check(page)
        screenshot(page, shot)
        if who == "eval1":  # every other report's table fits the page too
            for report, by in (("Involvement", "Agency"), ("Consent coverage", "Agency"),
                               ("Referrals", "Month"), ("Attendance", "Agency")):
                run(page, report, first, last, by)
                assert page.evaluate("""() => { const s = document.querySelector(
                    '.table-scroll'); return s.scrollWidth <= s.clientWidth; }"""), report
                # Not grouped by area: no word about families without one.
                expect(page.locator("#legend")).not_to_contain_text("without an area")
                slug = report.lower().replace(" ", "-")
                section_shot(page, "section:has(#report-title)",
                             f"84-reports-{slug}-by-{by.lower()}")
        page.get_by_role("button", name="Sign out").click()
