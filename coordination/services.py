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
            contact_worker=actor.username,
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
    _audit(session, actor, Action.RECORD_READ, now, family_id=family_id,
           shown=sorted(fields), withheld=withheld)
    session.commit()  # the look is on record before anything is shown
    return SharedRecord(body, shown=sorted(fields), withheld=withheld,
                        involved=view.involved(agency), catalogue=fields_catalogue)


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
        "contact_worker": inv.contact_worker,
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
    (else `Conflict`: the family has not agreed that it may know of it).
    """
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    errors = reference_errors(session, agency_id)
    if errors:
        raise InvalidInput(errors)
    # Consent first: whether another agency is involved is itself shared
    # information, so a referral the family has not agreed to reveals nothing.
    if not consent.decide(view.form, agency_id, INVOLVEMENT, now):
        raise Conflict(str(NotAgreedToKnow(agency_id)))
    if view.involved(agency_id):
        raise Conflict(f"agency '{agency_id}' is already involved with this family")
    existing = next((i for i in view.involvements if i.agency_id == agency_id), None)
    if existing is None:
        existing = Involvement(family_id=family_id, agency_id=agency_id, created_at=now)
        session.add(existing)
    existing.status = InvolvementStatus.ACTIVE
    existing.since = now.date()
    existing.contact_worker = contact_worker
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
    """Close (or name the contact worker of) the actor's own agency's involvement."""
    view = _visible(session, vault, actor, family_id, now, lock=True)
    if agency_id != actor.agency_id:
        raise NotPermitted("only that agency's coordinator may change its involvement")
    inv = next((i for i in view.involvements if i.agency_id == agency_id), None)
    if inv is None:
        raise Conflict("your agency has no involvement with this family")
    if "status" in changes:
        inv.status = changes["status"]
    if "contact_worker" in changes:
        inv.contact_worker = changes["contact_worker"]
    if session.is_modified(inv):
        inv.updated_at = now
    _audit(session, actor, Action.INVOLVEMENT_UPDATE, now, family_id=family_id,
           agency=agency_id, status=inv.status)
    session.commit()
    return _involvement_out(inv)


# --- consent ------------------------------------------------------------------


def _form_out(
    cipher: FamilyCipher, row: ConsentFormRow, form: Form, now: datetime
) -> dict[str, Any]:
    return {
        "version": row.version,
        "signed_by": cipher.open("consent_forms", "signed_by", f"v{row.version}", row.signed_by),
        "signed_on": row.signed_on.isoformat(),
        "recorded_at": iso_time(row.recorded_at),
        "method": row.method,
        "witness": row.witness,
        "interpreter_language": row.interpreter_language,
        "purpose": cipher.open("consent_forms", "purpose", f"v{row.version}", row.purpose),
        "legal_basis": row.legal_basis,
        "valid_until": row.valid_until.isoformat(),
        "in_force": form.in_force(now),
        "grants": form.grants(),
    }


def get_consent(
    session: Session, vault: Vault, actor: Actor, family_id: str, now: datetime
) -> dict[str, Any]:
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    if view.form_row is None or view.form is None:
        raise NoConsentForm("no consent form has been recorded for this family")
    out = _form_out(view.cipher, view.form_row, view.form, now)
    _audit(session, actor, Action.CONSENT_READ, now, family_id=family_id,
           version=view.form_row.version)
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
        .where(ConsentFormRow.family_id == family_id, ConsentFormRow.changed_by == "family")
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
    out = _form_out(view.cipher, row, form, now)
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
    nothing would change, no version is written.
    """
    view = _visible(session, vault, actor, family_id, now, lock=True)
    _involved(view, actor)
    errors = reference_errors(session, agency_id, field_id)
    if errors:
        raise InvalidInput(errors)
    if view.form_row is None or view.form is None:
        raise Conflict("no consent form has been recorded for this family; nothing to revoke")
    remaining = consent.revoke(view.form.cells, agency_id, field_id)
    if remaining == view.form.cells:
        out = _form_out(view.cipher, view.form_row, view.form, now)
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
    return _form_out(view.cipher, row, form, now)


def consent_history(
    session: Session, vault: Vault, actor: Actor, family_id: str, now: datetime
) -> list[dict[str, Any]]:
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    out = []
    for row, form in consent_store.history(session, family_id):
        item = _form_out(view.cipher, row, form, now)
        item["change"] = row.change
        item["changed_by"] = row.changed_by
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
}


def _split(names: str | None) -> list[str]:
    return names.split(",") if names else []


def access_log(
    session: Session, vault: Vault, actor: Actor, family_id: str, now: datetime
) -> list[dict[str, Any]]:
    """Who looked at the family's record and what they did, newest first, in
    plain terms: which agency (and role), which fields were shown and which
    withheld, and which looks were refused. The family is not shown entries
    a coordinator hid from it; staff see them, marked."""
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    rows = [r for r in audit_log.family_entries(session, family_id, list(FAMILY_LOG_ACTIONS))
            if r.actor != "family"]
    hidden = audit_log.hidden_seqs(session, [r.seq for r in rows])
    names = {a.id: a.name for a in agencies(session)}
    out = []
    for r in rows:
        if actor.is_family and r.seq in hidden:
            continue
        item: dict[str, Any] = {
            "seq": r.seq,
            "at": r.at[:19] + "Z",
            "agency": r.agency_id,
            "agency_name": names.get(r.agency_id or "", r.agency_id),
            "role": r.role,
            "what": FAMILY_LOG_ACTIONS[Action(r.action)],
            "action": r.action,
            "refused": r.outcome != "ok",
            "fields_shown": _split(r.shown),
            "fields_withheld": _split(r.withheld),
        }
        if not actor.is_family:
            item["hidden_from_family"] = r.seq in hidden
        out.append(item)
    _audit(session, actor, Action.ACCESS_LOG_READ, now, family_id=family_id)
    session.commit()
    return out


def hide_from_family(
    session: Session, vault: Vault, actor: Actor, family_id: str, seq: int, now: datetime
) -> dict[str, Any]:
    """Leave one entry out of what the family is shown of its log, because
    showing it would put a child at risk. The chained entry is untouched and
    auditors still see it; the marking is itself an audited act."""
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    target = session.get(AuditEntry, seq) if 0 < seq <= MAX_SEQ else None
    if target is None or target.family_id != family_id:
        raise InvalidInput({"seq": [f"no entry {seq} in this family's log"]})
    if audit_log.hidden_seqs(session, [seq]):
        return {"seq": seq, "hidden_from_family": True}
    mark = audit_log.record(session, Event(
        action=Action.ACCESS_LOG_HIDE, actor=actor.label, agency_id=actor.agency_id,
        role=actor.role_name, family_id=family_id, detail={"seq": seq},
        request_id=actor.request_id), now)
    audit_log.hide_from_family(session, seq, actor.label, mark.seq, now)
    session.commit()
    return {"seq": seq, "hidden_from_family": True}
