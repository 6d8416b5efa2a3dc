"""Disclosure control: what of a report's raw figures may be published.

Pure (no database, no clock). A report is computed as raw figures per group
(`RawReport`); `protect` turns it into what the API, the page and the CSV
show. No raw figure leaves the server any other way.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

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
    """`value` (>= 0) to the nearest multiple of 5: a remainder of 0, 1 or 2
    rounds down, 3 or 4 rounds up (no ties, since counts are whole numbers).

    A published r therefore stands for a true count in r-2 .. r+2.
    """
    if value < 0:
        raise ValueError("a count is never negative")
    return ROUNDING_BASE * ((value + ROUNDING_BASE // 2) // ROUNDING_BASE)


def round_half_up(value: float) -> int:
    """`value` to the nearest whole number, a half rounding up (2.5 -> 3,
    3.5 -> 4; not Python's round(), which takes halves to the even number)."""
    return math.floor(value + 0.5)


def median_of(samples: list[float], k: int) -> int | None:
    """The median of `samples` rounded to a whole number (`round_half_up`),
    or None when there are fewer than `k` of them."""
    if len(samples) < k:
        return None
    return round_half_up(statistics.median(samples))


def share_of(numerator: int | None, denominator: int | None) -> int | None:
    """A share in whole percent of two *published* counts (`round_half_up`
    of 100 * numerator / denominator); None when either is withheld or the
    denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round_half_up(100 * numerator / denominator)


def _withheld(report: RawReport, k: int) -> set[tuple[int, str]]:
    """The counts withheld, as (row index, count name): every count below k
    (primary suppression) and, for each count name, the smallest other count
    of that name when only one row withholds it (secondary suppression, so
    that a sum over the rows -- a totals row or another breakdown of the
    same families -- never isolates a single withheld count)."""
    withheld = {
        (i, name)
        for i, row in enumerate(report.rows)
        for name, value in row.counts.items()
        if value < k
    }
    names = sorted({name for row in report.rows for name in row.counts})
    for name in names:
        cells = [(i, row.counts[name]) for i, row in enumerate(report.rows) if name in row.counts]
        primary = [i for i, _ in cells if (i, name) in withheld]
        if len(primary) != 1:
            continue
        others = [(value, i) for i, value in cells if (i, name) not in withheld]
        if others:
            # The smallest, the first such row on a tie: deterministic.
            _, chosen = min(others)
            withheld.add((chosen, name))
    return withheld


def protect(report: RawReport, k: int) -> Published:
    """The publishable form of `report` under threshold `k` (>= MIN_K).

    Counts: withheld (None) below k and where secondary suppression says so
    (`_withheld`); every other count is published rounded (`round_count`).
    Medians: only from at least k observations, rounded (`median_of`).
    Shares: from the published counts (`share_of`). `suppressed` is how many
    values are None. The rows keep the report's order; each row's values are
    its counts, then its medians, then its shares, in the order given.

    Raises ValueError when k < MIN_K, a count is negative or not a whole
    number, or a share names a count the row does not have.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < MIN_K:
        raise ValueError(f"k must be a whole number of at least {MIN_K}, not {k!r}")
    for row in report.rows:
        for name, value in row.counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"count {name!r} must be a whole number >= 0, not {value!r}")
        for name, (numerator, denominator) in row.shares.items():
            if numerator not in row.counts or denominator not in row.counts:
                raise ValueError(f"share {name!r} names a count the row does not have")
    withheld = _withheld(report, k)
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
