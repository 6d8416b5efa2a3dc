"""The shared record as one agency may see it: `shared_record`."""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, String, and_, bindparam, func, select
from sqlalchemy.orm import Session

from audit.model import Action
from consent import model as consent
from coordination.actors import Actor
from coordination.casework import areas, entry_kinds
from coordination.casework.common import (
    INVOLVEMENT,
    FieldFacts,
    _audit,
    _visible_read,
    iso_time,
    json_rows,
    parsed,
)
from coordination.casework.involvements import _involvement_out
from coordination.crypto import FamilyCipher, Vault
from coordination.model import Agency, AgencyArea, Entry, FieldDef, Member, Staff


@dataclass
class SharedRecord:
    """The shared record as one agency may see it, and what was withheld."""

    body: dict[str, Any]
    shown: list[str]
    withheld: list[str]
    involved: bool = False  # whether the reader's agency may write entries here
    catalogue: list[FieldFacts] = field(default_factory=list)  # the rows it was decided on
    contact_worker: str | None = None  # the reader's own agency's, which it always knows


def shared_record(
    session: Session, vault: Vault, actor: Actor, family_id: str, now: datetime
) -> SharedRecord:
    """The family's shared record for the actor's agency.

    Every catalogue field is either in `fields` (granted, or only the
    agency's own entries: then also in `partial`) or in `withheld`. Values of
    withheld entries are never opened.
    """
    view = _visible_read(session, vault, actor, family_id, now)
    agency = str(actor.agency_id)
    form, family, cipher = view.form, view.family, view.cipher
    content = _content(session, family_id, agency, family.recorded_by_agency)
    by_field, members, fields_catalogue = content.by_field, content.members, content.catalogue

    fields: dict[str, list[dict[str, Any]]] = {}
    partial: list[str] = []
    withheld: list[str] = []
    granted: set[str] = set()
    basis: dict[str, str] = {}  # which basis allowed each cell shown
    decisions = consent.decide_cells(form, view.duty, agency,
                                     [f.id for f in fields_catalogue], now)
    emergency = view.emergency is not None
    minimal = content.minimal_authors
    for field_def in fields_catalogue:
        fid = field_def.id
        decision = decisions[fid]
        if emergency and not decision:
            # Opened by breaking the glass: every entry but minimal-data agencies'.
            granted.add(fid)
            basis[fid] = f"emergency:{view.emergency}"
            seen = [(e, a) for e, a in by_field[fid] if consent.may_see_entry(
                form, agency, fid, e.agency_id, now, view.duty, emergency=True,
                author_minimal=e.agency_id in minimal)]
            fields[fid] = [_entry_out(cipher, e, a) for e, a in seen]
            if len(seen) < len(by_field[fid]):
                partial.append(fid)
            continue
        if decision:
            granted.add(fid)
            basis[fid] = str(decision.basis)
            fields[fid] = [_entry_out(cipher, e, a) for e, a in by_field[fid]]
            continue
        own = [(e, a) for e, a in by_field[fid]
               if consent.may_see_entry(form, agency, fid, e.agency_id, now, view.duty)]
        if own:
            fields[fid] = [_entry_out(cipher, e, a) for e, a in own]
            partial.append(fid)
            basis[fid] = consent.AUTHOR
        else:
            withheld.append(fid)

    body: dict[str, Any] = {
        "id": family.id,
        "display_name": cipher.open("families", "display_name", family.id, family.display_name),
    }
    authored = family.recorded_by_agency == agency
    if "household" in granted or authored:
        if family.birth_date is not None:
            body["birth_date"] = cipher.open("families", "birth_date", family.id, family.birth_date)
        if family.languages is not None:
            body["languages"] = json.loads(
                cipher.open("families", "languages", family.id, family.languages)
            )
        body["members"] = _members(cipher, members)
    if ("contact" in granted or authored) and family.address is not None:
        body["address"] = cipher.open("families", "address", family.id, family.address)
    area = (areas.family_area(session, view, agency, now, listed=content.areas)
            if "contact" in granted or authored else None)
    if area is not None:
        body["area"] = area
    if authored and family.national_id is not None:
        body["national_id"] = cipher.open("families", "national_id", family.id, family.national_id)
    body["fields"] = fields
    body["partial"] = partial
    body["withheld"] = withheld
    if INVOLVEMENT in granted:
        body["involvements"] = [_involvement_out(i) for i in view.involvements]
    extra: dict[str, Any] = {"partial": partial} if partial else {}
    if view.emergency is not None:
        # The basis of this look: an emergency access, reviewed by an auditor.
        extra["basis"] = f"emergency:{view.emergency}"
    elif any(b != consent.CONSENT for b in basis.values()):
        # Only a read resting on more than consent says so (older entries
        # read as consent alone).
        extra["basis"] = basis
    _audit(session, actor, Action.RECORD_READ, now, family_id=family_id,
           shown=sorted(fields), withheld=withheld, **extra)
    session.commit()  # the look is on record before anything is shown
    own_worker = next((i.contact_worker for i in view.involvements if i.agency_id == agency),
                      None)  # a username
    return SharedRecord(body, shown=sorted(fields), withheld=withheld,
                        involved=view.involved(agency), catalogue=fields_catalogue,
                        contact_worker=own_worker)


