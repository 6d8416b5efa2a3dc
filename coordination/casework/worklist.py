"""The worklist (CONTRACT.md, "Worklist"): what the caller's agency has to
act on, built from what is stored, with `now` as a parameter.

Each *source* below is one small function making one query over one table
(joined to what it needs) and yielding `Item`s of one or more kinds; adding
a kind is adding such a function to `SOURCES` and its rank to `RANK`.
Every source keeps to the visibility rule (`common._visible_to`), except
`involvement.ended`, which is exactly the news that a family no longer
exists for the agency: it says which family (an id the agency knew) and
when, nothing else (no name, no link to the record).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased

from audit.model import Action
from consent import model as consent
from consent.tables import ConsentFormRow
from coordination.actors import Actor
from coordination.casework import access_requests, emergency
from coordination.casework import referral_states as rules
from coordination.casework.common import _audit, _visible_to, iso_time
from coordination.crypto import Vault
from coordination.model import Appointment, Family, Involvement, ProtectionHold, Referral
from coordination.roles import InvolvementStatus, Role

UPCOMING = timedelta(days=7)  # appointments this week
RENEW_WITHIN = timedelta(days=30)  # forms ending within 30 days
ENDED_SHOWN_FOR = timedelta(days=30)  # how long "the family ended your part" stays
ANSWERED_SHOWN_FOR = timedelta(days=14)  # how long "the family answered your request" stays
HOLD_REVIEW_WITHIN = timedelta(days=14)  # protection holds due for review

# Most urgent first: what is late, then what waits for an answer, then what
# comes up, then what is to plan or to know.
RANK = {
    "referral.overdue": 0,
    "appointment.missed": 1,
    "referral.to_answer": 2,
    "appointment.upcoming": 3,
    "access_request.answered": 4,
    "hold.review": 5,
    "consent.renew": 6,
    "emergency.unreviewed": 7,
    "involvement.ended": 8,
}
# Kinds about something that happened: the newest first. The others are
# deadlines: the soonest first.
HAPPENED = frozenset({"appointment.missed", "access_request.answered", "involvement.ended",
                      "emergency.unreviewed"})
# Kinds that name no family to the agency (no name, no link to the record):
# the family may not be visible to it.
UNNAMED = frozenset({"involvement.ended", "emergency.unreviewed"})
# Kinds only the agency's coordinators are shown.
COORDINATORS_ONLY = frozenset({"emergency.unreviewed"})


@dataclass(frozen=True)
class Link:
    """Where to act, as a web endpoint and its arguments (resolved by the
    boundary with `url_for`, so this module knows no URL)."""

    endpoint: str
    args: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Item:
    """One thing to act on. `due` is the day it is due or happened; `at`
    the moment, when there is one (an appointment, an ending)."""

    kind: str
    family_id: str
    due: date
    ref: str
    at: datetime | None = None
    referral_id: str | None = None
    agency: str | None = None  # the other agency concerned
    direction: str | None = None  # "in": to the caller's agency; "out": from it
    link: Link | None = None
    display_name: str | None = None
    answer: str | None = None  # an access request's: "approved" or "declined"

    def sort_key(self) -> tuple[Any, ...]:
        moment = (self.at or datetime.combine(self.due, datetime.min.time(), UTC)).timestamp()
        return (RANK[self.kind], -moment if self.kind in HAPPENED else moment,
                self.family_id, self.ref)

    def out(self, href: str | None) -> dict[str, Any]:
        return {"kind": self.kind, "family_id": self.family_id, "due": self.due.isoformat(),
                "ref": self.ref, "at": iso_time(self.at) if self.at else None,
                "referral_id": self.referral_id, "agency": self.agency,
                "direction": self.direction, "display_name": self.display_name,
                "href": href}


@dataclass(frozen=True)
class Context:
    session: Session
    agency: str
    now: datetime

    @property
    def today(self) -> date:
        return self.now.date()


Source = Callable[[Context], Iterable[Item]]


def _referral(referral_id: str) -> Link:
    """A referral's page: where to answer it, book, or record an outcome."""
    return Link("staff.referral", (("referral_id", referral_id),))


