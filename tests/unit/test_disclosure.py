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
    report = RawReport(
        [
            RawRow({"agency": "a"}, counts={"families": 7, "referred": 40}),
            RawRow({"agency": "b"}, counts={"families": 23, "referred": 41}),
            RawRow({"agency": "c"}, counts={"families": 12, "referred": 42}),
            RawRow({"agency": "all"}, counts={"families": 42, "referred": 123}),
        ]
    )
    published = protect(report, 10)
    assert [row["values"] for row in published.rows] == [
        {"families": None, "referred": 40},
        {"families": 25, "referred": 40},
        {"families": None, "referred": 40},
        {"families": 40, "referred": 125},
    ]
    assert published.suppressed == 2


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
    report = RawReport(
        [
            RawRow({"agency": "a"}, counts={"referrals": 33, "accepted": 22},
                   shares={"accepted_share": ("accepted", "referrals")}),
            RawRow({"agency": "b"}, counts={"referrals": 40, "accepted": 4},
                   shares={"accepted_share": ("accepted", "referrals")}),
            RawRow({"agency": "c"}, counts={"referrals": 29, "accepted": 3},
                   shares={"accepted_share": ("accepted", "referrals")}),
        ]
    )
    assert _values(report) == [
        # 20 of 35 published: 57 % (not 22/33 = 67 %).
        {"referrals": 35, "accepted": 20, "accepted_share": 57},
        {"referrals": 40, "accepted": None, "accepted_share": None},
        {"referrals": 30, "accepted": None, "accepted_share": None},
    ]
    # A share of 2/3 of published counts is rounded half up: 66.67 -> 67.
    thirds = RawReport([RawRow({"agency": "a"}, counts={"n": 15, "d": 30},
                               shares={"s": ("n", "d")}),
                        RawRow({"agency": "b"}, counts={"n": 10, "d": 15},
                               shares={"s": ("n", "d")})])
    assert [v["s"] for v in _values(thirds)] == [50, 67]


def test_bad_figures_are_refused() -> None:
    with pytest.raises(ValueError, match="whole number"):
        protect(RawReport([RawRow({"agency": "a"}, counts={"n": -1})]), 10)
    with pytest.raises(ValueError, match="share"):
        protect(RawReport([RawRow({"agency": "a"}, counts={"n": 12},
                                  shares={"s": ("n", "d")})]), 10)


def test_the_same_figures_always_publish_the_same() -> None:
    report = RawReport([RawRow({"agency": str(i)}, counts={"n": i * 3}) for i in range(12)])
    assert protect(report, 10) == protect(report, 10)
