"""Disclosure control: what of a report's raw figures may be published.

Pure (no database, no clock). A report is computed as raw figures per group
(`RawReport`); `protect` turns it into what the API, the page and the CSV
show. No raw figure leaves the server any other way.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Literal

# The smallest k an installation may configure (CONTRACT.md: never below 5).
MIN_K = 5
DEFAULT_K = 10
# Every published count is a multiple of this (see round_count).
ROUNDING_BASE = 5


@dataclass(frozen=True)
class RawRow:
    """One group's raw figures.

    `group`: what the row is about, e.g. {"agency": "health"}, {"area": "N1",
    "name": "North"}, {"month": "2026-03"}.
    `counts`: value name -> a count (of families, referrals, entries...).
    `samples`: value name -> the observations whose median is published
    (for example days from referral to first attended appointment); the
    median is given only when there are at least k of them.
    `shares`: value name -> (numerator count name, denominator count name):
    a share in whole percent, worked out from what is published of the two
    counts, never from the raw ones.
    """

    group: dict[str, str]
    counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    shares: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class RawReport:
    rows: list[RawRow]


@dataclass(frozen=True)
class Published:
    """What may be shown: `rows` as the API answers them ([{"group": {...},
    "values": {name: number or None}}]) and how many values were withheld."""

    rows: list[dict[str, object]]
    suppressed: int


def round_count(value: int) -> int:
    """`value` (>= 0) rounded up to a multiple of 5: 11 to 15 all give 15,
    15 gives 15, 0 gives 0. A published r therefore stands for a true count
    in r - 4 .. r.

    Up rather than to the nearest: the least a published count can be
    (r - 4, one more than a multiple of 5) never equals the greatest a sum
    of other counts can be (a multiple of 5, see `withheld_below`), so a
    total and its parts never close in on a withheld part from one
    relation; see the README, "Disclosure control".
    """
    if value < 0:
        raise ValueError("a count is never negative")
    return -(-value // ROUNDING_BASE) * ROUNDING_BASE


def withheld_below(k: int) -> int:
    """Counts below this are withheld: k itself, raised to one more than a
    multiple of 5 (k = 10 -> 11, k = 5 or 6 -> 6, k = 7 -> 11). A withheld
    count then stands for 0 .. a multiple of 5, the same shape as a
    published r's r - 4 .. r (see `round_count`)."""
    return -(-(k - 1) // ROUNDING_BASE) * ROUNDING_BASE + 1


def round_half_up(value: float) -> int:
    """`value` to the nearest whole number, a half rounding up (2.5 -> 3,
    3.5 -> 4; not Python's round(), which takes halves to the even number)."""
    return math.floor(value + 0.5)


def median_of(samples: list[float], k: int) -> int | None:
    """The median of `samples` rounded to a whole number (`round_half_up`),
    or None when there are fewer of them than counts must reach to be
    published (`withheld_below(k)`, at least k): a median of 10 observations
    beside a withheld count of those 10 would say the count is 10."""
    if len(samples) < withheld_below(k):
        return None
    return round_half_up(statistics.median(samples))


def share_of(numerator: int | None, denominator: int | None) -> int | None:
    """A share in whole percent of two *published* counts (`round_half_up`
    of 100 * numerator / denominator); None when either is withheld or the
    denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round_half_up(100 * numerator / denominator)


# Why a count is withheld: below the threshold ("below k"), or taken with a
# lone withheld count of the same row ("row") or of the same count name across
# the rows ("name"); or because, were one count of its line the sum of the
# others, the withheld ones would have a single possibility ("sum").
Reason = Literal["below k", "row", "name", "sum"]
Cell = tuple[int, str]


def withheld_counts(report: RawReport, k: int) -> dict[Cell, Reason]:
    """The counts to withhold, as (row index, count name) -> why.

    Raises ValueError when k < MIN_K.

    Primary suppression: every count below `withheld_below(k)`. Secondary
    suppression, over the report's lines -- each row, and each count name
    across the rows -- repeated until nothing changes:

    - a line in which exactly one count is withheld and some are not also
      withholds its smallest published count (the first in the line's order
      on a tie), so that the line's total (a totals row or column, or the
      same count in another breakdown of the same families) never gives
      away a single withheld count;
    - a line in which some published count, taken as the sum of the rest of
      the line, would leave the withheld counts a single possibility (with
      the bounds a reader has: r - 4 .. r for a published r, 0 .. the
      threshold - 1 for a count below it, at least the threshold for one
      withheld with another) also withholds its smallest other published
      count, or that count itself when it has no other.
    """
    _check_k(k)
    below = withheld_below(k)
    reasons: dict[Cell, Reason] = {
        (i, name): "below k"
        for i, row in enumerate(report.rows)
        for name, value in row.counts.items()
        if value < below
    }
    names = list(dict.fromkeys(name for row in report.rows for name in row.counts))
    lines: list[tuple[Reason, list[Cell]]] = [
        ("row", [(i, name) for name in row.counts]) for i, row in enumerate(report.rows)
    ]
    lines += [
        ("name", [(i, name) for i, row in enumerate(report.rows) if name in row.counts])
        for name in names
    ]
    changed = True
    while changed:
        changed = False
        for why, cells in lines:
            if sum(1 for cell in cells if cell in reasons) != 1:
                continue
            published = [
                (_value_of(report, cell), position, cell)
                for position, cell in enumerate(cells)
                if cell not in reasons
            ]
            if published:
                reasons[min(published)[2]] = why
                changed = True
        for _, cells in lines:
            squeezing = _squeezing(report, cells, reasons, below)
            if squeezing is not None:
                reasons[squeezing] = "sum"
                changed = True
    return reasons


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < MIN_K:
        raise ValueError(f"k must be a whole number of at least {MIN_K}, not {k!r}")


def _value_of(report: RawReport, cell: Cell) -> int:
    return report.rows[cell[0]].counts[cell[1]]


def _squeezing(
    report: RawReport, cells: list[Cell], reasons: dict[Cell, Reason], below: int
) -> Cell | None:
    """The count to withhold so that no published count of the line `cells`,
    taken as the sum of the others, leaves the withheld ones a single
    possibility; None when none does."""
    withheld = [cell for cell in cells if cell in reasons]
    if not withheld:
        return None
    # A reader cannot tell a count withheld for being small from one withheld
    # with it, so each is at least 0; the small ones are at most below - 1.
    least = 0
    most = sum(below - 1 if reasons[cell] == "below k" else math.inf for cell in withheld)
    bounds = {
        cell: (round_count(_value_of(report, cell)) - 4, round_count(_value_of(report, cell)))
        for cell in cells
        if cell not in reasons
    }
    for cell, (low, high) in bounds.items():
        rest_low = sum(b[0] for other, b in bounds.items() if other != cell)
        rest_high = sum(b[1] for other, b in bounds.items() if other != cell)
        # The withheld counts' sum, were `cell` the total: empty when it
        # cannot be (the others add up to more), one value when it pins them.
        if max(low - rest_high, least) == min(high - rest_low, most):
            parts = [(_value_of(report, other), other) for other in bounds if other != cell]
            return min(parts)[1] if parts else cell
    return None


def protect(report: RawReport, k: int) -> Published:
    """The publishable form of `report` under threshold `k` (>= MIN_K).

    Counts: withheld (None) below `withheld_below(k)` and where secondary
    suppression says so (`withheld_counts`); every other count is published
    rounded up to a multiple of 5 (`round_count`).
    Medians: only from as many observations as a count must reach to be
    published, rounded (`median_of`).
    Shares: from the published counts (`share_of`). `suppressed` is how many
    values are None. The rows keep the report's order; each row's values are
    its counts, then its medians, then its shares, in the order given.

    Raises ValueError when k < MIN_K, a count is negative or not a whole
    number, or a share names a count the row does not have.
    """
    _check_k(k)
    for row in report.rows:
        for name, value in row.counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"count {name!r} must be a whole number >= 0, not {value!r}")
        for name, (numerator, denominator) in row.shares.items():
            if numerator not in row.counts or denominator not in row.counts:
                raise ValueError(f"share {name!r} names a count the row does not have")
    withheld = withheld_counts(report, k)
    rows: list[dict[str, object]] = []
    suppressed = 0
    for i, row in enumerate(report.rows):
        values: dict[str, int | None] = {}
        for name, value in row.counts.items():
            values[name] = None if (i, name) in withheld else round_count(value)
        for name, samples in row.samples.items():
            values[name] = median_of(samples, k)
        for name, (numerator, denominator) in row.shares.items():
            values[name] = share_of(values[numerator], values[denominator])
        suppressed += sum(1 for value in values.values() if value is None)
        rows.append({"group": dict(row.group), "values": values})
    return Published(rows=rows, suppressed=suppressed)
