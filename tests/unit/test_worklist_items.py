"""The worklist's pure parts: how items are ordered, that a new source is
one function, and the home page's sentence for every kind."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from coordination.casework import worklist
from coordination.casework.worklist import Item
from coordination.web.worklist import sentence

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
NAMES = {"harbour": "Harbour drop-in", "physio": "Physiotherapy"}


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=UTC)


def test_most_urgent_first_and_newest_happenings_first() -> None:
    found = [
        Item("involvement.ended", "f1", date(2026, 11, 1), "v2", at=at(1)),
        Item("consent.renew", "f2", date(2026, 12, 1), "v1"),
        Item("appointment.upcoming", "f3", date(2026, 11, 25), "apt_b", at=at(25)),
        Item("appointment.upcoming", "f3", date(2026, 11, 23), "apt_a", at=at(23)),
        Item("appointment.missed", "f4", date(2026, 11, 10), "apt_c", at=at(10)),
        Item("appointment.missed", "f5", date(2026, 11, 20), "apt_d", at=at(20)),
        Item("referral.to_answer", "f6", date(2026, 11, 30), "ref_a"),
        Item("referral.overdue", "f7", date(2026, 11, 20), "ref_b"),
        Item("involvement.ended", "f8", date(2026, 11, 15), "v5", at=at(15)),
    ]
    ordered = sorted(found, key=Item.sort_key)
    assert [i.ref for i in ordered] == ["ref_b", "apt_d", "apt_c", "ref_a", "apt_a", "apt_b",
                                        "v1", "v5", "v2"]


def test_a_new_kind_is_one_source() -> None:
    def answered(ctx: worklist.Context) -> list[Item]:
        assert ctx.agency == "physio" and ctx.today == date(2026, 11, 22)
        return [Item("referral.to_answer", "f9", date(2026, 11, 23), "ref_x")]

    def late(ctx: worklist.Context) -> list[Item]:
        return [Item("referral.overdue", "f8", date(2026, 11, 20), "ref_y")]

    session: Any = None  # the sources here read nothing
    assert [i.ref for i in worklist.assemble(session, "physio", NOW, [answered, late])] == [
        "ref_y", "ref_x"]


@pytest.mark.parametrize(("item", "expected"), [
    (Item("referral.to_answer", "f", date(2026, 11, 25), "r", agency="harbour",
          direction="in", display_name="Mira"),
     "Harbour drop-in referred Mira to your agency: accept or decline by 25 November 2026."),
    (Item("referral.overdue", "f", date(2026, 11, 20), "r", agency="harbour",
          direction="in", display_name="Mira"),
     "Harbour drop-in's referral of Mira was to be answered by 20 November 2026: it is "
     "overdue."),
    (Item("referral.overdue", "f", date(2026, 11, 20), "r", agency="physio",
          direction="out", display_name="Mira"),
     "Your referral of Mira to Physiotherapy has had no answer since it was due on "
     "20 November 2026."),
    (Item("appointment.upcoming", "f", date(2026, 11, 24), "a", at=at(24), agency="harbour",
          direction="in", display_name="Mira"),
     "Mira comes to your agency on 24 November 2026 at 09:00 UTC."),
    (Item("appointment.upcoming", "f", date(2026, 11, 24), "a", at=at(24), agency="physio",
          direction="out", display_name="Mira"),
     "Mira has an appointment with Physiotherapy on 24 November 2026 at 09:00 UTC."),
    (Item("appointment.missed", "f", date(2026, 11, 20), "a", at=at(20), agency="harbour",
          direction="in", display_name="Mira"),
     "Mira missed the appointment of 20 November 2026 at 09:00 UTC: book another one or "
     "close the referral."),
    (Item("appointment.missed", "f", date(2026, 11, 20), "a", at=at(20), agency="physio",
          direction="out", display_name="Mira"),
     "Mira missed the appointment with Physiotherapy of 20 November 2026 at 09:00 UTC: "
     "check in with the family."),
    (Item("consent.renew", "f", date(2026, 12, 20), "v1", display_name="Mira"),
     "Mira's consent form ends on 20 December 2026: ask the family to sign a new one."),
    (Item("consent.renew", "f", date(2026, 11, 20), "v1", display_name="Mira"),
     "Mira's consent form ended on 20 November 2026: ask the family to sign a new one."),
    (Item("hold.review", "f", date(2026, 12, 1), "hold_1", display_name="Mira"),
     "Your agency's protection hold on Mira is to be reviewed by 1 December 2026: renew or "
     "lift it, or it lapses after that day."),
    (Item("involvement.ended", "fam_1", date(2026, 11, 20), "v3", at=at(20)),
     "A family ended your agency's part on 20 November 2026 (family fam_1): it no longer "
     "appears for you."),
])
def test_each_kind_in_one_sentence(item: Item, expected: str) -> None:
    assert sentence(item, NAMES, NOW.date()) == expected


def test_times_keep_four_digit_years() -> None:
    # An appointment may be booked at any date-time RFC 3339 allows; its
    # answer must still be one (the demo's referrals let the fuzzer book them).
    from coordination.casework.common import iso_time

    assert iso_time(datetime(252, 6, 12, 7, 36, 34, 5, tzinfo=UTC)) == "0252-06-12T07:36:34Z"
    assert iso_time(NOW) == "2026-11-22T10:00:00Z"
