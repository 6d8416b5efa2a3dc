"""Reports attacked from outside: parameters an outsider sends, names an
administrator types, families being erased; never a 500, never a run
without audit, never a family shown or counted that must not be."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from audit.model import Action, AuditEntry
from coordination import accounts
from coordination.casework.areas import agency_areas, set_agency_areas
from coordination.config import ConfigError, Settings, load_settings
from coordination.errors import InvalidInput
from coordination.model import Erasure
from tests.conftest import T0, Api, Clock
from tests.functional.test_counting import _family_client, _text
from tests.functional.test_protection_holds import (
    CPS_GRID,
    CPS_NAMES,
    GRID,
    _allow_holds,
    _family_views,
    _pages,
    cps_case,  # noqa: F401 (a fixture)
    place,
)
from tests.functional.test_revocation_truth import family_token
from tests.reports_data import add_area, needs, set_area
from tests.web import csrf_token, set_passwords, signed_in

NOV = "from=2026-11&to=2026-11"
WRITTEN = T0 - timedelta(days=1)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, report_k=5)


@pytest.fixture
def evaluator(app: Flask, api: Api, clock: Clock) -> Api:
    with app.extensions["onestory"].sessions() as session:
        accounts.add_staff(session, "eval1", "oversight", "evaluator", None, clock())
        api.tokens["eval1"] = accounts.create_token(session, "eval1", timedelta(days=30),
                                                    clock())
    set_passwords(app)
    return api


def counted_family(api: Api, name: str) -> str:
    family = api.new_family(display_name=name)
    api.sign(family, {"health-centre": ["involvement", "social"]}, statistics=True)
    return family


def runs(app: Flask) -> int:
    with app.extensions["onestory"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == Action.REPORT_RUN.value)) or 0)


def report(api: Api, name: str, query: str) -> Any:
    return api.get(f"/api/v1/reports/{name}?{query}", "eval1")


# --- parameters ----------------------------------------------------------------------


@pytest.mark.parametrize("query", [
    "from=2026-11%0A&to=2026-11",  # a trailing newline
    "from=2026-11&to=2026-11%0A",
    # FULLWIDTH DIGITs: digits to Python's \d, not a month to anyone reading the audit log
    "from=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%96-11&to=2026-11",
    "from=2026-%D9%A1%D9%A1&to=2026-11",  # ARABIC-INDIC DIGIT ONE twice
    "from=2026-11&to=2026-11&k=1",
    "from=2026-12&to=2026-11",
    "from=2000-01&to=2100-12",
    "from=1999-12&to=2000-01",
    "from=2026-13&to=2027-01",
    "from=2026-11-01&to=2026-11",
    "from=2026-11&to=2026-11&by=area'--",
    "from=2026-11&to=2026-11&by=AREA",
    "from=%00&to=2026-11",
    "to=2026-11",
])
def test_a_report_with_bad_parameters_is_refused_unrun(app: Flask, evaluator: Api,
                                                       query: str) -> None:
    before = runs(app)
    answer = report(evaluator, "needs", query)
    assert answer.status_code == 422, answer.get_json()
    assert answer.mimetype == "application/problem+json"
    assert runs(app) == before
    # The page takes its fields stripped (a trailing newline is typing), and
    # otherwise says what is wrong on the form; each run it makes is audited.
    web = signed_in(app, "eval1")
    for path in ("/reports/", "/reports/chart.svg", "/reports/export.csv"):
        page = web.get(f"{path}?report=needs&{query}")
        assert page.status_code in (200, 422), (path, page.status_code)
        if page.status_code == 422:
            assert page.mimetype == "text/html"
        else:
            before += 1
        assert runs(app) == before


def test_repeated_parameters_run_the_first_and_say_so(app: Flask, evaluator: Api) -> None:
    answer = report(evaluator, "needs", "from=2026-11&from=2020-01&to=2026-11&by=month&by=area")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["from"], body["to"], body["by"]) == ("2026-11", "2026-11", "month")
    with app.extensions["onestory"].sessions() as session:
        entry = session.scalars(select(AuditEntry).where(
            AuditEntry.action == Action.REPORT_RUN.value)).one()
    assert json.loads(entry.detail or "{}")["from"] == "2026-11"


# --- the chart -----------------------------------------------------------------------


def test_an_area_named_with_dollar_signs_is_drawn_as_written(app: Flask, evaluator: Api
                                                             ) -> None:
    """matplotlib reads $...$ as mathematics and fails on what does not parse:
    an administrator's area name must not make the chart a 500."""
    add_area(app, "health-centre", "N1", "North $x^$ \\frac{")
    for n in range(12):
        family = counted_family(evaluator, f"North {n}")
        set_area(app, family, "N1")
        needs(app, family, ["housing"], WRITTEN)
        needs(app, counted_family(evaluator, f"Elsewhere {n}"), ["housing"], WRITTEN)
    web = signed_in(app, "eval1")
    before = runs(app)
    chart = web.get("/reports/chart.svg?report=needs&from=2026-11&to=2026-11&by=area")
    assert chart.status_code == 200
    assert chart.mimetype == "image/svg+xml"
    assert "script-src" not in chart.headers["Content-Security-Policy"]
    assert chart.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert b"<script" not in chart.data
    assert runs(app) == before + 1


