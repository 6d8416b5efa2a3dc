"""The reports page (CONTRACT.md "Reports"): for evaluators, auditors, and
coordinators (their own agency's families; the report service enforces it).

One GET form: which report, over which whole calendar months, grouped by
agency, area or month. What it shows, draws and exports is the report
service's published answer (`coordination.reports.service`), after the
disclosure control: a withheld value is a dash, in the table, the chart
and the CSV alike (an empty cell there). The page, the chart and the CSV
each run the report through that service, so each is on the audit log with
its parameters; none reads a raw figure.

- `/reports/`            the form and, once sent, the table and the chart
- `/reports/chart.svg`   the chart (SVG, its own strict CSP), embedded with <img>
- `/reports/export.csv`  the same published figures as CSV
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

from flask import Blueprint, Response, g, render_template, request, url_for

from coordination.actors import Actor
from coordination.api.reports import ReportQuery
from coordination.casework.entry_kinds import need_label
from coordination.errors import InvalidInput
from coordination.reports import figures
from coordination.reports.period import UNKNOWN_AREA
from coordination.reports.services import run_report
from coordination.roles import Role
from coordination.runtime import current, request_db
from coordination.web import parse, report_chart, staff_page
from coordination.web.auditor import safe_cell

READERS = (Role.EVALUATOR, Role.AUDITOR, Role.COORDINATOR)
PARAMS = ("report", "from", "to", "by")

REPORTS = {  # in the order of coordination.reports.figures.REPORTS
    "needs": ("Needs", "What families asked for help with: families with each need "
                       "recorded in the period."),
    "involvement": ("Involvement", "Families per agency, and how many agencies work with "
                                   "a family."),
    "consent-coverage": ("Consent coverage", "Families with a joint form in force, and "
                                             "the cells it grants to each agency."),
    "referrals": ("Referrals", "Referrals by state; the share accepted and attended; the "
                               "median days from referral to the first attended appointment."),
    "attendance": ("Attendance", "The median attendance rate (sessions attended of sessions "
                                 "offered) by group."),
}
GROUPINGS = {"agency": "Agency", "area": "Area", "month": "Month"}
GROUP_WORDS = {**GROUPINGS, "name": "Name"}

# Words for the values the reports publish (coordination.reports.figures);
# need codes, `state:`, `granted:` and `cells:` names are put in words by
# `value_words`; any other shows as its key.
VALUE_WORDS = {
    "families": "Families",
    "agencies_1": "With 1 agency", "agencies_2": "With 2 agencies",
    "agencies_3": "With 3 agencies", "agencies_4_plus": "With 4 or more agencies",
    "median_agencies": "Median agencies per family",
    "referrals": "Referrals",
    "accepted": "Ever accepted", "attended": "Ever attended",
    "share_accepted": "Accepted (%)", "share_attended": "Attended (%)",
    "median_days_to_service": "Median days from referral to first attended appointment",
    "median_rate": "Median attendance rate (%)",
}
STATE_WORDS = {
    "awaiting_family": "awaiting the family", "declined_by_family": "declined by the family",
}


def me() -> Actor:
    actor: Actor = g.actor
    return actor


def _month(day: date, back: int) -> str:
    total = day.year * 12 + day.month - 1 - back
    return f"{total // 12:04d}-{total % 12 + 1:02d}"


def defaults(now: datetime) -> dict[str, str]:
    """The last twelve whole months before this one, by agency."""
    return {"report": "needs", "from": _month(now.date(), 12), "to": _month(now.date(), 1),
            "by": "agency"}


def _given() -> dict[str, str]:
    """The form's four parameters as typed (stripped); an absent or empty one
    is left out, so the schema says it is needed."""
    return {key: request.args[key].strip() for key in PARAMS
            if request.args.get(key, "").strip()}


def _run(values: dict[str, Any]) -> dict[str, Any]:
    """The published report: the service checks the actor's role and
    agency, computes, protects and audits, in one transaction."""
    rt = current()
    return run_report(request_db(), rt.vault, me(), values["report"], values["first"],
                      values["last"], values["by"], rt.now(), k=rt.settings.report_k,
                      need_codes=rt.settings.needs_codes).out()


def _checked() -> tuple[dict[str, str], dict[str, Any], dict[str, list[str]]]:
    """The form's parameters as given, checked with the API's query schema
    (months, period, grouping) and the list of reports."""
    given = _given()
    values, errors = parse(ReportQuery(), {k: v for k, v in given.items() if k != "report"})
    if "by" not in given:
        errors["by"] = ["one of " + ", ".join(GROUPINGS)]
    report = given.get("report")
    if report not in figures.REPORTS:
        errors["report"] = ["one of " + ", ".join(figures.REPORTS)]
    if errors:
        return given, {}, errors
    return given, {**values, "report": report}, {}


def _table(published: dict[str, Any]) -> dict[str, Any]:
    """The published rows as a table: group columns, value columns, cells
    (None where a value is withheld)."""
    rows: list[dict[str, Any]] = list(published.get("rows") or [])
    group_keys: list[str] = []
    value_keys: list[str] = []
    for row in rows:
        for key in row["group"]:
            if key not in group_keys:
                group_keys.append(key)
        for key in row["values"]:
            if key not in value_keys:
                value_keys.append(key)
    return {
        "group_keys": group_keys,
        "group_words": [GROUP_WORDS.get(key, key.replace("_", " ").capitalize())
                        for key in group_keys],
        "value_keys": value_keys,
        "value_words": [value_words(key) for key in value_keys],
        "by_words": GROUPINGS.get(str(published.get("by")), "Group"),
        "value_heads": [column_words(key) for key in value_keys],
        "rows": [{"group": [row["group"].get(key) for key in group_keys],
                  "label": row_words(row["group"]),
                  "values": [row["values"].get(key) for key in value_keys]} for row in rows],
    }


def value_words(key: str) -> str:
    """A published value's name in words."""
    if key in VALUE_WORDS:
        return VALUE_WORDS[key]
    kind, _, rest = key.partition(":")
    if kind == "state" and rest:
        return "Now " + STATE_WORDS.get(rest, rest.replace("_", " "))
    if kind == "granted" and rest:
        return f"Form grants {rest}"
    if kind == "cells" and rest:
        return f"Cells granted to {rest}"
    if key in current().settings.needs_codes:
        return "Need: " + need_label(key)
    return key.replace("_", " ").replace("-", " ").capitalize()


