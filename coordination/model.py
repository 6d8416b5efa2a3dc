"""Tables of the application: agencies, staff, tokens, families, entries.

Identifying values (names, birth dates, addresses, national ids, entry text)
are stored as opaque bytes produced by a `coordination.crypto` cipher, bound
to their family, table, column and row; the model never sees plaintext.
Search uses keyed index columns, never the stored value.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from coordination.db import Base, UTCDateTime


class Agency(Base):
    __tablename__ = "agencies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    minimal_data: Mapped[bool] = mapped_column(Boolean, default=False)
    # Whether its practitioners and coordinators may break the glass.
    emergency_access: Mapped[bool] = mapped_column(Boolean, default=False,
                                                   server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The agency's own OpenID Connect provider for staff sign-in (optional).
    oidc_issuer: Mapped[str | None] = mapped_column(String(300), nullable=True)
    oidc_client_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Whether its coordinators may place protection holds (CONTRACT.md).
    protection_holds: Mapped[bool] = mapped_column(Boolean, default=False)


class AgencyName(Base):
    """An agency's name in one language (a page in that language uses it;
    otherwise `Agency.name`)."""

    __tablename__ = "agency_names"

    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"),
                                           primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class AgencyArea(Base):
    """An area (a district code and its name) an agency may give a family;
    reports group by it."""

    __tablename__ = "agency_areas"

    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"),
                                           primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (
        UniqueConstraint("agency_id", "oidc_subject"),
        # What an involvement's contact worker refers to: a staff member
        # *of that agency* (see `Involvement`).
        Index("uq_staff_agency_id_id", "agency_id", "id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The `sub` of this person at the agency's OpenID Connect provider.
    oidc_subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # How families and colleagues are told this person's name ("Kari Nordmann");
    # the username when none is set.
    display_name: Mapped[str | None] = mapped_column(String(200), nullable=True)


class WebSession(Base):
    """A staff member's signed-in browser, stored only as the SHA-256 of its
    random cookie value. Ends at sign-out, after `idle` without a request, or
    at its absolute expiry, whichever comes first."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SignInThrottle(Base):
    """Failed sign-ins per key (a username as typed, a client address, or a
    receipt code no receipt has): enough failures lock the key for a while.
    Keys are hashed, so a password typed into the username field is not kept."""

    __tablename__ = "sign_in_throttle"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApiToken(Base):
    """A bearer token, stored only as the SHA-256 of its 256 random bits.

    Either a staff token (`staff_id`) or a family session (`family_id`).
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    family_id: Mapped[str | None] = mapped_column(
        ForeignKey("families.id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def kinds_of(kinds: str) -> list[str]:
    """The kinds of entry a field takes, from `FieldDef.kinds` as stored."""
    return [k for k in kinds.split(",") if k]


class FieldDef(Base):
    """A row of the joint consent form: one category of shared information."""

    __tablename__ = "fields"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)
    # The kinds of entry the field takes, comma-separated ("text" is free text;
    # see coordination.casework.entry_kinds).
    kinds: Mapped[str] = mapped_column(String(200), default="text", server_default="text")

    @property
    def kind_list(self) -> list[str]:
        return kinds_of(self.kinds)


class Family(Base):
    __tablename__ = "families"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    display_name: Mapped[bytes] = mapped_column(LargeBinary)
    # Keyed search indexes over normalised values (see coordination.crypto).
    name_index: Mapped[str] = mapped_column(String(128), index=True)
    birth_date_index: Mapped[str | None] = mapped_column(String(128), nullable=True,
                                                         index=True)
    birth_date: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    address: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    national_id: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    languages: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The family's one area code (an `AgencyArea.code`), sealed like its other values.
    area: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The agency that recorded the family's attributes (their author).
    recorded_by_agency: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Member(Base):
    __tablename__ = "family_members"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    family_id: Mapped[str] = mapped_column(
        ForeignKey("families.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[bytes] = mapped_column(LargeBinary)
    relation: Mapped[bytes] = mapped_column(LargeBinary)
    birth_date: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class SearchTerm(Base):
    """One keyed term of a family's search index (`coordination.casework.search_index`):
    the HMAC of one word of one name, or of one birth date, under the index
    key. `owner` says whose: the family's own id for its name and birth date,
    a member's id for theirs; the words of one name share it. No word, name
    or date is stored, and equal terms say only that a word (or a date) is
    the same."""

    __tablename__ = "search_terms"
    __table_args__ = (Index("ix_search_terms_term", "term", "family_id", "owner"),)

    family_id: Mapped[str] = mapped_column(
        ForeignKey("families.id", ondelete="CASCADE"), primary_key=True)
    owner: Mapped[str] = mapped_column(String(40), primary_key=True)
    term: Mapped[str] = mapped_column(String(64), primary_key=True)


class SearchIndexed(Base):
    """A family whose search terms are current: made by which scheme under
    which index key (`scheme`, a keyed fingerprint), and when. `onestory search
    reindex` indexes only the families without a current mark, so an
    interrupted run goes on where it stopped."""

    __tablename__ = "search_indexed"

    family_id: Mapped[str] = mapped_column(
        ForeignKey("families.id", ondelete="CASCADE"), primary_key=True)
    scheme: Mapped[str] = mapped_column(String(64))
    indexed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Involvement(Base):
    """Family x agency: the list of these is the minimal shared record.

    The contact worker is a reference to a staff member of the same agency
    (the database holds it to that agency), never free text; deactivating
    that person hands the role over or clears it.
    """

    __tablename__ = "involvements"
    __table_args__ = (
        UniqueConstraint("family_id", "agency_id"),
        ForeignKeyConstraint(["agency_id", "contact_worker_id"], ["staff.agency_id", "staff.id"]),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    family_id: Mapped[str] = mapped_column(
        ForeignKey("families.id", ondelete="CASCADE"), index=True
    )
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    status: Mapped[str] = mapped_column(String(16))
    since: Mapped[date] = mapped_column(Date)
    contact_worker_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The day the present contact worker became it (the family is told it).
    contact_since: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Loaded with the involvement (one statement), for its username.
    contact_worker: Mapped[Staff | None] = relationship(
        Staff, primaryjoin="Staff.id == foreign(Involvement.contact_worker_id)", lazy="joined")


class Entry(Base):
    """A value written by an agency under one field of a family's record."""

    __tablename__ = "entries"
    __table_args__ = (Index("ix_entries_family_written", "family_id", "written_at"),
                      Index("ix_entries_kind_written", "kind", "written_at"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    family_id: Mapped[str] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"))
    field_id: Mapped[str] = mapped_column(ForeignKey("fields.id"))
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # "text", or a typed kind ("attendance", "needs"): then `value` seals the
    # entry's data as JSON (coordination.casework.entry_kinds).
    kind: Mapped[str] = mapped_column(String(32), default="text", server_default="text")
    value: Mapped[bytes] = mapped_column(LargeBinary)


class Erasure(Base):
    """A family's erasure: requested, key destroyed, rows deleted.

    Holds no value of the family, only its (random) id, so that an
    interrupted erasure can be finished and a finished one answered.
    """

    __tablename__ = "erasures"

    family_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    reason: Mapped[str] = mapped_column(String(500))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Referral(Base):
    """One agency asking another to work with a family (CONTRACT.md,
    "Referrals"). The reason is sealed under the family's key; states,
    dates, agency ids and the asked catalogue rows are not."""

    __tablename__ = "referrals"
    __table_args__ = (
        Index("ix_referrals_from_created", "from_agency", "created_at"),
        Index("ix_referrals_to_created", "to_agency", "created_at"),
        Index("ix_referrals_family", "family_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    family_id: Mapped[str] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"))
    from_agency: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    to_agency: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    state: Mapped[str] = mapped_column(String(32))
    urgency: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    respond_by: Mapped[date] = mapped_column(Date)
    interpreter_language: Mapped[str | None] = mapped_column(String(35), nullable=True)
    accompany: Mapped[bool] = mapped_column(Boolean, default=False)
    # The asked catalogue rows, comma-joined (always including `involvement`).
    fields: Mapped[str] = mapped_column(Text)
    reason: Mapped[bytes] = mapped_column(LargeBinary)


class ReferralEvent(Base):
    """One state a referral entered: when, by whom (a label), for which
    agency, and why (sealed under the family's key, when said)."""

    __tablename__ = "referral_events"

    referral_id: Mapped[str] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(32))
    by: Mapped[str] = mapped_column(String(64))
    agency_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Appointment(Base):
    """An appointment the receiving agency booked for a referral (CONTRACT.md,
    "Referrals"). The place, who accompanies the family and the note on its
    outcome are sealed under the family's key; the time, the interpreter's
    language and the outcome are not. The outcome is set once."""

    __tablename__ = "appointments"
    __table_args__ = (Index("ix_appointments_referral", "referral_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    place: Mapped[bytes] = mapped_column(LargeBinary)
    interpreter_language: Mapped[str | None] = mapped_column(String(35), nullable=True)
    accompanied_by: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AccessRequest(Base):
    """An agency asking the family to see cells it cannot (CONTRACT.md,
    "Access requests"). The reason, and the name of whoever gave an answer
    in person, are sealed under the family's key; states, times, agency ids
    and the asked catalogue rows are not. `state` is `pending`, `approved` or
    `declined`: a lapse is read from the clock, never stored."""

    __tablename__ = "access_requests"
    __table_args__ = (
        Index("ix_access_requests_family_created", "family_id", "created_at"),
        Index("ix_access_requests_agency_answered", "agency_id", "answered_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    family_id: Mapped[str] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"))
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    asked_by: Mapped[str] = mapped_column(String(64))
    # The asked catalogue rows, comma-joined, in catalogue order.
    fields: Mapped[str] = mapped_column(Text)
    reason: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # 'family', or the username of the coordinator who recorded an answer given in person.
    answered_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    answer_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    answer_signed_by: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The form version an approval wrote (None when nothing was left to add).
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)


class DutyGrantRow(Base):
    """A duty grant (CONTRACT.md, "Exceptional access"): cells an agency
    sees because the law requires it, not by the family's consent. Proposed
    by a coordinator of an involved agency, in force once a coordinator of a
    third agency approves, through `until`. The justification is sealed
    under the family's key; states, dates, agency ids and rows are not."""

    __tablename__ = "duty_grants"
    __table_args__ = (
        Index("ix_duty_grants_family_agency", "family_id", "agency_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    family_id: Mapped[str] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"))
    # The agency the grant lets see the cells.
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    # The catalogue rows, comma-joined, in catalogue order (always `involvement`).
    fields: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(String(32))
    justification: Mapped[bytes] = mapped_column(LargeBinary)
    until: Mapped[date] = mapped_column(Date)
    # pending_approval, approved or rejected (an ending is read from the clock).
    state: Mapped[str] = mapped_column(String(20))
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposer_agency: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decider_agency: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ProtectionHold(Base):
    """An agency concealing its involvement, entries and/or looks from the
    family's views while telling the family would put a child at risk
    (CONTRACT.md, "Exceptional access"). The reason is sealed under the
    family's key; what is concealed (`conceal`, comma-joined), dates and
    usernames are not. In force while not lifted and not past `review_on`."""

    __tablename__ = "protection_holds"
    __table_args__ = (Index("ix_protection_holds_family", "family_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    family_id: Mapped[str] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"))
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    conceal: Mapped[str] = mapped_column(String(64))
    reason: Mapped[bytes] = mapped_column(LargeBinary)
    review_on: Mapped[date] = mapped_column(Date)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)
    set_by: Mapped[str] = mapped_column(String(64))
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    renewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lifted_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ProtectionHoldEvent(Base):
    """One act on a hold, for the auditors' history: `set`, `renewed` or
    `lifted`, when, by whom, and the review date it left."""

    __tablename__ = "protection_hold_events"

    hold_id: Mapped[str] = mapped_column(
        ForeignKey("protection_holds.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    act: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    by: Mapped[str] = mapped_column(String(64))
    review_on: Mapped[date] = mapped_column(Date)


class EmergencyAccess(Base):
    """One attempt to break the glass (CONTRACT.md, "Exceptional access").

    An attempt that matched exactly one person has its family, its reason
    sealed under that family's key and an `expires_at`; one that did not
    has neither family nor reason (there is no family key to seal it under,
    and the reason may name the person), but still counts against the
    caller's limit. The review (verdict, note sealed like the reason) is an
    auditor's."""

    __tablename__ = "emergency_accesses"
    __table_args__ = (
        Index("ix_emergency_accesses_staff_opened", "staff_id", "opened_at"),
        Index("ix_emergency_accesses_family_opened", "family_id", "opened_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    family_id: Mapped[str | None] = mapped_column(
        ForeignKey("families.id", ondelete="CASCADE"), nullable=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    legal_basis: Mapped[str] = mapped_column(String(32))
    reason: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    review_note: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
