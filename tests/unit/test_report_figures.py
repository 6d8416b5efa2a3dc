"""Reports' pure parts: the period and the raw figures from families' facts
(coordination.reports.period, coordination.reports.figures)."""

from __future__ import annotations

from datetime import date

import pytest

from coordination.reports.facts import FamilyFacts, ReferralFact
from coordination.reports.figures import figures
from coordination.reports.period import Period, period_errors

AGENCIES = [("health", "Health"), ("physio", "Physio"), ("school", "School")]
AREAS = [("N1", "North"), ("S1", "South")]
PERIOD = Period.of("2026-01", "2026-03")


def raw(name: str, by: str, facts: list[FamilyFacts]) -> dict[str, dict[str, object]]:
    report = figures(name, by, PERIOD, iter(facts), AGENCIES, AREAS,
                     need_codes=("housing", "income", "other"))
    key = {"agency": "agency", "area": "area", "month": "month"}[by]
    return {row.group[key]: {**row.counts, **{k: sorted(v) for k, v in row.samples.items()}}
            for row in report.rows}


def test_periods_are_whole_months() -> None:
    assert PERIOD.months == ["2026-01", "2026-02", "2026-03"]
    assert PERIOD.start.isoformat() == "2026-01-01T00:00:00+00:00"
    assert PERIOD.end.isoformat() == "2026-04-01T00:00:00+00:00"
    assert Period.of("2026-11", "2027-02").months == ["2026-11", "2026-12", "2027-01",
                                                       "2027-02"]
    assert PERIOD.clip(date(2025, 5, 1), None) == (0, 2)
    assert PERIOD.clip(date(2026, 2, 10), date(2026, 2, 11)) == (1, 1)
    assert PERIOD.clip(date(2025, 5, 1), date(2025, 12, 31)) is None
    assert PERIOD.clip(date(2026, 4, 1), None) is None
    assert period_errors("2026-01", "2026-01") == {}
    assert period_errors("2026-00", "2026-13") == {
        "from": ["a month YYYY-MM, 2000 to 2100"], "to": ["a month YYYY-MM, 2000 to 2100"]}
    assert period_errors("2026-02", "2026-01") == {"to": ["must not be before from"]}
    assert "to" in period_errors("2020-01", "2025-01")  # 61 months
    with pytest.raises(ValueError):
        Period.of("2026-02", "2026-01")


def test_needs_count_families_once_per_group() -> None:
    one = FamilyFacts(area="N1", needs=[("health", 0, frozenset({"housing"})),
                                        ("health", 2, frozenset({"housing", "debts"})),
                                        ("school", 2, frozenset({"income"}))])
    two = FamilyFacts(area="X9", needs=[("health", 1, frozenset({"income"}))])
    silent = FamilyFacts(area="S1")
    by_agency = raw("needs", "agency", [one, two, silent])
    assert by_agency["health"] == {"families": 2, "housing": 1, "income": 1, "other": 1}
    assert by_agency["school"] == {"families": 1, "housing": 0, "income": 1, "other": 0}
    assert by_agency["physio"]["families"] == 0
    by_area = raw("needs", "area", [one, two, silent])
    assert list(by_area) == ["N1", "S1", "unknown"]  # an area no agency gives: unknown
    assert by_area["N1"]["families"] == 1 and by_area["unknown"]["income"] == 1
    assert by_area["S1"]["families"] == 0
    by_month = raw("needs", "month", [one, two])
    assert [by_month[m]["families"] for m in PERIOD.months] == [1, 1, 1]


def test_involvement_counts_agencies_per_family() -> None:
    many = FamilyFacts(involvements=[("health", 0, 2), ("physio", 1, 1), ("school", 2, 2),
                                     ("other-a", 2, 2)])
    single = FamilyFacts(involvements=[("health", 0, 0)])
    by_agency = raw("involvement", "agency", [many, single, FamilyFacts()])
    assert by_agency["health"] == {"families": 2, "agencies_1": 1, "agencies_2": 0,
                                   "agencies_3": 0, "agencies_4_plus": 1,
                                   "median_agencies": [1, 4]}
    assert by_agency["physio"]["agencies_4_plus"] == 1
    by_month = raw("involvement", "month", [many, single])
    assert by_month["2026-01"]["families"] == 2 and by_month["2026-01"]["agencies_1"] == 2
    assert by_month["2026-02"]["agencies_2"] == 1
    assert by_month["2026-03"]["agencies_3"] == 1  # health, school and other-a


def test_consent_coverage_counts_grants_per_agency() -> None:
    granted = FamilyFacts(involvements=[("health", 0, 2)], cells={"health": 3, "physio": 2})
    health_only = FamilyFacts(involvements=[("health", 0, 0)], cells={"health": 1})
    not_involved = FamilyFacts(cells={"health": 5})
    rows = raw("consent-coverage", "agency", [granted, health_only, not_involved])
    assert rows["health"] == {"families": 2, "granted:health": 2, "cells:health": 4,
                              "granted:physio": 1, "cells:physio": 2,
                              "granted:school": 0, "cells:school": 0}
    assert rows["physio"]["families"] == 0


def test_referrals_states_shares_and_days() -> None:
    family = FamilyFacts(area="S1", referrals=[
        ReferralFact("physio", 0, "attended", True, True, 3.5),
        ReferralFact("physio", 1, "declined", False, False, None),
        ReferralFact("school", 2, "closed", True, True, 10.0)])
    rows = raw("referrals", "agency", [family])
    assert rows["physio"]["referrals"] == 2
    assert rows["physio"]["state:attended"] == 1 and rows["physio"]["state:declined"] == 1
    assert rows["physio"]["accepted"] == 1 and rows["physio"]["attended"] == 1
    assert rows["physio"]["median_days_to_service"] == [3.5]
    report = figures("referrals", "agency", PERIOD, [family], AGENCIES, AREAS)
    assert report.rows[0].shares == {"share_accepted": ("accepted", "referrals"),
                                     "share_attended": ("attended", "referrals")}
    assert raw("referrals", "area", [family])["S1"]["referrals"] == 3
    assert raw("referrals", "month", [family])["2026-03"]["state:closed"] == 1


def test_attendance_rate_sums_a_familys_entries_in_the_group() -> None:
    family = FamilyFacts(attendance=[("school", 0, 9, 10), ("school", 1, 1, 10),
                                     ("health", 1, 3, 4)])
    other = FamilyFacts(attendance=[("school", 2, 5, 5)])
    rows = raw("attendance", "agency", [family, other])
    assert rows["school"] == {"families": 2, "median_rate": [50.0, 100.0]}
    assert rows["health"] == {"families": 1, "median_rate": [75.0]}
    by_month = raw("attendance", "month", [family, other])
    assert by_month["2026-02"] == {"families": 1, "median_rate": [100 * 4 / 14]}


def test_unknown_reports_and_groupings_are_refused() -> None:
    with pytest.raises(ValueError):
        figures("salaries", "agency", PERIOD, [], AGENCIES, AREAS)
    with pytest.raises(ValueError):
        figures("needs", "street", PERIOD, [], AGENCIES, AREAS)