# --- erased families -------------------------------------------------------------------


def _erasing(app: Flask, family: str, clock: Clock) -> None:
    """The family's erasure interrupted after its key went (erasure.py step
    2): its rows are all still there."""
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        session.add(Erasure(family_id=family, reason="asked", requested_by="admin",
                            requested_at=clock()))
        session.commit()
    rt.keystore.destroy(family)


@pytest.mark.parametrize("name", ["involvement", "needs", "referrals"])
def test_a_family_being_erased_is_in_no_report(app: Flask, evaluator: Api, clock: Clock,
                                                name: str) -> None:
    """Counted, the family moves the published counts from 10 to 15; being
    erased it is counted no more, and the others' figures are still given
    (its destroyed key does not make every report fail)."""
    families = [counted_family(evaluator, f"F{n}") for n in range(11)]
    for family in families:
        needs(app, family, ["housing"], WRITTEN)
        made = evaluator.post(f"/api/v1/families/{family}/referrals", "nurse1",
                              json={"to": "physio", "reason": "Motor", "fields": ["social"]})
        assert made.status_code == 201, made.get_json()

    def published() -> Any:
        answer = report(evaluator, name, NOV + "&by=agency")
        assert answer.status_code == 200, answer.get_json()
        row = next(r for r in answer.get_json()["rows"]
                   if r["group"]["agency"] == ("physio" if name == "referrals"
                                               else "health-centre"))
        return row["values"]["referrals" if name == "referrals" else "families"]

    assert published() == 15
    _erasing(app, families[0], clock)
    assert published() == 10


# --- the family's answer under a protection hold ----------------------------------------


