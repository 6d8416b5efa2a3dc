"""The joint consent form and the decision: plain Python, no database.

A form is a grid: agencies are columns, fields are rows, and a ticked cell
means "this agency may see this field". The decision is deny by default: an
agency sees a field only while the family's current form is unexpired and
grants that cell. (An agency always sees entries it wrote itself; that
authorship rule is applied per entry by `may_see_entry`.)

Consent is not the only basis: a duty grant (sharing the law requires,
approved by a second agency's coordinator) allows its cells while it is
approved and unexpired, whatever the form says. Each allowing decision
names its basis ("consent", "duty_grant:<id>", "author"), which the audit
of a read records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

Cell = tuple[str, str]  # (agency id, field id)


class Method(StrEnum):
    PAPER = "paper"
    IN_PERSON = "in_person"
    FAMILY_PORTAL = "family_portal"


class Reason(StrEnum):
    """Why a cell was decided the way it was; audit records these words."""

    GRANTED = "granted"
    AUTHOR = "author"
    NO_FORM = "no_form"
    NOT_GRANTED = "not_granted"
    EXPIRED = "expired"
    DUTY_GRANT = "duty_grant"
    EMERGENCY = "emergency"


CONSENT = "consent"
AUTHOR = "author"
EMERGENCY = "emergency"  # the basis; the audit of a read names the access: "emergency:<id>"


@dataclass(frozen=True)
class Decision:
    """Whether a cell is allowed, why, and (when allowed) on what basis:
    "consent", "duty_grant:<id>" or "author"."""

    allowed: bool
    reason: Reason
    basis: str | None = None

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Form:
    """One version of a family's joint consent form, as the decision needs it."""

    version: int
    valid_until: date
    cells: frozenset[Cell]

    def in_force(self, now: datetime) -> bool:
        """A form counts through the whole of its `valid_until` day (UTC)."""
        return now.astimezone(UTC).date() <= self.valid_until

    def grants(self) -> dict[str, list[str]]:
        """The grid as `{agency: [field, ...]}`, sorted for stable output."""
        grid: dict[str, list[str]] = {}
        for agency, field in sorted(self.cells):
            grid.setdefault(agency, []).append(field)
        return grid


class DutyState(StrEnum):
    PENDING = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"


# The legal bases a duty grant may rest on (GDPR article 6, other than consent).
DUTY_BASES = ("legal_obligation", "vital_interest", "public_task")
DUTY_MAX_DAYS = 90


@dataclass(frozen=True)
class DutyGrant:
    """A duty grant as the decision needs it: the named agency, its cells
    (catalogue rows), its state and its last day."""

    id: str
    agency: str
    fields: frozenset[str]
    state: DutyState
    until: date

    def in_force(self, now: datetime) -> bool:
        """Approved, and counting through the whole of its `until` day (UTC).
        The family's revocations do not touch it."""
        return self.state is DutyState.APPROVED and now.astimezone(UTC).date() <= self.until


def grant_allowing(grants: Sequence[DutyGrant], agency: str, field: str,
                   now: datetime) -> DutyGrant | None:
    """The first duty grant in force that allows (`agency`, `field`), if any."""
    return next((g for g in grants
                 if g.agency == agency and field in g.fields and g.in_force(now)), None)


def cells_from_grants(grants: Mapping[str, Iterable[str]]) -> frozenset[Cell]:
    return frozenset((agency, field) for agency, fields in grants.items() for field in fields)


def decide(form: Form | None, agency: str, field: str, now: datetime,
           grants: Sequence[DutyGrant] = (), *, emergency: bool = False) -> Decision:
    """May `agency` see `field` of the family whose current form is `form`
    and whose duty grants are `grants`?

    Allowed by the form (basis "consent") when it grants the cell and is in
    force; otherwise by a duty grant in force naming the cell (basis
    "duty_grant:<id>"). With `emergency` (the caller has an open emergency
    access to this family) every cell is allowed, for the reason and basis
    `EMERGENCY`; entries of minimal-data agencies stay withheld all the same
    (`may_see_entry`). Pure function of its arguments; deny by default (a
    refusal gives the form's reason).
    """
    if emergency:
        return Decision(True, Reason.EMERGENCY, EMERGENCY)
    if form is None:
        refused = Decision(False, Reason.NO_FORM)
    elif (agency, field) not in form.cells:
        refused = Decision(False, Reason.NOT_GRANTED)
    elif not form.in_force(now):
        refused = Decision(False, Reason.EXPIRED)
    else:
        return Decision(True, Reason.GRANTED, CONSENT)
    duty = grant_allowing(grants, agency, field, now)
    if duty is not None:
        return Decision(True, Reason.DUTY_GRANT, f"duty_grant:{duty.id}")
    return refused


