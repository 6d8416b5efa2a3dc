"""Running a report: one use case, audited with its parameters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit.services as audit_log
from audit.model import Action
from audit.services import Event
from coordination.actors import Actor
from coordination.crypto import Vault
from coordination.errors import InvalidInput, NotFound, RoleNotPermitted
from coordination.model import Agency, AgencyArea
from coordination.reports import disclosure
from coordination.reports.facts import PARTS, gather
from coordination.reports.figures import NEED_CODES, REPORTS, figures
from coordination.reports.period import GROUPINGS, Period, period_errors
from coordination.roles import Role

# Who may run reports; a coordinator's count only its own agency's families.
REPORT_ROLES = frozenset({Role.EVALUATOR, Role.AUDITOR, Role.COORDINATOR})


@dataclass(frozen=True)
class Report:
    """A report as published: the API's answer (`out()`)."""

    name: str
    first: str
    last: str
    by: str
    k: int
    rows: list[dict[str, object]]
    suppressed: int

    def out(self) -> dict[str, Any]:
        return {"report": self.name, "from": self.first, "to": self.last, "by": self.by,
                "k": self.k, "rows": self.rows, "suppressed": self.suppressed}


def report_errors(first: str, last: str, by: str) -> dict[str, list[str]]:
    """What is wrong with a report's parameters (empty when nothing)."""
    errors = period_errors(first, last)
    if by not in GROUPINGS:
        errors["by"] = [f"one of {', '.join(GROUPINGS)}"]
    return errors


def _agencies(session: Session) -> list[tuple[str, str]]:
    return [(a, n) for a, n in session.execute(
        select(Agency.id, Agency.name).order_by(Agency.id))]


def _areas(session: Session) -> list[tuple[str, str]]:
    """Every area code any agency gives, named as the first agency (by id) names it."""
    named: dict[str, str] = {}
    for code, name in session.execute(
            select(AgencyArea.code, AgencyArea.name)
            .order_by(AgencyArea.code, AgencyArea.agency_id)):
        named.setdefault(code, name)
    return list(named.items())


def check_report(actor: Actor, name: str) -> None:
    """The checks of `run_report` that come before its parameters': the role
    (RoleNotPermitted), then the report's name (NotFound)."""
    if actor.is_family or actor.role not in REPORT_ROLES:
        raise RoleNotPermitted("your role may not run reports")
    if name not in REPORTS:
        raise NotFound(f"no report '{name}'")


def run_report(session: Session, vault: Vault, actor: Actor, name: str, first_month: str,
               last_month: str, by: str, now: datetime, *, k: int = disclosure.DEFAULT_K,
               need_codes: Sequence[str] = NEED_CODES) -> Report:
    """Report `name` over the whole months `first_month`..`last_month`
    ("YYYY-MM"), grouped `by` agency, area or month, with every count below
    `k` (and whatever would reveal one) withheld by `disclosure.protect`.
    Counts only the families whose form in force says `statistics: true`; a
    coordinator's, only those involved with its agency during the period. The run is audited
    with its parameters and how much it withheld, never with a family id.

    Raises RoleNotPermitted (not an evaluator, auditor or coordinator),
    NotFound (no such report), InvalidInput (bad period or grouping),
    ValueError (k below `disclosure.MIN_K`: a configuration error), VaultError
    (a sealed value did not open: nothing is returned)."""
    check_report(actor, name)
    errors = report_errors(first_month, last_month, by)
    if errors:
        raise InvalidInput(errors)
    if k < disclosure.MIN_K:
        raise ValueError(f"k must be at least {disclosure.MIN_K}")
    period = Period.of(first_month, last_month)
    parts = PARTS[name] | ({"area"} if by == "area" else set())
    agency = actor.agency_id if actor.role == Role.COORDINATOR else None
    facts = gather(session, vault, frozenset(parts), period, now, agency)
    raw = figures(name, by, period, facts, _agencies(session), _areas(session), need_codes)
    published = disclosure.protect(raw, k)
    report = Report(name, first_month, last_month, by, k, published.rows,
                    published.suppressed)
    audit_log.record(session, Event(
        action=Action.REPORT_RUN, actor=actor.label, agency_id=actor.agency_id,
        role=actor.role_name, request_id=actor.request_id,
        detail={"report": name, "from": first_month, "to": last_month, "by": by, "k": k,
                "rows": len(report.rows), "suppressed": report.suppressed}), now)
    session.commit()
    return report
