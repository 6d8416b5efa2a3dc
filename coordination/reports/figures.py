"""A report's raw figures from the facts of its counted families: pure.

`figures(name, by, period, facts, agencies, areas)` reads the facts once, as
they stream in, and returns a `RawReport`: one row per group (every agency,
every area and `unknown`, or every month of the period, in that order, even
when nothing falls in it) with the same value names in every row. Nothing
here is published as is: `disclosure.protect` decides what may be.

What each report counts, per group:

- `needs`: families with a needs entry written in the period (by the agency
  that wrote it, the family's area, the month it was written), and for each
  need code the families with that code (codes outside the list count as
  `other`).
- `involvement`: families involved during the period (with the agency, in
  the area, in the month), how many of them had 1, 2, 3 or 4 and more
  agencies involved over that time, and the median number of agencies.
- `consent-coverage`: families involved during the period, all with a form in
  force (only they are counted at all); for each agency, the families whose
  form grants it at least one cell (`granted:<agency>`) and the cells granted
  to it (`cells:<agency>`).
- `referrals`: referrals made in the period (by the receiving agency, the
  family's area, the month made): how many, how many are now in each state,
  how many were ever accepted and attended (with the shares), and the median
  days from the referral to its first attended appointment.
- `attendance`: families with attendance entries written in the period, and
  the median of their attendance rates (sessions attended of those offered,
  summed over the family's entries in the group, in percent).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from coordination.casework.entry_kinds import DEFAULT_NEEDS_CODES
from coordination.casework.referral_states import State
from coordination.reports.disclosure import RawReport, RawRow
from coordination.reports.facts import FamilyFacts
from coordination.reports.period import UNKNOWN_AREA, Period

REPORTS = ("needs", "involvement", "consent-coverage", "referrals", "attendance")
# The default need codes (De Sloep's reception questions, DOMAIN.md); an
# installation's own list is `Settings.needs_codes` (ONESTORY_NEEDS_CODES).
NEED_CODES = DEFAULT_NEEDS_CODES
AGENCY_BUCKETS = ("agencies_1", "agencies_2", "agencies_3", "agencies_4_plus")


@dataclass
class _Group:
    group: dict[str, str]
    counts: dict[str, int]
    samples: dict[str, list[float]] = field(default_factory=dict)


class _Table:
    """The rows of a report being filled, by group key."""

    def __init__(self, groups: list[tuple[Hashable, dict[str, str]]], counts: Sequence[str],
                 samples: Sequence[str] = (), shares: dict[str, tuple[str, str]] | None = None
                 ) -> None:
        self.rows = {key: _Group(group, dict.fromkeys(counts, 0),
                                 {name: [] for name in samples}) for key, group in groups}
        self.shares = shares or {}

    def count(self, key: Hashable, name: str, by: int = 1) -> None:
        self.rows[key].counts[name] += by

    def sample(self, key: Hashable, name: str, value: float) -> None:
        self.rows[key].samples[name].append(value)

    def report(self) -> RawReport:
        return RawReport([RawRow(dict(row.group), dict(row.counts), dict(row.samples),
                                 dict(self.shares)) for row in self.rows.values()])


def groups_of(by: str, period: Period, agencies: Sequence[tuple[str, str]],
              areas: Sequence[tuple[str, str]]) -> list[tuple[Hashable, dict[str, str]]]:
    """The rows of a report grouped `by`, in order: (key, group)."""
    if by == "agency":
        return [(agency, {"agency": agency, "name": name}) for agency, name in agencies]
    if by == "area":
        return [*((code, {"area": code, "name": name}) for code, name in areas),
                (UNKNOWN_AREA, {"area": UNKNOWN_AREA, "name": ""})]
    if by == "month":
        return [(index, {"month": month}) for index, month in enumerate(period.months)]
    raise ValueError(f"no grouping {by!r}")


def figures(name: str, by: str, period: Period, facts: Iterable[FamilyFacts],
            agencies: Sequence[tuple[str, str]], areas: Sequence[tuple[str, str]],
            need_codes: Sequence[str] = NEED_CODES) -> RawReport:
    """Report `name` grouped `by` over `period` (ValueError for an unknown one)."""
    groups = groups_of(by, period, agencies, areas)
    known_areas = {code for code, _ in areas}

    def area_of(family: FamilyFacts) -> str:
        return family.area if family.area in known_areas else UNKNOWN_AREA

    agency_ids = [agency for agency, _ in agencies]
    make = _MAKERS.get(name)
    if make is None:
        raise ValueError(f"no report {name!r}")
    return make(by, period, facts, groups, area_of, agency_ids, tuple(need_codes))


AreaOf = Callable[[FamilyFacts], str]


def _needs(by: str, period: Period, facts: Iterable[FamilyFacts],
           groups: list[tuple[Hashable, dict[str, str]]], area_of: AreaOf,
           agency_ids: list[str], codes: tuple[str, ...]) -> RawReport:
    table = _Table(groups, ["families", *codes])
    listed = set(codes)
    for family in facts:
        found: dict[Hashable, set[str]] = {}
        for agency, month, said in family.needs:
            key: Hashable = agency if by == "agency" else month if by == "month" \
                else area_of(family)
            found.setdefault(key, set()).update(
                code if code in listed else "other" for code in said)
        for key, said_here in found.items():
            if key not in table.rows:
                continue
            table.count(key, "families")
            for code in said_here & listed:
                table.count(key, code)
    return table.report()


def _involved(by: str, family: FamilyFacts, area_of: AreaOf, months: int
              ) -> dict[Hashable, set[str]]:
    """Group key -> the agencies involved with the family there."""
    spans = family.involvements
    if not spans:
        return {}
    if by == "month":
        found: dict[Hashable, set[str]] = {}
        for month in range(months):
            here = {agency for agency, low, high in spans if low <= month <= high}
            if here:
                found[month] = here
        return found
    agencies = {agency for agency, _, _ in spans}
    if by == "agency":
        return {agency: agencies for agency in agencies}
    return {area_of(family): agencies}


def _involvement(by: str, period: Period, facts: Iterable[FamilyFacts],
                 groups: list[tuple[Hashable, dict[str, str]]], area_of: AreaOf,
                 agency_ids: list[str], codes: tuple[str, ...]) -> RawReport:
    table = _Table(groups, ["families", *AGENCY_BUCKETS], ["median_agencies"])
    months = period.length
    for family in facts:
        for key, agencies in _involved(by, family, area_of, months).items():
            if key not in table.rows:
                continue
            table.count(key, "families")
            table.count(key, AGENCY_BUCKETS[min(len(agencies), 4) - 1])
            table.sample(key, "median_agencies", len(agencies))
    return table.report()


def _coverage(by: str, period: Period, facts: Iterable[FamilyFacts],
              groups: list[tuple[Hashable, dict[str, str]]], area_of: AreaOf,
              agency_ids: list[str], codes: tuple[str, ...]) -> RawReport:
    names = ["families"]
    for agency in agency_ids:
        names += [f"granted:{agency}", f"cells:{agency}"]
    table = _Table(groups, names)
    months = period.length
    for family in facts:
        for key in _involved(by, family, area_of, months):
            if key not in table.rows:
                continue
            table.count(key, "families")
            for agency, cells in family.cells.items():
                if cells and f"cells:{agency}" in table.rows[key].counts:
                    table.count(key, f"granted:{agency}")
                    table.count(key, f"cells:{agency}", cells)
    return table.report()


def _referrals(by: str, period: Period, facts: Iterable[FamilyFacts],
               groups: list[tuple[Hashable, dict[str, str]]], area_of: AreaOf,
               agency_ids: list[str], codes: tuple[str, ...]) -> RawReport:
    states = [f"state:{state.value}" for state in State]
    table = _Table(groups, ["referrals", *states, "accepted", "attended"],
                   ["median_days_to_service"],
                   {"share_accepted": ("accepted", "referrals"),
                    "share_attended": ("attended", "referrals")})
    for family in facts:
        for ref in family.referrals:
            key: Hashable = ref.agency if by == "agency" else ref.month if by == "month" \
                else area_of(family)
            if key not in table.rows:
                continue
            table.count(key, "referrals")
            if f"state:{ref.state}" in table.rows[key].counts:
                table.count(key, f"state:{ref.state}")
            table.count(key, "accepted", int(ref.accepted))
            table.count(key, "attended", int(ref.attended))
            if ref.days_to_service is not None:
                table.sample(key, "median_days_to_service", ref.days_to_service)
    return table.report()


def _attendance(by: str, period: Period, facts: Iterable[FamilyFacts],
                groups: list[tuple[Hashable, dict[str, str]]], area_of: AreaOf,
                agency_ids: list[str], codes: tuple[str, ...]) -> RawReport:
    table = _Table(groups, ["families"], ["median_rate"])
    for family in facts:
        sums: dict[Hashable, list[int]] = {}
        for agency, month, attended, offered in family.attendance:
            key: Hashable = agency if by == "agency" else month if by == "month" \
                else area_of(family)
            both = sums.setdefault(key, [0, 0])
            both[0] += attended
            both[1] += offered
        for key, (attended, offered) in sums.items():
            if key in table.rows and offered:
                table.count(key, "families")
                table.sample(key, "median_rate", 100 * attended / offered)
    return table.report()


_MAKERS = {"needs": _needs, "involvement": _involvement, "consent-coverage": _coverage,
           "referrals": _referrals, "attendance": _attendance}
