"""The consent decision as a matrix: pure Python, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from consent.model import (
    Form,
    FormView,
    Reason,
    cells_from_grants,
    change_as_read,
    decide,
    describe_grant,
    describe_revocation,
    holds_any_cell,
    is_visible,
    may_see_entry,
    revoke,
    view_of_form,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
GRID = {"physio": ["involvement", "health"], "ecec": ["involvement", "education"]}


def form(valid_until: date = date(2027, 11, 22), grants: dict[str, list[str]] = GRID) -> Form:
    return Form(version=1, valid_until=valid_until, cells=cells_from_grants(grants))


@pytest.mark.parametrize(
    ("agency", "field", "allowed", "reason"),
    [
        ("physio", "health", True, Reason.GRANTED),
        ("physio", "involvement", True, Reason.GRANTED),
        ("physio", "contact", False, Reason.NOT_GRANTED),
        ("physio", "education", False, Reason.NOT_GRANTED),
        ("ecec", "education", True, Reason.GRANTED),
        ("ecec", "health", False, Reason.NOT_GRANTED),
        ("health-centre", "health", False, Reason.NOT_GRANTED),  # not a column at all
        ("cps", "protection", False, Reason.NOT_GRANTED),
    ],
)
def test_cells_decide(agency: str, field: str, allowed: bool, reason: Reason) -> None:
    decision = decide(form(), agency, field, NOW)
    assert decision.allowed is allowed
    assert bool(decision) is allowed
    assert decision.reason is reason


@pytest.mark.parametrize("field", ["involvement", "health", "contact", "story"])
@pytest.mark.parametrize("agency", ["physio", "ecec", "health-centre"])
def test_no_form_denies_everything(agency: str, field: str) -> None:
    assert decide(None, agency, field, NOW) == decide(None, agency, field, NOW)
    assert not decide(None, agency, field, NOW)
    assert decide(None, agency, field, NOW).reason is Reason.NO_FORM


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        (datetime(2027, 11, 21, 23, 59, tzinfo=UTC), True),
        (datetime(2027, 11, 22, 0, 0, tzinfo=UTC), True),  # the last day counts whole
        (datetime(2027, 11, 22, 23, 59, 59, tzinfo=UTC), True),
        (datetime(2027, 11, 23, 0, 0, tzinfo=UTC), False),
        (datetime(2030, 1, 1, tzinfo=UTC), False),
    ],
)
def test_expiry_counts_through_the_whole_last_day(now: datetime, allowed: bool) -> None:
    decision = decide(form(valid_until=date(2027, 11, 22)), "physio", "health", now)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason is Reason.EXPIRED


def test_expiry_is_judged_in_utc() -> None:
    # 00:30 on the 23rd in Oslo is still the 22nd in UTC.
    from zoneinfo import ZoneInfo

    oslo = datetime(2027, 11, 23, 0, 30, tzinfo=ZoneInfo("Europe/Oslo"))
    assert decide(form(valid_until=date(2027, 11, 22)), "physio", "health", oslo)


@pytest.mark.parametrize(
    ("agency", "field", "left"),
    [
        ("physio", "health", {("physio", "involvement"), ("ecec", "involvement"),
                              ("ecec", "education")}),
        ("physio", None, {("ecec", "involvement"), ("ecec", "education")}),
        (None, "involvement", {("physio", "health"), ("ecec", "education")}),
        (None, None, set()),
        ("cps", None, {("physio", "involvement"), ("physio", "health"),
                       ("ecec", "involvement"), ("ecec", "education")}),
    ],
)
def test_revoke_cell_column_row_everything(
    agency: str | None, field: str | None, left: set[tuple[str, str]]
) -> None:
    assert revoke(form().cells, agency, field) == frozenset(left)


def test_revoke_then_regrant() -> None:
    v1 = form()
    v2 = Form(2, v1.valid_until, revoke(v1.cells, "physio", None))
    assert not decide(v2, "physio", "health", NOW)
    assert not is_visible(v2, "physio", False, NOW)
    v3 = Form(3, v1.valid_until, v2.cells | cells_from_grants({"physio": ["health"]}))
    assert decide(v3, "physio", "health", NOW)
    assert not decide(v3, "physio", "involvement", NOW)  # only what was granted again


@pytest.mark.parametrize(
    ("current", "involved", "visible"),
    [
        (form(), False, True),  # holds cells
        (None, True, True),  # involved, no form
        (None, False, False),
        (form(grants={"ecec": ["education"]}), False, False),  # another agency's cells
        (form(valid_until=date(2026, 11, 21)), False, False),  # expired cells count for nothing
        (form(valid_until=date(2026, 11, 21)), True, True),  # involvement still shows it
    ],
)
def test_visibility_rule(current: Form | None, involved: bool, visible: bool) -> None:
    assert is_visible(current, "physio", involved, NOW) is visible


def test_holds_any_cell() -> None:
    assert holds_any_cell(form(), "ecec", NOW)
    assert not holds_any_cell(form(), "cps", NOW)
    assert not holds_any_cell(None, "ecec", NOW)


@pytest.mark.parametrize(
    ("author", "field", "allowed", "reason"),
    [
        ("physio", "contact", True, Reason.AUTHOR),  # own entries always
        ("health-centre", "contact", False, Reason.NOT_GRANTED),
        ("health-centre", "health", True, Reason.GRANTED),
    ],
)
def test_authorship(author: str, field: str, allowed: bool, reason: Reason) -> None:
    decision = may_see_entry(form(), "physio", field, author, NOW)
    assert (decision.allowed, decision.reason) == (allowed, reason)


def test_authorship_survives_expiry_and_absence_of_form() -> None:
    late = NOW + timedelta(days=3650)
    assert may_see_entry(form(), "physio", "contact", "physio", late)
    assert may_see_entry(None, "physio", "story", "physio", NOW)


def test_grants_are_sorted_and_stable() -> None:
    assert form().grants() == {"ecec": ["education", "involvement"],
                               "physio": ["health", "involvement"]}


@pytest.mark.parametrize(
    ("agency", "field", "text"),
    [("physio", "health", "revoke cell physio/health"), ("physio", None, "revoke column physio"),
     (None, "health", "revoke row health"), (None, None, "revoke everything")],
)
def test_revocations_are_described(agency: str | None, field: str | None, text: str) -> None:
    assert describe_revocation(agency, field) == text


# --- how an agency reads a form version --------------------------------------------------

VIEW_FORM = Form(version=3, valid_until=date(2027, 11, 22), cells=frozenset({
    ("health-centre", "health"), ("physio", "involvement"), ("physio", "health"),
    ("cps", "protection")}))


@pytest.mark.parametrize(("reader", "recorder", "full", "cells"), [
    (None, None, True, VIEW_FORM.cells),                   # the family sees all
    ("physio", None, True, VIEW_FORM.cells),               # granted involvement
    ("physio", "cps", True, VIEW_FORM.cells),
    ("health-centre", "health-centre", True, VIEW_FORM.cells),  # recorded the signed form
    ("health-centre", None, False, {("health-centre", "health")}),
    ("health-centre", "physio", False, {("health-centre", "health")}),
    ("cps", "health-centre", False, {("cps", "protection")}),
    ("ecec", "health-centre", False, set()),               # no column at all
    ("ecec", None, False, set()),
])
def test_view_of_form_matrix(reader: str | None, recorder: str | None, full: bool,
                             cells: set[tuple[str, str]]) -> None:
    seen = view_of_form(VIEW_FORM, reader, recorder, NOW)
    assert seen.full is full
    assert seen.cells == frozenset(cells)


def test_an_expired_version_no_longer_grants_the_full_view() -> None:
    """After its `valid_until` day a version grants nothing, `involvement`
    included; its recorder and the family still read all of it."""
    last_day = datetime(2027, 11, 22, 23, 59, tzinfo=UTC)
    after = datetime(2027, 11, 23, 0, 0, tzinfo=UTC)
    assert view_of_form(VIEW_FORM, "physio", None, last_day).full
    assert view_of_form(VIEW_FORM, "physio", None, after) == FormView(
        False, frozenset({("physio", "involvement"), ("physio", "health")}))
    assert view_of_form(VIEW_FORM, "health-centre", "health-centre", after).full
    assert view_of_form(VIEW_FORM, None, None, after).full


@pytest.mark.parametrize(("change", "reader", "full", "read"), [
    ("revoke cell cps/protection", "physio", False, "changed"),
    ("revoke cell physio/health", "physio", False, "revoke cell physio/health"),
    ("revoke column ecec", "physio", False, "changed"),
    ("end part ecec", "physio", False, "changed"),
    ("end part physio", "physio", False, "end part physio"),
    ("revoke row health", "physio", False, "revoke row health"),
    ("revoke everything", "physio", False, "revoke everything"),
    ("signed", "physio", False, "signed"),
    ("revoke column ecec", "physio", True, "revoke column ecec"),
    ("revoke column ecec", None, True, "revoke column ecec"),
    (describe_grant("ecec", ["education", "involvement"]), "physio", False, "changed"),
    ("grant cells physio/contact", "physio", False, "grant cells physio/contact"),
])
def test_change_texts_name_no_other_agency(change: str, reader: str | None, full: bool,
                                           read: str) -> None:
    assert change_as_read(change, reader, full) == read


# --- an open emergency access (break the glass) ----------------------------------


@pytest.mark.parametrize("form_state", ["none", "not_granted", "expired"])
def test_an_open_emergency_access_allows_every_cell(form_state: str) -> None:

    now = datetime(2026, 11, 22, 10, tzinfo=UTC)
    form = {"none": None,
            "not_granted": Form(1, date(2027, 1, 1), frozenset({("physio", "health")})),
            "expired": Form(1, date(2026, 1, 1), frozenset({("cps", "health")}))}[form_state]
    assert not decide(form, "cps", "health", now)
    allowed = decide(form, "cps", "health", now, emergency=True)
    assert allowed and allowed.reason == Reason.EMERGENCY
    assert not is_visible(form, "cps", False, now)
    assert is_visible(form, "cps", False, now, emergency=True)


def test_an_emergency_access_never_opens_a_minimal_data_agencys_entry() -> None:

    now = datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert not may_see_entry(None, "cps", "story", "ngo", now, emergency=True,
                             author_minimal=True)
    assert may_see_entry(None, "cps", "story", "physio", now, emergency=True,
                         author_minimal=False).reason == Reason.EMERGENCY
    assert may_see_entry(None, "cps", "story", "cps", now, emergency=True,
                         author_minimal=True).reason == Reason.AUTHOR
    assert not may_see_entry(None, "cps", "story", "physio", now)