def test_the_family_reads_its_counting_answer_while_a_hold_is_in_force(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    """A version where the family changed only its answer changes nothing in
    the concealed agency's column, yet it is what the family did: it is kept
    in the family's history and read as the form in force (left out, the
    family read "not counted" right after saying yes, while it was)."""
    family, receipt = cps_case
    assert place(api, family).status_code == 201
    client = _family_client(app, receipt)
    token = csrf_token(client.get("/family/counting/yes").get_data(as_text=True))
    assert client.post("/family/counting/yes",
                       data={"csrf_token": token, "confirmed": "1"}).status_code == 302
    page = _text(client.get("/family/consent"))
    assert "You said yes: your family is counted in numbers without names." in page, page
    own = family_token(api, receipt)
    form = api.get(f"/api/v1/families/{family}/consent", own).get_json()
    assert form["statistics"] is True
    history = api.get(f"/api/v1/families/{family}/consent/history", own).get_json()
    versions = history
    assert [(v["version"], v["statistics"]) for v in versions] == [(1, False), (2, True)]
    assert versions[-1]["change"] == "statistics yes"
    assert "cps" not in json.dumps(history) and "cps" not in json.dumps(form)


def _typed_acts(app: Flask, api: Api, family: str, with_cps: bool) -> None:
    api.post(f"/api/v1/families/{family}/entries", "nurse1", json={
        "field": "health", "kind": "attendance",
        "data": {"attended": 4, "offered": 5, "from": "2026-09-01", "to": "2026-11-01"}})
    if with_cps:
        written = api.post(f"/api/v1/families/{family}/entries", "cps1", json={
            "field": "health", "kind": "attendance",
            "data": {"attended": 1, "offered": 9, "from": "2026-09-01", "to": "2026-11-01"}})
        assert written.status_code == 201, written.get_json()
        given = api.put(f"/api/v1/families/{family}/area", "cps1", json={"area": "C9"})
        assert given.status_code == 200, given.get_json()


def test_a_concealed_agency_s_typed_entries_and_area_leave_no_trace_for_the_family(
        app: Flask, api: Api, clock: Clock) -> None:
    """While a hold is in force, what child protection wrote with issue 12's
    means (typed entries, the family's area) is no more seen by the family
    than its notes: the family's views are those of a family it never
    worked with."""
    _allow_holds(app, clock, api)
    add_area(app, "cps", "C9", "Child protection district")
    held = api.new_family("nurse1", display_name="Aylin Demir")
    plain = api.new_family("nurse1", display_name="Aylin Demir")
    held_receipt = api.sign(held, CPS_GRID, statistics=True)["receipt"]
    plain_receipt = api.sign(plain, GRID, statistics=True)["receipt"]
    assert api.post(f"/api/v1/families/{held}/involvements", "coord1",
                    json={"agency": "cps"}).status_code == 201
    _typed_acts(app, api, held, with_cps=True)
    _typed_acts(app, api, plain, with_cps=False)
    assert place(api, held).status_code == 201
    clock.advance(minutes=5)
    with_hold = _family_views(api, held, family_token(api, held_receipt))
    without_cps = _family_views(api, plain, family_token(api, plain_receipt))
    assert with_hold == without_cps
    for lang in ("en", "tr"):
        held_pages, plain_pages = _pages(app, held_receipt, lang), _pages(app, plain_receipt, lang)
        assert held_pages == plain_pages
        for page in ("/family/consent", "/family/access-log"):
            for name in (*CPS_NAMES, "Child protection district", "C9", "1 of 9"):
                assert name not in held_pages[page]


# --- configuration -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["\u00b2", "1\u2070", "\uff11\uff10", "\u0661\u0660",
                                   " 10", "10\n", "1_0", "+10", "0x10"])
def test_k_in_other_scripts_digits_is_a_configuration_error(value: str) -> None:
    """Superscripts pass str.isdigit() and then fail int() with a traceback;
    other scripts' digits would be read as a number no one wrote."""
    with pytest.raises(ConfigError, match="ONESTORY_REPORT_K"):
        load_settings({"ONESTORY_REPORT_K": value})


# --- area codes ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["unknown", "Unknown", "UNKNOWN"])
def test_no_agency_names_an_area_as_reports_name_families_without_one(
        app: Flask, api: Api, clock: Clock, code: str) -> None:
    """Reports group families without an area as `unknown`: an area of that
    code would be merged with them, its families reported as having none."""
    with app.extensions["onestory"].sessions() as session:
        with pytest.raises(InvalidInput, match="without an area"):
            set_agency_areas(session, "health-centre", {code: "Unknown street"}, [], clock())
        assert agency_areas(session, "health-centre") == []


# --- a coordinator's families ----------------------------------------------------------


