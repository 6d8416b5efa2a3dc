"""Marshmallow schemas of what the API answers: the 2xx bodies and the
problem+json of every failure.

They describe answers for the OpenAPI document (`coordination.api.openapi`);
`make test` holds the live server to them (schemathesis checks every answer
against its schema). Request bodies are validated, and described, by
`coordination.schemas`. An answer schema lists every key the answer may hold
(others are refused by the document: `additionalProperties: false`), and
marks `required` the keys it always holds.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

from audit.model import Action, Outcome

TIME = {"format": "date-time", "description": "UTC, ISO 8601 ending in Z"}


def _str(**kw: Any) -> fields.String:
    return fields.String(required=True, **kw)


def _maybe_str(**kw: Any) -> fields.String:
    return fields.String(required=True, allow_none=True, **kw)


def _strings(**kw: Any) -> fields.List:
    return fields.List(fields.String(), required=True, **kw)


class Problem(Schema):
    """application/problem+json (RFC 9457), the answer of every failure."""

    type = _str(metadata={"pattern": "^urn:onestory:problem:",
                          "description": "urn:onestory:problem:<slug>"})
    title = _str()
    status = fields.Integer(required=True)
    detail = _str()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         required=True,
                         metadata={"description": "each bad key with its messages; may be empty"})


class AgencyOut(Schema):
    id = _str()
    name = _str()
    kind = _str()
    minimal_data = fields.Boolean(required=True)


class FieldOut(Schema):
    id = _str()
    label = _str()
    description = _str()
    kinds = fields.List(fields.String(metadata={"enum": ["text", "attendance", "needs"]}),
                        required=True,
                        metadata={"description": "the kinds of entry the field takes"})


class AreaOut(Schema):
    """An area: a district code and its name."""

    code = _str()
    name = _str()


class FamilyArea(Schema):
    """The family's area after a change (null: none)."""

    area = fields.Nested(AreaOut, required=True, allow_none=True)


class FamilyRef(Schema):
    """A family as created or found: its id and display name."""

    id = _str()
    display_name = _str()


class FamilyCreated(FamilyRef):
    """A family just recorded, with the families the agency could already
    see that have its name and birth date (possibly the same family)."""

    possible_duplicates = _strings(metadata={
        "description": "ids of visible families of which one name holds every word of "
                       "`display_name` and that have its `birth_date`; empty without a "
                       "birth date"})


class MemberOut(Schema):
    name = _str()
    relation = _str()
    birth_date = fields.String(metadata={"format": "date"})


class EntryData(Schema):
    """A typed entry's data: attendance (`attended`, `offered`, `from`, `to`)
    or needs (`codes`)."""

    attended = fields.Integer(metadata={"minimum": 0})
    offered = fields.Integer(metadata={"minimum": 1})
    from_ = fields.String(data_key="from", metadata={"format": "date"})
    to = fields.String(metadata={"format": "date"})
    codes = fields.List(fields.String())


class EntryOut(Schema):
    id = _str()
    agency = _str()
    author = _str()
    written_at = _str(metadata=TIME)
    kind = _str(metadata={"enum": ["text", "attendance", "needs"]})
    data = fields.Nested(EntryData, required=True, allow_none=True,
                         metadata={"description": "null for free text"})
    value = _str(metadata={"description": "the entry in words (free text as written)"})


class EntryWritten(EntryOut):
    field = _str()


class InvolvementOut(Schema):
    agency = _str()
    status = _str(metadata={"enum": ["active", "closed"]})
    since = _str(metadata={"format": "date"})
    contact_worker = _maybe_str()


class SharedRecord(Schema):
    """The record as the caller's agency may see it (see README, "the shared record")."""

    id = _str()
    display_name = _str()
    birth_date = fields.String(metadata={"format": "date", "description": "with `household`"})
    languages = fields.List(fields.String(), metadata={"description": "with `household`"})
    members = fields.List(fields.Nested(MemberOut), metadata={"description": "with `household`"})
    address = fields.String(metadata={"description": "with `contact`"})
    area = fields.Nested(AreaOut, metadata={
        "description": "with `contact`: the family's area, named"})
    national_id = fields.String(metadata={"description": "to the recording agency only"})
    fields_ = fields.Dict(keys=fields.String(), values=fields.List(fields.Nested(EntryOut)),
                          required=True, data_key="fields")
    partial_ = _strings(data_key="partial")
    withheld = _strings()
    involvements = fields.List(fields.Nested(InvolvementOut),
                               metadata={"description": "when `involvement` is visible"})


