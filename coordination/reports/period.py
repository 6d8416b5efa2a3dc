"""A report's period and grouping: whole calendar months, pure.

A period runs from the first day of its first month (00:00 UTC) to the first
day of the month after its last one, and is cut into its months: a report
by month has one row per month, in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

# ASCII digits only (\d would take other scripts' digits) and nothing after
# the month (`$` alone would take a trailing newline): see `parse_month`.
MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")
# Reports go back no further than this, and cover at most MAX_MONTHS.
FIRST_YEAR = 2000
LAST_YEAR = 2100
MAX_MONTHS = 60
GROUPINGS = ("agency", "area", "month")
UNKNOWN_AREA = "unknown"


def parse_month(text: str) -> date | None:
    """The first day of month `text` ("YYYY-MM"), or None when it is not one."""
    found = MONTH.fullmatch(text) if isinstance(text, str) else None
    if found is None or not FIRST_YEAR <= int(found[1]) <= LAST_YEAR:
        return None
    return date(int(found[1]), int(found[2]), 1)


def _next(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def period_errors(first: str, last: str) -> dict[str, list[str]]:
    """What is wrong with a period given as two months (empty when nothing)."""
    errors: dict[str, list[str]] = {}
    what = f"a month YYYY-MM, {FIRST_YEAR} to {LAST_YEAR}"
    start, end = parse_month(first), parse_month(last)
    if start is None:
        errors["from"] = [what]
    if end is None:
        errors["to"] = [what]
    if start is not None and end is not None:
        months = (end.year - start.year) * 12 + end.month - start.month + 1
        if months < 1:
            errors["to"] = ["must not be before from"]
        elif months > MAX_MONTHS:
            errors["to"] = [f"a report covers at most {MAX_MONTHS} months"]
    return errors


@dataclass(frozen=True)
class Period:
    """Whole months `first`..`last` (each the first day of its month)."""

    first: date
    last: date

    @classmethod
    def of(cls, first: str, last: str) -> Period:
        """The period of two months "YYYY-MM"; ValueError when `period_errors` finds any."""
        start, end = parse_month(first), parse_month(last)
        if start is None or end is None or period_errors(first, last):
            raise ValueError(f"not a period: {first}..{last}")
        return cls(start, end)

    @property
    def months(self) -> list[str]:
        found, month = [], self.first
        while month <= self.last:
            found.append(f"{month.year:04d}-{month.month:02d}")
            month = _next(month)
        return found

    @property
    def end_day(self) -> date:
        """The first day after the period."""
        return _next(self.last)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, datetime.min.time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first moment after the period (exclusive)."""
        return datetime.combine(self.end_day, datetime.min.time(), tzinfo=UTC)

    def index(self, day: date) -> int:
        """The month of `day` as an index into `months` (may fall outside it)."""
        return (day.year - self.first.year) * 12 + day.month - self.first.month

    @property
    def length(self) -> int:
        """How many months."""
        return self.index(self.last) + 1

    def clip(self, first_day: date, last_day: date | None) -> tuple[int, int] | None:
        """The months of the period a span of days touches (indexes, both
        included); None when it touches none. `last_day` None: still going."""
        top = self.length - 1
        if first_day >= self.end_day or (last_day is not None and last_day < self.first):
            return None
        low = max(0, self.index(first_day))
        high = top if last_day is None else min(top, self.index(last_day))
        return low, high
