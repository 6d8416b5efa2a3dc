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
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from coordination.actors import Actor
from coordination.errors import InvalidInput
from coordination.reports import service
from coordination.roles import Role
from coordination.runtime import current, request_db
from coordination.web import parse, report_chart, staff_page
from coordination.web.auditor import safe_cell

READERS = (Role.EVALUATOR, Role.AUDITOR, Role.COORDINATOR)
PARAMS = ("report", "from", "to", "by")
MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
MONTH_ERROR = "a month as YYYY-MM, e.g. 2026-03"

REPORTS = {
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

# Words for the values the reports publish; any other shows as its key.
VALUE_WORDS = {
    "families": "Families",
    "agencies": "Agencies",
    "sent": "Sent", "accepted": "Accepted", "declined": "Declined", "booked": "Booked",
    "attended": "Attended", "missed": "Missed", "closed": "Closed",
    "awaiting_family": "Awaiting the family", "withdrawn": "Withdrawn",
    "referrals": "Referrals",
    "share_accepted": "Accepted (%)", "share_attended": "Attended (%)",
    "median_days_to_attended": "Median days to first attended appointment",
    "median_attendance": "Median attendance (%)",
    "median_rate": "Median attendance (%)",
    "forms_in_force": "Families with a form in force",
    "cells_granted": "Cells granted",
}


class ReportForm(Schema):
    """The page's query: all four are needed to run a report."""

    class Meta:
        unknown = RAISE

    report = fields.String(required=True, validate=validate.OneOf(
        list(REPORTS), error="one of: " + ", ".join(REPORTS)))
    from_ = fields.String(required=True, data_key="from",
                          validate=validate.Regexp(MONTH, error=MONTH_ERROR))
    to = fields.String(required=True, validate=validate.Regexp(MONTH, error=MONTH_ERROR))
    by = fields.String(required=True, validate=validate.OneOf(
        list(GROUPINGS), error="one of: " + ", ".join(GROUPINGS)))

    @validates_schema
    def _order(self, data: dict[str, Any], **_: Any) -> None:
        if "from_" in data and "to" in data and data["to"] < data["from_"]:
            raise ValidationError("must not be before the “from” month", "to")


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
    return service.run_report(request_db(), rt.vault, me(), values["report"],
                              values["from_"], values["to"], values["by"], rt.now())


def _checked() -> tuple[dict[str, str], dict[str, Any], dict[str, list[str]]]:
    given = _given()
    values, errors = parse(ReportForm(), given)
    return given, values, errors


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
        "group_words": [GROUPINGS.get(key, key.replace("_", " ").capitalize())
                        for key in group_keys],
        "value_keys": value_keys,
        "value_words": [value_words(key) for key in value_keys],
        "rows": [{"group": [row["group"].get(key) for key in group_keys],
                  "values": [row["values"].get(key) for key in value_keys]} for row in rows],
    }


def value_words(key: str) -> str:
    if key in VALUE_WORDS:
        return VALUE_WORDS[key]
    return key.replace("_", " ").replace("-", " ").capitalize()


def group_label(group: dict[str, Any]) -> str:
    return " · ".join(str(v) for v in group.values() if v is not None) or "all"


def _query(values: dict[str, Any]) -> dict[str, str]:
    return {"report": values["report"], "from": values["from_"], "to": values["to"],
            "by": values["by"]}


def _page(given: dict[str, str], errors: dict[str, list[str]],
          published: dict[str, Any] | None = None, query: dict[str, str] | None = None,
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


def create_blueprint() -> Blueprint:
    bp = Blueprint("reports", __name__, url_prefix="/reports")

    @bp.get("/")
    @staff_page(*READERS)
    def page() -> Any:
        given, values, errors = _checked()
        if not given:
            return _page({}, {})
        if errors:
            return _page(given, errors)
        try:
            published = _run(values)
        except InvalidInput as exc:
            return _page(given, exc.errors or {"report": [str(exc)]})
        return _page(given, {}, published, _query(values))

    @bp.get("/chart.svg")
    @staff_page(*READERS)
    def chart() -> Any:
        _given_, values, errors = _checked()
        if errors:
            return _page(_given_, errors)
        try:
            published = _run(values)
        except InvalidInput as exc:
            return _page(_given_, exc.errors or {"report": [str(exc)]})
        table = _table(published)
        rows = [dict(zip(table["value_keys"], row["values"], strict=True))
                for row in table["rows"]]
        labels = [group_label(row["group"]) for row in published.get("rows") or []]
        title = (f"{REPORTS[values['report']][0]} by {values['by']}, "
                 f"{values['from_']} to {values['to']}")
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
        _given_, values, errors = _checked()
        if errors:
            return _page(_given_, errors)
        try:
            published = _run(values)
        except InvalidInput as exc:
            return _page(_given_, exc.errors or {"report": [str(exc)]})
        filename = (f"onestory-{values['report']}-{values['from_']}-to-{values['to']}"
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