class Receipt(Schema):
    code = _str()
    pin = _str()


class ConsentForm(Schema):
    """A form version as the caller may read it (CONTRACT.md, "the form as an
    agency reads it"): without the full view, `grants` holds only the
    caller's own column and the signer, witness and interpreter are null."""

    version = fields.Integer(required=True)
    signed_by = _maybe_str(metadata={"description": "null without the full view"})
    signed_on = _str(metadata={"format": "date"})
    recorded_at = _str(metadata=TIME)
    method = _str()
    witness = _maybe_str()
    interpreter_language = _maybe_str()
    purpose = _str()
    legal_basis = _str()
    valid_until = _str(metadata={"format": "date"})
    in_force = fields.Boolean(required=True)
    statistics = fields.Boolean(required=True, metadata={
        "description": "whether the family may be counted in anonymous statistics"})
    grants = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         required=True, metadata={"description": "agency -> its fields"})
    receipt = fields.Nested(Receipt, metadata={
        "description": "only in the answer that issued it (the first form, or reissue_pin)"})
    view = _str(metadata={"enum": ["full", "own_column"],
                          "description": "whether the caller reads the whole form"})
    involved = fields.List(fields.String(), metadata={
        "description": "to the family only: the agencies that work with it"})
    recorded_by = fields.String(allow_none=True, metadata={
        "description": "to the family only: the agency that recorded the form it signed"})


class ConsentVersion(ConsentForm):
    change = _str()
    changed_by = _maybe_str(metadata={
        "description": "null when it would name another agency's staff"})


class InvolvementEnded(Schema):
    """An agency's part ended: its involvement closed and its column revoked."""

    agency = _str()
    involvement_closed = fields.Boolean(required=True)
    form = fields.Nested(ConsentForm, required=True, allow_none=True,
                         metadata={"description": "the new version; null when the family "
                                   "has no form"})


class AccessLogItem(Schema):
    seq = fields.Integer(required=True)
    at = _str(metadata=TIME)
    agency = _maybe_str()
    agency_name = _maybe_str()
    role = _maybe_str()
    what = _str()
    action = _str()
    refused = fields.Boolean(required=True)
    fields_own = _strings(metadata={
        "description": "fields whose shown entries the agency wrote itself"})
    fields_shown = _strings()
    fields_withheld = _strings()
    times = fields.Integer(required=True, metadata={
        "description": "how many such looks this line stands for (the family's view groups "
                       "one person's routine looks on one day)"})
    about_agency = fields.String(metadata={"description": "the agency referred to, or whose "
                                           "part was ended"})
    about_agency_name = fields.String()
    hidden_from_family = fields.Boolean(metadata={"description": "shown to staff only"})


class HiddenOut(Schema):
    seq = fields.Integer(required=True)
    hidden_from_family = fields.Boolean(required=True)


class FamilySessionOut(Schema):
    token = _str()
    family_id = _str()
    expires_at = _str(metadata=TIME)


class AuditItem(Schema):
    seq = fields.Integer(required=True)
    at = _str()
    action = _str(metadata={"enum": [a.value for a in Action]})
    outcome = _str(metadata={"enum": [o.value for o in Outcome]})
    actor = _maybe_str()
    agency = _maybe_str()
    role = _maybe_str()
    family = _maybe_str()
    reason = _maybe_str()
    fields_shown = _strings()
    fields_withheld = _strings()
    detail = fields.Dict(required=True)
    request_id = _maybe_str()
    hash = _str()
    hidden_from_family = fields.Boolean(required=True)


class AuditPage(Schema):
    items = fields.List(fields.Nested(AuditItem), required=True)
    next_cursor = _maybe_str(metadata={"description": "pass as `cursor` for the next page"})


class AuditVerification(Schema):
    ok = fields.Boolean(required=True)
    entries = fields.Integer(required=True)
    head = _str()
    first_bad = fields.Integer(required=True, allow_none=True)
    problem = _maybe_str()


REFERRAL_STATES = ["awaiting_family", "sent", "declined_by_family", "declined", "accepted",
                   "booked", "attended", "missed", "closed", "withdrawn"]