class _Entry(NamedTuple):
    """An entry as the read shows it (plain columns, no object to track)."""

    id: str
    field_id: str
    agency_id: str
    written_at: datetime
    kind: str
    value: bytes


@dataclass
class _Content:
    catalogue: list[FieldFacts]
    by_field: dict[str, list[tuple[_Entry, str]]]  # each field's entries, oldest first
    minimal_authors: frozenset[str]  # the entries' agencies in minimal-data mode
    members: list[list[Any]]  # [id, position, name, relation, birth date], sealed, hex
    areas: list[list[str]]  # [agency, code, name] of the reader's and the recorder's lists


def _content(session: Session, family_id: str, reader: str, recorder: str) -> _Content:
    """In one statement: the field catalogue, each field's entries of the
    family with their author's username and whether their agency keeps
    minimal data, the family's members (sealed, as hex), and the area lists
    of the reader's agency and of the agency that recorded the family.
    Plain values, in the session's transaction: nothing enters the session."""
    postgres = session.get_bind().dialect.name == "postgresql"
    rows = session.connection().execute(_content_statement(postgres), {
        "family_id": family_id, "reader": reader, "recorder": recorder}).all()
    fields: list[FieldFacts] = []
    by_field: dict[str, list[tuple[_Entry, str]]] = defaultdict(list)
    minimal: set[str] = set()
    for row in rows:
        if not fields or fields[-1].id != row[0]:
            fields.append(FieldFacts(*row[:5]))
        field_def = fields[-1]
        if row.entry_id is not None:
            entry = _Entry(row.entry_id, field_def.id, row.entry_agency, row.written_at,
                           row.kind, row.value)
            by_field[field_def.id].append((entry, row.username))
            if row.minimal_data:
                minimal.add(entry.agency_id)
    members = parsed(rows[0].members) if rows else []
    return _Content(fields, by_field, frozenset(minimal), sorted(members, key=lambda m: int(m[1])),
                    parsed(rows[0].areas) if rows else [])


@functools.cache
def _content_statement(postgres: bool) -> Select[Any]:
    """`_content`'s statement (built once), parameter `family_id`."""
    family_id = bindparam("family_id", type_=String)
    hexed: Any = (lambda c: func.encode(c, "hex")) if postgres else func.hex
    members = json_rows(postgres, [Member.id, Member.position, hexed(Member.name),
                                   hexed(Member.relation), hexed(Member.birth_date)],
                        Member.family_id == family_id, None)
    areas_listed = json_rows(postgres, [AgencyArea.agency_id, AgencyArea.code, AgencyArea.name],
                             AgencyArea.agency_id.in_([bindparam("reader"),
                                                       bindparam("recorder")]), None)
    return (select(FieldDef.id, FieldDef.label, FieldDef.description, FieldDef.position,
                   FieldDef.kinds, Entry.id.label("entry_id"),
                   Entry.agency_id.label("entry_agency"),
                   Entry.written_at, Entry.kind, Entry.value, Staff.username,
                   Agency.minimal_data, members.label("members"), areas_listed.label("areas"))
            .outerjoin(Entry, and_(Entry.field_id == FieldDef.id, Entry.family_id == family_id))
            .outerjoin(Staff, Staff.id == Entry.author_id)
            .outerjoin(Agency, Agency.id == Entry.agency_id)
            .order_by(FieldDef.position, FieldDef.id, Entry.written_at, Entry.id))


def _entry_out(cipher: FamilyCipher, entry: _Entry, author: str) -> dict[str, Any]:
    opened = cipher.open("entries", "value", entry.id, entry.value)
    data = entry_kinds.stored_data(entry.kind, opened)
    return {
        "id": entry.id,
        "agency": entry.agency_id,
        "author": author,
        "written_at": iso_time(entry.written_at),
        "kind": entry.kind,
        "data": data,
        "value": entry_kinds.in_words(entry.kind, data, opened),
    }


def _members(cipher: FamilyCipher, members: list[list[Any]]) -> list[dict[str, str]]:
    out = []
    for member_id, _, name, relation, birth_date in members:
        item = {
            "name": cipher.open("family_members", "name", member_id, bytes.fromhex(name)),
            "relation": cipher.open("family_members", "relation", member_id,
                                    bytes.fromhex(relation)),
        }
        if birth_date:  # SQLite's hex() of NULL is ''
            item["birth_date"] = cipher.open("family_members", "birth_date", member_id,
                                             bytes.fromhex(birth_date))
        out.append(item)
    return out
