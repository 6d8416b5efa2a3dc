"""Use cases of casework: families, the shared record, entries, involvements
and the family's consent. One function per use case; each takes the session,
the vault, the actor and `now`, commits once, and raises domain errors.

The order of checks follows the contract: the family must be visible (else
`FamilyNotFound`), then the actor must be entitled to the act
(`NotPermitted`), then values must be valid (`InvalidInput`), then the act
must fit the current state (`Conflict`).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import audit.services as audit_log
import consent.services as consent_store
from audit.model import MAX_SEQ, Action, AuditEntry
from audit.services import Event
from consent import model as consent
from consent.errors import NoConsentForm, NotAgreedToKnow
from consent.model import Form
from consent.tables import ConsentCellRow, ConsentFormRow
from coordination.actors import Actor
from coordination.crypto import FamilyCipher, Vault
from coordination.errors import (
    Conflict,
    FamilyNotFound,
    InvalidInput,
    MinimalDataViolation,
    NotPermitted,
)
from coordination.model import (
    Agency,
    ApiToken,
    Entry,
    Family,
    FieldDef,
    Involvement,
    Member,
    Staff,
)
from coordination.roles import InvolvementStatus

INVOLVEMENT = "involvement"
# What a minimal-data agency may record about a family, and write entries under.
MINIMAL_FAMILY_KEYS = frozenset({"display_name", "languages"})
MINIMAL_ENTRY_FIELDS = frozenset({"contact", "story"})
SEARCH_LIMIT = 50


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def iso_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the family as one request sees it --------------------------------------


@dataclass
class FamilyView:
    """A family with its involvements and current form, loaded once per request."""

    family: Family
    involvements: list[Involvement]
    form_row: ConsentFormRow | None
    form: Form | None
    cipher: FamilyCipher = field(repr=False)

    def involved(self, agency: str | None) -> bool:
        return any(
            i.agency_id == agency and i.status == InvolvementStatus.ACTIVE
            for i in self.involvements
        )


def _load(session: Session, vault: Vault, family_id: str) -> FamilyView | None:
    """The family as the visibility decision needs it, or None when it does
    not exist. The same statements and the same work either way (no key is
    read before a value is opened), so that the 404 for a family that does
    not exist and the one for a family not visible take equally long."""
    family = session.get(Family, family_id)
    involvements = list(
        session.scalars(
            select(Involvement)
            .where(Involvement.family_id == family_id)
            .order_by(Involvement.since, Involvement.id)
        )
    )
    row, form = consent_store.current_form(session, family_id)
    cipher = vault.for_family(family_id)
    if family is None:
        return None
    return FamilyView(family, involvements, row, form, cipher)


def _lock_family(session: Session, family_id: str) -> None:
    """Serialise acts that depend on the family's consent (referral,
    revocation, new form, entries), so that none acts on a grid already
    revoked."""
    if session.get_bind().dialect.name == "postgresql":
        # Each waits for the one before it to commit, then reads what it left.
        session.execute(select(Family.id).where(Family.id == family_id).with_for_update())
    # SQLite needs no lock here, and taking its write lock now would hold the
    # whole database for the rest of the use case. A transaction there may
    # write only if nothing was committed since its reads began; otherwise
    # its first write (at the latest the audit append) is refused and the use
    # case runs again on what the other left (`coordination.db.retry_on_conflict`).


def _visible(
    session: Session, vault: Vault, actor: Actor, family_id: str, now: datetime,
    *, lock: bool = False,
) -> FamilyView:
    """The family if the actor may know it exists; otherwise `FamilyNotFound`.
    With `lock`, consent-dependent writes to the family are serialised."""
    if lock:
        _lock_family(session, family_id)
    view = _load(session, vault, family_id)
    if view is None:
        raise FamilyNotFound("absent")
    if actor.is_family:
        if actor.family_id != family_id:
            raise FamilyNotFound("not_visible", family_id)
        return view
    agency = str(actor.agency_id)
    if not actor.does_casework:
        raise FamilyNotFound("not_visible", family_id)
    if not consent.is_visible(view.form, agency, view.involved(agency), now):
        expired = view.form is not None and not view.form.in_force(now) and any(
            a == agency for a, _ in view.form.cells)
        raise FamilyNotFound("expired" if expired else "not_visible", family_id)
    return view


def _audit(session: Session, actor: Actor, action: Action, now: datetime, *,
           family_id: str | None = None, reason: str | None = None,
           shown: Sequence[str] | None = None, withheld: Sequence[str] | None = None,
           **detail: Any) -> None:
    """Append the act to the audit log in this transaction (the caller commits)."""
    audit_log.record(session, Event(
        action=action, actor=actor.label, agency_id=actor.agency_id, role=actor.role_name,
        family_id=family_id, reason=reason, shown=shown, withheld=withheld, detail=detail,
        request_id=actor.request_id), now)


def _involved(view: FamilyView, actor: Actor) -> None:
    if actor.is_family:
        return
    if not view.involved(actor.agency_id):
        raise NotPermitted("your agency is not involved with this family")


def check_access(
    session: Session,
    vault: Vault,
    actor: Actor,
    family_id: str,
    now: datetime,
    *,
    involved: bool = False,
    own_agency: str | None = None,
) -> None:
    """Raise what the visibility and entitlement checks of a family route
    would raise, without doing anything. Lets the boundary answer 404/403
    before 422 when a body is invalid."""
    view = _visible(session, vault, actor, family_id, now)
    if involved:
        _involved(view, actor)
    if own_agency is not None and own_agency != actor.agency_id:
        raise NotPermitted("only that agency's coordinator may change its involvement")


# --- catalogue ----------------------------------------------------------------


def catalogue(session: Session) -> list[FieldDef]:
    return list(session.scalars(select(FieldDef).order_by(FieldDef.position, FieldDef.id)))


def agencies(session: Session) -> list[Agency]:
    return list(session.scalars(select(Agency).order_by(Agency.id)))


# --- families -----------------------------------------------------------------


def _as_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def family_errors(actor: Actor, data: dict[str, Any], now: datetime) -> dict[str, list[str]]:
    """What is wrong with a new family beyond its shape (works on raw input)."""
    errors: dict[str, list[str]] = {}
    if actor.minimal_data:
        for key in sorted(set(data) - MINIMAL_FAMILY_KEYS):
            errors[key] = ["a minimal-data agency records only display_name and languages"]
    born = _as_date(data.get("birth_date"))
    if born and born > now.date():
        errors.setdefault("birth_date", []).append("must not be in the future")
    members = data.get("members")
    for i, member in enumerate(members if isinstance(members, list) else []):
        born = _as_date(member.get("birth_date")) if isinstance(member, dict) else None
        if born and born > now.date():
            errors[f"members.{i}.birth_date"] = ["must not be in the future"]
    return errors


def create_family(
    session: Session, vault: Vault, actor: Actor, data: dict[str, Any], now: datetime
) -> dict[str, str]:
    """Record a new family; the actor's agency becomes involved.

    Raises `MinimalDataViolation` (nothing stored) when a minimal-data agency
    sends anything beyond a display name and languages.
    """
    errors = family_errors(actor, data, now)
    if errors:
        kind = MinimalDataViolation if actor.minimal_data and set(data) - MINIMAL_FAMILY_KEYS \
            else InvalidInput
        raise kind(errors)
    family_id = new_id("fam")
    cipher = vault.new_family(family_id, now)

    def seal(column: str, value: str | None) -> bytes | None:
        return None if value is None else cipher.seal("families", column, family_id, value)

    birth_date: date | None = data.get("birth_date")
    family = Family(
        id=family_id,
        display_name=seal("display_name", data["display_name"]),
        name_index=vault.blind_index("name", data["display_name"]),
        birth_date_index=(
            vault.blind_index("birth_date", birth_date.isoformat()) if birth_date else None
        ),
        birth_date=seal("birth_date", birth_date.isoformat() if birth_date else None),
        address=seal("address", data.get("address")),
        national_id=seal("national_id", data.get("national_id")),
        languages=seal("languages", json.dumps(data["languages"]) if "languages" in data else None),
        recorded_by_agency=actor.agency_id,
        created_at=now,
    )
    session.add(family)
    session.flush()
    for position, member in enumerate(data.get("members", [])):
        member_id = new_id("mem")
        born: date | None = member.get("birth_date")
        session.add(
            Member(
                id=member_id,
                family_id=family_id,
                position=position,
                name=cipher.seal("family_members", "name", member_id, member["name"]),
                relation=cipher.seal("family_members", "relation", member_id, member["relation"]),
                birth_date=(
                    cipher.seal("family_members", "birth_date", member_id, born.isoformat())
                    if born
                    else None
                ),
            )
        )
    session.add(
        Involvement(
            family_id=family_id,
            agency_id=actor.agency_id,
            status=InvolvementStatus.ACTIVE,
            since=now.date(),
            contact_worker_id=actor.staff_id,
            created_at=now,
            updated_at=now,
        )
    )
    _audit(session, actor, Action.FAMILY_CREATE, now, family_id=family_id,
           shown=sorted(data))
    session.commit()
    return {"id": family_id, "display_name": data["display_name"]}


def search_families(
    session: Session,
    vault: Vault,
    actor: Actor,
    name: str,
    birth_date: date | None,
    now: datetime,
) -> list[dict[str, str]]:
    """Families with exactly this (normalised) name, and birth date if given,
    that the actor's agency may know exist.

    Visibility is applied inside the one query, so a name that matches only
    families hidden from the caller costs the same as no match at all.
    """
    agency = str(actor.agency_id)
    query = (
        select(Family.id, Family.display_name)
        .where(Family.name_index == vault.blind_index("name", name),
               _visible_to(agency, now))
        .order_by(Family.created_at, Family.id)
        .limit(SEARCH_LIMIT)
    )
    if birth_date is not None:
        query = query.where(
            Family.birth_date_index == vault.blind_index("birth_date", birth_date.isoformat())
        )
    rows = session.execute(query).all()
    ciphers = vault.for_families([row.id for row in rows])
    found = [
        {"id": row.id,
         "display_name": ciphers[row.id].open("families", "display_name", row.id,
                                              row.display_name)}
        for row in rows
    ]
    _audit(session, actor, Action.FAMILY_SEARCH, now,
           shown=["birth_date"] if birth_date else None, found=[row.id for row in rows])
    session.commit()
    return found


def _visible_to(agency: str, now: datetime) -> ColumnElement[bool]:
    """`consent.model.is_visible` as SQL, for queries over many families:
    an active involvement, or a cell of the current form in force.
    (tests/functional/test_shared_record.py holds the two to the same answers.)"""
    newest = (
        select(func.max(ConsentFormRow.version))
        .where(ConsentFormRow.family_id == Family.id)
        .correlate(Family)
        .scalar_subquery()
    )
    involved = exists().where(
        Involvement.family_id == Family.id,
        Involvement.agency_id == agency,
        Involvement.status == InvolvementStatus.ACTIVE,
    )
    granted = exists().where(
        ConsentFormRow.family_id == Family.id,
        ConsentFormRow.version == newest,
        ConsentFormRow.valid_until >= now.astimezone(UTC).date(),
        ConsentCellRow.form_id == ConsentFormRow.id,
        ConsentCellRow.agency_id == agency,
    )
    return or_(involved, granted)


@dataclass
class SharedRecord:
    """The shared record as one agency may see it, and what was withheld."""

    body: dict[str, Any]
    shown: list[str]
    withheld: list[str]
    involved: bool = False  # whether the reader's agency may write entries here
    catalogue: list[FieldDef] = field(default_factory=list)  # the rows it was decided on
    contact_worker: str | None = None  # the reader's own agency's, which it always knows


def shared_record(
    session: Session, vault: Vault, actor: Actor, family_id: str, now: datetime
) -> SharedRecord:
    """The family's shared record for the actor's agency.

    Every catalogue field is either in `fields` (granted, or only the
    agency's own entries: then also in `partial`) or in `withheld`. Values of
    withheld entries are never opened.
    """
    view = _visible(session, vault, actor, family_id, now)
    agency = str(actor.agency_id)
    form, family, cipher = view.form, view.family, view.cipher
    rows = session.execute(
        select(Entry, Staff.username)
        .join(Staff, Staff.id == Entry.author_id)
        .where(Entry.family_id == family_id)
        .order_by(Entry.written_at, Entry.id)
    ).all()
    by_field: dict[str, list[tuple[Entry, str]]] = defaultdict(list)
    for entry, author in rows:
        by_field[entry.field_id].append((entry, author))

    fields: dict[str, list[dict[str, str]]] = {}
    partial: list[str] = []
    withheld: list[str] = []
    granted: set[str] = set()
    fields_catalogue = catalogue(session)
    for field_def in fields_catalogue:
        fid = field_def.id
        if consent.decide(form, agency, fid, now):
            granted.add(fid)
            fields[fid] = [_entry_out(cipher, e, a) for e, a in by_field[fid]]
            continue
        own = [(e, a) for e, a in by_field[fid]
               if consent.may_see_entry(form, agency, fid, e.agency_id, now)]
        if own:
            fields[fid] = [_entry_out(cipher, e, a) for e, a in own]
            partial.append(fid)
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
        body["members"] = _members(session, cipher, family.id)
    if ("contact" in granted or authored) and family.address is not None:
        body["address"] = cipher.open("families", "address", family.id, family.address)
    if authored and family.national_id is not None:
        body["national_id"] = cipher.open("families", "national_id", family.id, family.national_id)
    body["fields"] = fields
    body["partial"] = partial
    body["withheld"] = withheld
    if INVOLVEMENT in granted:
        body["involvements"] = [_involvement_out(i) for i in view.involvements]
    extra: dict[str, Any] = {"partial": partial} if partial else {}
    _audit(session, actor, Action.RECORD_READ, now, family_id=family_id,
           shown=sorted(fields), withheld=withheld, **extra)
    session.commit()  # the look is on record before anything is shown
    own_worker = next((i.contact_worker for i in view.involvements if i.agency_id == agency),
                      None)
    return SharedRecord(body, shown=sorted(fields), withheld=withheld,
                        involved=view.involved(agency), catalogue=fields_catalogue,
                        contact_worker=own_worker.username if own_worker else None)


def _entry_out(cipher: FamilyCipher, entry: Entry, author: str) -> dict[str, str]:
    return {
        "id": entry.id,
        "agency": entry.agency_id,
        "author": author,
        "written_at": iso_time(entry.written_at),
        "value": cipher.open("entries", "value", entry.id, entry.value),
    }


def _members(session: Session, cipher: FamilyCipher, family_id: str) -> list[dict[str, str]]:
    out = []
    for m in session.scalars(
        select(Member).where(Member.family_id == family_id).order_by(Member.position)
    ):
        item = {
            "name": cipher.open("family_members", "name", m.id, m.name),
            "relation": cipher.open("family_members", "relation", m.id, m.relation),
        }
        if m.birth_date is not None:
            item["birth_date"] = cipher.open("family_members", "birth_date", m.id, m.birth_date)
        out.append(item)
    return out


def _involvement_out(inv: Involvement) -> dict[str, Any]:
    return {
        "agency": inv.agency_id,
        "status": inv.status,
        "since": inv.since.isoformat(),
        "contact_worker": inv.contact_worker.username if inv.contact_worker else None,
    }


# --- entries ------------------------------------------------------------------


def entry_errors(session: Session, actor: Actor, field_id: Any) -> dict[str, list[str]]:
    """What is wrong with the field an entry is written under (raw input)."""
    if not isinstance(field_id, str):
        return {}
    if field_id not in {f.id for f in catalogue(session)}:
        return {"field": [f"unknown field '{field_id}'"]}
    if field_id == INVOLVEMENT:
        return {"field": ["'involvement' is kept by referrals, not written as an entry"]}
    if actor.minimal_data and field_id not in MINIMAL_ENTRY_FIELDS:
        return {"field": [f"a minimal-data agency writes only contact and story, "
                          f"not '{field_id}'"]}
    return {}


def write_entry(
    session: Session,
    vault: Vault,
    actor: Actor,
    family_id: str,
    field_id: str,
    value: str,
    now: datetime,
) -> dict[str, str]:
    """Write an entry under one field for an involved agency."""
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    errors = entry_errors(session, actor, field_id)
    if errors:
        kind = MinimalDataViolation if actor.minimal_data else InvalidInput
        raise kind(errors)
    entry_id = new_id("ent")
    entry = Entry(
        id=entry_id,
        family_id=family_id,
        field_id=field_id,
        agency_id=actor.agency_id,
        author_id=actor.staff_id,
        written_at=now,
        value=view.cipher.seal("entries", "value", entry_id, value),
    )
    session.add(entry)
    _audit(session, actor, Action.ENTRY_WRITE, now, family_id=family_id, shown=[field_id],
           entry=entry_id)
    session.commit()
    return {
        "id": entry_id,
        "field": field_id,
        "agency": str(actor.agency_id),
        "author": str(actor.username),
        "written_at": iso_time(now),
        "value": value,
    }


# --- involvements -------------------------------------------------------------


def reference_errors(session: Session, agency_id: Any = None, field_id: Any = None
                     ) -> dict[str, list[str]]:
    """Name unknown agency and field ids (raw input; None means not given)."""
    errors: dict[str, list[str]] = {}
    # Compared in Python: raw input may hold what a database cannot (NUL).
    if isinstance(agency_id, str) and agency_id not in set(session.scalars(select(Agency.id))):
        errors["agency"] = [f"unknown agency '{agency_id}'"]
    if isinstance(field_id, str) and field_id not in {f.id for f in catalogue(session)}:
        errors["field"] = [f"unknown field '{field_id}'"]
    return errors


def _active_staff(session: Session, agency_id: str, username: str) -> Staff | None:
    """The active staff member of that agency with that username, held (on
    PostgreSQL) until the commit, so that a deactivation meanwhile waits
    and then hands the role over."""
    if "\x00" in username:  # raw input; no database compares it
        return None
    return session.scalars(
        select(Staff).where(Staff.agency_id == agency_id, Staff.username == username,
                            Staff.active).with_for_update(read=True)).first()


def contact_worker_errors(session: Session, actor: Actor, agency_id: Any, username: Any
                          ) -> dict[str, list[str]]:
    """What is wrong with a contact worker named for `agency_id`'s involvement
    (raw input; None means not given). Only that agency names its own: in
    another agency's referral any name is refused; its own must be the
    username of an active staff member of that agency."""
    if not isinstance(username, str):
        return {}
    if agency_id != actor.agency_id:
        return {"contact_worker": [f"only {agency_id} itself names its contact worker; "
                                   "leave contact_worker out"]}
    if _active_staff(session, agency_id, username) is None:
        return {"contact_worker": [f"'{username}' is not an active staff member of "
                                   f"{agency_id}"]}
    return {}


def _contact_worker(session: Session, actor: Actor, agency_id: str, username: str | None
                    ) -> Staff | None:
    errors = contact_worker_errors(session, actor, agency_id, username)
    if errors:
        raise InvalidInput(errors)
    return None if username is None else _active_staff(session, agency_id, username)


def colleagues(session: Session, actor: Actor) -> list[str]:
    """Usernames of the active staff of the actor's agency: who may be named
    its contact worker."""
    return list(session.scalars(select(Staff.username).where(
        Staff.agency_id == actor.agency_id, Staff.active).order_by(Staff.username)))


def refer(
    session: Session,
    vault: Vault,
    actor: Actor,
    family_id: str,
    agency_id: str,
    contact_worker: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Refer the family to another agency, which becomes involved.

    Needs the family's current form to grant that agency `involvement`
    (else `Conflict`: the family has not agreed that it may know of it),
    and the referrer's agency the full view of that form (else
    `NotPermitted`: the answer would tell it what other columns hold).
    """
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    # Its answer (made, not agreed, already involved) would tell a reader of
    # its own column what the others' columns hold: without the full view of
    # the form, no referral. (With no form every referral is a 409 alike.)
    if agency_id != actor.agency_id and view.form is not None and not _form_view(
            session, actor, family_id, view.form, now).full:
        raise NotPermitted("your agency may not see the family's whole consent form, so "
                           "it may not refer the family; a coordinator who sees it can")
    errors = reference_errors(session, agency_id)
    errors.update(contact_worker_errors(session, actor, agency_id, contact_worker))
    if errors:
        raise InvalidInput(errors)
    # Consent first: whether another agency is involved is itself shared
    # information, so a referral the family has not agreed to reveals nothing.
    if not consent.decide(view.form, agency_id, INVOLVEMENT, now):
        raise Conflict(str(NotAgreedToKnow(agency_id)), reason="not_agreed")
    if view.involved(agency_id):
        raise Conflict(f"agency '{agency_id}' is already involved with this family")
    existing = next((i for i in view.involvements if i.agency_id == agency_id), None)
    if existing is None:
        existing = Involvement(family_id=family_id, agency_id=agency_id, created_at=now)
        session.add(existing)
    existing.status = InvolvementStatus.ACTIVE
    existing.since = now.date()
    # Whoever was its contact worker before, the agency names one anew.
    existing.contact_worker = _contact_worker(session, actor, agency_id, contact_worker)
    existing.updated_at = now
    _audit(session, actor, Action.INVOLVEMENT_REFER, now, family_id=family_id, agency=agency_id)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("the family's involvements changed meanwhile; try again") from exc
    return _involvement_out(existing)


def update_involvement(
    session: Session,
    vault: Vault,
    actor: Actor,
    family_id: str,
    agency_id: str,
    changes: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Close the actor's own agency's involvement, or name its contact worker
    (an active staff member of that agency; None clears it)."""
    view = _visible(session, vault, actor, family_id, now, lock=True)
    if agency_id != actor.agency_id:
        raise NotPermitted("only that agency's coordinator may change its involvement")
    worker = _contact_worker(session, actor, agency_id, changes.get("contact_worker"))
    inv = next((i for i in view.involvements if i.agency_id == agency_id), None)
    if inv is None:
        raise Conflict("your agency has no involvement with this family")
    if "status" in changes:
        inv.status = changes["status"]
    if "contact_worker" in changes:
        inv.contact_worker = worker
    if session.is_modified(inv):
        inv.updated_at = now
    detail: dict[str, Any] = {"agency": agency_id, "status": inv.status}
    if "contact_worker" in changes:
        detail["contact_worker"] = worker.username if worker else None
    _audit(session, actor, Action.INVOLVEMENT_UPDATE, now, family_id=family_id, **detail)
    session.commit()
    return _involvement_out(inv)


def check_end_involvement(
    session: Session, vault: Vault, actor: Actor, family_id: str, agency_id: str,
    now: datetime,
) -> None:
    """The checks of `end_involvement` that come before 422, without acting."""
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    _may_name_agency(session, view, actor, agency_id, now, ending=True)


def _may_name_agency(session: Session, view: FamilyView, actor: Actor, agency_id: str,
                     now: datetime, *, ending: bool = False) -> None:
    # Whether another agency takes part is itself shared information: the
    # answer (a new version or not, 200 or 409, an involvement closed or
    # not) would tell it. Revoking another's cells needs the full view of
    # the form (which shows the grid); ending another's part needs what
    # shows who is involved: the `involvement` cell, in force.
    if actor.is_family or agency_id == actor.agency_id:
        return
    if ending:
        allowed = consent.decide(view.form, str(actor.agency_id), INVOLVEMENT, now).allowed
    else:
        allowed = view.form is not None and _form_view(session, actor, view.family.id,
                                                       view.form, now).full
    if not allowed:
        raise NotPermitted("your agency may not see who else takes part in this family's "
                           "record, so it may act only on its own part; the family can do "
                           "this on its page, or with a coordinator who sees its whole form")


def end_involvement(
    session: Session,
    vault: Vault,
    actor: Actor,
    family_id: str,
    agency_id: str,
    on_behalf: dict[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """End an agency's part in the family's record, as the family wishes:
    its active involvement closes and its column is revoked, in one new
    form version (when a form was ever recorded), so the family no longer
    exists for that agency.

    The family acts itself (`on_behalf` None); a coordinator of an involved
    agency records the family's wish with `on_behalf` = {"signed_by",
    "method"}, flagged as such in the audit log. A coordinator whose agency
    may not see who is involved (the `involvement` cell, in force) may end
    only its own agency's part (`NotPermitted`). `Conflict` when the agency has no part to end.
    (The agency is to be told in its worklist once that exists.)
    """
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    _may_name_agency(session, view, actor, agency_id, now, ending=True)
    errors = reference_errors(session, agency_id)
    if errors:
        raise InvalidInput(errors)
    inv = next((i for i in view.involvements
                if i.agency_id == agency_id and i.status == InvolvementStatus.ACTIVE), None)
    column = frozenset(c for c in (view.form.cells if view.form else ()) if c[0] == agency_id)
    if inv is None and not column:
        raise Conflict(f"agency '{agency_id}' has no part in this family's record: it is not "
                       "involved and the form grants it nothing; nothing to end")
    if inv is not None:
        inv.status = InvolvementStatus.CLOSED
        inv.updated_at = now
    row: ConsentFormRow | None = None
    form: Form | None = None
    try:
        if view.form_row is not None and view.form is not None:
            old_id = f"v{view.form_row.version}"
            signed_by = (on_behalf["signed_by"] if on_behalf else view.cipher.open(
                "consent_forms", "signed_by", old_id, view.form_row.signed_by))
            purpose = view.cipher.open("consent_forms", "purpose", old_id, view.form_row.purpose)
            meta = dataclasses.replace(
                consent_store.FormMeta.of(view.form_row), signed_on=now.date(),
                method=on_behalf["method"] if on_behalf else consent.Method.FAMILY_PORTAL,
                witness=None if actor.is_family else actor.username,
                interpreter_language=None)
            row, form = _write_sealed(
                session, view, meta, signed_by, purpose, view.form_row.version + 1,
                view.form.cells - column, change=consent.describe_ending(agency_id),
                changed_by=actor.label, now=now)
        _audit(session, actor, Action.INVOLVEMENT_END, now, family_id=family_id,
               agency=agency_id, involvement_closed=inv is not None,
               version=row.version if row else None,
               **({"on_behalf_of_family": True, "method": on_behalf["method"]}
                  if on_behalf else {}))
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("the family's record changed meanwhile; reload it and try again") from exc
    out: dict[str, Any] = {"agency": agency_id, "involvement_closed": inv is not None,
                           "form": None}
    if row is not None and form is not None:
        seen = _form_view(session, actor, family_id, form, now)
        out["form"] = _family_extras(_form_out(view.cipher, row, form, now, seen), view,
                                     session, actor)
    return out


# --- consent ------------------------------------------------------------------


def _reader(actor: Actor) -> str | None:
    """The agency reading a form (None: the family itself, which sees all)."""
    return None if actor.is_family else str(actor.agency_id)


def _recorders(session: Session, family_id: str) -> dict[int, str | None]:
    """Per version, the agency whose staff recorded the signed form it
    derives from: the latest newly signed form at or before it. Revocations
    and the family's own answers never make their author's agency the
    recorder. (One query.)"""
    rows = session.execute(
        select(ConsentFormRow.version, ConsentFormRow.change, Staff.agency_id)
        .outerjoin(Staff, Staff.username == ConsentFormRow.changed_by)
        .where(ConsentFormRow.family_id == family_id)
        .order_by(ConsentFormRow.version)
    ).all()
    out: dict[int, str | None] = {}
    recorder: str | None = None
    for version, change, agency in rows:
        if change in consent.SIGNED_CHANGES:
            recorder = agency
        out[version] = recorder
    return out


def _form_view(session: Session, actor: Actor, family_id: str, form: Form, now: datetime, *,
               recorders: dict[int, str | None] | None = None) -> consent.FormView:
    """How the actor may read this version (`consent.model.view_of_form`)."""
    if recorders is None:
        recorders = _recorders(session, family_id)
    return consent.view_of_form(form, _reader(actor), recorders.get(form.version), now)


def _form_out(
    cipher: FamilyCipher, row: ConsentFormRow, form: Form, now: datetime,
    view: consent.FormView | None = None,
) -> dict[str, Any]:
    """A form version as its reader may see it (`view`; None: all of it).
    Without the full view, nothing that names another agency or the signer
    is opened or returned."""
    full = view is None or view.full
    return {
        "version": row.version,
        "signed_by": (cipher.open("consent_forms", "signed_by", f"v{row.version}", row.signed_by)
                      if full else None),
        "signed_on": row.signed_on.isoformat(),
        "recorded_at": iso_time(row.recorded_at),
        "method": row.method,
        "witness": row.witness if full else None,
        "interpreter_language": row.interpreter_language if full else None,
        "purpose": cipher.open("consent_forms", "purpose", f"v{row.version}", row.purpose),
        "legal_basis": row.legal_basis,
        "valid_until": row.valid_until.isoformat(),
        "in_force": form.in_force(now),
        "grants": form.grants() if view is None else view.grants(),
        "view": "full" if full else "own_column",
    }


def _family_extras(out: dict[str, Any], view: FamilyView, session: Session,
                   actor: Actor) -> dict[str, Any]:
    """What the family itself is told besides the form: the agencies that
    work with it, and which agency recorded the form it signed."""
    if actor.is_family:
        out["involved"] = sorted(i.agency_id for i in view.involvements
                                 if i.status == InvolvementStatus.ACTIVE)
        out["recorded_by"] = _recorders(session, view.family.id).get(out["version"])
    return out


def get_consent(
    session: Session, vault: Vault, actor: Actor, family_id: str, now: datetime
) -> dict[str, Any]:
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    if view.form_row is None or view.form is None:
        raise NoConsentForm("no consent form has been recorded for this family")
    seen = _form_view(session, actor, family_id, view.form, now)
    out = _family_extras(_form_out(view.cipher, view.form_row, view.form, now, seen), view,
                         session, actor)
    _audit(session, actor, Action.CONSENT_READ, now, family_id=family_id,
           version=view.form_row.version, **({} if seen.full else {"view": "own_column"}))
    session.commit()
    return out


def consent_errors(session: Session, data: dict[str, Any], now: datetime
                   ) -> dict[str, list[str]]:
    """What is wrong with a signed form beyond its shape (works on raw input):
    unknown agencies or fields in the grid, dates out of range."""
    errors: dict[str, list[str]] = {}
    grants = data.get("grants")
    if isinstance(grants, dict):
        known_agencies = set(session.scalars(select(Agency.id)))
        known_fields = {f.id for f in catalogue(session)}
        for agency_id, field_ids in grants.items():
            problems = [] if agency_id in known_agencies else [f"unknown agency '{agency_id}'"]
            if isinstance(field_ids, list):
                problems += [f"unknown field '{f}'" for f in field_ids
                             if isinstance(f, str) and f not in known_fields]
            if problems:
                errors[f"grants.{agency_id}"] = problems
    valid_until = _as_date(data.get("valid_until"))
    if valid_until and valid_until < now.date():
        errors["valid_until"] = ["must not be in the past"]
    signed_on = _as_date(data.get("signed_on"))
    if signed_on and signed_on > now.date():
        errors["signed_on"] = ["must not be in the future"]
    witness = data.get("witness")
    if isinstance(witness, str) and "\x00" not in witness and session.scalars(
            select(Staff.id).where(Staff.username == witness, Staff.active)).first() is None:
        errors["witness"] = [f"'{witness}' is not a staff member's username"]
    return errors


def record_consent(
    session: Session, vault: Vault, actor: Actor, family_id: str, data: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Record a newly signed joint form as a whole new version.

    The grid replaces the previous one. The first form, or one with
    `reissue_pin`, issues the family's receipt code and PIN (returned once).
    """
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    errors = consent_errors(session, data, now)
    if errors:
        raise InvalidInput(errors, "the form has invalid values")
    cells = consent.cells_from_grants(data["grants"])
    family_changed = session.scalar(
        select(func.max(ConsentFormRow.recorded_at))
        .where(ConsentFormRow.family_id == family_id,
               or_(ConsentFormRow.changed_by == "family",
                   ConsentFormRow.change.like("end part %")))
    )
    if family_changed is not None and data["signed_on"] < family_changed.date():
        raise Conflict(
            f"the family changed its consent on {family_changed.date().isoformat()}, after "
            "this form was signed; record a form signed since then"
        )
    version = (view.form_row.version if view.form_row else 0) + 1
    meta = consent_store.FormMeta(
        signed_by=b"",
        signed_on=data["signed_on"],
        method=data["method"],
        witness=data.get("witness") or actor.username,
        interpreter_language=data.get("interpreter_language"),
        purpose=b"",
        legal_basis=data.get("legal_basis", "consent"),
        valid_until=data["valid_until"],
    )
    try:
        row, form = _write_sealed(
            session, view, meta, data["signed_by"], data["purpose"], version, cells,
            change="signed" if version == 1 else "re-signed", changed_by=actor.label, now=now,
        )
        receipt = None
        if view.form_row is None or data.get("reissue_pin"):
            code, pin = consent_store.issue_receipt(session, family_id, now)
            receipt = {"code": code, "pin": pin}
            # A new PIN also ends the family's open sessions: the old receipt
            # may be in the wrong hands.
            session.execute(
                update(ApiToken)
                .where(ApiToken.family_id == family_id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        _audit(session, actor, Action.CONSENT_SIGN, now, family_id=family_id,
               version=version, reissued_pin=receipt is not None)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("the consent form changed meanwhile; reload it and try again") from exc
    # The caller's agency recorded this version, so it reads all of it.
    out = _form_out(view.cipher, row, form, now,
                    consent.view_of_form(form, _reader(actor), actor.agency_id, now))
    if receipt:
        out["receipt"] = receipt
    return out


def _write_sealed(
    session: Session,
    view: FamilyView,
    meta: consent_store.FormMeta,
    signed_by: str,
    purpose: str,
    version: int,
    cells: frozenset[consent.Cell],
    *,
    change: str,
    changed_by: str,
    now: datetime,
) -> tuple[ConsentFormRow, Form]:
    # A form version is never updated, so its free text is sealed before the
    # insert, bound to (family, version) rather than a row id.
    row_id = f"v{version}"
    meta = dataclasses.replace(
        meta,
        signed_by=view.cipher.seal("consent_forms", "signed_by", row_id, signed_by),
        purpose=view.cipher.seal("consent_forms", "purpose", row_id, purpose),
    )
    return consent_store.write_version(
        session, view.family.id, version, meta, cells, change=change, changed_by=changed_by,
        now=now,
    )


def revoke_consent(
    session: Session,
    vault: Vault,
    actor: Actor,
    family_id: str,
    agency_id: str | None,
    field_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Revoke one cell, a column, a row, or everything (both None).

    Makes a new version that takes effect on the very next request; when
    nothing would change, no version is written. A coordinator without the
    full view of the form revokes only in its own agency's column
    (`NotPermitted` otherwise).
    """
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    # Whether a new version is written would tell a reader of its own column
    # whether the others hold cells: without the full view, only its own.
    # (With no form at all every revocation is a 409 alike: nothing to tell.)
    if view.form is not None:
        _may_name_agency(session, view, actor, "" if agency_id is None else agency_id, now)
    errors = reference_errors(session, agency_id, field_id)
    if errors:
        raise InvalidInput(errors)
    if view.form_row is None or view.form is None:
        raise Conflict("no consent form has been recorded for this family; nothing to revoke")
    remaining = consent.revoke(view.form.cells, agency_id, field_id)
    if remaining == view.form.cells:
        out = _family_extras(_form_out(view.cipher, view.form_row, view.form, now,
                                       _form_view(session, actor, family_id, view.form, now)),
                             view, session, actor)
        _audit(session, actor, Action.CONSENT_REVOKE, now, family_id=family_id,
               reason="nothing_to_revoke", agency=agency_id, field=field_id)
        session.commit()
        return out
    old_id = f"v{view.form_row.version}"
    signed_by = view.cipher.open("consent_forms", "signed_by", old_id, view.form_row.signed_by)
    purpose = view.cipher.open("consent_forms", "purpose", old_id, view.form_row.purpose)
    meta = consent_store.FormMeta.of(view.form_row)
    try:
        row, form = _write_sealed(
            session, view, meta, signed_by, purpose, view.form_row.version + 1, remaining,
            change=consent.describe_revocation(agency_id, field_id), changed_by=actor.label,
            now=now,
        )
        _audit(session, actor, Action.CONSENT_REVOKE, now, family_id=family_id,
               version=row.version, agency=agency_id, field=field_id)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("the consent form changed meanwhile; reload it and try again") from exc
    return _family_extras(_form_out(view.cipher, row, form, now,
                                    _form_view(session, actor, family_id, form, now)),
                          view, session, actor)


def consent_history(
    session: Session, vault: Vault, actor: Actor, family_id: str, now: datetime
) -> list[dict[str, Any]]:
    """Every version, oldest first, each as the reader may see it
    (`consent.model.view_of_form`): without the full view of a version, its
    change text and `changed_by` are given only when they name no other
    agency (the family, or the reader's own staff)."""
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    versions = consent_store.history(session, family_id)
    recorders = _recorders(session, family_id)
    authors = {row.changed_by for row, _ in versions}
    agency_of: dict[str, str] = {
        username: agency for username, agency in session.execute(
            select(Staff.username, Staff.agency_id).where(Staff.username.in_(authors)))}
    reader = _reader(actor)
    out = []
    for row, form in versions:
        seen = _form_view(session, actor, family_id, form, now, recorders=recorders)
        item = _form_out(view.cipher, row, form, now, seen)
        item["change"] = consent.change_as_read(row.change, reader, seen.full)
        own = row.changed_by == "family" or agency_of.get(row.changed_by) == reader
        item["changed_by"] = row.changed_by if seen.full or own else None
        out.append(item)
    _audit(session, actor, Action.CONSENT_HISTORY, now, family_id=family_id)
    session.commit()
    return out


# What the family is shown of its log: acts of staff on its record.
FAMILY_LOG_ACTIONS = {
    Action.RECORD_READ: "looked at the family's record",
    Action.CONSENT_READ: "looked at the consent form",
    Action.CONSENT_HISTORY: "looked at the history of the consent form",
    Action.ACCESS_LOG_READ: "looked at this list",
    Action.REQUEST_DENIED: "tried to look and was refused",
    Action.ENTRY_WRITE: "wrote a note",
    Action.FAMILY_CREATE: "recorded the family",
    Action.CONSENT_SIGN: "recorded a signed consent form",
    Action.CONSENT_REVOKE: "recorded a change of consent",
    Action.INVOLVEMENT_REFER: "referred the family to a service",
    Action.INVOLVEMENT_UPDATE: "changed its involvement",
    Action.INVOLVEMENT_END: "recorded that the family ended a service's part",
}
# A refused request that would have changed something (any method but a
# read) is no refused look.
TRIED_TO_CHANGE = "tried to change something and was refused"
READS = frozenset({"GET", "HEAD"})
# Looks that, repeated by one person on one day, the family reads as one line
# (refused looks too, as a line of their own).
ROUTINE_LOOKS = frozenset({Action.RECORD_READ, Action.CONSENT_READ, Action.CONSENT_HISTORY,
                           Action.ACCESS_LOG_READ})


def _refused_for_state(entry: AuditEntry) -> bool:
    """A request refused because it did not fit the family's state (409: a
    referral the family had not agreed to): on the auditors' log, but not a
    look, so not in "who looked"."""
    return entry.action == Action.REQUEST_DENIED and entry.reason in {"not_agreed", "conflict"}


def _split(names: str | None) -> list[str]:
    return names.split(",") if names else []


def _detail(text: str | None) -> dict[str, Any]:
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _log_item(r: AuditEntry, names: dict[str, str]) -> dict[str, Any]:
    detail = _detail(r.detail)
    partial = detail.get("partial")
    own = [f for f in partial if isinstance(f, str)] if isinstance(partial, list) else []
    item: dict[str, Any] = {
        "seq": r.seq,
        "at": r.at[:19] + "Z",
        "agency": r.agency_id,
        "agency_name": names.get(r.agency_id or "", r.agency_id),
        "role": r.role,
        "what": (TRIED_TO_CHANGE if r.action == Action.REQUEST_DENIED
                 and detail.get("method", "GET") not in READS
                 else FAMILY_LOG_ACTIONS[Action(r.action)]),
        "action": r.action,
        "refused": r.outcome != "ok",
        # Fields shown only because the agency wrote those entries itself.
        "fields_own": own,
        "fields_shown": [f for f in _split(r.shown) if f not in own],
        "fields_withheld": _split(r.withheld),
        "times": 1,
    }
    about = detail.get("agency")
    if r.action in {Action.INVOLVEMENT_REFER, Action.INVOLVEMENT_END} and isinstance(about, str):
        item["about_agency"] = about
        item["about_agency_name"] = names.get(about, about)
    return item


def _grouped(rows: list[AuditEntry], items: list[dict[str, Any]], tz: str
             ) -> list[dict[str, Any]]:
    """Routine looks (and refused ones) repeated by the same person on the
    same day (in the family's time zone `tz`), with the same outcome and
    fields, as one item: the newest, with `times`."""
    zone = ZoneInfo(tz)
    out: list[dict[str, Any]] = []
    first: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r, item in zip(rows, items, strict=True):
        routine = r.action in ROUTINE_LOOKS and not item["refused"]
        if not routine and r.action != Action.REQUEST_DENIED:
            out.append(item)
            continue
        day = datetime.fromisoformat(r.at[:19]).replace(tzinfo=UTC).astimezone(zone).date()
        key = (r.actor, r.agency_id, r.role, r.action, item["what"], item["refused"], day,
               tuple(item["fields_own"]),
               tuple(item["fields_shown"]), tuple(item["fields_withheld"]))
        if key in first:
            first[key]["times"] += 1
            continue
        first[key] = item
        out.append(item)
    return out


def access_log(
    session: Session, vault: Vault, actor: Actor, family_id: str, now: datetime,
    *, tz: str = "UTC",
) -> list[dict[str, Any]]:
    """Who looked at the family's record and what they did, newest first, in
    plain terms: which agency (and role), which fields were shown (and which
    of them only as the agency's own entries) and which withheld, and which
    looks were refused. The family is not shown entries a coordinator hid
    from it, and reads routine repeats of one person's look on one day (its
    time zone `tz`) as one item (`times`); staff see every entry, hidden ones marked. An agency
    without the full view of the current form (`consent.model.view_of_form`)
    sees only its own agency's entries."""
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    rows = [r for r in audit_log.family_entries(session, family_id, list(FAMILY_LOG_ACTIONS))
            if r.role != "family" and not _refused_for_state(r)]
    if not actor.is_family and not (
            view.form is not None and _form_view(session, actor, family_id, view.form, now).full):
        rows = [r for r in rows if r.agency_id == actor.agency_id]
    hidden = audit_log.hidden_seqs(session, [r.seq for r in rows])
    if actor.is_family:
        rows = [r for r in rows if r.seq not in hidden]
    names = {a.id: a.name for a in agencies(session)}
    items = [_log_item(r, names) for r in rows]
    if actor.is_family:
        items = _grouped(rows, items, tz)
    else:
        for item in items:
            item["hidden_from_family"] = item["seq"] in hidden
    _audit(session, actor, Action.ACCESS_LOG_READ, now, family_id=family_id)
    session.commit()
    return items


def sees_whole_form(session: Session, vault: Vault, actor: Actor, family_id: str,
                    now: datetime) -> bool:
    """Whether the actor reads the family's current form in full (no content
    is read, so nothing is audited)."""
    view = _visible(session, vault, actor, family_id, now)
    return actor.is_family or (
        view.form is not None and _form_view(session, actor, family_id, view.form, now).full)


def may_refer(session: Session, vault: Vault, actor: Actor, family_id: str,
              now: datetime) -> bool:
    """Whether `refer` would let the actor's agency ask at all: the full view
    of the current form, or no form yet (every referral then is a 409
    alike). No content is read, so nothing is audited."""
    view = _visible(session, vault, actor, family_id, now)
    return view.form is None or _form_view(session, actor, family_id, view.form, now).full


def hide_from_family(
    session: Session, vault: Vault, actor: Actor, family_id: str, seq: int, now: datetime
) -> dict[str, Any]:
    """Leave one entry out of what the family is shown of its log, because
    showing it would put a child at risk. Only the hiding coordinator's own
    agency's entries may be hidden (else `NotPermitted`, nothing marked; to
    an agency without the full view of the form, another agency's entry is
    one that does not exist: `InvalidInput`).
    The chained entry is untouched and auditors still see it; the marking is
    itself an audited act."""
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    target = session.get(AuditEntry, seq) if 0 < seq <= MAX_SEQ else None
    # Without the full view an agency sees only its own agency's entries:
    # another's answers as one that does not exist.
    if target is None or target.family_id != family_id or (
            target.agency_id != actor.agency_id and not (
                view.form is not None
                and _form_view(session, actor, family_id, view.form, now).full)):
        raise InvalidInput({"seq": [f"no entry {seq} in this family's log"]})
    if target.agency_id != actor.agency_id:
        raise NotPermitted("you may hide only your own agency's entries from the family")
    if audit_log.hidden_seqs(session, [seq]):
        return {"seq": seq, "hidden_from_family": True}
    mark = audit_log.record(session, Event(
        action=Action.ACCESS_LOG_HIDE, actor=actor.label, agency_id=actor.agency_id,
        role=actor.role_name, family_id=family_id, detail={"seq": seq},
        request_id=actor.request_id), now)
    audit_log.hide_from_family(session, seq, actor.label, mark.seq, now)
    session.commit()
    return {"seq": seq, "hidden_from_family": True}