def test_a_family_that_ended_an_agency_s_part_leaves_its_coordinator_s_later_reports(
        app: Flask, api: Api, evaluator: Api, clock: Clock) -> None:
    """A coordinator's reports count its agency's families: once a family
    has ended the agency's part, what other agencies do with it in later
    months is no longer in that agency's figures (it was, for ever)."""
    families = []
    for n in range(11):
        family = api.new_family(display_name=f"F{n}")
        receipt = api.sign(family, {"health-centre": ["involvement", "social"],
                                    "physio": ["involvement"]}, statistics=True)["receipt"]
        assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                        json={"agency": "physio"}).status_code == 201
        ended = api.call("DELETE", f"/api/v1/families/{family}/involvements/physio",
                         family_token(api, receipt), json={})
        assert ended.status_code == 200, ended.get_json()
        families.append(family)
    clock.advance(days=15)  # December
    for family in families:
        written = api.post(f"/api/v1/families/{family}/entries", "nurse1", json={
            "field": "social", "kind": "needs", "data": {"codes": ["housing"]}})
        assert written.status_code == 201, written.get_json()

    def health_centre(who: str, month: str) -> Any:
        answer = api.get(f"/api/v1/reports/needs?from={month}&to={month}&by=agency", who)
        assert answer.status_code == 200, answer.get_json()
        row = next(r for r in answer.get_json()["rows"]
                   if r["group"]["agency"] == "health-centre")
        return row["values"]["housing"]

    assert health_centre("eval1", "2026-12") == 15
    assert health_centre("coord1", "2026-12") == 15
    # Physiotherapy worked with them in November, not in December.
    assert health_centre("physiocoord", "2026-12") in (0, None)


# --- what the family reads about being counted --------------------------------------------


def test_a_family_whose_form_ended_is_not_told_it_is_counted(
        app: Flask, api: Api, evaluator: Api, clock: Clock) -> None:
    """Reports leave out a family whose form has ended, whatever it said:
    its page says so rather than "you said yes: your family is counted"."""
    family = api.new_family(display_name="Ended")
    receipt = api.sign(family, {"health-centre": ["involvement", "social"]}, statistics=True,
                       valid_until=(T0 + timedelta(days=10)).date().isoformat())["receipt"]
    client = _family_client(app, receipt)
    assert "You said yes: your family is counted in numbers without names." in _text(
        client.get("/family/consent"))
    clock.advance(days=11)
    client = _family_client(app, receipt)
    for lang in ("en", "nb", "tr", "ar"):
        page = _text(client.get(f"/family/consent?lang={lang}"))
        assert "You said yes: your family is counted" not in page
        if lang == "en":
            assert "Your form has ended, so your family is not counted in any numbers." in page
        for answer in ("yes", "no"):
            assert f"/family/counting/{answer}" not in client.get(
                f"/family/consent?lang={lang}").get_data(as_text=True)


# --- configured needs codes ----------------------------------------------------------------


def test_the_needs_report_counts_the_configured_codes(app: Flask, evaluator: Api) -> None:
    """An installation that configures its own needs codes reads them in its
    reports (they were all counted as `other`, or not at all)."""
    rt = app.extensions["onestory"]
    rt.settings = dataclasses.replace(rt.settings, needs_codes=("housing", "language"))
    for n in range(11):
        family = counted_family(evaluator, f"F{n}")
        written = evaluator.post(f"/api/v1/families/{family}/entries", "nurse1", json={
            "field": "social", "kind": "needs", "data": {"codes": ["language"]}})
        assert written.status_code == 201, written.get_json()
    answer = report(evaluator, "needs", NOV + "&by=agency")
    assert answer.status_code == 200, answer.get_json()
    row = next(r for r in answer.get_json()["rows"] if r["group"]["agency"] == "health-centre")
    assert row["values"]["language"] == 15
    assert set(row["values"]) == {"families", "housing", "language"}
    web = signed_in(app, "eval1")
    exported = web.get("/reports/export.csv?report=needs&from=2026-11&to=2026-11&by=agency")
    head = exported.get_data(as_text=True).splitlines()[0]
    assert head == "agency,name,families,housing,language"
