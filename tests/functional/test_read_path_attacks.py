"""Attacks on the fast read path (issue 13): the family, its form, duty
grants and the caller's emergency access now load in one statement, and the
shared record's content in another. The decision must get exactly what the
per-table queries give, whatever the family holds; on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

import consent.services as consent_store
from coordination.actors import Actor
from coordination.casework.common import _load, duty_grants_of, open_emergency
from coordination.model import DutyGrantRow, EmergencyAccess, Involvement, Staff
from coordination.roles import Role
from tests.conftest import Api, Clock


def _actor(session: Session, username: str) -> Actor:
    staff = session.scalars(select(Staff).where(Staff.username == username)).one()
    return Actor(username=username, staff_id=staff.id, agency_id=staff.agency_id,
                 role=Role(staff.role))


def _reference(session: Session, family_id: str, actor: Actor, now: datetime) -> Any:
    """What the per-table queries (the code before the one statement) give."""
    involvements = [(i.id, i.agency_id, i.status) for i in session.scalars(
        select(Involvement).where(Involvement.family_id == family_id)
        .order_by(Involvement.since, Involvement.id))]
    row, form = consent_store.current_form(session, family_id)
    return (involvements, None if row is None else row.id, form,
            duty_grants_of(session, family_id), open_emergency(session, actor, family_id, now))


def _loaded(app: Flask, session: Session, family_id: str, actor: Actor, now: datetime) -> Any:
    view = _load(session, app.extensions["onestory"].vault, family_id, actor, now)
    assert view is not None
    return ([(i.id, i.agency_id, i.status) for i in view.involvements],
            None if view.form_row is None else view.form_row.id, view.form, view.duty,
            view.emergency)


def _grant(session: Session, family_id: str, gid: str, agency: str, fields: str, state: str,
           until: date, created: datetime) -> None:
    session.add(DutyGrantRow(
        id=gid, family_id=family_id, agency_id=agency, fields=fields,
        legal_basis="legal_obligation", justification=b"x", until=until, state=state,
        proposed_by="coord1", proposer_agency="health-centre", created_at=created))


def _glass(session: Session, family_id: str | None, eid: str, staff: str, opened: datetime,
           expires: datetime | None) -> None:
    staff_row = session.scalars(select(Staff).where(Staff.username == staff)).one()
    session.add(EmergencyAccess(
        id=eid, family_id=family_id, staff_id=staff_row.id, agency_id=staff_row.agency_id,
        legal_basis="vital_interest", reason=None, opened_at=opened, expires_at=expires))


def test_the_one_statement_gives_the_decision_what_the_per_table_queries_give(
        app: Flask, api: Api, clock: Clock) -> None:
    """Families with no form, with several versions (the newest counts), an
    expired one, a revoked cell; duty grants in every state, ending in the
    past, today and later, created in one microsecond and across seconds;
    emergency accesses of the caller, of a colleague, expired, not yet
    open, ending exactly now, of another family: compared at moments on
    every boundary, for several callers."""
    bare = api.new_family("nurse1")
    rich = api.new_family("nurse1", members=[{"name": "A", "relation": "child"}])
    other = api.new_family("nurse1")
    api.sign(rich, {"physio": ["health", "story"]})
    api.sign(rich, {"physio": ["health"], "ecec": ["education", "social"]})
    revoked = api.post(f"/api/v1/families/{rich}/consent/revoke", "coord1",
                       json={"agency": "ecec", "field": "social"})
    assert revoked.status_code < 300, revoked.get_json()
    api.sign(other, {"physio": ["health"]}, valid_until=(clock().date() + timedelta(days=1))
             .isoformat())
    t0 = clock()
    today = t0.date()
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        created = [t0, t0, t0 + timedelta(microseconds=1), t0 + timedelta(seconds=1),
                   t0 + timedelta(seconds=1, microseconds=500000), t0 - timedelta(days=2)]
        for n, (state, until) in enumerate([
                ("approved", today), ("approved", today - timedelta(days=1)),
                ("pending_approval", today + timedelta(days=5)),
                ("rejected", today + timedelta(days=5)),
                ("approved", today + timedelta(days=30)), ("approved", today + timedelta(days=1))]):
            _grant(session, rich, f"dg_{5 - n}", ["physio", "ecec", "cps"][n % 3],
                   "involvement,health,story" if n % 2 else "involvement", state, until,
                   created[n])
        _grant(session, other, "dg_other", "physio", "involvement,health", "approved",
               today + timedelta(days=3), t0)
        _glass(session, rich, "ea_mine", "physio1", t0, t0 + timedelta(hours=2))
        _glass(session, rich, "ea_old", "physio1", t0 - timedelta(hours=5),
                t0 - timedelta(hours=3))
        _glass(session, rich, "ea_later", "physio1", t0 + timedelta(hours=3),
               t0 + timedelta(hours=5))
        _glass(session, rich, "ea_colleague", "physiocoord", t0 - timedelta(hours=1),
               t0 + timedelta(hours=8))
        _glass(session, other, "ea_other", "physio1", t0 - timedelta(hours=1),
               t0 + timedelta(hours=8))
        _glass(session, None, "ea_nobody", "physio1", t0 - timedelta(hours=1), None)
        session.commit()
    moments = [t0 - timedelta(hours=4), t0 - timedelta(microseconds=1), t0,
               t0 + timedelta(hours=2) - timedelta(microseconds=1), t0 + timedelta(hours=2),
               t0 + timedelta(hours=3), t0 + timedelta(hours=9),
               datetime.combine(today, datetime.max.time(), UTC),
               datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC),
               t0 + timedelta(days=2), t0 + timedelta(days=400),
               # the same instant in another time zone
               (t0 + timedelta(hours=1)).astimezone(ZoneInfo("Pacific/Kiritimati"))]
    opened = set()
    for who in ("physio1", "physiocoord", "ecec1", "nurse1", "cps1"):
        for family in (bare, rich, other):
            for now in moments:
                with rt.sessions() as session:
                    actor = _actor(session, who)
                    want = _reference(session, family, actor, now)
                with rt.sessions() as session:
                    got = _loaded(app, session, family, actor, now)
                assert got == want, (who, family, now)
                opened.add(want[4])
    assert opened == {None, "ea_mine", "ea_old", "ea_colleague", "ea_later", "ea_other"}