def referrals(ctx: Context) -> Iterable[Item]:
    """`referral.to_answer`: sent to the caller's agency, not yet answered;
    `referral.overdue`: sent and past its answer-by day, for the receiving
    agency (answer it) and the referring one (chase it)."""
    rows = ctx.session.execute(
        select(Referral.id, Referral.family_id, Referral.from_agency, Referral.to_agency,
               Referral.respond_by)
        .join(Family, Family.id == Referral.family_id)
        .where(Referral.state == rules.State.SENT,
               or_(Referral.to_agency == ctx.agency, Referral.from_agency == ctx.agency),
               _visible_to(ctx.agency, ctx.now)))
    for ref_id, family_id, from_agency, to_agency, respond_by in rows:
        incoming = to_agency == ctx.agency
        late = rules.overdue(rules.State.SENT, respond_by, ctx.today)
        if not incoming and not late:
            continue
        yield Item("referral.overdue" if late else "referral.to_answer", family_id,
                   respond_by, ref_id, referral_id=ref_id,
                   agency=from_agency if incoming else to_agency,
                   direction="in" if incoming else "out", link=_referral(ref_id))


def appointments(ctx: Context) -> Iterable[Item]:
    """`appointment.upcoming`: booked within the next 7 days, nothing
    recorded yet; `appointment.missed`: the last appointment of a referral
    that is still `missed` (neither booked again nor closed). For both the
    receiving agency and the referring one."""
    rows = ctx.session.execute(
        select(Appointment.id, Appointment.at, Appointment.outcome, Referral.id,
               Referral.family_id, Referral.from_agency, Referral.to_agency, Referral.state)
        .join(Referral, Referral.id == Appointment.referral_id)
        .join(Family, Family.id == Referral.family_id)
        .where(or_(Referral.to_agency == ctx.agency, Referral.from_agency == ctx.agency),
               or_((Referral.state == rules.State.BOOKED) & Appointment.outcome.is_(None)
                   & (Appointment.at >= ctx.now) & (Appointment.at < ctx.now + UPCOMING),
                   (Referral.state == rules.State.MISSED)
                   & (Appointment.outcome == rules.Act.MISSED.value)),
               _visible_to(ctx.agency, ctx.now))
        .order_by(Appointment.at.desc(), Appointment.id))
    missed_seen: set[str] = set()
    for apt_id, at, outcome, ref_id, family_id, from_agency, to_agency, _state in rows:
        if outcome is not None:
            if ref_id in missed_seen:
                continue  # an earlier miss of the same referral
            missed_seen.add(ref_id)
        incoming = to_agency == ctx.agency
        yield Item("appointment.missed" if outcome else "appointment.upcoming", family_id,
                   at.date(), apt_id, at=at, referral_id=ref_id,
                   agency=from_agency if incoming else to_agency,
                   direction="in" if incoming else "out", link=_referral(ref_id))


def _newest_form() -> Any:
    return (select(func.max(ConsentFormRow.version))
            .where(ConsentFormRow.family_id == Involvement.family_id)
            .correlate(Involvement).scalar_subquery())


def forms_to_renew(ctx: Context) -> Iterable[Item]:
    """`consent.renew`: the current form of a family the caller's agency is
    actively involved with ends within 30 days (or has ended)."""
    rows = ctx.session.execute(
        select(ConsentFormRow.family_id, ConsentFormRow.version, ConsentFormRow.valid_until)
        .join(Involvement, Involvement.family_id == ConsentFormRow.family_id)
        .where(Involvement.agency_id == ctx.agency,
               Involvement.status == InvolvementStatus.ACTIVE,
               ConsentFormRow.version == _newest_form(),
               ConsentFormRow.valid_until <= ctx.today + RENEW_WITHIN))
    for family_id, version, valid_until in rows:
        yield Item("consent.renew", family_id, valid_until, f"v{version}",
                   link=Link("staff.consent", (("family_id", family_id),)))


def endings(ctx: Context) -> Iterable[Item]:
    """`involvement.ended`: in the last 30 days the family (or a coordinator
    recording its wish) ended the caller agency's part, and the family is
    not visible to it again since. An ending is the form version it wrote
    (`consent.model.describe_ending`): a family with no form at all has only
    its recording agency involved, which can only have ended its own part.
    Only the family id and the time are given."""
    # An alias: the visibility rule reads the family's forms on its own.
    ending = aliased(ConsentFormRow)
    rows = ctx.session.execute(
        select(ending.family_id, ending.recorded_at)
        .join(Family, Family.id == ending.family_id)
        .where(ending.change == consent.describe_ending(ctx.agency),
               ending.recorded_at >= ctx.now - ENDED_SHOWN_FOR,
               ~_visible_to(ctx.agency, ctx.now))
        .order_by(ending.recorded_at.desc()))
    seen: set[str] = set()
    for family_id, recorded_at in rows:
        if family_id in seen:
            continue
        seen.add(family_id)
        # The ref is the agency itself: the version's number would tell how
        # often the form changed, which is no longer the agency's to know.
        yield Item("involvement.ended", family_id, recorded_at.date(), ctx.agency,
                   at=recorded_at)


