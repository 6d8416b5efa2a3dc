"""Reports of need and impact (CONTRACT.md, "Reports"): counts, shares and
medians over counted families, never a family."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import ValidationError, fields, validate, validates_schema

from coordination.api import actor, allow, db, load, runtime
from coordination.api.answers import ReportOut
from coordination.api.openapi import document
from coordination.reports.period import GROUPINGS, MONTH, period_errors
from coordination.reports.services import check_report, run_report
from coordination.roles import Role
from coordination.schemas import StrictSchema

MONTH_TEXT = "a month YYYY-MM"


class ReportQuery(StrictSchema):
    first = fields.String(required=True, data_key="from",
                         validate=validate.Regexp(MONTH, error=MONTH_TEXT),
                         metadata={"description": "the first month, YYYY-MM"})
    last = fields.String(required=True, data_key="to",
                         validate=validate.Regexp(MONTH, error=MONTH_TEXT),
                         metadata={"description": "the last month, YYYY-MM (whole months)"})
    by = fields.String(load_default="agency", validate=validate.OneOf(GROUPINGS))

    @validates_schema
    def _period(self, data: dict[str, Any], **_kw: Any) -> None:
        if "first" in data and "last" in data:
            errors = period_errors(data["first"], data["last"])
            if errors:
                raise ValidationError(errors)


def register(bp: Blueprint) -> None:
    @bp.get("/reports/<id:name>")
    @document("A report over counted families: needs, involvement, consent-coverage, "
              "referrals or attendance, by agency, area or month over whole months; "
              "small counts and what would reveal them are withheld (null)",
              query=ReportQuery, answer=ReportOut,
              not_found="No report of that name.")
    @allow(Role.EVALUATOR, Role.AUDITOR, Role.COORDINATOR)
    def report(name: str) -> Response:
        args = load(ReportQuery(), request.args.to_dict(),
                    checks_first=lambda: check_report(actor(), name))
        rt = runtime()
        found = run_report(db(), rt.vault, actor(), name, args["first"], args["last"],
                           args["by"], rt.now(), k=rt.settings.report_k,
                           need_codes=rt.settings.needs_codes)
        return jsonify(found.out())
