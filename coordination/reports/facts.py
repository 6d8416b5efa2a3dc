"""What reports are computed from: per counted family, the facts of a period.

Counted families are those whose newest consent form is in force and says
`statistics: true`; a family without a form, with an expired one or one
that says no is in no report, nor is a family whose erasure has begun. A
coordinator's reports count only the families involved with its agency
during the period (not those that had ended its part before).

The facts are gathered a chunk of families at a time, in a few set-based
statements per chunk (one per table the report needs: never one per family)
and yielded one family at a time, so memory holds one chunk whatever the
number of families. Nothing is stored in clear to make this fast: a
family's area and its typed entries are sealed under its own key, and are
opened here with the chunk's keys fetched in one key-store query
(`Vault.for_families`). Only typed entries (`needs`, `attendance`) and areas
are opened, never free text. A `FamilyFacts` holds no family id: what
leaves this module cannot name a family.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from consent.tables import ConsentCellRow, ConsentFormRow
from coordination.crypto import FamilyCipher, Vault
from coordination.model import (
    Appointment,
    Entry,
    Erasure,
    Family,
    Involvement,
    Referral,
    ReferralEvent,
)
from coordination.reports.period import Period
from coordination.roles import InvolvementStatus

CHUNK = 1000  # families per round of statements (and per key-store query)

# The parts of the facts each report reads (`area` is added when grouping by area).
PARTS: dict[str, frozenset[str]] = {
    "needs": frozenset({"needs"}),
    "involvement": frozenset({"involvements"}),
    "consent-coverage": frozenset({"involvements", "cells"}),
    "referrals": frozenset({"referrals"}),
    "attendance": frozenset({"attendance"}),
}


@dataclass(frozen=True)
class ReferralFact:
    """A referral made in the period: to which agency, in which month (an
    index into the period's months), its state now, whether it was ever
    accepted and ever attended, and the days from its making to the first
    attended appointment."""

    agency: str
    month: int
    state: str
    accepted: bool
    attended: bool
    days_to_service: float | None


@dataclass(slots=True)
class FamilyFacts:
    """One counted family's facts in the period (months are indexes into
    `Period.months`; no family id)."""

    area: str | None = None
    # (agency, first month, last month) of each involvement the period touches.
    involvements: list[tuple[str, int, int]] = field(default_factory=list)
    # agency -> the number of cells the family's form grants it.
    cells: dict[str, int] = field(default_factory=dict)
    # (agency that wrote it, month, codes) of each needs entry written in the period.
    needs: list[tuple[str, int, frozenset[str]]] = field(default_factory=list)
    # (agency, month, attended, offered) of each attendance entry written in the period.
    attendance: list[tuple[str, int, int, int]] = field(default_factory=list)
    referrals: list[ReferralFact] = field(default_factory=list)


def _counted(after: str, limit: int, today: date, agency: str | None,
             period: Period) -> Any:
    """The next `limit` counted families after id `after`: (family id, form row id);
    with `agency`, only those it was involved with during `period` (a family
    that ended the agency's part before it is no longer the agency's)."""
    newer = aliased(ConsentFormRow)
    query = (
        select(ConsentFormRow.family_id, ConsentFormRow.id)
        .where(ConsentFormRow.family_id > after,
               ConsentFormRow.statistics == true(),
               ConsentFormRow.valid_until >= today,
               ~exists().where(newer.family_id == ConsentFormRow.family_id,
                               newer.version > ConsentFormRow.version),
               # Being erased (its key may be gone already, its rows not yet).
               ~exists().where(Erasure.family_id == ConsentFormRow.family_id))
        .order_by(ConsentFormRow.family_id).limit(limit))
    if agency is not None:
        query = query.where(exists().where(
            Involvement.family_id == ConsentFormRow.family_id,
            Involvement.agency_id == agency, Involvement.since < period.end_day,
            or_(Involvement.status == InvolvementStatus.ACTIVE.value,
                Involvement.updated_at >= period.start)))
    return query


def gather(session: Session, vault: Vault, parts: frozenset[str], period: Period,
           now: datetime, agency: str | None = None, chunk: int = CHUNK
           ) -> Iterator[FamilyFacts]:
    """The facts `parts` of every counted family (of `agency`'s, when given),
    one family at a time, a chunk of families per round of statements.

    Raises `VaultError` when a sealed value does not open: no figure is
    made from data that could not be read."""
    after = ""
    while True:
        rows = session.execute(_counted(after, chunk, now.date(), agency, period)).all()
        if not rows:
            return
        ids = [row[0] for row in rows]
        after = ids[-1]
        facts = {fid: FamilyFacts() for fid in ids}
        opened = ("area" in parts or "needs" in parts or "attendance" in parts)
        ciphers = vault.for_families(ids) if opened else {}
        if "area" in parts:
            _areas(session, ciphers, ids, facts)
        if "involvements" in parts:
            _involvements(session, period, ids, facts)
        if "cells" in parts:
            _cells(session, {row[1]: row[0] for row in rows}, facts)
        if "needs" in parts:
            _typed(session, ciphers, period, ids, "needs", facts)
        if "attendance" in parts:
            _typed(session, ciphers, period, ids, "attendance", facts)
        if "referrals" in parts:
            _referrals(session, period, ids, facts)
        yield from facts.values()
        if len(rows) < chunk:
            return


def _areas(session: Session, ciphers: dict[str, FamilyCipher], ids: Sequence[str],
           facts: dict[str, FamilyFacts]) -> None:
    for fid, sealed in session.execute(
            select(Family.id, Family.area).where(Family.id.in_(ids),
                                                 Family.area.is_not(None))):
        facts[fid].area = ciphers[fid].open("families", "area", fid, sealed)


def _involvements(session: Session, period: Period, ids: Sequence[str],
                  facts: dict[str, FamilyFacts]) -> None:
    # An involvement runs from `since` until it is closed (its last change).
    for fid, agency, status, since, updated in session.execute(
            select(Involvement.family_id, Involvement.agency_id, Involvement.status,
                   Involvement.since, Involvement.updated_at)
            .where(Involvement.family_id.in_(ids), Involvement.since < period.end_day,
                   or_(Involvement.status == InvolvementStatus.ACTIVE.value,
                       Involvement.updated_at >= period.start))):
        ended = None if status == InvolvementStatus.ACTIVE.value else updated.date()
        months = period.clip(since, ended)
        if months is not None:
            facts[fid].involvements.append((agency, *months))


def _cells(session: Session, forms: dict[int, str], facts: dict[str, FamilyFacts]) -> None:
    for form_id, agency, cells in session.execute(
            select(ConsentCellRow.form_id, ConsentCellRow.agency_id, func.count())
            .where(ConsentCellRow.form_id.in_(list(forms)))
            .group_by(ConsentCellRow.form_id, ConsentCellRow.agency_id)):
        facts[forms[form_id]].cells[agency] = int(cells)


def _typed(session: Session, ciphers: dict[str, FamilyCipher], period: Period,
           ids: Sequence[str], kind: str, facts: dict[str, FamilyFacts]) -> None:
    """The `kind` entries written in the period, opened. Data that is not in
    the kind's shape (the API never stores such) counts as nothing."""
    for entry_id, fid, agency, written, sealed in session.execute(
            select(Entry.id, Entry.family_id, Entry.agency_id, Entry.written_at, Entry.value)
            # SQLite would otherwise walk every entry of the kind in the period
            # (ix_entries_kind_written) for each chunk: time growing with the
            # square of the families.
            .with_hint(Entry, "INDEXED BY ix_entries_family_written", dialect_name="sqlite")
            .where(Entry.family_id.in_(ids), Entry.kind == kind,
                   Entry.written_at >= period.start, Entry.written_at < period.end)):
        data = json.loads(ciphers[fid].open("entries", "value", entry_id, sealed))
        month = period.index(written.date())
        if kind == "needs":
            codes = data.get("codes") if isinstance(data, dict) else None
            if isinstance(codes, list):
                facts[fid].needs.append(
                    (agency, month, frozenset(c for c in codes if isinstance(c, str))))
        elif isinstance(data, dict):
            attended, offered = data.get("attended"), data.get("offered")
            if (type(attended) is int and type(offered) is int
                    and 0 <= attended <= offered and offered > 0):
                facts[fid].attendance.append((agency, month, attended, offered))


def _referrals(session: Session, period: Period, ids: Sequence[str],
               facts: dict[str, FamilyFacts]) -> None:
    accepted = exists().where(ReferralEvent.referral_id == Referral.id,
                              ReferralEvent.state == "accepted")
    first_attended = (select(func.min(Appointment.at))
                      .where(and_(Appointment.referral_id == Referral.id,
                                  Appointment.outcome == "attended"))
                      .scalar_subquery())
    for fid, agency, state, created, was_accepted, attended_at in session.execute(
            select(Referral.family_id, Referral.to_agency, Referral.state,
                   Referral.created_at, accepted, first_attended)
            .where(Referral.family_id.in_(ids), Referral.created_at >= period.start,
                   Referral.created_at < period.end)):
        days = None
        if attended_at is not None:
            attended_at = _utc(attended_at)
            days = max(0.0, (attended_at - created).total_seconds() / 86_400)
        facts[fid].referrals.append(ReferralFact(
            agency, period.index(created.date()), state, bool(was_accepted),
            attended_at is not None, days))


def _utc(moment: Any) -> datetime:
    if isinstance(moment, str):  # SQLite hands back the stored text
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