def answered_requests(ctx: Context) -> Iterable[Item]:
    """`access_request.answered`: in the last 14 days the family approved or
    declined a request of the caller's agency (of families still visible to
    it). The ref is the request id; an approval links to the record (the
    cells are now there to read), a decline to the agency's requests."""
    for row in access_requests.answered_since(ctx.session, ctx.agency,
                                              ctx.now - ANSWERED_SHOWN_FOR, ctx.now):
        at = datetime.fromisoformat(row["answered_at"])
        endpoint = "staff.family" if row["state"] == "approved" else "staff.access_requests_page"
        yield Item("access_request.answered", row["family_id"], at.date(), row["id"], at=at,
                   link=Link(endpoint, (("family_id", row["family_id"]),)),
                   answer=row["state"])


def holds_to_review(ctx: Context) -> Iterable[Item]:
    """`hold.review`: a protection hold of the caller's agency, in force, is
    due for review within 14 days (it lapses after its review date unless
    renewed), on a family still visible to the agency. The ref is the hold."""
    rows = ctx.session.execute(
        select(ProtectionHold.id, ProtectionHold.family_id, ProtectionHold.review_on)
        .join(Family, Family.id == ProtectionHold.family_id)
        .where(ProtectionHold.agency_id == ctx.agency, ProtectionHold.lifted_at.is_(None),
               ProtectionHold.review_on >= ctx.today,
               ProtectionHold.review_on <= ctx.today + HOLD_REVIEW_WITHIN,
               _visible_to(ctx.agency, ctx.now)))
    for hold_id, family_id, review_on in rows:
        yield Item("hold.review", family_id, review_on, hold_id,
                   link=Link("staff.family", (("family_id", family_id),)))



def unreviewed_emergencies(ctx: Context) -> Iterable[Item]:
    """`emergency.unreviewed`: a staff member of the caller's agency broke
    the glass and no auditor has reviewed it yet (its coordinators' to
    know). The ref is the access id; the family may be visible to its
    opener alone, so it is not named."""
    for access in emergency.unreviewed_of_agency(ctx.session, ctx.agency):
        yield Item("emergency.unreviewed", str(access.family_id), access.opened_at.date(),
                   access.id, at=access.opened_at)


SOURCES: tuple[Source, ...] = (referrals, appointments, forms_to_renew, endings,
                               answered_requests, holds_to_review, unreviewed_emergencies)


def assemble(session: Session, agency: str, now: datetime,
             sources: Iterable[Source] = SOURCES) -> list[Item]:
    """Every item of every source for `agency` at `now`, most urgent first
    (`RANK`; within a kind the soonest deadline, or the newest happening)."""
    ctx = Context(session, agency, now)
    return sorted((item for source in sources for item in source(ctx)),
                  key=Item.sort_key)


def worklist(session: Session, vault: Vault, actor: Actor, now: datetime) -> list[Item]:
    """The caller's agency's worklist, with the display names of the
    families visible to it (never of one whose part ended), on record as a
    list read naming the families it showed."""
    items = [i for i in assemble(session, str(actor.agency_id), now)
             if i.kind not in COORDINATORS_ONLY or actor.role == Role.COORDINATOR]
    named = sorted({i.family_id for i in items if i.kind not in UNNAMED})
    rows = dict(session.execute(select(Family.id, Family.display_name)
                                .where(Family.id.in_(named))).tuples().all()) if named else {}
    ciphers = vault.for_families(named)
    names = {fid: ciphers[fid].open("families", "display_name", fid, rows[fid])
             for fid in named}
    items = [replace(i, display_name=names.get(i.family_id)) for i in items]
    _audit(session, actor, Action.WORKLIST_READ, now, count=len(items),
           kinds=sorted({i.kind for i in items}),
           families=sorted({i.family_id for i in items}))
    session.commit()
    return items
