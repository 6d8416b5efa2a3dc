"""Marshmallow schemas: the only place request bodies are validated.

Every schema refuses unknown keys. Types are strict: a number is not a
string, "yes" is not a boolean.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from coordination.casework.entry_kinds import (
    ATTENDANCE,
    MAX_PERIOD_DAYS,
    MAX_SESSIONS,
    NEEDS,
    NEEDS_CODE,
    TYPED,
)
from coordination.search_words import name_words

LANGUAGE_ERROR = "a language code such as 'tr', 'ar' or 'nb'"
# `$`, not `\Z`: the pattern is also the OpenAPI document's, and JSON Schema's
# regular expressions (ECMA-262) have no `\Z`; `_one_line` refuses the final
# newline that Python's `$` lets through.
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
LANGUAGE = validate.Regexp(LANGUAGE_CODE, error=LANGUAGE_ERROR)


def _one_line(value: str) -> None:
    if "\n" in value and LANGUAGE_CODE.match(value) is not None:
        raise ValidationError(LANGUAGE_ERROR)

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# OneStory never stores these, for anyone, in any mode.
NEVER_STORED = ("residence_status", "immigration_status", "residence", "immigration")


class StrictDate(fields.Date):
    """Exactly YYYY-MM-DD, ASCII digits only."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """Only JSON true and false: not 1, 0, "yes"."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE

    @pre_load
    def _object_only(self, data: Any, **_kw: Any) -> Any:
        if not isinstance(data, dict):
            raise ValidationError({"_schema": ["must be a JSON object"]})
        with_nul = sorted(str(key) for key, value in data.items() if _has_nul(value))
        if with_nul:
            raise ValidationError({key: ["must not contain NUL characters"] for key in with_nul})
        refused = [key for key in data if key in NEVER_STORED]
        if refused:
            raise ValidationError(
                {key: ["OneStory never stores residence or immigration status"]
                 for key in refused}
            )
        return data


def text(lo: int, hi: int, **kw: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=lo, max=hi), **kw)


class MemberIn(StrictSchema):
    name = text(1, 200, required=True)
    relation = text(1, 50, required=True)
    birth_date = StrictDate()


class FamilyIn(StrictSchema):
    display_name = text(1, 200, required=True)
    birth_date = StrictDate()
    address = text(1, 500)
    national_id = text(1, 64)
    languages = fields.List(
        fields.String(validate=[LANGUAGE, _one_line, validate.Length(max=35)]),
        validate=validate.Length(max=20),
    )
    members = fields.List(fields.Nested(MemberIn), validate=validate.Length(max=30))
    area = fields.String(validate=validate.Length(min=1, max=32), metadata={
        "description": "the code of one of the recording agency's areas (GET /api/v1/areas)"})
    refuse_duplicate = StrictBoolean(metadata={
        "description": "true: answer 409, recording nothing, when a family the agency can "
                       "already see has this name and birth date"})

    @validates_schema
    def _name_not_blank(self, data: dict[str, Any], **_kw: Any) -> None:
        if "display_name" in data and not data["display_name"].strip():
            raise ValidationError({"display_name": ["must not be blank"]})


class FamilyAreaIn(StrictSchema):
    """Give the family one of the caller's agency's areas, or none (null)."""

    area = fields.String(required=True, allow_none=True,
                         validate=validate.Length(min=1, max=32))


class SearchArgs(Schema):
    """A search: words of a name, a birth date, or both
    (`coordination.casework.families.search_families`)."""

    class Meta:
        unknown = RAISE

    name = text(1, 200, metadata={
        "description": "whole words of a name of the family or of a member, every one in "
                       "the same name; case, diacritics and the Turkish i's do not matter; "
                       "never a prefix"})
    birth_date = StrictDate(metadata={"description": "of the family or of a member"})

    @validates_schema
    def _something_asked(self, data: dict[str, Any], **_kw: Any) -> None:
        if "name" not in data and "birth_date" not in data:
            raise ValidationError({"name": ["give a name, a birth date, or both"]})
        if "name" in data and not name_words(data["name"]):
            raise ValidationError({"name": ["must hold a word (letters or digits)"]})


