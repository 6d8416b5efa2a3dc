"""The audit log for auditors: filtered, paged reads and verification.

Auditors read ids, roles, field names and outcomes here, never family
content; reading and verifying the log are themselves recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import ValidationError, fields, validate, validates_schema

import audit.services as audit_log
from audit.chain import audit_time
from audit.model import MAX_SEQ, Action, AuditEntry, Outcome
from audit.services import Event, Filters
from coordination.api import actor, allow, db, load, runtime
from coordination.api.answers import AuditPage, AuditVerification
from coordination.api.openapi import document
from coordination.roles import Role
from coordination.schemas import StrictSchema


class _Moment(fields.Field):
    """A date (from its start) or a UTC time ending in Z, as audit time text."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM:SSZ")
        try:
            if len(value) == 10:
                moment = datetime.combine(datetime.fromisoformat(value).date(), time(),
                                          tzinfo=UTC)
            elif value.endswith("Z"):
                moment = datetime.fromisoformat(value[:-1])
                if moment.tzinfo is not None:  # an offset before the Z: which time is meant?
                    raise ValueError(value)
                moment = moment.replace(tzinfo=UTC)
            else:
                raise ValueError(value)
        except ValueError:
            raise ValidationError("a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM:SSZ") from None
        return audit_time(moment)


MOMENT = {"type": "string", "description": "a date YYYY-MM-DD or a UTC time YYYY-MM-DDTHH:MM:SSZ"}


class AuditQuery(StrictSchema):
    family = fields.String(validate=validate.Length(1, 64))
    agency = fields.String(validate=validate.Length(1, 64))
    user = fields.String(validate=validate.Length(1, 64))
    action = fields.String(validate=validate.OneOf([a.value for a in Action]))
    outcome = fields.String(validate=validate.OneOf([o.value for o in Outcome]))
    since = _Moment(metadata=MOMENT)
    until = _Moment(metadata=MOMENT)
    limit = fields.Integer(validate=validate.Range(1, 500), load_default=50)
    cursor = fields.Integer(validate=validate.Range(min=1, max=MAX_SEQ))

    @validates_schema
    def _order(self, data: dict[str, Any], **_kw: Any) -> None:
        if "since" in data and "until" in data and data["since"] >= data["until"]:
            raise ValidationError({"until": ["must be after since"]})


def _item(entry: AuditEntry, hidden: bool) -> dict[str, Any]:
    import json

    return {
        "seq": entry.seq,
        "at": entry.at,
        "action": entry.action,
        "outcome": entry.outcome,
        "actor": entry.actor,
        "agency": entry.agency_id,
        "role": entry.role,
        "family": entry.family_id,
        "reason": entry.reason,
        "fields_shown": entry.shown.split(",") if entry.shown else [],
        "fields_withheld": entry.withheld.split(",") if entry.withheld else [],
        "detail": json.loads(entry.detail) if entry.detail else {},
        "request_id": entry.request_id,
        "hash": entry.hash,
        "hidden_from_family": hidden,
    }


def _record(action: Action, /, **detail: Any) -> None:
    who = actor()
    audit_log.record(db(), Event(action=action, actor=who.label, agency_id=who.agency_id,
                                 role=who.role_name, detail=detail,
                                 request_id=who.request_id), runtime().now())
    db().commit()


def register(bp: Blueprint) -> None:
    @bp.get("/audit")
    @document("The audit log, newest first, filtered and paged", query=AuditQuery,
              answer=AuditPage)
    @allow(Role.AUDITOR)
    def audit_entries() -> Response:
        args = load(AuditQuery(), request.args.to_dict())
        filters = Filters(**{k: args.get(k) for k in (
            "family", "agency", "user", "action", "outcome", "since", "until")})
        rows, cursor = audit_log.entries(db(), filters, args["limit"], args.get("cursor"))
        hidden = audit_log.hidden_seqs(db(), [r.seq for r in rows])
        body = {"items": [_item(r, r.seq in hidden) for r in rows],
                "next_cursor": str(cursor) if cursor else None}
        _record(Action.AUDIT_READ, **{k: v for k, v in request.args.items() if k != "cursor"})
        return jsonify(body)

    @bp.get("/audit/verify")
    @document("Verify the whole audit chain", answer=AuditVerification)
    @allow(Role.AUDITOR)
    def audit_verify() -> Response:
        rt = runtime()
        # End this request's transaction first: verification reads on a
        # connection of its own, and on SQLite the append after a long walk
        # should wait its turn, not find its earlier reads stale.
        db().commit()
        result = audit_log.verify(rt.engine, rt.audit_key.public_key())
        body = {"ok": result.ok, "entries": result.entries, "head": result.head,
                "first_bad": result.first_bad, "problem": result.problem}
        _record(Action.AUDIT_VERIFY, ok=result.ok, first_bad=result.first_bad)
        return jsonify(body)
