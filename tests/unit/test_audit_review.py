"""Which audit entries are unusual (`audit.review.unusual`), without a database.

Each rule is held at its edges: the working day's first and last minute,
the twentieth and twenty-first family, the second and third refusal, an
hour and a second apart; acts of families and of unknown names never count
as one person's habits; and only the entries on screen are flagged, however
much context comes with them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from audit.chain import audit_time
from audit.review import Rules, unusual
from tests.conftest import T0

_seq = itertools.count(1)


@dataclass(frozen=True)
class E:
    seq: int
    at: str
    action: str
    outcome: str = "ok"
    actor: str | None = "nurse1"
    role: str | None = "practitioner"
    family_id: str | None = None
    reason: str | None = None


def entry(action: str, when: datetime = T0, **kw: object) -> E:
    return E(next(_seq), audit_time(when), action, **kw)  # type: ignore[arg-type]


def read(family: str, when: datetime = T0, **kw: object) -> E:
    return entry("record.read", when, family_id=family, **kw)


def refusal(when: datetime = T0, **kw: object) -> E:
    return entry("request.denied", when, outcome="denied", reason="role", **kw)


def at(hour: int, minute: int = 0) -> datetime:
    return T0.replace(hour=hour, minute=minute)


# --- 1. out of hours ------------------------------------------------------------------


@pytest.mark.parametrize(("when", "flagged"), [
    (at(6, 59), True), (at(7, 0), False), (at(12, 0), False), (at(18, 59), False),
    (at(19, 0), True), (at(23, 30), True), (at(0, 0), True),
])
def test_a_staff_act_on_a_family_outside_the_day(when: datetime, flagged: bool) -> None:
    act = read("fam_a", when)
    expected = {act.seq: [f"out of hours ({when:%H:%M} UTC)"]} if flagged else {}
    assert unusual([act]) == expected


@pytest.mark.parametrize("act", [
    entry("login", at(23)),  # no family
    entry("record.read", at(23), actor="family", role="family", family_id="fam_a"),
    entry("login.failed", at(23), outcome="denied", actor=None, role=None, family_id="fam_a",
          reason="wrong_code_or_pin"),
], ids=["no-family", "the-family-itself", "unknown-name"])
def test_night_acts_that_are_not_staff_on_a_family(act: E) -> None:
    assert unusual([act]) == {}


def test_the_working_day_is_a_rule_parameter() -> None:
    act = read("fam_a", at(20))
    assert unusual([act], rules=Rules(day_starts=6, day_ends=22)) == {}


# --- 2. many families in an hour ---------------------------------------------------


def test_the_twenty_first_family_within_an_hour() -> None:
    reads = [read(f"fam_{i}", T0 + timedelta(minutes=2 * i)) for i in range(21)]
    flags = unusual(reads)
    assert flags == {reads[20].seq: ["21 families in an hour"]}


def test_twenty_families_or_one_family_often_are_not_unusual() -> None:
    twenty = [read(f"fam_{i}", T0 + timedelta(minutes=i)) for i in range(20)]
    again = [read("fam_a", T0 + timedelta(minutes=i)) for i in range(40)]
    assert unusual(twenty) == {}
    assert unusual(again) == {}


def test_reading_families_referrals_counts_as_reading_them() -> None:
    """A referral's reason and history are the family's content: reading one
    (or a family's list of them) is a read of that family."""
    looks = [read(f"fam_{i}", T0 + timedelta(minutes=i)) for i in range(18)]
    looks += [entry("referral.read", T0 + timedelta(minutes=19), family_id="fam_r1"),
              entry("referral.list", T0 + timedelta(minutes=20), family_id="fam_r2"),
              entry("referral.read", T0 + timedelta(minutes=21), family_id="fam_r3")]
    assert unusual(looks) == {looks[-1].seq: ["21 families in an hour"]}


def test_families_more_than_an_hour_apart_do_not_add_up() -> None:
    early = [read(f"fam_{i}", T0) for i in range(20)]
    late = read("fam_late", T0 + timedelta(hours=1, seconds=1))
    assert unusual([*early, late]) == {}
    on_the_hour = read("fam_late", T0 + timedelta(hours=1))
    assert unusual([*early, on_the_hour]) == {on_the_hour.seq: ["21 families in an hour"]}


def test_refused_reads_and_other_people_are_not_counted() -> None:
    mine = [read(f"fam_{i}", T0) for i in range(15)]
    theirs = [read(f"fam_x{i}", T0, actor="physio1") for i in range(15)]
    refused = [read(f"fam_y{i}", T0, outcome="denied") for i in range(15)]
    last = read("fam_last", T0 + timedelta(minutes=1))
    flags = unusual([*mine, *theirs, *refused, last])
    assert last.seq not in flags  # 16 families of nurse1's own, not 46
    assert set(flags) == {r.seq for r in refused[2:]}  # refused reads are refusals


def test_only_the_entries_shown_are_flagged_and_context_counts() -> None:
    earlier = [read(f"fam_{i}", T0 + timedelta(minutes=i)) for i in range(25)]
    shown = [read("fam_new", T0 + timedelta(minutes=30))]
    assert unusual(shown) == {}
    assert unusual(shown, earlier) == {shown[0].seq: ["26 families in an hour"]}
    # the same entries in both lists are counted once
    assert unusual(shown, [*earlier, *shown]) == {shown[0].seq: ["26 families in an hour"]}


def test_the_threshold_is_a_rule_parameter() -> None:
    reads = [read(f"fam_{i}", T0) for i in range(3)]
    assert unusual(reads, rules=Rules(many_families=2)) == {reads[2].seq: ["3 families in an hour"]}


# --- 3. repeated refusals ---------------------------------------------------------


def test_the_third_refusal_within_an_hour() -> None:
    refusals = [refusal(T0 + timedelta(minutes=20 * i)) for i in range(4)]
    assert unusual(refusals) == {refusals[2].seq: ["3 refusals in an hour"],
                                 refusals[3].seq: ["4 refusals in an hour"]}  # 0 to 60 min


def test_two_refusals_or_three_spread_out_are_not_unusual() -> None:
    assert unusual([refusal(T0), refusal(T0 + timedelta(minutes=5))]) == {}
    spread = [refusal(T0 + timedelta(minutes=31 * i)) for i in range(3)]
    assert unusual(spread) == {}


def test_failed_sign_ins_count_as_refusals() -> None:
    acts = [entry("login.failed", T0 + timedelta(minutes=i), outcome="denied",
                  reason="wrong_password") for i in range(3)]
    assert unusual(acts) == {acts[2].seq: ["3 refusals in an hour"]}


@pytest.mark.parametrize(("actor", "role"), [("family", "family"), (None, None)])
def test_refusals_of_families_or_unknown_names_are_not_one_persons(
        actor: str | None, role: str | None) -> None:
    acts = [entry("login.failed", T0, outcome="denied", actor=actor, role=role,
                  reason="wrong_code_or_pin") for _ in range(5)]
    assert unusual(acts) == {}


def test_refusals_in_context_count_toward_a_shown_one() -> None:
    earlier = [refusal(T0), refusal(T0 + timedelta(minutes=1))]
    shown = refusal(T0 + timedelta(minutes=2))
    assert unusual([shown], earlier) == {shown.seq: ["3 refusals in an hour"]}


# --- 4. sign-in slowed down or locked ------------------------------------------------


@pytest.mark.parametrize(("actor", "role", "reason", "why"), [
    ("family", "family", "slowed_down", "sign-in slowed down"),
    ("nurse1", "practitioner", "locked_out", "sign-in locked"),
    (None, None, "locked_out", "sign-in locked"),
])
def test_a_throttled_sign_in(actor: str | None, role: str | None, reason: str,
                             why: str) -> None:
    act = entry("login.failed", at(12), outcome="denied", actor=actor, role=role,
                reason=reason)
    assert unusual([act]) == {act.seq: [why]}


def test_a_plain_wrong_pin_is_not_unusual() -> None:
    act = entry("login.failed", at(12), outcome="denied", actor="family", role="family",
                reason="wrong_code_or_pin")
    assert unusual([act]) == {}


def test_reasons_add_up() -> None:
    earlier = [refusal(at(22)), refusal(at(22, 1))]
    late = entry("request.denied", at(22, 2), outcome="denied", family_id="fam_a",
                 reason="not_visible")
    assert unusual([late], earlier) == {late.seq: ["out of hours (22:02 UTC)",
                                                   "3 refusals in an hour"]}
