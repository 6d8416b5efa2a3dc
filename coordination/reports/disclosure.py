"""Disclosure control: what of a report's raw figures may be published.

Pure (no database, no clock). A report is computed as raw figures per group
(`RawReport`); `protect` turns it into what the API, the page and the CSV
show. No raw figure leaves the server any other way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The smallest k an installation may configure (CONTRACT.md: never below 5).
MIN_K = 5
DEFAULT_K = 10


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


def protect(report: RawReport, k: int) -> Published:
    """The publishable form of `report` under threshold `k` (>= MIN_K)."""
    raise NotImplementedError("disclosure control is being built (issue 12)")
