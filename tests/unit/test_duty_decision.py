"""The decision from the form and the family's duty grants, as a matrix:
pure Python, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from consent.model import (
    Decision,
    DutyGrant,
    DutyState,
    Form,
    Reason,
    cells_from_grants,
    decide,
    decide_cells,
    holds_duty_grant,
    is_visible,
    may_see_entry,
    revoke,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
FORM = Form(version=1, valid_until=date(2027, 11, 22),
            cells=cells_from_grants({"cps": ["involvement", "protection"],
                                     "physio": ["health"]}))
REVOKED = Form(version=2, valid_until=date(2027, 11, 22), cells=revoke(FORM.cells, None, None))


def grant(state: DutyState = DutyState.APPROVED, until: date = date(2026, 12, 31),
          agency: str = "cps", fields: tuple[str, ...] = ("involvement", "protection"),
          gid: str = "duty_1") -> DutyGrant:
    return DutyGrant(gid, agency, frozenset(fields), state, until)


CASES = {
    # name: (form, grants, agency, field, allowed, reason, basis)
    "form only": (FORM, (), "cps", "protection", True, Reason.GRANTED, "consent"),
    "grant only": (None, (grant(),), "cps", "protection", True, Reason.DUTY_GRANT,
                   "duty_grant:duty_1"),
    "both: consent first": (FORM, (grant(),), "cps", "protection", True, Reason.GRANTED,
                            "consent"),
    "grant, cell not in it": (None, (grant(),), "cps", "health", False, Reason.NO_FORM, None),
    "expired grant": (None, (grant(until=date(2026, 11, 21)),), "cps", "protection", False,
                      Reason.NO_FORM, None),
    "grant's last day counts": (None, (grant(until=date(2026, 11, 22)),), "cps",
                                "protection", True, Reason.DUTY_GRANT, "duty_grant:duty_1"),
    "unapproved grant": (None, (grant(DutyState.PENDING),), "cps", "protection", False,
                         Reason.NO_FORM, None),
    "rejected grant": (None, (grant(DutyState.REJECTED),), "cps", "protection", False,
                       Reason.NO_FORM, None),
    "revoked form, standing grant": (REVOKED, (grant(),), "cps", "protection", True,
                                     Reason.DUTY_GRANT, "duty_grant:duty_1"),
    "revoked form, no grant": (REVOKED, (), "cps", "protection", False, Reason.NOT_GRANTED,
                               None),
    "grant for another agency": (None, (grant(agency="ecec"),), "cps", "protection", False,
                                 Reason.NO_FORM, None),
    "expired form, standing grant": (
        Form(1, date(2026, 11, 1), FORM.cells), (grant(),), "cps", "protection", True,
        Reason.DUTY_GRANT, "duty_grant:duty_1"),
    "second grant in force": (None, (grant(until=date(2026, 1, 1)), grant(gid="duty_2")),
                              "cps", "protection", True, Reason.DUTY_GRANT,
                              "duty_grant:duty_2"),
}


@pytest.mark.parametrize("name", CASES)
def test_the_decision_matrix(name: str) -> None:
    form, grants, agency, field, allowed, reason, basis = CASES[name]
    decision = decide(form, agency, field, NOW, grants)
    assert decision == Decision(allowed, reason, basis)
    assert decide_cells(form, grants, agency, [field], NOW) == {field: decision}


def test_without_grants_the_decision_is_the_form_alone() -> None:
    for field in ("involvement", "protection", "health"):
        assert decide(FORM, "cps", field, NOW) == decide(FORM, "cps", field, NOW, ())


def test_authorship_and_grants_per_entry() -> None:
    own = may_see_entry(REVOKED, "cps", "health", "cps", NOW, (grant(),))
    assert own == Decision(True, Reason.AUTHOR, "author")
    other = may_see_entry(REVOKED, "cps", "protection", "health-centre", NOW, (grant(),))
    assert other.basis == "duty_grant:duty_1"
    assert not may_see_entry(REVOKED, "cps", "health", "health-centre", NOW, (grant(),))


VISIBILITY = {
    # name: (form, grants, involved, visible)
    "nothing": (None, (), False, False),
    "involved": (None, (), True, True),
    "form": (FORM, (), False, True),
    "grant in force": (None, (grant(),), False, True),
    "grant pending": (None, (grant(DutyState.PENDING),), False, False),
    "grant rejected": (None, (grant(DutyState.REJECTED),), False, False),
    "grant expired": (None, (grant(until=date(2026, 11, 21)),), False, False),
    "grant for another agency": (None, (grant(agency="ecec"),), False, False),
    "revoked form, standing grant": (REVOKED, (grant(),), False, True),
}


@pytest.mark.parametrize("name", VISIBILITY)
def test_visibility_matrix(name: str) -> None:
    form, grants, involved, visible = VISIBILITY[name]
    assert is_visible(form, "cps", involved, NOW, grants) is visible
    assert holds_duty_grant(grants, "cps", NOW) is (name in {"grant in force",
                                                              "revoked form, standing grant"})
