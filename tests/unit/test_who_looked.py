"""The family's list of who looked: routine repeats by one person on one day
(in the family's time zone) are one line; anything else stays its own line."""

from __future__ import annotations

from typing import Any

import pytest

from audit.model import AuditEntry
from coordination.casework.access_log import _grouped, _log_item

NAMES = {"physio": "Physiotherapy"}


def entry(seq: int, at: str, *, actor: str = "physio1", action: str = "record.read",
          outcome: str = "ok", shown: str | None = "health", detail: str | None = None
          ) -> AuditEntry:
    return AuditEntry(seq=seq, at=at + ".000000Z", action=action, outcome=outcome,
                      actor=actor, agency_id="physio", role="practitioner",
                      family_id="fam_x", shown=shown, withheld=None, detail=detail,
                      prev_hash="0" * 64, hash="0" * 64)


def grouped(rows: list[AuditEntry], tz: str = "UTC") -> list[dict[str, Any]]:
    rows = sorted(rows, key=lambda r: r.seq, reverse=True)  # newest first, as read
    return _grouped(rows, [_log_item(r, NAMES) for r in rows], tz)


def test_one_persons_looks_on_one_day_are_one_line() -> None:
    out = grouped([entry(1, "2026-11-22T09:00:00"), entry(2, "2026-11-22T11:00:00"),
                   entry(3, "2026-11-22T15:00:00"), entry(4, "2026-11-23T09:00:00")])
    assert [(i["seq"], i["times"]) for i in out] == [(4, 1), (3, 3)]


@pytest.mark.parametrize(("differs", "other"), [
    ("person", {"actor": "physio2"}),
    ("action", {"action": "consent.read"}),
    ("fields", {"shown": "health,story"}),
    ("own notes", {"detail": '{"partial":["health"]}'}),
])
def test_looks_that_differ_stay_apart(differs: str, other: dict[str, Any]) -> None:
    out = grouped([entry(1, "2026-11-22T09:00:00"), entry(2, "2026-11-22T10:00:00", **other)])
    assert [i["times"] for i in out] == [1, 1], differs


def test_refusals_are_grouped_apart_and_writes_never() -> None:
    refused = grouped([entry(1, "2026-11-22T09:00:00", outcome="denied", action="request.denied"),
                       entry(2, "2026-11-22T09:05:00", outcome="denied", action="request.denied"),
                       entry(3, "2026-11-22T09:10:00")])
    writes = grouped([entry(1, "2026-11-22T09:00:00", action="entry.write"),
                      entry(2, "2026-11-22T09:05:00", action="entry.write")])
    assert [(i["seq"], i["refused"], i["times"]) for i in refused] == [
        (3, False, 1), (2, True, 2)]
    assert [i["times"] for i in writes] == [1, 1]


def test_the_day_is_the_familys_day() -> None:
    # 22:30 and 23:30 UTC on 22 November are 23:30 on the 22nd and 00:30 on
    # the 23rd in Oslo; 23:30 UTC and 00:30 UTC the next day are one Oslo day.
    apart = [entry(1, "2026-11-22T22:30:00"), entry(2, "2026-11-22T23:30:00")]
    assert [i["times"] for i in grouped(apart, "UTC")] == [2]
    assert [i["times"] for i in grouped(apart, "Europe/Oslo")] == [1, 1]
    together = [entry(1, "2026-11-22T23:30:00"), entry(2, "2026-11-23T00:30:00")]
    assert [i["times"] for i in grouped(together, "Europe/Oslo")] == [2]


def test_own_notes_are_told_apart_from_others() -> None:
    [item] = grouped([entry(1, "2026-11-22T09:00:00", shown="health,involvement",
                            detail='{"partial":["health"]}')])
    assert item["fields_own"] == ["health"] and item["fields_shown"] == ["involvement"]


def test_a_referral_names_the_agency() -> None:
    [item] = grouped([entry(1, "2026-11-22T09:00:00", action="involvement.refer", shown=None,
                            detail='{"agency":"physio"}')])
    assert (item["about_agency"], item["about_agency_name"]) == ("physio", "Physiotherapy")


@pytest.mark.parametrize("detail", ["not json", "[1, 2]", '{"partial": "health"}', None])
def test_odd_details_read_as_nothing(detail: str | None) -> None:
    [item] = grouped([entry(1, "2026-11-22T09:00:00", detail=detail)])
    assert item["fields_own"] == [] and item["fields_shown"] == ["health"]