DAY = {"type": "string", "format": "date"}
ENTRY_DATA = {
    ATTENDANCE: {"type": "object", "additionalProperties": False,
                 "required": ["attended", "offered", "from", "to"],
                 "description": "sessions attended of sessions offered over a period (whole "
                                f"numbers, never a percentage; at most {MAX_PERIOD_DAYS} days)",
                 "properties": {
                     "attended": {"type": "integer", "minimum": 0, "maximum": MAX_SESSIONS},
                     "offered": {"type": "integer", "minimum": 1, "maximum": MAX_SESSIONS},
                     "from": DAY, "to": DAY}},
    NEEDS: {"type": "object", "additionalProperties": False, "required": ["codes"],
            "description": "codes from the configured list (ONESTORY_NEEDS_CODES)",
            "properties": {"codes": {"type": "array", "minItems": 1, "uniqueItems": True,
                                     "items": {"type": "string",
                                               "pattern": f"^{NEEDS_CODE.pattern}$"}}}},
}


class EntryIn(StrictSchema):
    """Free text, `{"field", "value"}`, or a typed entry, `{"field", "kind",
    "data"}`. Whether the field takes the kind and the data's shape for its
    kind are checked by `casework.entries.entry_errors`."""

    field = text(1, 64, required=True)
    value = text(1, 10_000, metadata={"description": "free text (without `kind`)"})
    kind = fields.String(validate=validate.OneOf(TYPED), metadata={
        "description": "a typed entry's kind, with `data` (instead of `value`)"})
    data = fields.Raw(metadata={"description": "a typed entry's data, in its kind's shape",
                                "oneOf": [ENTRY_DATA[k] for k in TYPED]})

    @validates_schema
    def _text_or_typed(self, data: dict[str, Any], **_kw: Any) -> None:
        if "value" in data and ("kind" in data or "data" in data):
            raise ValidationError("either a value (free text) or a kind with its data, "
                                  "not both", "value")
        if "value" in data:
            return
        if "kind" not in data and "data" not in data:
            raise ValidationError("give the entry's text, or a kind and its data", "value")
        if "kind" not in data:
            raise ValidationError(f"the kind of the data: {' or '.join(TYPED)}", "kind")
        if "data" not in data:
            raise ValidationError(f"the data of the '{data['kind']}' entry", "data")


class ReferralIn(StrictSchema):
    agency = text(1, 64, required=True)
    # Only the referred agency names its contact worker: any name here is
    # refused by `casework.involvements.contact_worker_errors`.
    contact_worker = text(1, 64, allow_none=True)


class ReferralAskIn(StrictSchema):
    """A referral to another agency (CONTRACT.md, "Referrals"). Which agency
    and which catalogue rows are known, and the answer-by day, are checked
    against stored data and the clock by `casework.referrals.referral_errors`."""

    to = text(1, 64, required=True)
    reason = text(1, 2000, required=True)
    # `fields` in the body; named otherwise here, where `fields` is marshmallow's.
    asked = fields.List(text(1, 64), required=True, validate=validate.Length(max=64),
                        data_key="fields")
    urgency = fields.String(validate=validate.OneOf(["routine", "soon", "urgent"]))
    interpreter_language = fields.String(
        validate=[LANGUAGE, _one_line, validate.Length(max=16)], allow_none=True
    )
    accompany = StrictBoolean()
    respond_by = StrictDate(allow_none=True)

    @validates_schema
    def _reason_not_blank(self, data: dict[str, Any], **_kw: Any) -> None:
        if "reason" in data and not data["reason"].strip():
            raise ValidationError({"reason": ["must not be blank"]})


class ReferralListArgs(Schema):
    class Meta:
        unknown = RAISE

    state = fields.String(validate=validate.OneOf(
        ["awaiting_family", "sent", "declined_by_family", "declined", "accepted", "booked",
         "attended", "missed", "closed", "withdrawn"]))
    direction = fields.String(validate=validate.OneOf(["in", "out"]))


class ReferralAcceptIn(StrictSchema):
    contact_worker = text(1, 64, allow_none=True)  # a username of the agency's own staff


class ReferralReasonIn(StrictSchema):
    reason = text(1, 2000, required=True)

    @validates_schema
    def _reason_not_blank(self, data: dict[str, Any], **_kw: Any) -> None:
        if "reason" in data and not data["reason"].strip():
            raise ValidationError({"reason": ["must not be blank"]})


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be blank")


