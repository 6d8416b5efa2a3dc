"""Writing an entry under one field: `write_entry`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Select, String, Table, bindparam, insert, select
from sqlalchemy.orm import Session

from audit.model import Action
from consent import model as consent
from coordination.actors import Actor
from coordination.casework import entry_kinds
from coordination.casework.common import (
    INVOLVEMENT,
    _audit,
    _involved,
    _visible,
    catalogue,
    iso_time,
    new_id,
)
from coordination.casework.form_versions import _form_view
from coordination.crypto import Vault
from coordination.errors import InvalidInput, MinimalDataViolation
from coordination.model import Entry, Family, FieldDef, kinds_of

# What a minimal-data agency may write entries under.
MINIMAL_ENTRY_FIELDS = frozenset({"contact", "story"})


def entry_errors(session: Session, actor: Actor, field_id: Any, kind: Any = entry_kinds.TEXT,
                 data: Any = None,
                 needs_codes: Sequence[str] = entry_kinds.DEFAULT_NEEDS_CODES,
                 ) -> dict[str, list[str]]:
    """What is wrong with the field an entry is written under, the kind (one
    the field takes) and a typed entry's data (its kind's shape; see
    `entry_kinds.data_errors`) — raw input: what is not a string is left to
    the schema."""
    if not isinstance(field_id, str):
        return {}
    # Compared in Python: raw input may hold what a database cannot (NUL).
    kinds = next((f.kinds for f in catalogue(session) if f.id == field_id), None)
    return _field_errors(actor, field_id, kinds, kind, data, needs_codes)


def _field_errors(actor: Actor, field_id: str, kinds: str | None, kind: Any, data: Any,
                  needs_codes: Sequence[str]) -> dict[str, list[str]]:
    """`entry_errors` given the kinds the field takes as stored
    (`FieldDef.kinds`; None: no such field)."""
    if kinds is None:
        return {"field": [f"unknown field '{field_id}'"]}
    if field_id == INVOLVEMENT:
        return {"field": ["'involvement' is kept by referrals, not written as an entry"]}
    if actor.minimal_data and field_id not in MINIMAL_ENTRY_FIELDS:
        return {"field": [f"a minimal-data agency writes only contact and story, "
                          f"not '{field_id}'"]}
    if not isinstance(kind, str) or kind not in entry_kinds.KINDS:
        return {}
    wrong = entry_kinds.kind_errors(field_id, kinds_of(kinds), kind)
    if wrong:
        return {"kind": wrong}
    if kind == entry_kinds.TEXT:
        return {}
    return entry_kinds.data_errors(kind, data, needs_codes)[1]


@functools.cache
def _field_statement(lock: bool) -> Select[Any]:
    """The kinds the field `field_id` takes (`FieldDef.kinds`, NULL: no such
    field). With `lock` (PostgreSQL), read with the family `family_id`'s row
    locked FOR UPDATE, as `common._lock_family` locks it: one statement for
    both, no row when the family does not exist."""
    # Of the tables, not the mapped classes: a plain row, without the ORM's
    # work per execution.
    fields, families = FieldDef.__table__.c, Family.__table__
    kinds = (select(fields.kinds).where(fields.id == bindparam("field_id", type_=String))
             .scalar_subquery().label("kinds"))
    if not lock:
        return select(kinds)
    return (select(families.c.id, kinds)
            .where(families.c.id == bindparam("family_id", type_=String))
            .with_for_update(of=families))


def _storable(text: str) -> bool:
    """Whether a database can compare `text`: no NUL, and encodable as UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


@functools.cache
def _insert_statement() -> Insert:
    entries: Table = Entry.__table__  # type: ignore[assignment]
    return insert(entries)


