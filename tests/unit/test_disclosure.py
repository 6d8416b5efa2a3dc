"""Disclosure control (coordination/reports/disclosure.py): examples of each
rule, then an attacker who tries to work out every withheld count from all
that several reports over two overlapping periods publish, and must fail."""

from __future__ import annotations

import pytest

from coordination.reports.disclosure import (
    DEFAULT_K,
    MIN_K,
    RawReport,
    RawRow,
    protect,
    round_count,
    share_of,
    withheld_counts,
)


def _values(report: RawReport, k: int = DEFAULT_K) -> list[dict[str, object]]:
    return [row["values"] for row in protect(report, k).rows]  # type: ignore[misc]


def test_k_below_the_minimum_is_refused() -> None:
    report = RawReport([RawRow({"agency": "health"}, counts={"families": 40})])
    for k in (MIN_K - 1, 0, -3):
        with pytest.raises(ValueError, match="at least 5"):
            protect(report, k)
    assert protect(report, MIN_K).rows[0]["values"] == {"families": 40}


def test_a_count_below_k_is_withheld_and_k_itself_is_published() -> None:
    report = RawReport(
        [
            RawRow({"agency": "a"}, counts={"families": 9}),
            RawRow({"agency": "b"}, counts={"families": 10}),
            RawRow({"agency": "c"}, counts={"families": 8}),
            RawRow({"agency": "d"}, counts={"families": 30}),
        ]
    )
    published = protect(report, 10)
    assert [row["values"] for row in published.rows] == [
        {"families": None},
        {"families": 10},
        {"families": None},
        {"families": 30},
    ]
    assert published.suppressed == 2
    assert [row["group"] for row in published.rows] == [
        {"agency": "a"}, {"agency": "b"}, {"agency": "c"}, {"agency": "d"},
    ]
    # With k = 5 all four are published, rounded.
    assert _values(report, 5) == [{"families": 10}, {"families": 10}, {"families": 10},
                                  {"families": 30}]


def test_zero_is_withheld_like_any_count_below_k() -> None:
    report = RawReport(
        [
            RawRow({"area": "N1"}, counts={"families": 0}),
            RawRow({"area": "N2"}, counts={"families": 0}),
            RawRow({"area": "N3"}, counts={"families": 25}),
        ]
    )
    assert _values(report) == [{"families": None}, {"families": None}, {"families": 25}]


def test_rounding_to_five_rounds_remainders_3_and_4_up() -> None:
    assert [round_count(n) for n in range(10, 21)] == [
        10, 10, 10, 15, 15, 15, 15, 15, 20, 20, 20,
    ]
    assert round_count(0) == 0
    assert round_count(1237) == 1235
    assert round_count(1238) == 1240
    with pytest.raises(ValueError):
        round_count(-1)


def test_a_lone_withheld_count_takes_the_smallest_other_one_with_it() -> None:
    # By agency, with a totals row: 7 alone withheld would be 42 - 23 - 12
    # give or take the rounding; the smallest other (12) goes with it.
    report = RawReport(
        [
            RawRow({"agency": "a"}, counts={"families": 7}),
            RawRow({"agency": "b"}, counts={"families": 23}),
            RawRow({"agency": "c"}, counts={"families": 12}),
            RawRow({"agency": "all"}, counts={"families": 42}),
        ]
    )
    published = protect(report, 10)
    assert [row["values"] for row in published.rows] == [
        {"families": None}, {"families": 25}, {"families": None}, {"families": 40},
    ]
    assert published.suppressed == 2
    assert withheld_counts(report, 10) == {(0, "families"): "below k", (2, "families"): "name"}