def decide_cells(form: Form | None, grants: Sequence[DutyGrant], agency: str,
                 fields: Iterable[str], now: datetime) -> dict[str, Decision]:
    """`decide` for each of `fields` (catalogue rows) of one agency."""
    return {f: decide(form, agency, f, now, grants) for f in fields}


def may_see_entry(
    form: Form | None, agency: str, field: str, author_agency: str, now: datetime,
    grants: Sequence[DutyGrant] = (), *, emergency: bool = False, author_minimal: bool = False,
) -> Decision:
    """The decision for one entry: the cell, or authorship. An emergency
    access never opens an entry a minimal-data agency wrote
    (`author_minimal`): only that agency's own consent cell does."""
    if author_agency == agency:
        return Decision(True, Reason.AUTHOR, AUTHOR)
    if emergency and not author_minimal:
        return Decision(True, Reason.EMERGENCY, EMERGENCY)
    return decide(form, agency, field, now, grants)


def holds_any_cell(form: Form | None, agency: str, now: datetime) -> bool:
    """Does the current, unexpired form grant `agency` at least one cell?"""
    if form is None or not form.in_force(now):
        return False
    return any(cell_agency == agency for cell_agency, _ in form.cells)


def holds_duty_grant(grants: Sequence[DutyGrant], agency: str, now: datetime) -> bool:
    """Does an approved, unexpired duty grant name `agency`?"""
    return any(g.agency == agency and g.in_force(now) for g in grants)


def is_visible(form: Form | None, agency: str, actively_involved: bool, now: datetime,
               grants: Sequence[DutyGrant] = (), *, emergency: bool = False) -> bool:
    """The one visibility rule: involved, granted something in force by the
    form, named by a duty grant in force, or (for the one staff member who
    broke the glass) an open emergency access.

    Otherwise the family does not exist for that agency.
    """
    return (emergency or actively_involved or holds_any_cell(form, agency, now)
            or holds_duty_grant(grants, agency, now))


def revoke(cells: frozenset[Cell], agency: str | None, field: str | None) -> frozenset[Cell]:
    """Cells left after revoking one cell, a column, a row, or everything."""
    return frozenset(
        (a, f)
        for a, f in cells
        if not ((agency is None or a == agency) and (field is None or f == field))
    )


# The change texts of versions recorded from a newly signed form (a `PUT`):
# only these make the recording staff member's agency the form's recorder.
SIGNED_CHANGES = frozenset({"signed", "re-signed"})
INVOLVEMENT = "involvement"


@dataclass(frozen=True)
class FormView:
    """What one reader may see of one form version.

    `full`: every column and the signer. Otherwise only `cells` (the reader's
    own column), the dates, purpose and legal basis: nothing that names
    another agency or the signer.
    """

    full: bool
    cells: frozenset[Cell]

    def grants(self) -> dict[str, list[str]]:
        grid: dict[str, list[str]] = {}
        for agency, field in sorted(self.cells):
            grid.setdefault(agency, []).append(field)
        return grid


def view_of_form(form: Form, reader: str | None, recorder: str | None,
                 now: datetime) -> FormView:
    """The one rule for how an agency reads a form version.

    `reader` is the reading agency (None: the family itself, which sees
    all); `recorder` the agency whose staff recorded the signed form this
    version derives from (the latest newly signed form at or before it).
    A version shows every column, and the signer, to the agencies it grants
    `involvement` (while it counts: through its `valid_until` day) and to
    its recorder; any other agency sees its own column. Pure function; deny
    by default (an unknown recorder gives nothing extra).
    """
    if reader is None or (recorder is not None and reader == recorder) or (
            (reader, INVOLVEMENT) in form.cells and form.in_force(now)):
        return FormView(True, form.cells)
    return FormView(False, frozenset(c for c in form.cells if c[0] == reader))


def named_agency(change: str) -> str | None:
    """The agency a version's change text names, if any (see
    `describe_revocation` and `describe_ending`, which write them)."""
    words = change.split()
    if change.startswith(("revoke cell ", "grant cells ")) and len(words) == 3:
        return words[2].split("/", 1)[0]
    if change.startswith(("revoke column ", "end part ")) and len(words) == 3:
        return words[2]
    return None


def change_as_read(change: str, reader: str | None, full: bool) -> str:
    """A change text as a reader without the full view may read it: one
    naming another agency says only that the form changed."""
    named = named_agency(change)
    if full or named is None or named == reader:
        return change
    return "changed"


def describe_grant(agency: str, fields: list[str]) -> str:
    """The change text of a version adding `agency`'s cells for `fields`
    (a referral the family agreed to)."""
    return "grant cells " + ",".join(f"{agency}/{f}" for f in fields)


def describe_ending(agency: str) -> str:
    return f"end part {agency}"


def describe_revocation(agency: str | None, field: str | None) -> str:
    if agency and field:
        return f"revoke cell {agency}/{field}"
    if agency:
        return f"revoke column {agency}"
    if field:
        return f"revoke row {field}"
    return "revoke everything"
