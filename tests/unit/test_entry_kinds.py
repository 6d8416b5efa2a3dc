"""The kinds of entry without a database (coordination.casework.entry_kinds):
every rule of attendance and needs, a percentage refused with what to send,
the configured codes, canonical storage and the entry in words."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coordination.casework import entry_kinds as kinds
from coordination.config import ConfigError, load_settings

CODES = kinds.DEFAULT_NEEDS_CODES
GOOD = {"attended": 40, "offered": 50, "from": "2026-09-01", "to": "2026-11-30"}


def errors(kind: str, data: Any, codes: tuple[str, ...] = CODES) -> dict[str, list[str]]:
    loaded, found = kinds.data_errors(kind, data, codes)
    assert (loaded is None) == bool(found)
    return found


def test_good_attendance_and_needs_load_as_given() -> None:
    assert kinds.data_errors("attendance", GOOD, CODES) == (GOOD, {})
    assert kinds.data_errors("needs", {"codes": ["housing", "income"]}, CODES) == (
        {"codes": ["housing", "income"]}, {})


@pytest.mark.parametrize("data", [
    {"rate": 80}, {"percentage": 80, "from": "2026-09-01", "to": "2026-11-30"},
    {"attended": "80%", "offered": 100, "from": "2026-09-01", "to": "2026-11-30"},
    {**GOOD, "attended": 0.8}, {**GOOD, "attended": 40.0}, {**GOOD, "offered": 50.5},
    0.8, 80, "80%", "80 %",
])
def test_a_percentage_or_rate_is_refused_with_what_to_send(data: Any) -> None:
    assert errors("attendance", data) == {"data": [kinds.SEND_COUNTS]}
    assert "number of sessions attended" in kinds.SEND_COUNTS
    assert "number of sessions offered and the period" in kinds.SEND_COUNTS


@pytest.mark.parametrize(("change", "key", "says"), [
    ({"attended": True}, "data.attended", "whole number"),
    ({"offered": False}, "data.offered", "whole number"),
    ({"attended": "40"}, "data.attended", "whole number"),
    ({"attended": None}, "data.attended", "null"),
    ({"attended": -1}, "data.attended", "greater than or equal to 0"),
    ({"offered": 0}, "data.offered", "greater than or equal to 1"),
    ({"offered": kinds.MAX_SESSIONS + 1, "attended": 1}, "data.offered", "less than"),
    ({"attended": 51}, "data.attended", "more than the sessions offered"),
    ({"to": "2026-08-31"}, "data.to", "ends before it starts"),
    ({"to": "2027-09-02"}, "data.to", "at most a school year (366 days)"),
    ({"from": "1 Sep 2026"}, "data.from", "Not a valid date"),
    ({"from": "2026-02-30"}, "data.from", "Not a valid date"),
    ({"to": 20261130}, "data.to", "Not a valid date"),
    ({"school": "Nord"}, "data.school", "Unknown field"),
])
def test_every_attendance_rule(change: dict[str, Any], key: str, says: str) -> None:
    found = errors("attendance", {**GOOD, **change})
    assert any(says in m for m in found[key]), found


@pytest.mark.parametrize("missing", ["attended", "offered", "from", "to"])
def test_every_attendance_key_is_required(missing: str) -> None:
    data = {k: v for k, v in GOOD.items() if k != missing}
    assert "required" in errors("attendance", data)[f"data.{missing}"][0]


def test_the_edges_of_attendance_are_allowed() -> None:
    for data in ({**GOOD, "attended": 0, "offered": 1},
                 {**GOOD, "attended": 50},
                 {**GOOD, "from": "2026-11-30", "to": "2026-11-30"},
                 # 366 days counted with both ends: a leap school year.
                 {**GOOD, "from": "2027-09-01", "to": "2028-08-31"}):
        assert errors("attendance", data) == {}, data


@pytest.mark.parametrize("data", [None, [], ["housing"], "housing"])
def test_needs_not_an_object_says_to_send_codes(data: Any) -> None:
    assert errors("needs", data) == {"data": [kinds.SEND_CODES]}


@pytest.mark.parametrize(("data", "key", "says"), [
    ({"codes": []}, "data.codes", "at least one code"),
    ({"codes": ["housing", "housing"]}, "data.codes", "each code once"),
    ({"codes": ["residence_documents"]}, "data.codes", "unknown code"),
    ({"codes": ["Housing"]}, "data.codes", "unknown code"),
    ({"codes": "housing"}, "data.codes", "Not a valid list"),
    ({"codes": [3]}, "data.codes.0", "Not a valid string"),
    ({}, "data.codes", "required"),
    ({"codes": ["housing"], "rate": 1}, "data.rate", "Unknown field"),
])
def test_every_needs_rule(data: Any, key: str, says: str) -> None:
    found = errors("needs", data)
    assert any(says in m for m in found[key]), found


def test_the_codes_are_the_configured_ones() -> None:
    assert errors("needs", {"codes": ["debt"]}, ("debt", "other")) == {}
    refused = errors("needs", {"codes": ["income"]}, ("debt", "other"))
    assert "the codes are: debt, other" in refused["data.codes"][0]


def test_the_default_codes_are_de_sloeps_reception_questions() -> None:
    assert CODES == ("income", "housing", "health", "material_help", "child_benefit",
                     "childcare", "family", "education", "parenting", "pregnancy", "training",
                     "other")
    assert not any("residence" in c or "document" in c for c in CODES)


def test_the_setting_takes_codes_and_refuses_a_status_code() -> None:
    assert load_settings({}).needs_codes == CODES
    assert load_settings({"ONESTORY_NEEDS_CODES": " debt , housing "}).needs_codes == (
        "debt", "housing")
    for bad in ("", "housing,housing", "Housing", "residence_documents", "housing,asylum",
                "a b"):
        with pytest.raises(ConfigError, match="ONESTORY_NEEDS_CODES"):
            load_settings({"ONESTORY_NEEDS_CODES": bad})


def test_a_kind_the_field_does_not_take_names_those_it_takes() -> None:
    assert kinds.kind_errors("social", ["text", "needs"], "needs") == []
    assert kinds.kind_errors("social", ["text", "needs"], "attendance") == [
        "'social' takes 'text' or 'needs', not 'attendance'"]
    assert kinds.kind_errors("contact", ["text"], "needs") == [
        "'contact' takes 'text', not 'needs'"]


def test_canonical_json_is_one_spelling_and_reads_back() -> None:
    one = kinds.canonical({"to": "2026-11-30", "attended": 40, "offered": 50,
                           "from": "2026-09-01"})
    assert one == kinds.canonical(GOOD)
    assert " " not in one and json.loads(one) == GOOD
    assert kinds.stored_data("attendance", one) == GOOD
    assert kinds.stored_data("text", "free text") is None


def test_the_entry_in_words() -> None:
    assert kinds.in_words("attendance", GOOD) == (
        "Attended 40 of 50 sessions offered, 1 Sep 2026 to 30 Nov 2026")
    assert kinds.in_words("attendance", {**GOOD, "attended": 1, "offered": 1}) == (
        "Attended 1 of 1 session offered, 1 Sep 2026 to 30 Nov 2026")
    assert kinds.in_words("needs", {"codes": ["housing", "income"]}) == "Needs: housing, income"
    assert kinds.in_words("needs", {"codes": ["material_help", "debt_advice"]}) == (
        "Needs: material help, debt advice")
    assert kinds.in_words("text", None, "As written.") == "As written."
