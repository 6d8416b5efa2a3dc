"""The reports page in Chromium on the demo with its population
(`seed-demo --population`): the evaluator lands on it, runs two reports
grouped differently, sees the published table (withheld values as dashes,
explained), the chart loaded as an image with no Content-Security-Policy
violation, and downloads the same figures as CSV. Screenshots at 1280 px."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from coordination import demo, demo_population
from coordination.web import CSP
from coordination.web.report_chart import CHART_CSP
from tests.browser.helpers import artefacts_dir, axe_check, console_errors, screenshot
from tests.browser.test_staff_ui import staff_sign_in
from tests.conftest import Clock

# Chromium fires this for every refusal under a page's policy; kept on the window.
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
    e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture
def base(app: Flask, clock: Clock, live_server: Callable[..., str]) -> str:
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        demo.seed(session, rt.vault, clock(), population=demo_population.FAMILIES)
    return live_server()


def run(page: Page, report: str, first: str, last: str, by: str) -> None:
    page.get_by_label("Report", exact=True).select_option(label=report)
    page.get_by_label("From month").fill(first)
    page.get_by_label("To month").fill(last)
    page.get_by_label("Group by").select_option(label=by)
    page.get_by_role("button", name="Show the report").click()
    expect(page.locator("table.report-table")).to_be_visible()


def chart_loaded(page: Page) -> bool:
    return bool(page.evaluate("""() => { const i = document.querySelector('.report-chart img');
        return i !== null && i.complete && i.naturalWidth > 300 && i.naturalHeight > 100; }"""))


def table_cells(page: Page) -> list[list[str]]:
    rows: list[list[str]] = page.evaluate("""() => [...document.querySelectorAll(
        'table.report-table tbody tr')].map(tr => [...tr.children].map(c =>
        c.querySelector('.withheld') ? '' : (c.querySelector('.code') || c).textContent.trim()))
    """)
    return rows


def test_the_evaluator_runs_reports_on_the_demo_population(page: Page, base: str) -> None:
    page.add_init_script(WATCH_CSP)
    staff_sign_in(page, base, "eval1", demo.demo_password("eval1"))
    expect(page).to_have_url(f"{base}/reports/")
    expect(page.get_by_role("heading", name="Reports", exact=True)).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["Reports"])

    # Needs by agency over the last twelve whole months (the form's default months).
    first = page.get_by_label("From month").input_value()
    last = page.get_by_label("To month").input_value()
    answer = None
    with page.expect_response(lambda r: "/reports/?" in r.url) as caught:
        run(page, "Needs", first, last, "Agency")
    answer = caught.value
    assert answer.headers["content-security-policy"] == CSP
    heading = f"Needs by agency, {first} to {last}"
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    rows = table_cells(page)
    health = next(r for r in rows if r[0] == "health-centre")
    assert int(health[1]) >= 50 and int(health[1]) % 5 == 0  # families, rounded to 5
    physio = next(r for r in rows if r[0] == "physio")
    assert set(physio[1:]) == {""}  # nobody's needs recorded there: withheld, not 0
    expect(page.locator(".legend")).to_contain_text("withheld: the count is below 10")
    page.locator(".report-chart img").scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelector('.report-chart img').complete")
    assert chart_loaded(page)
    axe_check(page)
    screenshot(page, "60-reports-needs-by-agency")

    # The CSV holds what the table shows.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download these figures as CSV").click()
    saved = download.value
    assert saved.suggested_filename == f"onestory-needs-{first}-to-{last}-by-agency.csv"
    path = saved.path()
    lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert lines[0][:3] == ["agency", "name", "families"]
    assert [line[:1] + line[2:] for line in lines[1:]] == rows

    # Referrals by month: another grouping, another chart.
    run(page, "Referrals", first, last, "Month")
    expect(page.get_by_role("heading", name=f"Referrals by month, {first} to {last}"))\
        .to_be_visible()
    months = [r[0] for r in table_cells(page)]
    assert months[0] == first and months[-1] == last and len(months) == 12
    expect(page.locator("table.report-table thead")).to_contain_text(
        "Median days from referral to first attended appointment")
    page.wait_for_function("() => document.querySelector('.report-chart img').complete")
    assert chart_loaded(page)
    screenshot(page, "61-reports-referrals-by-month")

    # The chart on its own, as a document under its own policy.
    chart_url = page.locator(".report-chart img").get_attribute("src")
    assert chart_url is not None
    shown = page.goto(f"{base}{chart_url}")
    assert shown is not None and shown.headers["content-security-policy"] == CHART_CSP
    assert shown.headers["content-type"] == "image/svg+xml; charset=utf-8"
    page.screenshot(path=str(artefacts_dir() / "62-reports-chart.png"))
    assert page.evaluate("() => window.__csp || []") == []
    assert [e for e in console_errors(page) if "Refused" in e or "violat" in e] == []
    assert console_errors(page) == []
