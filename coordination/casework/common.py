"""What every use case of casework needs: the family as one request sees it
(`FamilyView`), the visibility and entitlement checks, the audit append,
ids and times, the catalogue and agencies.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Text,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased

import audit.services as audit_log
import consent.services as consent_store
from audit.model import Action
from audit.services import Event
from consent import model as consent
from consent.model import DutyGrant, DutyState, Form
from consent.tables import ConsentCellRow, ConsentFormRow
from coordination.actors import Actor
from coordination.crypto import FamilyCipher, Vault
from coordination.errors import FamilyNotFound, NotPermitted
from coordination.model import (
    Agency,
    DutyGrantRow,
    EmergencyAccess,
    Family,
    FieldDef,
    Involvement,
    Staff,
    kinds_of,
)
from coordination.roles import InvolvementStatus

INVOLVEMENT = "involvement"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def iso_time(moment: datetime) -> str:
    # isoformat, not strftime: a year before 1000 keeps its four digits.
    return moment.replace(tzinfo=None, microsecond=0).isoformat() + "Z"


# --- the family as one request sees it --------------------------------------


class _Involved:
    involvements: Sequence[Any]

    def involved(self, agency: str | None) -> bool:
        return any(
            i.agency_id == agency and i.status == InvolvementStatus.ACTIVE
            for i in self.involvements
        )


@dataclass
class FamilyView(_Involved):
    """A family with its involvements, current form and duty grants, loaded
    once per request, as objects of the session (a use case may change them)."""

    family: Family
    involvements: list[Involvement]
    form_row: ConsentFormRow | None
    form: Form | None
    cipher: FamilyCipher = field(repr=False)
    duty: tuple[DutyGrant, ...] = ()  # every duty grant, in force or not
    # The caller's open emergency access to this family, if any (its id).
    emergency: str | None = None
    # Whether the agency that recorded the family keeps minimal data.
    recorded_minimal: bool = False


class FamilyFacts(NamedTuple):
    """A family's row as a read shows it (plain values, nothing tracked)."""

    id: str
    display_name: bytes
    birth_date: bytes | None
    languages: bytes | None
    address: bytes | None
    national_id: bytes | None
    area: bytes | None
    recorded_by_agency: str


class InvolvementFacts(NamedTuple):
    """An involvement as a read shows it, with its contact worker's username."""

    id: int
    agency_id: str
    status: str
    since: date
    contact_worker: str | None


class FormFacts(NamedTuple):
    """The current consent form version's row as a read needs it."""

    id: int
    version: int
    valid_until: date
    statistics: bool


@dataclass
class FamilyRead(_Involved):
    """`FamilyView` for a use case that only reads: the same facts as plain
    values (`_load_read`), without the session's objects and their upkeep."""

    family: FamilyFacts
    involvements: list[InvolvementFacts]
    form_row: FormFacts | None
    form: Form | None
    cipher: FamilyCipher = field(repr=False)
    duty: tuple[DutyGrant, ...] = ()
    emergency: str | None = None
    recorded_minimal: bool = False


def _load(session: Session, vault: Vault, family_id: str, actor: Actor | None = None,
          now: datetime | None = None) -> FamilyView | None:
    """The family as the visibility decision needs it, or None when it does
    not exist: in one statement, the family, its current form version with
    the form's cells, its involvements (with their contact workers), its
    duty grants and, given `actor` and `now`, the actor's open emergency
    access to it (`FamilyView.emergency`; see `_open_emergency_query`).

    The same statement and the same work either way (no key is read before
    a value is opened), so that the 404 for a family that does not exist and
    the one for a family not visible take equally long."""
    postgres, emergency, params = _load_params(session, family_id, actor, now)
    rows = session.execute(_load_statement(postgres, emergency), params).all()
    cipher = vault.for_family(family_id)
    first = rows[0]
    family, form_row = first[0], first[1]
    if family is None:
        return None
    involvements = [row[2] for row in rows if row[2] is not None]
    return FamilyView(family, involvements, form_row, _form(form_row, first), cipher,
                      _duty(first), first.emergency, bool(first.recorder_minimal))


def _load_read(session: Session, vault: Vault, family_id: str, actor: Actor | None = None,
               now: datetime | None = None) -> FamilyRead | None:
    """`_load` for a use case that only reads: the same statement, its rows
    as plain values (`FamilyRead`), in the session's transaction. What the
    family's objects would say, at a fraction of the cost: nothing enters
    the session (tests/functional/test_read_path_attacks.py holds the two
    to the same answers)."""
    postgres, emergency, params = _load_params(session, family_id, actor, now)
    rows = session.connection().execute(
        _load_statement(postgres, emergency, tracked=False), params).all()
    cipher = vault.for_family(family_id)
    first = rows[0]
    if first.id is None:
        return None
    family = FamilyFacts(*first[:8])
    form_row = None if first.form_id is None else FormFacts(*first[8:12])
    involvements = [InvolvementFacts(*row[12:17]) for row in rows
                    if row.involvement_id is not None]
    return FamilyRead(family, involvements, form_row, _form(form_row, first), cipher,
                      _duty(first), first.emergency, bool(first.recorder_minimal))