class AppointmentOut(Schema):
    """An appointment booked for a referral; `outcome` and `note` are null
    until what became of it is recorded."""

    id = _str()
    referral_id = _str()
    at = _str(metadata=TIME)
    place = _str()
    interpreter_language = _maybe_str()
    accompanied_by = _maybe_str()
    outcome = _maybe_str(metadata={"enum": ["attended", "missed", "cancelled", None]})
    note = _maybe_str()
    created_at = _str(metadata=TIME)


class ReferralOut(Schema):
    """A referral (CONTRACT.md, "Referrals") with its appointments, earliest first."""

    id = _str()
    family_id = _str()
    from_ = _str(data_key="from")
    to = _str()
    state = _str(metadata={"enum": REFERRAL_STATES})
    urgency = _str(metadata={"enum": ["routine", "soon", "urgent"]})
    created_at = _str(metadata=TIME)
    respond_by = _str(metadata={"format": "date"})
    reason = _str()
    fields_ = _strings(data_key="fields")
    interpreter_language = _maybe_str()
    accompany = fields.Boolean(required=True)
    appointments = fields.List(fields.Nested(AppointmentOut), required=True)


class ReferralStep(Schema):
    state = _str(metadata={"enum": REFERRAL_STATES})
    at = _str(metadata=TIME)
    by = _str(metadata={"description": "a username, or 'family'"})
    agency = _maybe_str()
    note = _maybe_str(metadata={"description": "why (a decline's or withdrawal's reason, "
                                              "or the outcome note of closing)"})


class ReferralDetail(ReferralOut):
    history = fields.List(fields.Nested(ReferralStep), required=True)


class AccessRequestOut(Schema):
    """An access request (CONTRACT.md, "Access requests"). `state` is
    `lapsed` once `lapses_at` has passed unanswered."""

    id = _str()
    family_id = _str()
    agency = _str(metadata={"description": "the asking agency"})
    asked_by = _str(metadata={"description": "the username of whoever asked"})
    fields_ = _strings(data_key="fields")
    reason = _str()
    state = _str(metadata={"enum": ["pending", "approved", "declined", "lapsed"]})
    created_at = _str(metadata=TIME)
    lapses_at = _str(metadata=TIME)
    answered_at = _maybe_str(metadata=TIME)
    answered_by = _maybe_str(metadata={
        "description": "'family', or the coordinator who recorded an answer given in person "
                       "(null to a reader without the full view of the form)"})
    method = _maybe_str(metadata={"enum": ["family_portal", "paper", "in_person", None]})
    version = fields.Integer(required=True, allow_none=True, metadata={
        "description": "the form version an approval wrote; null when none was needed"})
WORKLIST_KINDS = ["referral.to_answer", "referral.overdue", "appointment.upcoming",
                  "appointment.missed", "access_request.answered", "consent.renew",
                  "involvement.ended", "hold.review", "emergency.unreviewed"]


class WorklistItem(Schema):
    """One thing the caller's agency has to act on (CONTRACT.md, "Worklist")."""

    kind = _str(metadata={"enum": WORKLIST_KINDS})
    family_id = _str()
    due = _str(metadata={"format": "date",
                         "description": "the day it is due, or the day it happened"})
    ref = _str(metadata={"description": "what it is about: a referral id (`referral.*`), an "
                                        "appointment id (`appointment.*`), an access request id "
                                        "(`access_request.answered`), the form version "
                                        "as `v<N>` (`consent.renew`), the caller's own "
                                        "agency (`involvement.ended`), a protection hold "
                                        "(`hold.review`)"})
    at = _maybe_str(metadata={**TIME, "description": "the moment, when there is one "
                                                     "(an appointment, an ending)"})
    referral_id = _maybe_str()
    agency = _maybe_str(metadata={"description": "the other agency of a referral"})
    direction = _maybe_str(metadata={"enum": ["in", "out", None],
                                     "description": "`in`: a referral to the caller's "
                                                    "agency; `out`: one it made"})
    display_name = _maybe_str(metadata={
        "description": "null for `involvement.ended`: the family no longer exists for the "
                       "agency"})
    href = _maybe_str(metadata={"description": "the staff page where to act; null for "
                                               "`involvement.ended`"})


