"""The reports page (coordination/web/reports.py): the evaluator's landing
page; the published table with withheld values as dashes, the chart as SVG
under its own CSP, the CSV of the same published figures; every run on the
audit log with its parameters; bad input a form error, never a 500."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from audit.model import Action, AuditEntry
from coordination import accounts
from coordination.reports.disclosure import round_count
from coordination.web import CSP
from coordination.web.report_chart import CHART_CSP
from tests.conftest import Api, Clock
from tests.web import set_passwords, signed_in

MONTH = "2026-11"  # the test clock's month (tests.conftest.T0)
NEEDY = 12  # families with needs at the health centre: published rounded to a multiple of 5
SHOWN = round_count(NEEDY)


@pytest.fixture
def arranged(app: Flask, api: Api, clock: Clock) -> Api:
    """An evaluator; twelve counted families with needs at the health
    centre, three at physiotherapy (too few: withheld), one that said no
    to being counted."""
    with app.extensions["onestory"].sessions() as session:
        accounts.add_staff(session, "eval1", "oversight", "evaluator", None, clock())
    api.tokens["eval1"] = "unused"
    for n in range(NEEDY):
        family = api.new_family("nurse1", display_name=f"Family {n}")
        api.sign(family, {"health-centre": ["involvement", "social"]}, statistics=True)
        answer = api.post(f"/api/v1/families/{family}/entries", "nurse1", json={
            "field": "social", "kind": "needs",
            "data": {"codes": ["housing", "income"] if n % 2 else ["housing"]}})
        assert answer.status_code == 201, answer.get_json()
    for n in range(3):
        family = api.new_family("physio1", display_name=f"Physio family {n}")
        api.sign(family, {"physio": ["involvement", "health"]}, who="physiocoord",
                 statistics=True)
    declined = api.new_family("nurse1", display_name="Not counted")
    api.sign(declined, {"health-centre": ["involvement", "social"]}, statistics=False)
    api.post(f"/api/v1/families/{declined}/entries", "nurse1", json={
        "field": "social", "kind": "needs", "data": {"codes": ["pregnancy"]}})
    set_passwords(app)
    return api


def query(report: str = "needs", by: str = "agency", first: str = MONTH,
          last: str = MONTH) -> str:
    return urlencode({"report": report, "from": first, "to": last, "by": by})


def report_runs(app: Flask) -> list[dict[str, Any]]:
    with app.extensions["onestory"].sessions() as session:
        return [dict(json.loads(e.detail or "{}"), actor=e.actor) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.action == Action.REPORT_RUN.value)
            .order_by(AuditEntry.seq))]


def api_report(app: Flask, report: str, by: str) -> dict[str, Any]:
    with app.extensions["onestory"].sessions() as session:
        token = accounts.create_token(session, "eval1", timedelta(hours=1),
                                      app.extensions["onestory"].now())
    answer = app.test_client().get(f"/api/v1/reports/{report}?from={MONTH}&to={MONTH}&by={by}",
                                   headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.get_json()
    found: dict[str, Any] = answer.get_json()
    return found


def test_the_evaluator_lands_on_reports_and_sees_only_reports(app: Flask,
                                                              arranged: Api) -> None:
    client = app.test_client()
    from tests.web import sign_in

    answer: Any = sign_in(client, "eval1")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/reports/")
    page = client.get("/reports/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    nav = html.split('<nav aria-label="Main">')[1].split("</nav>")[0]
    assert "Reports" in nav and "Find a family" not in nav and "Audit log" not in nav
    # The form, filled with the last twelve whole months, and no report run yet.
    assert 'name="from"' in html and 'value="2025-11"' in html and 'value="2026-10"' in html
    assert report_runs(app) == []
    for elsewhere in ("/staff/", "/staff/referrals", "/audit/", "/admin/staff"):
        assert client.get(elsewhere).status_code == 403, elsewhere


@pytest.mark.parametrize("who", ["auditor1", "coord1"])
def test_auditors_and_coordinators_have_reports_in_the_navigation(app: Flask, arranged: Api,
                                                                   who: str) -> None:
    client = signed_in(app, who)
    html = client.get("/reports/").get_data(as_text=True)
    assert 'href="/reports/">Reports</a>' in html


@pytest.mark.parametrize("who", ["nurse1", "admin1"])
def test_other_roles_are_refused(app: Flask, arranged: Api, who: str) -> None:
    client = signed_in(app, who)
    assert client.get("/reports/").status_code == 403
    assert client.get(f"/reports/chart.svg?{query()}").status_code == 403
    assert client.get(f"/reports/export.csv?{query()}").status_code == 403
    assert 'href="/reports/"' not in client.get("/staff/" if who == "nurse1" else "/admin/staff")\
        .get_data(as_text=True)
    assert report_runs(app) == []


def test_the_table_shows_what_is_published_with_dashes_and_a_legend(app: Flask,
                                                                      arranged: Api) -> None:
    published = api_report(app, "needs", "agency")
    rows = {r["group"]["agency"]: r["values"] for r in published["rows"]}
    assert rows["health-centre"]["families"] == SHOWN == rows["health-centre"]["housing"]
    assert SHOWN != NEEDY
    assert rows["physio"]["families"] is None  # three families: withheld
    client = signed_in(app, "eval1")
    page = client.get(f"/reports/?{query()}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    table = html.split('class="report-table"')[1].split("</table>")[0]
    health = table.split('<span class="code">health-centre</span></th>')[1].split("</tr>")[0]
    cells = [c.split(">", 1)[1].split("</td>")[0] for c in health.split('<td class="num"')[1:]]
    # Same order as the published values: families, then the codes.
    assert cells[0] == str(SHOWN) and cells[2] == str(SHOWN)  # families, housing
    physio = table.split('<span class="code">physio</span></th>')[1].split("</tr>")[0]
    assert physio.count('<span class="withheld" title="withheld">–</span>') == len(rows["physio"])
    assert str(NEEDY) not in health  # never the raw count
    assert "withheld: the count is below 10" in html
    assert f'{published["suppressed"]} values withheld' in html
    assert f'<img src="/reports/chart.svg?{query()}"'.replace("&", "&amp;") in html
    assert f'href="/reports/export.csv?{query()}"'.replace("&", "&amp;") in html
    assert page.headers["Content-Security-Policy"] == CSP


def test_the_chart_is_svg_under_its_own_strict_csp(app: Flask, arranged: Api) -> None:
    client = signed_in(app, "eval1")
    chart = client.get(f"/reports/chart.svg?{query(by='month')}")
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    assert chart.headers["Content-Security-Policy"] == CHART_CSP
    assert "script-src" not in CHART_CSP and "default-src 'none'" in CHART_CSP
    svg = chart.get_data(as_text=True)
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "<script" not in svg and "href=\"http" not in svg
    # The same report draws the same picture (stable ids, no date).
    assert client.get(f"/reports/chart.svg?{query(by='month')}").get_data(as_text=True) == svg


def test_the_csv_holds_the_published_figures(app: Flask, arranged: Api) -> None:
    published = api_report(app, "needs", "agency")
    client = signed_in(app, "eval1")
    answer = client.get(f"/reports/export.csv?{query()}")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert answer.headers["Content-Disposition"] == (
        f'attachment; filename="onestory-needs-{MONTH}-to-{MONTH}-by-agency.csv"')
    lines = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    value_keys = list(published["rows"][0]["values"])
    assert lines[0] == ["agency", "name", *value_keys]
    assert len(lines) == 1 + len(published["rows"])
    for line, row in zip(lines[1:], published["rows"], strict=True):
        assert line[:2] == [row["group"]["agency"], row["group"]["name"]]
        assert line[2:] == ["" if row["values"][k] is None else str(row["values"][k])
                            for k in value_keys]
    health = next(line for line in lines if line[0] == "health-centre")
    assert health[2] == str(SHOWN) and str(NEEDY) not in health


def test_every_run_is_audited_with_its_parameters(app: Flask, arranged: Api) -> None:
    client = signed_in(app, "eval1")
    client.get(f"/reports/?{query('referrals', 'month')}")
    client.get(f"/reports/chart.svg?{query('referrals', 'month')}")
    client.get(f"/reports/export.csv?{query('attendance', 'area')}")
    runs = report_runs(app)
    assert [(r["report"], r["from"], r["to"], r["by"], r["actor"]) for r in runs] == [
        ("referrals", MONTH, MONTH, "month", "eval1"),
        ("referrals", MONTH, MONTH, "month", "eval1"),
        ("attendance", MONTH, MONTH, "area", "eval1"),
    ]


@pytest.mark.parametrize(("given", "field", "words"), [
    ({"report": "families"}, "report", "one of needs, involvement"),
    ({"from": "2026-13"}, "from", "a month YYYY-MM"),
    ({"from": "26-03"}, "from", "a month YYYY-MM"),
    ({"to": "2026-10"}, "to", "must not be before from"),
    ({"from": "2020-01"}, "to", "at most 60 months"),
    ({"by": "street"}, "by", "one of"),
    ({"by": ""}, "by", "one of"),
    ({"report": "x" * 5000}, "report", "one of"),
    ({"from": "2026-03\x00"}, "from", "must not contain NUL"),
])
def test_bad_input_is_a_form_error_and_runs_nothing(app: Flask, arranged: Api,
                                                    given: dict[str, str], field: str,
                                                    words: str) -> None:
    client = signed_in(app, "eval1")
    params = {"report": "needs", "from": MONTH, "to": MONTH, "by": "agency", **given}
    for path in ("/reports/", "/reports/chart.svg", "/reports/export.csv"):
        answer = client.get(f"{path}?{urlencode(params)}")
        html = answer.get_data(as_text=True)
        assert answer.status_code == 422, (path, html[:300])
        assert answer.mimetype == "text/html"
        assert 'class="error-summary"' in html and words in html, (path, field)
        assert f'id="e-{field}"' in html
    assert report_runs(app) == []


def test_unknown_parameters_are_ignored_and_an_empty_form_is_the_start(
        app: Flask, arranged: Api) -> None:
    client: FlaskClient = signed_in(app, "eval1")
    assert client.get("/reports/?from=&to=&by=").status_code == 200
    assert client.get(f"/reports/?{query()}&extra=1").status_code == 200
    assert len(report_runs(app)) == 1


def test_a_coordinator_counts_only_its_own_agency(app: Flask, arranged: Api) -> None:
    client = signed_in(app, "physiocoord")
    html = client.get(f"/reports/?{query()}").get_data(as_text=True)
    table = html.split('class="report-table"')[1].split("</table>")[0]
    health = table.split('<span class="code">health-centre</span></th>')[1].split("</tr>")[0]
    assert str(SHOWN) not in health  # the health centre's families are not physio's
    assert report_runs(app)[0]["actor"] == "physiocoord"


def test_the_charts_axes_tick_whole_numbers() -> None:
    """Counts of families have no 2.5: the ticks are whole numbers, whatever
    the largest figure (matplotlib's text in the SVG is marked by comments)."""
    import re

    from coordination.web.report_chart import draw

    svg = draw("Needs by area", ["North", "South"], [("families", "Families")],
               [{"families": 15}, {"families": 10}]).decode()
    ticks = re.findall(r"<!-- +([0-9.]+) -->", svg)
    assert ticks and "15" in ticks, ticks
    assert [t for t in ticks if "." in t] == [], ticks
