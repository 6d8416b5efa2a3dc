"""Writing what reports read, straight through the model and the vault.

Typed entries (kind `needs`, `attendance`), a family's area, the areas an
agency gives and the counting answer on the consent form get their API in
issue 12's other points (typed entries; areas and counting consent). Until
those are merged, report tests arrange them here, sealed exactly as the
product seals them: typed data as JSON in `entries.value` under the family's
key (AAD 'entries', 'value', entry id), the area in `families.area`
('families', 'area', family id). Families, forms, involvements, referrals and
appointments go through the real API as usual. Once the APIs exist, these
helpers are to call them instead.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import func, select, update

from consent.tables import ConsentFormRow
from coordination.casework.common import new_id
from coordination.model import AgencyArea, Entry, Family, Staff


def _runtime(app: Flask) -> Any:
    return app.extensions["onestory"]


def add_area(app: Flask, agency: str, code: str, name: str) -> None:
    """An area `agency` may give a family."""
    with _runtime(app).sessions() as session:
        session.add(AgencyArea(agency_id=agency, code=code, name=name))
        session.commit()


def set_area(app: Flask, family_id: str, code: str) -> None:
    """The family's area, sealed under its key."""
    rt = _runtime(app)
    with rt.sessions() as session:
        family = session.get(Family, family_id)
        assert family is not None
        family.area = rt.vault.for_family(family_id).seal("families", "area", family_id, code)
        session.commit()


def count_in_statistics(app: Flask, family_id: str, yes: bool = True) -> None:
    """The family's newest form answers `statistics: yes` (a form version is
    otherwise never changed: this stands in for signing one with the answer)."""
    with _runtime(app).sessions() as session:
        newest = session.scalar(select(func.max(ConsentFormRow.version))
                                .where(ConsentFormRow.family_id == family_id))
        assert newest is not None, "the family has no form"
        session.execute(update(ConsentFormRow)
                        .where(ConsentFormRow.family_id == family_id,
                               ConsentFormRow.version == newest)
                        .values(statistics=yes))
        session.commit()


def typed_entry(app: Flask, family_id: str, author: str, field: str, kind: str,
                data: dict[str, Any], written_at: datetime) -> str:
    """A typed entry by `author` (its agency writes it), its data sealed as JSON."""
    rt = _runtime(app)
    with rt.sessions() as session:
        staff = session.scalars(select(Staff).where(Staff.username == author)).one()
        entry_id = new_id("ent")
        sealed = rt.vault.for_family(family_id).seal("entries", "value", entry_id,
                                                     json.dumps(data))
        session.add(Entry(id=entry_id, family_id=family_id, field_id=field,
                          agency_id=staff.agency_id, author_id=staff.id,
                          written_at=written_at, kind=kind, value=sealed))
        session.commit()
    return entry_id


def needs(app: Flask, family_id: str, codes: list[str], written_at: datetime,
          author: str = "nurse1", field: str = "social") -> str:
    return typed_entry(app, family_id, author, field, "needs", {"codes": codes}, written_at)


def attendance(app: Flask, family_id: str, attended: int, offered: int, written_at: datetime,
               author: str = "nurse1", field: str = "health") -> str:
    return typed_entry(app, family_id, author, field, "attendance",
                       {"attended": attended, "offered": offered,
                        "from": "2026-09-01", "to": "2026-11-30"}, written_at)
