"""What the family's own views leave out while a protection hold is in force
(CONTRACT.md, "Exceptional access"): the one place every family view asks.

`concealed_from_family(session, family_id, now)` says, per kind, which
agencies to leave out; the other functions apply it to what a view is about
to show (a form version, the list of versions, log rows). Leaving out must
leave no trace: no gap in version numbers or lists, no count, no answer that
differs from the one for an agency with no part at all. Staff views never
pass through here; auditors see everything.

Consent history, as the family reads it while an agency's `involvement` is
concealed: a version the family signed (a newly signed form: `signed`,
`re-signed`) always stays, with the concealed column left out (and where a
change text names the concealed agency, the neutral "changed" that readers
without the full view already read). A later version that changed nothing
the family can see — only the concealed agency's cells, whoever made it: a
coordinator revoking that column, a grant to it on the family's answer, a
family's revocation of a row only that agency held — is left out (unless it
changed the counting answer, which only the family or a newly signed form
does), so the versions are numbered again from 1 without a gap and the
current form carries the number of the last version shown. (A version naming a visible
agency, such as ending the part of an agency that held no cell, stays.)
So the family's answer to a revocation that took away only concealed cells
is the answer to one that took away nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import model as consent
from consent.model import Form
from consent.tables import ConsentFormRow
from coordination.model import ProtectionHold, Staff

# What a hold may conceal.
INVOLVEMENT = "involvement"
ENTRIES = "entries"
ACCESS = "access"
KINDS = (INVOLVEMENT, ENTRIES, ACCESS)


def hold_in_force(hold: ProtectionHold, now: datetime) -> bool:
    """A hold conceals until lifted, through the whole of its `review_on`
    day (UTC): past it, it has lapsed unless renewed before."""
    return hold.lifted_at is None and now.astimezone(UTC).date() <= hold.review_on


@dataclass(frozen=True)
class Concealed:
    """The agencies whose involvement, entries or looks (and acts) the
    family's views leave out now."""

    involvement: frozenset[str] = frozenset()
    entries: frozenset[str] = frozenset()
    access: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.involvement or self.entries or self.access)

    def grants(self, grants: dict[str, list[str]]) -> dict[str, list[str]]:
        return {a: f for a, f in grants.items() if a not in self.involvement}

    def log_row_hidden(self, agency: str | None, action: str, about: str | None) -> bool:
        """Whether a row of "who looked" is left out: an act of an agency whose
        looks are concealed (refusals included) or whose involvement is (its
        acts would tell that it takes part), a note written by one whose
        entries are, or an act about one whose involvement is."""
        if agency is not None and (agency in self.access or agency in self.involvement):
            return True
        if agency is not None and agency in self.entries and action == "entry.write":
            return True
        return about is not None and about in self.involvement


NOTHING = Concealed()


def concealed_from_family(session: Session, family_id: str, now: datetime) -> Concealed:
    """What the family's views leave out at `now`: the holds on the family in
    force then (one query). Lifted and lapsed holds conceal nothing, so the
    family sees again what they concealed."""
    holds = [h for h in session.scalars(
        select(ProtectionHold).where(ProtectionHold.family_id == family_id,
                                     ProtectionHold.lifted_at.is_(None)))
        if hold_in_force(h, now)]
    if not holds:
        return NOTHING
    by_kind: dict[str, set[str]] = {k: set() for k in KINDS}
    for hold in holds:
        for kind in hold.conceal.split(","):
            by_kind.setdefault(kind, set()).add(hold.agency_id)
    return Concealed(frozenset(by_kind[INVOLVEMENT]), frozenset(by_kind[ENTRIES]),
                     frozenset(by_kind[ACCESS]))


def _without(cells: Iterable[consent.Cell], agencies: frozenset[str]) -> frozenset[consent.Cell]:
    return frozenset(c for c in cells if c[0] not in agencies)


def family_numbering(versions: Sequence[tuple[ConsentFormRow, Form]], hidden: Concealed
                     ) -> dict[int, int | None]:
    """Per stored version, its number as the family reads it (None: left out;
    see the module docstring). Pure: the versions oldest first."""
    out: dict[int, int | None] = {}
    shown = 0
    before: frozenset[consent.Cell] | None = None
    counted: bool | None = None
    for row, form in versions:
        visible = _without(form.cells, hidden.involvement)
        named = consent.named_agency(row.change)
        # A version that changed the counting answer is the family's own act
        # (`casework.counting`): kept, or the family would read its old answer.
        keep = (before is None or row.change in consent.SIGNED_CHANGES or visible != before
                or bool(row.statistics) != counted
                or (named is not None and named not in hidden.involvement))
        if keep:
            shown += 1
        out[row.version] = shown if keep else None
        before, counted = visible, bool(row.statistics)
    return out


def shown_version(numbering: dict[int, int | None], version: int) -> tuple[int, int]:
    """The stored version the family is shown for `version` (itself, or the
    last one shown before it) and the number it reads."""
    for v in range(version, 0, -1):
        number = numbering.get(v)
        if number is not None:
            return v, number
    return version, 1


def change_for_family(change: str, hidden: Concealed) -> str:
    named = consent.named_agency(change)
    return "changed" if named is not None and named in hidden.involvement else change


def staff_agencies(session: Session, usernames: Iterable[str | None]) -> dict[str, str]:
    """The agency of each of these staff usernames (one query)."""
    names = sorted({u for u in usernames if u is not None and u != "family"})
    if not names:
        return {}
    return {u: a for u, a in session.execute(
        select(Staff.username, Staff.agency_id).where(Staff.username.in_(names)))}


def staff_for_family(username: str | None, agency_of: dict[str, str], hidden: Concealed
                     ) -> str | None:
    """A staff member named as having acted (recorded an answer, changed the
    form), as the family reads it: nobody (`None`, as staff it may not know
    read it) when that member's agency's involvement is concealed."""
    if username is not None and agency_of.get(username) in hidden.involvement:
        return None
    return username


def conceal_form(out: dict[str, Any], hidden: Concealed, number: int,
                 agency_of: dict[str, str] | None = None) -> dict[str, Any]:
    """A form version as the family reads it (`_form_out`'s dict, with the
    family's extras when present); `agency_of` maps the staff who changed
    or witnessed it to their agencies."""
    out["version"] = number
    for key in ("changed_by", "witness"):
        if key in out:
            out[key] = staff_for_family(out[key], agency_of or {}, hidden)
    out["grants"] = hidden.grants(out["grants"])
    if "involved" in out:
        out["involved"] = [a for a in out["involved"] if a not in hidden.involvement]
    if out.get("recorded_by") in hidden.involvement:
        out["recorded_by"] = None
    if "change" in out:
        out["change"] = change_for_family(out["change"], hidden)
    return out
