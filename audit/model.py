"""The audit log's tables and closed vocabularies.

An entry is pseudonymous: ids, roles, field names, outcome, reason, request
id and time; never a value, a name or a birth date. So erasing a family
never requires rewriting the log, and the log itself reveals no content.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime

# The largest sequence number either backend stores (BIGINT); larger ones
# given as input name no entry.
MAX_SEQ = 2**63 - 1


class Action(StrEnum):
    RECORD_READ = "record.read"
    FAMILY_SEARCH = "family.search"
    FAMILY_CREATE = "family.create"
    ENTRY_WRITE = "entry.write"
    INVOLVEMENT_REFER = "involvement.refer"
    INVOLVEMENT_UPDATE = "involvement.update"
    CONSENT_READ = "consent.read"
    CONSENT_SIGN = "consent.sign"
    CONSENT_REVOKE = "consent.revoke"
    CONSENT_HISTORY = "consent.history"
    ACCESS_LOG_READ = "access_log.read"
    ACCESS_LOG_HIDE = "access_log.hide"
    LOGIN = "login"
    LOGIN_FAILED = "login.failed"
    LOGOUT = "logout"
    TOKEN_CREATE = "token.create"  # noqa: S105 - an action name, not a secret
    FAMILY_ERASE = "family.erase"
    AUDIT_READ = "audit.read"
    AUDIT_VERIFY = "audit.verify"
    AUDIT_CHECKPOINT = "audit.checkpoint"
    AUDIT_EXPORT = "audit.export"
    REQUEST_DENIED = "request.denied"
    INVOLVEMENT_END = "involvement.end"
    USER_DEACTIVATE = "user.deactivate"
    TOKEN_REVOKE = "token.revoke"  # noqa: S105 - an action name, not a secret
    REFERRAL_CREATE = "referral.create"
    REFERRAL_LIST = "referral.list"
    REFERRAL_READ = "referral.read"
    REFERRAL_ACCEPT = "referral.accept"
    REFERRAL_DECLINE = "referral.decline"
    REFERRAL_WITHDRAW = "referral.withdraw"
    REFERRAL_CLOSE = "referral.close"
    REFERRAL_AGREE = "referral.agree"
    REFERRAL_REFUSE = "referral.refuse"
    APPOINTMENT_BOOK = "appointment.book"
    APPOINTMENT_OUTCOME = "appointment.outcome"
    ACCESS_REQUEST_CREATE = "access_request.create"
    ACCESS_REQUEST_LIST = "access_request.list"
    ACCESS_REQUEST_APPROVE = "access_request.approve"
    ACCESS_REQUEST_DECLINE = "access_request.decline"
    WORKLIST_READ = "worklist.read"
    USER_ADD = "user.add"
    USER_ROLE = "user.role"
    USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105 - an action name, not a secret
    AGENCY_NAMES = "agency.names"
    USER_NAME = "user.name"
    DUTY_GRANT_PROPOSE = "duty_grant.propose"
    DUTY_GRANT_APPROVE = "duty_grant.approve"
    DUTY_GRANT_REJECT = "duty_grant.reject"
    DUTY_GRANT_LIST = "duty_grant.list"
    PROTECTION_HOLD_SET = "protection_hold.set"
    PROTECTION_HOLD_RENEW = "protection_hold.renew"
    PROTECTION_HOLD_LIFT = "protection_hold.lift"
    PROTECTION_HOLD_LIST = "protection_hold.list"
    AGENCY_PROTECTION_HOLDS = "agency.protection_holds"
    AGENCY_EMERGENCY_ACCESS = "agency.emergency_access"
    EMERGENCY_OPEN = "emergency.open"
    EMERGENCY_LIST = "emergency.list"
    EMERGENCY_REVIEW = "emergency.review"
    AGENCY_AREAS = "agency.areas"
    FAMILY_AREA = "family.area"
    CONSENT_STATISTICS = "consent.statistics"
    REPORT_RUN = "report.run"


class Outcome(StrEnum):
    OK = "ok"
    DENIED = "denied"


class AuditEntry(Base):
    """One link of the chain. Never updated, never deleted."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_family_seq", "family_id", "seq"),
        Index("ix_audit_log_actor_seq", "actor", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)
    # Fixed-width UTC text ("2026-11-22T10:00:00.000000Z"): hashed exactly as
    # stored, on every backend, and ordered as text.
    at: Mapped[str] = mapped_column(String(27))
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True)  # username or "family"
    agency_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    role: Mapped[str | None] = mapped_column(String(32), nullable=True)
    family_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    shown: Mapped[str | None] = mapped_column(Text, nullable=True)  # field ids, comma-joined
    withheld: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)  # canonical JSON of ids
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's head: one row, locked by each append until its commit."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))
    # The hash the head's entry follows (null before the first append): on
    # PostgreSQL the append's one UPDATE reads the old hash back from it.
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditCheckpoint(Base):
    """A signed statement "the chain's entry `seq` has hash `hash`"."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))
    at_text: Mapped[str] = mapped_column(String(27))
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(128))


class HiddenFromFamily(Base):
    """A coordinator's mark that showing an entry to the guardians would put a
    child at risk. The chained entry itself is never altered."""

    __tablename__ = "audit_hidden"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("audit_log.seq"),
        primary_key=True,
    )
    hidden_by: Mapped[str] = mapped_column(String(64))
    hidden_at: Mapped[datetime] = mapped_column(UTCDateTime)
    mark_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
