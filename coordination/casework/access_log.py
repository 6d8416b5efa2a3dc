"""Who looked at the family's record (`access_log`), and leaving an entry out
of what the family is shown (`hide_from_family`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

import audit.services as audit_log
from audit.model import MAX_SEQ, Action, AuditEntry
from audit.services import Event
from coordination.actors import Actor
from coordination.casework import concealment, referrals
from coordination.casework.common import _audit, _involved, _visible, agencies
from coordination.casework.form_versions import _form_view
from coordination.crypto import Vault
from coordination.errors import InvalidInput, NotPermitted
from coordination.model import Referral

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
    # Only answers given in person: the family's own acts are not looks.
    Action.ACCESS_REQUEST_APPROVE: "recorded that the family said yes to a service's request",
    Action.ACCESS_REQUEST_DECLINE: "recorded that the family said no to a service's request",
    Action.REFERRAL_CREATE: "asked another service to help the family",
    Action.REFERRAL_LIST: "looked at the family's referrals",
    Action.REFERRAL_READ: "looked at a referral",
    Action.REFERRAL_ACCEPT: "accepted a referral",
    Action.REFERRAL_DECLINE: "declined a referral",
    Action.REFERRAL_WITHDRAW: "withdrew a referral",
    Action.REFERRAL_CLOSE: "closed a referral",
    Action.REFERRAL_AGREE: "recorded that the family agreed to a referral",
    Action.REFERRAL_REFUSE: "recorded that the family refused a referral",
    Action.APPOINTMENT_BOOK: "booked an appointment",
    Action.APPOINTMENT_OUTCOME: "recorded what became of an appointment",
    Action.EMERGENCY_OPEN: "opened the whole record in an emergency (reviewed by an auditor)",
    Action.FAMILY_AREA: "recorded or removed the family's area",
}
# Acts whose detail names the other service they are about (`agency`, or a
# referral's `to`).
ABOUT_AGENCY = frozenset({Action.INVOLVEMENT_REFER, Action.INVOLVEMENT_END,
                          Action.ACCESS_REQUEST_APPROVE, Action.ACCESS_REQUEST_DECLINE,
                          Action.REFERRAL_CREATE})
# A refused request that would have changed something (any method but a
# read) is no refused look.
TRIED_TO_CHANGE = "tried to change something and was refused"
READS = frozenset({"GET", "HEAD"})
# Looks that, repeated by one person on one day, the family reads as one line
# (refused looks too, as a line of their own).
ROUTINE_LOOKS = frozenset({Action.RECORD_READ, Action.CONSENT_READ, Action.CONSENT_HISTORY,
                           Action.ACCESS_LOG_READ, Action.REFERRAL_LIST,
                           Action.REFERRAL_READ})


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


def _about(r: AuditEntry) -> str | None:
    """The other agency an act is about (see `ABOUT_AGENCY`), if any."""
    if r.action not in ABOUT_AGENCY:
        return None
    about = _detail(r.detail).get("to" if r.action == Action.REFERRAL_CREATE else "agency")
    return about if isinstance(about, str) else None


def _names_agency(r: AuditEntry) -> str | None:
    """The other agency any act's detail names (`agency`, or a referral's
    `to`): what a protection hold on that agency's involvement leaves out
    (a change of its cells, a referral to it), whether or not the family's
    words for the act say its name."""
    detail = _detail(r.detail)
    named = detail.get("to") if r.action == Action.REFERRAL_CREATE else detail.get("agency")
    return named if isinstance(named, str) else None


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
    about = _about(r)
    if about is not None:
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
    time zone `tz`) as one item (`times`), and nothing a protection hold in
    force conceals (`coordination.casework.concealment`); staff see every
    entry, hidden ones marked. An agency
    without the full view of the current form (`consent.model.view_of_form`)
    sees only its own agency's entries."""
    view = _visible(session, vault, actor, family_id, now)
    _involved(view, actor)
    rows = [r for r in audit_log.family_entries(session, family_id, list(FAMILY_LOG_ACTIONS))
            if r.role != "family" and not _refused_for_state(r)]
    if not actor.is_family and not (
            view.form is not None and _form_view(session, actor, family_id, view.form, now).full):
        rows = [r for r in rows if r.agency_id == actor.agency_id]
    if not actor.is_family:
        # A referral to the reader's agency that it may not see yet (or ever)
        # is not told it through the log either.
        unknown = referrals.unknown_to(session, str(actor.agency_id), (
            ref for ref in (_detail(r.detail).get("referral") for r in rows)
            if isinstance(ref, str)))
        rows = [r for r in rows if _detail(r.detail).get("referral") not in unknown]
    if actor.is_family:
        held = concealment.concealed_from_family(session, family_id, now)
        concealed_referrals = set(session.scalars(select(Referral.id).where(
            Referral.family_id == family_id,
            or_(Referral.from_agency.in_(sorted(held.involvement)),
                Referral.to_agency.in_(sorted(held.involvement)))))) if held.involvement else set()
        rows = [r for r in rows
                if not held.log_row_hidden(r.agency_id, r.action, _names_agency(r))
                and _detail(r.detail).get("referral") not in concealed_referrals]
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
