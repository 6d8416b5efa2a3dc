"""The auditor's log in Chromium on a 1280 px wide screen: every column of the
table in view at once (no sideways scrolling, nothing hidden, no cell
spilling into the next), refusal reasons in words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from playwright.sync_api import Page, expect

from tests.browser.helpers import artefacts_dir, axe_check, screenshot, staff_sign_in
from tests.conftest import Api
from tests.web import set_passwords

WIDTH = 1280
COLUMNS = ["#", "Time (UTC)", "Action", "Outcome", "Who", "Role", "Agency", "Family id",
           "Reason", "Fields", "Detail", "Request id"]


def long_id(n: int) -> dict[str, dict[str, str]]:
    """The longest request id a client may send (64 characters, no break)."""
    return {"headers": {"X-Request-ID": f"{n:02d}" + "a1b2c3d4" * 7 + "e5f6a7"}}


def arrange(api: Api) -> str:
    """A log with the widest entries it holds: long request ids, a search
    naming several families, a read with many fields, refusals of each kind."""
    families = [api.new_family("nurse1", display_name="Aylin Demir", birth_date="2024-03-14")
                for _ in range(3)]
    family = families[0]
    for field in ("health", "story", "contact", "household"):
        api.write(family, field, "a note")
    api.sign(family, {"physio": ["involvement", "health", "story", "contact"]})
    calls: list[tuple[str, str, str | None, Any]] = [
        ("GET", "/api/v1/families?name=Aylin%20Demir&birth_date=2024-03-14", "nurse1", None),
        ("GET", f"/api/v1/families/{family}", "physio1", None),
        ("GET", f"/api/v1/families/{family}/access-log", "physio1", None),  # role
        ("POST", f"/api/v1/families/{family}/involvements", "coord1", {"agency": "ecec"}),
        ("GET", f"/api/v1/families/{family}", "ecec1", None),  # not visible
        ("GET", "/api/v1/families/fam_does_not_exist", "cps1", None),  # absent
        ("POST", f"/api/v1/families/{family}/entries", "physio1",
         {"field": "health", "value": "x"}),  # not involved
        ("GET", "/api/v1/agencies", "os_not-a-real-token", None),  # unauthenticated
    ]
    for n, (method, path, who, body) in enumerate(calls):
        api.call(method, path, who, json=body, **long_id(n))
    api.post("/api/v1/family/session", json={"receipt_code": "AAAA-BBBB", "pin": "000000"})
    return family



def test_the_log_fits_1280_px_with_every_column(page: Page, app: Flask, api: Api,
                                                live_server: Callable[..., str]) -> None:
    set_passwords(app)
    family = arrange(api)
    base = live_server()
    assert page.viewport_size == {"width": WIDTH, "height": 900}
    staff_sign_in(page, base, "auditor1")
    page.goto(f"{base}/audit/?limit=100")
    table = page.locator("table.log-table")
    expect(table).to_be_visible()
    headers = table.locator("thead th")
    expect(headers).to_have_text(COLUMNS)

    # Nothing scrolls sideways: not the page, not the table's own box.
    widths = page.evaluate("""() => {
        const t = document.querySelector('table.log-table');
        return {page: document.documentElement.scrollWidth,
                box: t.parentElement.scrollWidth, boxVisible: t.parentElement.clientWidth,
                table: t.getBoundingClientRect().right};
    }""")
    assert widths["page"] <= WIDTH, widths
    assert widths["box"] <= widths["boxVisible"], widths
    assert widths["table"] <= WIDTH, widths
    # Every column shown, inside the screen, wide enough for its heading's words.
    for i in range(len(COLUMNS)):
        box = headers.nth(i).bounding_box()
        assert box is not None and box["width"] > 0, COLUMNS[i]
        assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, (COLUMNS[i], box)
    spilled = page.evaluate("""() => [...document.querySelectorAll(
            'table.log-table th, table.log-table td')]
        .filter(c => c.scrollWidth > c.clientWidth + 1)
        .map(c => c.textContent.trim().slice(0, 40))""")
    assert spilled == []
    # Reasons in words, the code beside them.
    rows = table.locator("tbody tr")
    refused_look = rows.filter(has_text="physio1").filter(has_text="role")
    expect(refused_look.first).to_contain_text("the person's role may not do this")
    for words in ("the family has not agreed to it on its consent form",
                  "the family is not shared with this agency", "no family has this id",
                  "this agency is not involved, or may not do this",
                  "no valid sign-in or token", "wrong receipt code or PIN"):
        expect(table.get_by_text(words).first).to_be_visible()
    axe_check(page)
    screenshot(page, "auditor-log-1280")
    top = page.evaluate("() => document.querySelector('table.log-table')"
                        ".getBoundingClientRect().top + window.scrollY")
    page.screenshot(path=str(artefacts_dir() / "auditor-log-1280-table.png"), full_page=True,
                    clip={"x": 0, "y": top, "width": WIDTH, "height": 900})

    # The family filter finds the refusals of acts on that family.
    page.get_by_label("Family id").fill(family)
    page.get_by_label("Outcome").select_option("denied")
    page.get_by_role("button", name="Show entries").click()
    expect(rows).to_have_count(4)  # role, not agreed, not visible, not involved
    screenshot(page, "auditor-log-1280-family-refusals")