class StrictDateTime(fields.AwareDateTime):
    """An ISO 8601 moment with its offset (`Z` or `+hh:mm`), read as UTC."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(format="iso", **kw)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:  # before the year 1 or after 9999 once read as UTC
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None


class AppointmentIn(StrictSchema):
    """An appointment the receiving agency books for a referral."""

    at = StrictDateTime(required=True)
    place = fields.String(required=True, validate=[validate.Length(min=1, max=500), _not_blank])
    interpreter_language = fields.String(
        validate=[LANGUAGE, _one_line, validate.Length(max=16)], allow_none=True
    )
    accompanied_by = text(1, 200, allow_none=True)


class AppointmentOutcomeIn(StrictSchema):
    """What became of an appointment: set once."""

    outcome = fields.String(required=True,
                            validate=validate.OneOf(["attended", "missed", "cancelled"]))
    note = text(1, 2000, allow_none=True)


class ReferralCloseIn(StrictSchema):
    """Closing a referral after its appointments: what came of it, for the referrer."""

    outcome_note = fields.String(required=True,
                                 validate=[validate.Length(min=1, max=2000), _not_blank])


class InvolvementPatch(StrictSchema):
    status = fields.String(
        validate=validate.OneOf(["closed"], error="only 'closed' can be set here; "
                                "re-involving an agency is a referral")
    )
    contact_worker = text(1, 64, allow_none=True)  # a username of the agency's staff

    @validates_schema
    def _something(self, data: dict[str, Any], **_kw: Any) -> None:
        if not data:
            raise ValidationError({"status": ["give status and/or contact_worker"]})


class ConsentIn(StrictSchema):
    signed_by = text(1, 200, required=True)
    signed_on = StrictDate(required=True)
    method = fields.String(
        required=True, validate=validate.OneOf(["paper", "in_person", "family_portal"])
    )
    witness = text(1, 64, allow_none=True)
    interpreter_language = fields.String(
        validate=[LANGUAGE, _one_line, validate.Length(max=16)], allow_none=True
    )
    purpose = text(1, 500, required=True)
    legal_basis = fields.String(validate=validate.OneOf(
        ["consent"], error="a consent form's legal basis is 'consent'; the other bases "
        "(contract, legal_obligation, vital_interest, public_task, legitimate_interest) "
        "are duty grants, not a consent form"))
    valid_until = StrictDate(required=True)
    grants = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)),
        values=fields.List(fields.String(validate=validate.Length(min=1, max=64))),
        required=True,
    )
    reissue_pin = StrictBoolean()
    statistics = StrictBoolean(load_default=False, metadata={
        "description": "whether the family may be counted in anonymous statistics "
                       "(reports that never show a family); false unless the family said yes"})


class RevokeIn(StrictSchema):
    agency = text(1, 64, allow_none=True)
    field = text(1, 64, allow_none=True)


class EndInvolvementIn(StrictSchema):
    """A coordinator recording the family's wish to end an agency's part."""

    signed_by = text(1, 200, required=True)
    method = fields.String(
        required=True,
        validate=validate.OneOf(["paper", "in_person"],
                                error="'paper' or 'in_person': how the family told you"))

    @validates_schema
    def _signer_not_blank(self, data: dict[str, Any], **_kw: Any) -> None:
        if "signed_by" in data and not data["signed_by"].strip():
            raise ValidationError({"signed_by": ["must not be blank"]})


class AccessRequestIn(StrictSchema):
    """An agency asking the family to see catalogue rows it cannot (CONTRACT.md,
    "Access requests"). Which rows are known is checked against stored data
    by `casework.access_requests.request_errors`."""

    # `fields` in the body; named otherwise here, where `fields` is marshmallow's.
    asked = fields.List(text(1, 64), required=True, validate=validate.Length(min=1, max=64),
                        data_key="fields")
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])


class AccessAnswerIn(StrictSchema):
    """A coordinator recording the family's answer to an access request,
    given in person: who answered and how."""

    signed_by = fields.String(required=True, validate=[validate.Length(min=1, max=200),
                                                       _not_blank])
    method = fields.String(
        required=True,
        validate=validate.OneOf(["paper", "in_person"],
                                error="'paper' or 'in_person': how the family told you"))


class InPersonAnswerIn(EndInvolvementIn):
    """A coordinator recording the family's answer to a referral, given in person."""


