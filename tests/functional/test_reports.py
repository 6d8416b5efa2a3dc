"""Reports (CONTRACT.md, "Reports"): each report's figures on a known
population, who may run them, bad parameters, the audit of a run, and what
the database holds.

The population (k = 5: counts below 6 are withheld, every published count is
rounded up to a multiple of 5):

- A1..A6: counted, area N1, the health centre and physiotherapy involved
  (through an accepted referral whose appointment was attended), needs
  housing and income (A1, A2 also health: 2 families, withheld), attendance
  8 of 10 at physiotherapy;
- B1..B6: counted, no area, only the health centre; attendance 2 of 10 there;
- C1..C3: their form says `statistics: false`; otherwise like A (needs,
  attendance at physiotherapy, area N1) but without referrals; counted, they
  would move the figures they touch past a multiple of 5;
- D: no form at all, a needs entry: in no report either;
- E: counted, area S1, a needs entry: a group of 1, withheld.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from coordination import accounts
from coordination.app import create_app
from coordination.config import ConfigError, Settings, load_settings
from coordination.model import Entry, Family
from tests.conftest import T0, Api, Clock
from tests.functional.test_referrals import book, outcome
from tests.functional.test_revocation_truth import audit_rows, family_token
from tests.reports_data import add_area, attendance, count_in_statistics, needs, set_area

GRID_A = {"health-centre": ["involvement", "contact", "health"],
          "physio": ["involvement", "health"]}
GRID_B = {"health-centre": ["involvement", "contact"]}
NOV = "from=2026-11&to=2026-11"
WRITTEN = T0 - timedelta(days=1)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, report_k=5)


@dataclasses.dataclass
class Population:
    a: list[str]
    b: list[str]
    c: list[str]
    d: str
    e: str
    receipt: dict[str, str]


def _attended_referral(api: Api, family: str) -> None:
    made = api.post(f"/api/v1/families/{family}/referrals", "nurse1",
                    json={"to": "physio", "reason": "Motor assessment", "fields": ["health"]})
    assert made.status_code == 201, made.get_json()
    ref = made.get_json()["id"]
    assert api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord",
                    json={"contact_worker": "physio1"}).status_code == 200
    # 2026-11-26T08:30Z: 3.94 days after the referral.
    apt = book(api, ref).get_json()["id"]
    assert outcome(api, ref, apt, outcome="attended").status_code == 200


@pytest.fixture
def population(app: Flask, api: Api) -> Population:
    with app.extensions["onestory"].sessions() as session:
        accounts.add_staff(session, "eval1", "oversight", "evaluator", None, T0)
        api.tokens["eval1"] = accounts.create_token(session, "eval1", timedelta(days=1), T0)
    add_area(app, "health-centre", "N1", "North")
    add_area(app, "health-centre", "S1", "South")
    a, b, c = [], [], []
    receipt: dict[str, str] = {}
    for n in range(6):
        family = api.new_family(display_name=f"A{n}")
        receipt = api.sign(family, GRID_A)["receipt"]
        count_in_statistics(app, family)
        set_area(app, family, "N1")
        _attended_referral(api, family)
        needs(app, family, ["housing", "income", *(["health"] if n < 2 else [])], WRITTEN)
        attendance(app, family, 8, 10, WRITTEN, author="physio1")
        a.append(family)
    for n in range(6):
        family = api.new_family(display_name=f"B{n}")
        api.sign(family, GRID_B)
        count_in_statistics(app, family)
        attendance(app, family, 2, 10, WRITTEN)
        b.append(family)
    for n in range(3):
        family = api.new_family(display_name=f"C{n}")
        api.sign(family, GRID_A)
        count_in_statistics(app, family, yes=False)
        set_area(app, family, "N1")
        needs(app, family, ["housing", "income", "health"], WRITTEN)
        attendance(app, family, 8, 10, WRITTEN, author="physio1")
        c.append(family)
    d = api.new_family(display_name="D")
    needs(app, d, ["housing"], WRITTEN)
    e = api.new_family(display_name="E")
    api.sign(e, GRID_B)
    count_in_statistics(app, e)
    set_area(app, e, "S1")
    needs(app, e, ["housing"], WRITTEN)
    return Population(a, b, c, d, e, receipt)


def run(api: Api, name: str, query: str = NOV, who: str = "eval1") -> dict[str, Any]:
    response = api.get(f"/api/v1/reports/{name}?{query}", who)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def rows(body: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {row["group"][key]: row["values"] for row in body["rows"]}


def test_needs_by_agency_area_and_month(api: Api, population: Population) -> None:
    body = run(api, "needs", NOV + "&by=agency")
    assert {k: body[k] for k in ("report", "from", "to", "by", "k")} == {
        "report": "needs", "from": "2026-11", "to": "2026-11", "by": "agency", "k": 5}
    agencies = rows(body, "agency")
    assert list(agencies) == ["cps", "ecec", "health-centre", "ngo", "oversight", "physio"]
    health = agencies["health-centre"]
    # A1..A6 and E (7, published 10); housing: A and E; income: A; health: 2, withheld.
    assert health["families"] == 10 and health["housing"] == 10 and health["income"] == 10
    assert health["health"] is None and health["pregnancy"] is None
    assert agencies["physio"]["families"] is None  # physiotherapy recorded no needs
    assert body["suppressed"] == sum(v is None for r in body["rows"]
                                     for v in r["values"].values()) > 0
    [row] = [r for r in body["rows"] if r["group"]["agency"] == "health-centre"]
    assert row["group"] == {"agency": "health-centre", "name": "Health centre"}

    areas = rows(run(api, "needs", NOV + "&by=area"), "area")
    assert list(areas) == ["N1", "S1", "unknown"]
    assert areas["N1"]["families"] == 10 and areas["N1"]["income"] == 10
    assert areas["S1"]["families"] is None  # E alone
    assert areas["unknown"]["families"] is None

    months = rows(run(api, "needs", "from=2026-10&to=2026-12&by=month"), "month")
    assert list(months) == ["2026-10", "2026-11", "2026-12"]
    assert months["2026-11"]["families"] == 10
    assert months["2026-10"]["families"] is None and months["2026-12"]["families"] is None
    # A period with nothing in it.
    empty = rows(run(api, "needs", "from=2025-01&to=2025-02&by=agency"), "agency")
    assert all(v is None for values in empty.values() for v in values.values())


def test_involvement_and_consent_coverage(api: Api, population: Population) -> None:
    agencies = rows(run(api, "involvement", NOV), "agency")
    # A (health centre and physiotherapy), B and E (health centre): 13; C would make 16.
    assert agencies["health-centre"] == {
        "families": 15, "agencies_1": 10, "agencies_2": 10, "agencies_3": None,
        "agencies_4_plus": None, "median_agencies": 1}
    assert agencies["physio"]["families"] == 10 and agencies["physio"]["agencies_2"] == 10
    assert agencies["physio"]["median_agencies"] == 2
    assert agencies["ecec"]["families"] is None

    coverage = rows(run(api, "consent-coverage", NOV), "agency")
    health = coverage["health-centre"]
    assert health["families"] == 15
    assert health["granted:health-centre"] == 15 and health["granted:physio"] == 10
    # A grant the health centre 3 cells, B and E 2: 32; A grant physiotherapy 2: 12.
    assert health["cells:health-centre"] == 35 and health["cells:physio"] == 15
    assert health["granted:ecec"] is None
    assert coverage["physio"]["families"] == 10


def test_referrals_and_attendance(api: Api, population: Population) -> None:
    physio = rows(run(api, "referrals", NOV), "agency")["physio"]
    assert physio["referrals"] == 10 and physio["state:attended"] == 10
    assert physio["accepted"] == 10 and physio["attended"] == 10
    assert physio["share_accepted"] == 100 and physio["share_attended"] == 100
    assert physio["median_days_to_service"] == 4  # 3.94 days, rounded
    assert physio["state:sent"] is None
    areas = rows(run(api, "referrals", NOV + "&by=area"), "area")
    assert areas["N1"]["referrals"] == 10 and areas["unknown"]["referrals"] is None

    attended = rows(run(api, "attendance", NOV), "agency")
    assert attended["physio"] == {"families": 10, "median_rate": 80}
    assert attended["health-centre"] == {"families": 10, "median_rate": 20}
    areas = rows(run(api, "attendance", NOV + "&by=area"), "area")
    # S1 has no attendance (0, withheld); alone withheld, it could be worked
    # out from the agency breakdown's total: N1's 6 is withheld with it.
    assert areas["S1"] == {"families": None, "median_rate": None}
    assert areas["N1"] == {"families": None, "median_rate": 80}
    assert areas["unknown"] == {"families": 10, "median_rate": 20}


def test_families_who_said_no_are_left_out_until_they_say_yes(
        app: Flask, api: Api, population: Population) -> None:
    before = rows(run(api, "involvement", NOV), "agency")["health-centre"]["families"]
    for family in population.c:
        count_in_statistics(app, family)
    after = rows(run(api, "involvement", NOV), "agency")
    assert (before, after["health-centre"]["families"]) == (15, 20)  # 13 and 16, rounded
    # A form that has expired counts no more.
    with app.extensions["onestory"].engine.begin() as conn:
        conn.execute(text("UPDATE consent_forms SET valid_until = :d WHERE family_id = :f"),
                     [{"d": T0.date() - timedelta(days=1), "f": f} for f in population.c])
    assert rows(run(api, "involvement", NOV), "agency")["health-centre"]["families"] == 15


def test_a_coordinator_counts_only_its_own_agencys_families(
        api: Api, population: Population) -> None:
    mine = rows(run(api, "involvement", NOV, who="physiocoord"), "agency")
    # Only A are involved with physiotherapy.
    assert mine["health-centre"]["families"] == 10
    assert mine["health-centre"]["agencies_1"] is None
    assert rows(run(api, "involvement", NOV, who="coord1"), "agency")[
        "health-centre"]["families"] == 15
    assert rows(run(api, "attendance", NOV, who="physiocoord"), "agency")[
        "health-centre"]["families"] is None
    # The NGO is involved with no family: nothing at all.
    ngo = rows(run(api, "needs", NOV, who="ngocoord"), "agency")
    assert all(v is None for values in ngo.values() for v in values.values())


def test_who_may_run_reports(api: Api, population: Population) -> None:
    for who in ("eval1", "auditor1", "coord1"):
        assert api.get(f"/api/v1/reports/needs?{NOV}", who).status_code == 200
    family = family_token(api, population.receipt)
    for who in ("nurse1", "physio1", "admin1", family):
        refused = api.get(f"/api/v1/reports/needs?{NOV}", who)
        assert refused.status_code == 403, who
        assert refused.content_type == "application/problem+json"
    assert api.get(f"/api/v1/reports/needs?{NOV}").status_code == 401
    assert api.get(f"/api/v1/reports/needs?{NOV}", "not-a-token").status_code == 401


@pytest.mark.parametrize("query, key", [
    ("from=2026-13&to=2026-12", "from"),
    ("from=2026-1&to=2026-12", "from"),
    ("to=2026-12", "from"),
    ("from=2026-11", "to"),
    ("from=2026-11&to=2026-10", "to"),
    ("from=2020-01&to=2026-12", "to"),
    ("from=1999-12&to=2000-01", "from"),
    ("from=2026-11&to=2026-11&by=street", "by"),
    ("from=2026-11&to=2026-11&family=fam_1", "family"),
])
def test_bad_parameters_are_a_422_naming_them(app: Flask, api: Api, population: Population,
                                              query: str, key: str) -> None:
    refused = api.get(f"/api/v1/reports/needs?{query}", "eval1")
    assert refused.status_code == 422, refused.get_json()
    assert refused.content_type == "application/problem+json"
    assert key in refused.get_json()["errors"]
    assert audit_rows(app, "report.run") == []


def test_an_unknown_report_is_a_404(app: Flask, api: Api, population: Population) -> None:
    missing = api.get(f"/api/v1/reports/salaries?{NOV}", "eval1")
    assert missing.status_code == 404
    assert missing.content_type == "application/problem+json"
    # Before its parameters are looked at; after the role.
    assert api.get("/api/v1/reports/salaries?from=x", "eval1").status_code == 404
    assert api.get("/api/v1/reports/salaries?from=x", "nurse1").status_code == 403
    assert audit_rows(app, "report.run") == []


def test_a_run_is_audited_with_its_parameters_and_no_family(
        app: Flask, api: Api, population: Population) -> None:
    body = run(api, "referrals", "from=2026-10&to=2026-11&by=month", who="physiocoord")
    [row] = audit_rows(app, "report.run")
    assert (row.actor, row.agency_id, row.role, row.family_id) == (
        "physiocoord", "physio", "coordinator", None)
    detail = json.loads(row.detail)
    assert detail == {"report": "referrals", "from": "2026-10", "to": "2026-11",
                      "by": "month", "k": 5, "rows": 2, "suppressed": body["suppressed"]}
    everything = {*population.a, *population.b, *population.c, population.d, population.e}
    assert not any(family in row.detail for family in everything)


def test_report_values_are_sealed_in_the_database(
        app: Flask, api: Api, population: Population) -> None:
    run(api, "needs", NOV + "&by=area")
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        areas = session.execute(select(Family.id, Family.area)
                                .where(Family.id.in_(population.a))).all()
        typed = session.execute(select(Entry.id, Entry.family_id, Entry.kind, Entry.value)
                                .where(Entry.kind != "text")).all()
    assert len(areas) == 6 and len(typed) == 6 + 6 + 6 + 3 + 3 + 1 + 1
    for family, sealed in areas:
        assert b"N1" not in sealed
        assert rt.vault.for_family(family).open("families", "area", family, sealed) == "N1"
    for entry_id, family, kind, sealed in typed:
        assert b"housing" not in sealed and b"attended" not in sealed
        opened = json.loads(rt.vault.for_family(family).open("entries", "value", entry_id,
                                                              sealed))
        assert ("codes" in opened) == (kind == "needs")
        # Bound to its row: under another entry's id it does not open.
        with pytest.raises(Exception, match="does not open"):
            rt.vault.for_family(family).open("entries", "value", "ent_other", sealed)


def test_k_below_five_stops_start_up(settings: Settings, clock: Clock) -> None:
    for value in ("4", "0", "ten", "-5", "1001"):
        with pytest.raises(ConfigError, match="ONESTORY_REPORT_K"):
            load_settings({"ONESTORY_REPORT_K": value})
    assert load_settings({}).report_k == 10
    assert load_settings({"ONESTORY_REPORT_K": "7"}).report_k == 7
    with pytest.raises(ConfigError, match="ONESTORY_REPORT_K"):
        create_app(dataclasses.replace(settings, report_k=4), clock=clock)


def test_a_value_that_does_not_open_returns_nothing(
        app: Flask, api: Api, population: Population) -> None:
    rt = app.extensions["onestory"]
    with rt.engine.begin() as conn:
        # Another family's sealed area, moved onto this family: it does not open here.
        moved = conn.execute(select(Family.area).where(Family.id == population.a[1])).scalar()
        conn.execute(Family.__table__.update().where(Family.__table__.c.id == population.a[0])
                     .values(area=moved))
    refused = api.get(f"/api/v1/reports/needs?{NOV}&by=area", "eval1")
    assert refused.status_code == 503
    assert refused.content_type == "application/problem+json"
    assert "rows" not in refused.get_json()
    assert audit_rows(app, "report.run") == []
    # A report that does not read areas still runs.
    assert api.get(f"/api/v1/reports/involvement?{NOV}", "eval1").status_code == 200


def test_statements_do_not_grow_with_the_families(
        app: Flask, api: Api, population: Population) -> None:
    """One statement per table per chunk of families, never one per family."""
    from sqlalchemy import event

    rt = app.extensions["onestory"]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    def count(name: str) -> int:
        statements.clear()
        for engine in (rt.engine, rt.keystore.engine):
            event.listen(engine, "before_cursor_execute", record)
        try:
            run(api, name, NOV + "&by=area")
        finally:
            for engine in (rt.engine, rt.keystore.engine):
                event.remove(engine, "before_cursor_execute", record)
        return len(statements)

    before = {name: count(name) for name in ("needs", "referrals", "consent-coverage")}
    for n in range(6):
        family = api.new_family(display_name=f"F{n}")
        api.sign(family, GRID_A)
        count_in_statistics(app, family)
        set_area(app, family, "S1")
        needs(app, family, ["income"], WRITTEN)
        _attended_referral(api, family)
    after = {name: count(name) for name in ("needs", "referrals", "consent-coverage")}
    assert after == before
    assert rows(run(api, "needs", NOV + "&by=area"), "area")["S1"]["families"] == 10  # E + 6


def test_free_text_is_never_opened(app: Flask, api: Api, population: Population) -> None:
    """A report opens typed entries and areas only: free text that would not
    even open is never touched."""
    entry = api.write(population.a[0], "story", "Moved here last spring.")
    with app.extensions["onestory"].engine.begin() as conn:
        conn.execute(Entry.__table__.update().where(Entry.__table__.c.id == entry["id"])
                     .values(value=b"\x01not a sealed value at all"))
    for name in ("needs", "involvement", "consent-coverage", "referrals", "attendance"):
        run(api, name, NOV + "&by=area")