class DutyGrantOut(Schema):
    """A duty grant (CONTRACT.md, "Exceptional access"). `state` is `ended`
    once `until` has passed; `in_force` says whether it allows its cells now."""

    id = _str()
    family_id = _str()
    agency = _str(metadata={"description": "the agency the grant lets see the rows"})
    fields_ = _strings(data_key="fields")
    legal_basis = _str(metadata={"enum": ["legal_obligation", "vital_interest",
                                          "public_task"]})
    justification = _str()
    until = _str(metadata={"format": "date", "description": "its last day"})
    state = _str(metadata={"enum": ["pending_approval", "approved", "rejected", "ended"]})
    in_force = fields.Boolean(required=True)
    proposed_by = _maybe_str(metadata={"description": "null when the family reads it, as are "
                                                      "the other proposer and decider keys"})
    proposer_agency = _maybe_str()
    created_at = _str(metadata=TIME)
    decided_by = _maybe_str()
    decider_agency = _maybe_str()
    decided_at = _maybe_str(metadata=TIME)


class HoldEvent(Schema):
    """One act on a protection hold."""

    act = _str(metadata={"enum": ["set", "renewed", "lifted"]})
    at = _str(metadata=TIME)
    by = _str(metadata={"description": "the username of whoever did it"})
    review_on = _str(metadata={"format": "date",
                               "description": "the review date the act left"})


class ProtectionHoldOut(Schema):
    """A protection hold (CONTRACT.md, "Exceptional access"), as its agency's
    coordinator and auditors read it. `state` is `lapsed` once `review_on`
    has passed without renewal."""

    id = _str()
    family_id = _str()
    agency = _str(metadata={"description": "the agency whose part is concealed"})
    conceal = fields.List(fields.String(metadata={"enum": ["involvement", "entries",
                                                           "access"]}), required=True)
    reason = _str()
    review_on = _str(metadata={"format": "date"})
    state = _str(metadata={"enum": ["in_force", "lifted", "lapsed"]})
    set_at = _str(metadata=TIME)
    set_by = _str()
    renewed_at = _maybe_str(metadata=TIME)
    renewed_by = _maybe_str()
    lifted_at = _maybe_str(metadata=TIME)
    lifted_by = _maybe_str()
    history = fields.List(fields.Nested(HoldEvent), required=True)


class EmergencyOpened(Schema):
    """An emergency access just opened (CONTRACT.md, "Exceptional access")."""

    id = _str(metadata={"pattern": "^emg_"})
    family_id = _str()
    expires_at = _str(metadata=TIME)


class EmergencyRead(Schema):
    at = _str(metadata=TIME)
    shown = _strings(metadata={"description": "the fields shown"})


class EmergencyAccessOut(Schema):
    """An opened emergency access as an auditor reviews it."""

    id = _str()
    family_id = _str()
    agency = _str()
    opened_by = _str(metadata={"description": "the username of who broke the glass"})
    legal_basis = _str(metadata={"enum": ["vital_interest", "legal_obligation"]})
    reason = _str()
    opened_at = _str(metadata=TIME)
    expires_at = _str(metadata=TIME)
    reads = fields.List(fields.Nested(EmergencyRead), required=True,
                        metadata={"description": "the record reads under it, oldest first"})
    verdict = _maybe_str(metadata={"enum": ["justified", "unjustified", None]})
    note = _maybe_str()
    reviewed_by = _maybe_str()
    reviewed_at = _maybe_str(metadata=TIME)


class ReportRowOut(Schema):
    group = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                        metadata={"description": "what the row is about: {agency, name}, "
                                                 "{area, name} (area `unknown` for families "
                                                 "without one) or {month}"})
    values = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True),
                         required=True,
                         metadata={"description": "counts, shares in whole percent and "
                                                  "medians; null where withheld"})


class ReportOut(Schema):
    """A report as published (CONTRACT.md, "Reports"): no count below `k`, and
    nothing that would reveal one."""

    report = _str()
    from_ = _str(data_key="from", metadata={"description": "first month, YYYY-MM"})
    to = _str(metadata={"description": "last month, YYYY-MM"})
    by = _str(metadata={"enum": ["agency", "area", "month"]})
    k = fields.Integer(required=True, metadata={"description": "counts below k are withheld"})
    rows = fields.List(fields.Nested(ReportRowOut), required=True)
    suppressed = fields.Integer(required=True,
                                metadata={"description": "how many values were withheld"})