def _load_params(session: Session, family_id: str, actor: Actor | None,
                 now: datetime | None) -> tuple[bool, bool, dict[str, Any]]:
    postgres = session.get_bind().dialect.name == "postgresql"
    emergency = (actor is not None and now is not None and actor.staff_id is not None
                 and actor.does_casework)
    params: dict[str, Any] = {"family_id": family_id}
    if emergency:
        assert actor is not None
        params.update(staff_id=actor.staff_id, now=now)
    return postgres, emergency, params


def _form(form_row: ConsentFormRow | FormFacts | None, first: Any) -> Form | None:
    return (None if form_row is None else
            consent_store.form_of(form_row, ((a, f) for a, f in parsed(first.cells))))


def _duty(first: Any) -> tuple[DutyGrant, ...]:
    grants = sorted(parsed(first.duty), key=lambda g: (str(g[0]), str(g[1])))
    return tuple(DutyGrant(gid, agency, frozenset(fields.split(",")), DutyState(state),
                           _as_date(until) or date.min)
                 for _, gid, agency, fields, state, until in grants)


@functools.cache
def _load_statement(postgres: bool, emergency: bool, tracked: bool = True) -> Select[Any]:
    """`_load`'s statement (built once): parameters `family_id` and, with
    `emergency`, `staff_id` and `now`. Not `tracked` (`_load_read`): the
    columns `FamilyFacts`, `FormFacts` and `InvolvementFacts` hold, in their
    order, instead of the mapped objects."""
    asked = select(bindparam("family_id", type_=String).label("id")).subquery("asked")
    newest = (select(ConsentFormRow.id).where(ConsentFormRow.family_id == asked.c.id)
              .order_by(ConsentFormRow.version.desc()).limit(1).correlate(asked)
              .scalar_subquery())
    cells = json_rows(postgres, [ConsentCellRow.agency_id, ConsentCellRow.field_id],
                      ConsentCellRow.form_id == ConsentFormRow.id, ConsentFormRow)
    duty = json_rows(postgres, [DutyGrantRow.created_at, DutyGrantRow.id,
                                DutyGrantRow.agency_id, DutyGrantRow.fields,
                                DutyGrantRow.state, DutyGrantRow.until],
                     DutyGrantRow.family_id == asked.c.id, asked)
    opened: Any = literal(None, String)
    if emergency:
        opened = _open_emergency_query(asked.c.id, bindparam("staff_id"), bindparam("now")) \
            .correlate(asked).scalar_subquery()
    recorder = aliased(Agency)  # read with the family: its area's rules ask it
    worker = aliased(Staff)
    read: list[Any] = [Family, ConsentFormRow, Involvement]
    if not tracked:
        read = [Family.id, Family.display_name, Family.birth_date, Family.languages,
                Family.address, Family.national_id, Family.area, Family.recorded_by_agency,
                ConsentFormRow.id.label("form_id"), ConsentFormRow.version,
                ConsentFormRow.valid_until, ConsentFormRow.statistics,
                Involvement.id.label("involvement_id"), Involvement.agency_id,
                Involvement.status, Involvement.since, worker.username.label("worker")]
    statement = (select(*read, cells.label("cells"), duty.label("duty"),
                        opened.label("emergency"),
                        recorder.minimal_data.label("recorder_minimal"))
                 .select_from(asked)
                 .outerjoin(Family, Family.id == asked.c.id)
                 .outerjoin(recorder, recorder.id == Family.recorded_by_agency)
                 .outerjoin(ConsentFormRow, ConsentFormRow.id == newest)
                 .outerjoin(Involvement, Involvement.family_id == asked.c.id))
    if not tracked:
        statement = statement.outerjoin(worker, worker.id == Involvement.contact_worker_id)
    return statement.order_by(Involvement.since, Involvement.id)


def json_rows(postgres: bool, columns: list[Any], where: ColumnElement[bool],
              outer: Any) -> Any:
    """A scalar subquery (correlated to `outer`) giving the rows matching
    `where` as one JSON array (text) of arrays of `columns`, on PostgreSQL
    or SQLite; `parsed` reads it back."""
    agg: Any
    if postgres:
        agg = func.json_agg(func.json_build_array(*columns)).cast(Text)  # NULL: none
    else:
        agg = func.json_group_array(func.json_array(*columns))
    return select(agg).where(where).correlate(outer).scalar_subquery()


