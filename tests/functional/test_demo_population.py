"""The demo's population (`seed-demo --population`): families over the last
year through the use cases, counted in the reports, in time order on the
audit log, needs in De Sloep's proportions, seeded random."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from audit.model import Action, AuditEntry
from consent.tables import ConsentFormRow
from coordination import accounts, demo, demo_population
from coordination.model import Entry, Family, Referral
from coordination.reports.services import run_report
from tests.conftest import Clock

SIZE = 60


@pytest.fixture
def seeded(app: Flask, clock: Clock) -> demo.DemoData:
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        return demo.seed(session, rt.vault, clock(), population=SIZE)


def test_a_year_of_families_through_the_use_cases(app: Flask, clock: Clock,
                                                  seeded: demo.DemoData) -> None:
    made = seeded.population
    assert made is not None and made.families == SIZE and len(made.ids) == SIZE
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        created = {i: at for i, at in session.execute(select(Family.id, Family.created_at))}
        assert len(created) == SIZE + 3
        first = min(created[i] for i in made.ids)
        last = max(created[i] for i in made.ids)
        # Over the year before the scenarios (which begin three weeks ago).
        assert clock() - timedelta(days=366) <= first < last < clock() - timedelta(days=21)
        assert last - first > timedelta(days=200)
        kinds = Counter(session.scalars(select(Entry.kind).where(Entry.family_id.in_(made.ids))))
        assert kinds["needs"] == SIZE and kinds["attendance"] == made.attendance > 0
        counted = session.scalar(select(func.count()).select_from(ConsentFormRow).where(
            ConsentFormRow.family_id.in_(made.ids), ConsentFormRow.statistics.is_(True)))
        assert counted == made.counted and SIZE * 0.7 < made.counted < SIZE
        states = Counter(session.scalars(select(Referral.state)
                                         .where(Referral.family_id.in_(made.ids))))
        assert sum(states.values()) == made.referrals and states["closed"] > 0
        # Areas are sealed: none in clear beside the family.
        assert all(a is None or b"docklands" not in a
                   for a in session.scalars(select(Family.area)))
        # Everything is on the audit log, oldest first.
        with rt.engine.connect() as conn:
            times = [r.at for r in conn.execute(text("SELECT at FROM audit_log ORDER BY seq"))]
        assert times == sorted(times)
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == Action.FAMILY_CREATE.value)) == SIZE + 3


def test_the_reports_show_the_population(app: Flask, clock: Clock,
                                         seeded: demo.DemoData) -> None:
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        token = accounts.create_token(session, "eval1", timedelta(hours=1), clock())
        evaluator = accounts.authenticate(session, token, clock())
        first = (clock() - timedelta(days=365)).strftime("%Y-%m")
        last = clock().strftime("%Y-%m")
        needs = run_report(session, rt.vault, evaluator, "needs", first, last, "agency",
                           clock()).out()
        by_area = run_report(session, rt.vault, evaluator, "involvement", first, last, "area",
                             clock()).out()
    health = next(r for r in needs["rows"] if r["group"]["agency"] == "health-centre")
    assert health["values"]["families"] is not None and health["values"]["families"] >= 10
    named = {r["group"]["area"] for r in by_area["rows"]
             if r["values"]["families"] is not None}
    assert named & set(demo_population.AREAS)


def test_needs_follow_de_sloeps_proportions_and_the_seed() -> None:
    draws = 20_000
    rng = random.Random(demo_population.SEED)
    counted = Counter(code for _ in range(draws) for code in demo_population._needs(rng))
    for code, count in demo_population.NEEDS.items():
        share = count / demo_population.DE_SLOEP_FAMILIES
        assert abs(counted[code] / draws - share) < 0.02 + (0.02 if code == "other" else 0), code
    again = random.Random(demo_population.SEED)
    assert [demo_population._needs(again) for _ in range(50)] == [
        demo_population._needs(r) for r in [random.Random(demo_population.SEED)] for _ in
        range(50)]
    # "Payment/income" is De Sloep's most asked, training its least.
    assert counted.most_common(1)[0][0] == "income"
    assert min(counted, key=lambda c: counted[c]) == "training"


def test_the_evaluator_login_is_in_the_plain_demo(app: Flask, clock: Clock) -> None:
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        data = demo.seed(session, rt.vault, clock())
        assert data.population is None
        assert session.scalar(select(func.count()).select_from(Family)) == 3
    assert ("eval1", "evaluator", "oversight", "eval1-demo") in data.logins
    assert json.dumps(data.logins)  # printable