def column_words(key: str) -> str:
    """A value's column heading: a need code alone under the needs report."""
    if key in current().settings.needs_codes:
        return need_label(key).capitalize()
    return value_words(key)


def row_words(group: dict[str, Any]) -> tuple[str, str | None]:
    """A row's heading in the table: (words, the code beside them or None)."""
    if "month" in group:
        return str(group["month"]), None
    code = str(group.get("area") or group.get("agency") or "")
    name = group.get("name")
    if code == UNKNOWN_AREA:
        return "Unknown (no area recorded)", None
    return (str(name), code) if name else (code, None)


def group_label(group: dict[str, Any]) -> str:
    """A row's short label on the chart: the month, the area's name (or
    code), or the agency's id."""
    if "month" in group:
        return str(group["month"])
    if "area" in group:
        return str(group.get("name") or group["area"])
    return str(group.get("agency") or " · ".join(str(v) for v in group.values()))


def _query(values: dict[str, Any]) -> dict[str, Any]:
    return {"report": values["report"], "from": values["first"], "to": values["last"],
            "by": values["by"]}


def _page(given: dict[str, str], errors: dict[str, list[str]],
          published: dict[str, Any] | None = None, query: dict[str, Any] | None = None,
          ) -> tuple[str, int]:
    args = given if (given or errors) else defaults(current().now())
    return render_template(
        "reports/page.html", args=args, errors=errors, published=published,
        table=_table(published) if published else None,
        reports=[(name, words[0]) for name, words in REPORTS.items()],
        report_words=REPORTS, groupings=list(GROUPINGS.items()),
        chart_url=url_for("reports.chart", **query) if query else None,
        csv_url=url_for("reports.export", **query) if query else None,
    ), 422 if errors else 200


def _published(checked: tuple[dict[str, str], dict[str, Any], dict[str, list[str]]]
               ) -> tuple[dict[str, Any], Any]:
    """From `_checked()`: the parameters and the published report (run, so
    audited), or, for bad parameters, the page with its form errors (a 422)
    in place of the report."""
    given, values, errors = checked
    if errors:
        return values, _page(given, errors)
    try:
        return values, _run(values)
    except InvalidInput as exc:
        return values, _page(given, exc.errors or {"report": [str(exc)]})


def create_blueprint() -> Blueprint:
    bp = Blueprint("reports", __name__, url_prefix="/reports")

    @bp.get("/")
    @staff_page(*READERS)
    def page() -> Any:
        checked = _checked()
        if not checked[0]:
            return _page({}, {})
        values, published = _published(checked)
        if isinstance(published, tuple):
            return published
        return _page(checked[0], {}, published, _query(values))

    @bp.get("/chart.svg")
    @staff_page(*READERS)
    def chart() -> Any:
        values, published = _published(_checked())
        if isinstance(published, tuple):
            return published
        table = _table(published)
        rows = [dict(zip(table["value_keys"], row["values"], strict=True))
                for row in table["rows"]]
        labels = [group_label(row["group"]) for row in published.get("rows") or []]
        title = (f"{REPORTS[values['report']][0]} by {values['by']}, "
                 f"{values['first']} to {values['last']}")
        svg = report_chart.draw(title, labels,
                                list(zip(table["value_keys"], table["value_words"],
                                         strict=True)), rows)
        return Response(svg, mimetype="image/svg+xml", headers={
            "Content-Security-Policy": report_chart.CHART_CSP,
            "Cache-Control": "no-store",
        })

    @bp.get("/export.csv")
    @staff_page(*READERS)
    def export() -> Any:
        values, published = _published(_checked())
        if isinstance(published, tuple):
            return published
        filename = (f"onestory-{values['report']}-{values['first']}-to-{values['last']}"
                    f"-by-{values['by']}.csv")
        return Response(csv_text(published), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        })

    return bp


def csv_text(published: dict[str, Any]) -> str:
    """The published rows, one line each: the group's columns, then the
    values; a withheld value is an empty cell."""
    table = _table(published)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(key) for key in table["group_keys"] + table["value_keys"]])
    for row in table["rows"]:
        writer.writerow([safe_cell(cell) for cell in row["group"] + row["values"]])
    return buffer.getvalue()