def parsed(text: Any) -> list[list[Any]]:
    if text is None:
        return []
    rows = json.loads(text) if isinstance(text, str) else text
    return [json.loads(r) if isinstance(r, str) else r for r in rows]


def duty_grant_of(row: DutyGrantRow) -> DutyGrant:
    return DutyGrant(row.id, row.agency_id, frozenset(row.fields.split(",")),
                     DutyState(row.state), row.until)


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
    # Asked whether the family exists or not: the same statement either way.
    view = _load(session, vault, family_id, actor, now)
    _decide_visible(view, actor, family_id, now)
    assert view is not None
    return view


def _visible_read(session: Session, vault: Vault, actor: Actor, family_id: str,
                  now: datetime) -> FamilyRead:
    """`_visible` for a use case that only reads (`_load_read`): the same
    decision on the same facts."""
    view = _load_read(session, vault, family_id, actor, now)
    _decide_visible(view, actor, family_id, now)
    assert view is not None
    return view


def _decide_visible(view: FamilyView | FamilyRead | None, actor: Actor, family_id: str,
                    now: datetime) -> None:
    """Raise `FamilyNotFound` unless the actor may know the loaded family exists."""
    if view is None:
        raise FamilyNotFound("absent")
    if actor.is_family:
        if actor.family_id != family_id:
            raise FamilyNotFound("not_visible", family_id)
        return
    agency = str(actor.agency_id)
    if not actor.does_casework:
        raise FamilyNotFound("not_visible", family_id)
    if not consent.is_visible(view.form, agency, view.involved(agency), now, view.duty,
                              emergency=view.emergency is not None):
        expired = view.form is not None and not view.form.in_force(now) and any(
            a == agency for a, _ in view.form.cells)
        raise FamilyNotFound("expired" if expired else "not_visible", family_id)


def _open_emergency_query(family_id: Any, staff_id: Any, now: Any) -> Select[Any]:
    """The id of the staff member's own emergency access to the family open at
    `now` (the newest). Only the person who broke the glass has it; their
    colleagues do not."""
    return (select(EmergencyAccess.id)
            .where(EmergencyAccess.family_id == family_id,
                   EmergencyAccess.staff_id == staff_id,
                   EmergencyAccess.opened_at <= now, EmergencyAccess.expires_at > now)
            .order_by(EmergencyAccess.expires_at.desc()).limit(1))


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


class FieldFacts(NamedTuple):
    """A catalogue field as a read shows it (`FieldDef`'s columns, plain values)."""

    id: str
    label: str
    description: str
    position: int
    kinds: str

    @property
    def kind_list(self) -> list[str]:
        return kinds_of(self.kinds)


def catalogue(session: Session) -> list[FieldDef]:
    return list(session.scalars(select(FieldDef).order_by(FieldDef.position, FieldDef.id)))


def agencies(session: Session) -> list[Agency]:
    return list(session.scalars(select(Agency).order_by(Agency.id)))


def _as_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _visible_to(agency: str, now: datetime, staff_id: int | None = None
                ) -> ColumnElement[bool]:
    """`consent.model.is_visible` as SQL, for queries over many families:
    an active involvement, a cell of the current form in force, or an
    approved duty grant naming the agency through its `until` day; with
    `staff_id`, also that staff member's open emergency access.
    (tests/functional/test_hardening.py, test_shared_record.py and
    test_duty_grants.py hold the two to the same answers.)"""
    return visible_condition(agency, now.astimezone(UTC).date(), now, staff_id)


def visible_condition(agency: Any, today: Any, now: Any, staff_id: Any = None
                      ) -> ColumnElement[bool]:
    """`_visible_to`'s condition with `today` (the UTC day of `now`) given
    apart; each a value or a bound parameter, so that a statement built once
    (`functools.cache`) can carry it. `staff_id` None: no emergency access."""
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
        ConsentFormRow.valid_until >= today,
        ConsentCellRow.form_id == ConsentFormRow.id,
        ConsentCellRow.agency_id == agency,
    )
    duty = exists().where(
        DutyGrantRow.family_id == Family.id,
        DutyGrantRow.agency_id == agency,
        DutyGrantRow.state == DutyState.APPROVED.value,
        DutyGrantRow.until >= today,
    )
    if staff_id is None:
        return or_(involved, granted, duty)
    emergency = exists().where(
        EmergencyAccess.family_id == Family.id,
        EmergencyAccess.staff_id == staff_id,
        EmergencyAccess.opened_at <= now,
        EmergencyAccess.expires_at > now,
    )
    return or_(involved, granted, duty, emergency)


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