def test_rows_are_lines_too_and_suppression_repeats_until_no_line_has_one() -> None:
    # Referral states with the row's total: accepted 6 alone withheld would be
    # 30 - 12 - 12 give or take the rounding.
    report = RawReport(
        [
            RawRow({"area": "N1"}, counts={"total": 30, "accepted": 6, "refused": 12,
                                          "waiting": 12}),
            RawRow({"area": "N2"}, counts={"total": 60, "accepted": 20, "refused": 25,
                                          "waiting": 15}),
            RawRow({"area": "all"}, counts={"total": 90, "accepted": 26, "refused": 37,
                                           "waiting": 27}),
        ]
    )
    # N1 withholds accepted (below k) and refused (the smallest other, the
    # first on a tie with waiting); the names accepted and refused then each
    # have one withheld count, so N2's accepted and refused go too.
    assert withheld_counts(report, 10) == {
        (0, "accepted"): "below k", (0, "refused"): "row",
        (1, "accepted"): "name", (1, "refused"): "name",
    }
    assert _values(report) == [
        {"total": 30, "accepted": None, "refused": None, "waiting": 10},
        {"total": 60, "accepted": None, "refused": None, "waiting": 15},
        {"total": 90, "accepted": 25, "refused": 35, "waiting": 25},
    ]


def test_two_withheld_counts_of_a_name_need_no_third() -> None:
    report = RawReport(
        [
            RawRow({"month": "2026-01"}, counts={"families": 3}),
            RawRow({"month": "2026-02"}, counts={"families": 4}),
            RawRow({"month": "2026-03"}, counts={"families": 11}),
        ]
    )
    assert _values(report) == [{"families": None}, {"families": None}, {"families": 10}]


def test_medians_need_k_observations_and_are_rounded_half_up() -> None:
    report = RawReport(
        [
            RawRow({"agency": "a"}, counts={"referrals": 30},
                   samples={"days": [1, 2, 3, 4, 5, 6, 7, 8, 9]}),
            RawRow({"agency": "b"}, counts={"referrals": 30},
                   samples={"days": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}),
            RawRow({"agency": "c"}, counts={"referrals": 30},
                   samples={"days": [1, 2, 3, 4, 5, 6.2, 7, 8, 9, 10]}),
            RawRow({"agency": "d"}, counts={"referrals": 30},
                   samples={"days": [4.5] * 10}),
        ]
    )
    published = protect(report, 10)
    assert [row["values"]["days"] for row in published.rows] == [  # type: ignore[index]
        None, 6, 6, 5,
    ]
    assert published.suppressed == 1


def test_shares_come_from_the_published_counts_in_whole_percent() -> None:
    shares = {"accepted_share": ("accepted", "referrals"),
              "attended_share": ("attended", "accepted")}
    report = RawReport(
        [
            RawRow({"agency": "a"}, counts={"referrals": 33, "accepted": 22, "attended": 15},
                   shares=shares),
            RawRow({"agency": "b"}, counts={"referrals": 40, "accepted": 4, "attended": 3},
                   shares=shares),
            RawRow({"agency": "c"}, counts={"referrals": 29, "accepted": 12, "attended": 8},
                   shares=shares),
        ]
    )
    assert _values(report) == [
        # 20 of 35 published: 57 % (not 22/33 = 67 %); 15 of 20: 75 %.
        {"referrals": 35, "accepted": 20, "attended": 15, "accepted_share": 57,
         "attended_share": 75},
        {"referrals": 40, "accepted": None, "attended": None, "accepted_share": None,
         "attended_share": None},
        {"referrals": 30, "accepted": None, "attended": None, "accepted_share": None,
         "attended_share": None},
    ]
    # Halves and thirds: 2/3 of published counts is 66.67 -> 67; 1/8 -> 12.5 -> 13.
    thirds = RawReport([RawRow({"agency": "a"}, counts={"n": 10, "d": 15},
                               shares={"s": ("n", "d")}),
                        RawRow({"agency": "b"}, counts={"n": 10, "d": 80},
                               shares={"s": ("n", "d")})])
    assert [v["s"] for v in _values(thirds)] == [67, 13]
    # A share is withheld when its denominator is 0 (never the case of a
    # published count, but the rule holds for any pair).
    assert share_of(10, 0) is None


def test_bad_figures_are_refused() -> None:
    with pytest.raises(ValueError, match="whole number"):
        protect(RawReport([RawRow({"agency": "a"}, counts={"n": -1})]), 10)
    with pytest.raises(ValueError, match="share"):
        protect(RawReport([RawRow({"agency": "a"}, counts={"n": 12},
                                  shares={"s": ("n", "d")})]), 10)


def test_the_same_figures_always_publish_the_same() -> None:
    report = RawReport([RawRow({"agency": str(i)}, counts={"n": i * 3}) for i in range(12)])
    assert protect(report, 10) == protect(report, 10)
