"""The family's numbering of consent versions while a hold conceals an
agency's involvement (`coordination.casework.concealment`), without a
database."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any

from consent.model import Form
from coordination.casework.concealment import (
    Concealed,
    change_for_family,
    conceal_form,
    family_numbering,
    shown_version,
)

HIDE_CPS = Concealed(involvement=frozenset({"cps"}))


def _v(version: int, change: str, changed_by: str, *cells: tuple[str, str],
       statistics: bool = False) -> Any:
    row = SimpleNamespace(version=version, change=change, changed_by=changed_by,
                          statistics=statistics)
    return row, Form(version, date(2027, 1, 1), frozenset(cells))


VERSIONS = [
    _v(1, "signed", "coord1", ("hc", "health"), ("cps", "protection")),
    _v(2, "revoke cell cps/protection", "coord1", ("hc", "health")),
    _v(3, "revoke row health", "family"),
    _v(4, "grant cells cps/health", "family", ("cps", "health")),
    _v(5, "re-signed", "coord1", ("cps", "health")),
    _v(6, "end part physio", "family", ("cps", "health")),
]


def test_versions_that_changed_only_the_concealed_agency_are_left_out() -> None:
    numbering = family_numbering(VERSIONS, HIDE_CPS)
    # 2 and 4 touched only child protection; a signed form (5) and a change
    # naming a visible agency (6) stay, even when the grid the family sees
    # did not change.
    assert numbering == {1: 1, 2: None, 3: 2, 4: None, 5: 3, 6: 4}
    assert shown_version(numbering, 2) == (1, 1)
    assert shown_version(numbering, 4) == (3, 2)
    assert shown_version(numbering, 6) == (6, 4)


def test_a_version_that_changed_the_counting_answer_stays() -> None:
    """The family's answer (`statistics yes|no`) changes no cell, but it is
    the family's act: left out, the family would read its old answer."""
    versions = [
        _v(1, "signed", "coord1", ("hc", "health"), ("cps", "protection")),
        _v(2, "statistics yes", "family", ("hc", "health"), ("cps", "protection"),
           statistics=True),
        _v(3, "revoke cell cps/protection", "coord1", ("hc", "health"), statistics=True),
        _v(4, "statistics no", "family", ("hc", "health")),
    ]
    numbering = family_numbering(versions, HIDE_CPS)
    assert numbering == {1: 1, 2: 2, 3: None, 4: 3}
    assert shown_version(numbering, 3) == (2, 2)


def test_without_a_hold_every_version_keeps_its_number() -> None:
    assert family_numbering(VERSIONS, Concealed()) == {v: v for v in range(1, 7)}


def test_the_form_as_the_family_reads_it() -> None:
    out = {"version": 4, "grants": {"cps": ["health"], "hc": ["health"]},
           "involved": ["cps", "hc"], "recorded_by": "cps",
           "change": "revoke column cps"}
    assert conceal_form(out, HIDE_CPS, 2) == {
        "version": 2, "grants": {"hc": ["health"]}, "involved": ["hc"],
        "recorded_by": None, "change": "changed"}
    assert change_for_family("revoke column hc", HIDE_CPS) == "revoke column hc"


def test_what_a_hold_leaves_out_of_who_looked() -> None:
    held = Concealed(involvement=frozenset({"cps"}), entries=frozenset({"team"}),
                     access=frozenset({"police"}))
    assert held.log_row_hidden("police", "record.read", None)
    assert held.log_row_hidden("team", "entry.write", None)
    assert not held.log_row_hidden("team", "record.read", None)
    assert held.log_row_hidden("hc", "involvement.refer", "cps")
    assert held.log_row_hidden("cps", "record.read", None)  # its acts tell it takes part
    assert not held.log_row_hidden("hc", "record.read", None)
