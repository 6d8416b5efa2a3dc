"""Auditor pages: the log with filters and paging, refused and unusual
entries marked, the chain's verification, and CSV export.

Filters are checked with the JSON API's schema (`coordination.api.audit.
AuditQuery`); every page and export is itself put on record by its use case
(`coordination.auditing`). Auditors see ids, roles, field names and
outcomes, never family content.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Response, g, render_template, request, url_for

from audit.model import Action, Outcome
from audit.review import Rules
from audit.services import Filters
from coordination import auditing
from coordination.actors import Actor
from coordination.api.audit import AuditQuery
from coordination.casework import common
from coordination.roles import Role
from coordination.runtime import current, request_db
from coordination.web import auditor_emergency, parse, staff_page

FILTERS = ("family", "agency", "user", "action", "outcome", "since", "until")
PAGING = ("cursor", "limit")
ACTION_WORDS = {
    Action.RECORD_READ: "looked at a family's shared record",
    Action.FAMILY_SEARCH: "searched for a family",
    Action.FAMILY_CREATE: "recorded a new family",
    Action.ENTRY_WRITE: "wrote an entry",
    Action.INVOLVEMENT_REFER: "referred a family to an agency",
    Action.INVOLVEMENT_UPDATE: "changed an agency's involvement",
    Action.CONSENT_READ: "looked at a consent form",
    Action.CONSENT_SIGN: "recorded a signed consent form",
    Action.CONSENT_REVOKE: "recorded a revocation of consent",
    Action.CONSENT_HISTORY: "looked at a consent form's history",
    Action.ACCESS_LOG_READ: "looked at who looked at a family",
    Action.ACCESS_LOG_HIDE: "hid an entry from a family",
    Action.LOGIN: "signed in",
    Action.LOGIN_FAILED: "failed to sign in",
    Action.LOGOUT: "signed out",
    Action.TOKEN_CREATE: "was given an API token",
    Action.FAMILY_ERASE: "erased a family",
    Action.AUDIT_READ: "read the audit log",
    Action.AUDIT_VERIFY: "verified the audit log",
    Action.AUDIT_CHECKPOINT: "signed a checkpoint of the log",
    Action.AUDIT_EXPORT: "exported the audit log",
    Action.REQUEST_DENIED: "was refused",
    Action.INVOLVEMENT_END: "ended an agency's part in a family's record",
    Action.USER_DEACTIVATE: "deactivated a staff member",
    Action.TOKEN_REVOKE: "revoked a staff member's API tokens",
    Action.USER_ADD: "added a staff member",
    Action.USER_ROLE: "changed a staff member's role",
    Action.USER_PASSWORD_RESET: "reset a staff member's password",
    Action.AGENCY_NAMES: "changed an agency's names in other languages",
    Action.USER_NAME: "changed how a staff member is named to families",
    Action.DUTY_GRANT_PROPOSE: "proposed a duty grant (sharing the law requires)",
    Action.DUTY_GRANT_APPROVE: "approved a duty grant",
    Action.DUTY_GRANT_REJECT: "rejected a duty grant",
    Action.DUTY_GRANT_LIST: "looked at a family's duty grants",
    Action.PROTECTION_HOLD_SET: "placed a protection hold on a family",
    Action.PROTECTION_HOLD_RENEW: "renewed a protection hold",
    Action.PROTECTION_HOLD_LIFT: "lifted a protection hold",
    Action.PROTECTION_HOLD_LIST: "reviewed the protection holds",
    Action.AGENCY_PROTECTION_HOLDS: "changed whether an agency may place protection holds",
    Action.AGENCY_EMERGENCY_ACCESS: "allowed or stopped an agency's emergency access",
    Action.EMERGENCY_OPEN: "broke the glass: opened a family's record in an emergency",
    Action.EMERGENCY_LIST: "listed emergency accesses for review",
    Action.EMERGENCY_REVIEW: "reviewed an emergency access",
    Action.REPORT_RUN: "ran a report (counts over families, none named)",
}
# Why an entry came about, in words, by its reason code; `(action, code)`
# where a code means something else for that action.
REASON_WORDS: dict[str | tuple[str, str], str] = {
    # refusals of requests (`request.denied`)
    "unauthenticated": "no valid sign-in or token",
    "role": "the person's role may not do this",
    "absent": "no family has this id",
    "not_visible": "the family is not shared with this agency",
    "expired": "the family's consent form has expired",
    "not_permitted": "this agency is not involved, or may not do this",
    "not_agreed": "the family has not agreed to it on its consent form",
    "conflict": "it did not fit the family's current state",
    # failed sign-ins (`login.failed`)
    "wrong_password": "wrong password",
    "unknown_user": "no such user",
    "inactive": "the account is deactivated",
    "locked_out": "locked after too many failed sign-ins",
    "unknown_subject": "no OneStory account is linked to this sign-in at the agency",
    "provider_unreachable": "the agency's sign-in service could not be reached",
    "provider": "the agency's sign-in service gave an answer that was refused",
    "wrong_code_or_pin": "wrong receipt code or PIN",
    "slowed_down": "slowed down after wrong PINs",
    # other acts
    ("logout", "idle"): "the session ended after being idle",
    ("logout", "expired"): "the session reached its time limit",
    "nothing_to_revoke": "nothing was left to revoke",
    "requested": "erasure requested",
    "completed": "erasure completed",
    "no_single_match": "no single person has that name and birth date",
    "throttled": "too many attempts within the hour",
    "justified": "found justified",
    "unjustified": "found unjustified",
}


def reason_words(action: str, reason: str | None) -> str | None:
    """An entry's reason code in words; None when there is no reason, and the
    code itself for one this page does not know."""
    if not reason:
        return None
    code, _, rest = reason.partition(":")  # provider:<what the provider said>
    words = REASON_WORDS.get((action, reason)) or REASON_WORDS.get(code)
    if words is None:
        return reason
    return f"{words} ({rest})" if rest else words


OUTCOMES = [(Outcome.OK.value, "ok (allowed)"), (Outcome.DENIED.value, "denied (refused)")]
CSV_COLUMNS = ("seq", "time_utc", "action", "outcome", "notes", "actor", "role", "agency",
               "family", "reason", "reason_in_words", "fields_shown", "fields_withheld",
               "detail", "request_id")
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def me() -> Actor:
    actor: Actor = g.actor
    return actor


def _given(keys: tuple[str, ...]) -> dict[str, str]:
    """The non-empty query parameters among `keys`, as typed (stripped)."""
    return {key: request.args[key].strip() for key in keys
            if request.args.get(key, "").strip()}


LAST_TO_DATE = date.max - timedelta(days=1)


def _through(until: str) -> str | None:
    """The form's "to" date counts that whole day; the schema's `until` is
    exclusive, so it gets the next day (None when there is no next day).
    Anything else goes to the schema as is."""
    try:
        day = date.fromisoformat(until) if len(until) == 10 else None
    except ValueError:
        day = None
    if day is None:
        return until
    return None if day > LAST_TO_DATE else (day + timedelta(days=1)).isoformat()


def _parse(given: dict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    data = dict(given)
    too_late = False
    if "until" in data:
        through = _through(data["until"])
        too_late = through is None
        if through is None:
            del data["until"]
        else:
            data["until"] = through
    values, errors = parse(AuditQuery(), data)
    if too_late:
        values, errors["until"] = {}, [f"a date no later than {LAST_TO_DATE.isoformat()}"]
    if errors.get("until") == ["must be after since"]:
        errors["until"] = ["must not be before the “from” date"]
    return values, errors


def _filters(values: Mapping[str, Any]) -> Filters:
    return Filters(**{key: values.get(key) for key in FILTERS})


def detail_words(detail: Mapping[str, Any]) -> str:
    """An entry's detail (ids and flags) as short text: `key: value; ...`."""
    def text(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(str(v) for v in value) or "none"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "none" if value is None else str(value)

    return "; ".join(f"{key}: {text(value)}" for key, value in sorted(detail.items()))


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_rows(export: auditing.Export) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: tuple[object, ...] | list[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([safe_cell(cell) for cell in cells])
        return buffer.getvalue()

    if export.capped:
        yield (f"# Only the newest {len(export.lines)} matching entries are in this file; "
               "narrow the filters (for example the dates) to export the rest.\r\n")
    yield line(CSV_COLUMNS)
    for entry in export.lines:
        notes = (["refused"] if entry.refused else []) + [
            f"unusual: {why}" for why in entry.unusual] + (
            ["hidden from the family"] if entry.hidden_from_family else [])
        yield line([entry.seq, entry.at, entry.action, entry.outcome, "; ".join(notes),
                    entry.actor, entry.role, entry.agency_id, entry.family_id, entry.reason,
                    reason_words(entry.action, entry.reason), ",".join(entry.shown),
                    ",".join(entry.withheld),
                    json.dumps(entry.detail, sort_keys=True, ensure_ascii=False)
                    if entry.detail else "", entry.request_id])


def _log_page(given: dict[str, str], errors: dict[str, list[str]],
              page: auditing.LogPage | None = None) -> Any:
    filters: dict[str, Any] = {key: value for key, value in given.items() if key in FILTERS}
    kept: dict[str, Any] = {key: value for key, value in given.items() if key != "cursor"}
    older = (url_for("auditor.log", **kept, cursor=page.next_cursor)
             if page is not None and page.next_cursor else None)
    newest = url_for("auditor.log", **kept) if "cursor" in given else None
    return render_template(
        "auditor/log.html", errors=errors, args=given, page=page, filtered=bool(filters),
        agencies=[(a.id, f"{a.name} ({a.id})") for a in common.agencies(request_db())],
        actions=[(a.value, f"{a.value} — {ACTION_WORDS.get(a, a.value)}") for a in Action],
        outcomes=OUTCOMES, rules=Rules(), export_cap=auditing.EXPORT_CAP,
        older_url=older, newest_url=newest,
        export_url=url_for("auditor.export", **filters), detail_words=detail_words,
        reason_words=reason_words, unjustified_entry=auditor_emergency.unjustified_entry,
        **auditor_emergency.summary(),
    ), 422 if errors else 200


def create_blueprint() -> Blueprint:
    from coordination.web import auditor_holds

    bp = Blueprint("auditor", __name__, url_prefix="/audit")
    auditor_holds.register(bp)
    auditor_emergency.register(bp)

    @bp.get("/")
    @staff_page(Role.AUDITOR)
    def log() -> Any:
        given = _given(FILTERS + PAGING)
        values, errors = _parse(given)
        if errors:
            return _log_page(given, errors)
        page = auditing.read_log(
            request_db(), me(), _filters(values),
            {key: value for key, value in given.items() if key in FILTERS},
            values["limit"], values.get("cursor"), current().now())
        return _log_page(given, {}, page)

    @bp.get("/verify")
    @staff_page(Role.AUDITOR)
    def verify() -> Any:
        rt = current()
        result = auditing.verify_log(request_db(), rt.engine, rt.audit_key.public_key(), me(),
                                     rt.now())
        return render_template("auditor/verify.html", result=result,
                               checked_at=rt.now().strftime("%Y-%m-%d %H:%M:%S"))

    @bp.get("/export.csv")
    @staff_page(Role.AUDITOR)
    def export() -> Any:
        given = _given(FILTERS)
        values, errors = _parse(given)
        if errors:
            return _log_page(given, errors)
        rt = current()
        done = auditing.export_log(request_db(), me(), _filters(values), given, rt.now())
        filename = f"onestory-audit-{rt.now():%Y-%m-%d}.csv"
        return Response(csv_rows(done), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        })

    return bp