def write_entry(
    session: Session,
    vault: Vault,
    actor: Actor,
    family_id: str,
    field_id: str,
    value: str | None,
    now: datetime,
    *,
    kind: str = entry_kinds.TEXT,
    data: Any = None,
    needs_codes: Sequence[str] = entry_kinds.DEFAULT_NEEDS_CODES,
) -> dict[str, Any]:
    """Write an entry under one field for an involved agency: free text
    (`value`), or a typed `kind` with its `data` (sealed as canonical JSON).
    Raises `FamilyNotFound`, `NotPermitted` (not involved), then
    `MinimalDataViolation` (a field a minimal-data agency may not write) or
    `InvalidInput` (unknown field, a kind the field does not take, data not
    in its kind's shape). Returns the entry as read back, `value` in words."""
    # Writes to the family are serialised as `_visible(lock=True)` does it,
    # the field being read in the same statement; the same statements
    # whether the family exists, is hidden or visible, the field known or not.
    postgres = session.get_bind().dialect.name == "postgresql"
    # A database holds no NUL, and no lone surrogate can be sent to one: unknown.
    asked = field_id if _storable(field_id) else None
    row = session.execute(_field_statement(postgres),
                          {"family_id": family_id, "field_id": asked}).first()
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    errors = _field_errors(actor, field_id, None if row is None else row.kinds, kind, data,
                           needs_codes)
    if errors:
        raise (MinimalDataViolation if "field" in errors and actor.minimal_data
               else InvalidInput)(errors)
    stored: dict[str, Any] | None = None
    if kind == entry_kinds.TEXT:
        if value is None:
            raise InvalidInput({"value": ["the entry's text"]})
        plain = value
    else:
        stored = entry_kinds.data_errors(kind, data, needs_codes)[0]
        if stored is None:  # entry_errors said nothing: not reached
            raise InvalidInput({"data": [f"the data of a '{kind}' entry"]})
        plain = entry_kinds.canonical(stored)
    entry_id = new_id("ent")
    session.execute(_insert_statement(), {
        "id": entry_id, "family_id": family_id, "field_id": field_id,
        "agency_id": actor.agency_id, "author_id": actor.staff_id, "written_at": now,
        "kind": kind, "value": view.cipher.seal("entries", "value", entry_id, plain)})
    _audit(session, actor, Action.ENTRY_WRITE, now, family_id=family_id, shown=[field_id],
           entry=entry_id)
    session.commit()
    return {
        "id": entry_id,
        "field": field_id,
        "agency": str(actor.agency_id),
        "author": str(actor.username),
        "written_at": iso_time(now),
        "kind": kind,
        "data": stored,
        "value": entry_kinds.in_words(kind, stored, plain),
    }


@dataclass(frozen=True)
class Readers:
    """Who reads an entry the caller's agency writes, per field it may write
    under. `others[field]`: the other agencies the form in force lets see
    that field, named only when the caller's agency reads the whole form
    (`named`; the grid is itself shared information). `own`: the fields the
    form lets the caller's agency see. `default`: the field to offer first."""

    fields: list[str]
    named: bool
    others: dict[str, list[str]] = field(default_factory=dict)
    own: frozenset[str] = frozenset()
    default: str | None = None

    def alone(self, field_id: str) -> bool:
        """Whether nobody but the writer's agency would read it (known only
        with `named`)."""
        return self.named and not self.others.get(field_id)


def entry_readers(session: Session, vault: Vault, actor: Actor, family_id: str,
                  now: datetime) -> Readers:
    """Who will read an entry under each field the actor may write under,
    from the family's current form (`consent.model.decide`, as reading the
    record does): its own agency always (it sees what it wrote), and each
    other agency whose cell the form in force grants. With no form, nobody
    else. For an involved agency; raises as `write_entry` would."""
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    agency = str(actor.agency_id)
    writable = [f.id for f in catalogue(session) if f.id != INVOLVEMENT
                and (not actor.minimal_data or f.id in MINIMAL_ENTRY_FIELDS)]
    form = view.form
    named = form is None or _form_view(session, actor, family_id, form, now).full
    columns = sorted({a for a, _ in form.cells}) if form is not None else []
    own = frozenset(f for f in writable if consent.decide(form, agency, f, now).allowed)
    others = {f: [a for a in columns if a != agency and consent.decide(form, a, f, now).allowed]
              for f in writable} if named else {}
    default = next((f for f in writable if f in own), writable[0] if writable else None)
    return Readers(writable, named, others, own, default)