class DutyGrantIn(StrictSchema):
    """A coordinator proposing a duty grant (CONTRACT.md, "Exceptional
    access"): the agency the law requires to see `fields`, on which basis,
    why, and through which day (at most 90 days ahead). Known agency and
    rows and the range of `until` are checked against stored data and the
    clock by `casework.duty_grants.grant_errors`."""

    agency = text(1, 64, required=True)
    # `fields` in the body; named otherwise here, where `fields` is marshmallow's.
    granted = fields.List(text(1, 64), required=True, validate=validate.Length(min=1, max=64),
                          data_key="fields")
    legal_basis = fields.String(required=True, validate=validate.OneOf(
        ["legal_obligation", "vital_interest", "public_task"],
        error="a duty grant rests on 'legal_obligation', 'vital_interest' or 'public_task' "
              "(consent is the family's form)"))
    justification = fields.String(required=True,
                                  validate=[validate.Length(min=1, max=2000), _not_blank])
    until = StrictDate(required=True)


class EmptyIn(StrictSchema):
    """A body that must be an empty object."""


HOLD_CONCEALS = ("involvement", "entries", "access")


class ProtectionHoldIn(StrictSchema):
    """A protection hold (CONTRACT.md, "Exceptional access"): what it
    conceals from the family, why, and when it is to be reviewed (after today,
    at most 90 days ahead: checked by `casework.protection_holds`)."""

    conceal = fields.List(
        fields.String(validate=validate.OneOf(
            HOLD_CONCEALS, error="one of 'involvement', 'entries', 'access'")),
        required=True, validate=validate.Length(min=1, max=3))
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])
    review_on = StrictDate(required=True)


class HoldRenewIn(StrictSchema):
    """A new review date for a protection hold in force."""

    review_on = StrictDate(required=True)


class ErasureIn(StrictSchema):
    reason = text(1, 500, required=True)

    @validates_schema
    def _reason_not_blank(self, data: dict[str, Any], **_kw: Any) -> None:
        if "reason" in data and not data["reason"].strip():
            raise ValidationError({"reason": ["must not be blank"]})


class FamilySessionIn(StrictSchema):
    receipt_code = text(1, 32, required=True)
    pin = text(1, 32, required=True)


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as {"members.0.name": ["..."]}."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = str(key) if not prefix else f"{prefix}.{key}"
            if key == "_schema":
                name = prefix or "_schema"
            for k, v in flatten_errors(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            out[prefix or "_schema"] = list(messages)
        else:
            for item in messages:
                for k, v in flatten_errors(item, prefix).items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or "_schema"] = [str(messages)]
    return out


EMERGENCY_LEGAL_BASES = ("vital_interest", "legal_obligation")
EMERGENCY_REASON_MIN = 20


def _reason_long(value: str) -> None:
    if len(value.strip()) < EMERGENCY_REASON_MIN:
        raise ValidationError(f"write why, in at least {EMERGENCY_REASON_MIN} characters")


class EmergencyAccessIn(StrictSchema):
    """Breaking the glass (CONTRACT.md, "Exceptional access"): one person's
    whole name and birth date, why, and on which legal basis. Checked
    whole before any family is looked for."""

    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _not_blank],
                         metadata={"description": "the whole name of the family or of a "
                                                  "member"})
    birth_date = StrictDate(required=True, metadata={"description": "that person's"})
    reason = fields.String(required=True, validate=[validate.Length(max=2000), _reason_long],
                           metadata={"minLength": EMERGENCY_REASON_MIN,
                                     "description": "why, in at least 20 characters "
                                                    "(blank space not counted)"})
    legal_basis = fields.String(required=True, validate=validate.OneOf(
        EMERGENCY_LEGAL_BASES, error="'vital_interest' or 'legal_obligation'"))

    @validates_schema
    def _name_has_words(self, data: dict[str, Any], **_kw: Any) -> None:
        if "name" in data and not name_words(data["name"]):
            raise ValidationError({"name": ["must hold a word (letters or digits)"]})


class EmergencyListArgs(Schema):
    """Which emergency accesses an auditor lists."""

    class Meta:
        unknown = RAISE

    reviewed = fields.Boolean(load_default=False, truthy={"true"}, falsy={"false"},
                              metadata={"description": "`false` (default): the review "
                                                       "queue; `true`: those reviewed"})


class EmergencyReviewIn(StrictSchema):
    """An auditor's verdict on one emergency access, with a note."""

    verdict = fields.String(required=True, validate=validate.OneOf(
        ("justified", "unjustified"), error="'justified' or 'unjustified'"))
    note = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])
