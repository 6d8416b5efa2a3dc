"""Stored consent forms: versioned, immutable once written.

Each version is a whole form (its metadata and its grid of cells). A change
(a new signature or a revocation) writes a new version; rows are never
updated, which the `before_flush` guard in `consent.services` enforces.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from coordination.db import Base, UTCDateTime


class ConsentFormRow(Base):
    __tablename__ = "consent_forms"
    __table_args__ = (UniqueConstraint("family_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    family_id: Mapped[str] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    signed_by: Mapped[bytes] = mapped_column(LargeBinary)  # guardian's name, sealed
    signed_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    method: Mapped[str] = mapped_column(String(32))
    witness: Mapped[str | None] = mapped_column(String(64), nullable=True)
    interpreter_language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    purpose: Mapped[bytes] = mapped_column(LargeBinary)  # free text, sealed
    legal_basis: Mapped[str] = mapped_column(String(64))
    valid_until: Mapped[date] = mapped_column(Date)
    change: Mapped[str] = mapped_column(String(200))
    changed_by: Mapped[str] = mapped_column(String(100))
    # Whether the family may be counted in anonymous reports (forms recorded
    # before this answer existed say no).
    statistics: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    cells: Mapped[list[ConsentCellRow]] = relationship(
        back_populates="form", lazy="raise", cascade="all, delete-orphan"
    )


class ConsentCellRow(Base):
    """One ticked cell: this agency may see this field."""

    __tablename__ = "consent_cells"

    form_id: Mapped[int] = mapped_column(
        ForeignKey("consent_forms.id", ondelete="CASCADE"), primary_key=True
    )
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    field_id: Mapped[str] = mapped_column(ForeignKey("fields.id"), primary_key=True)

    form: Mapped[ConsentFormRow] = relationship(back_populates="cells", lazy="raise")


class ConsentReceipt(Base):
    """The family's own key to its consent: a receipt code and a PIN.

    The code is looked up by its SHA-256; the PIN is kept only as an argon2
    hash. Failed attempts slow further attempts on that code down.
    """

    __tablename__ = "consent_receipts"

    family_id: Mapped[str] = mapped_column(
        ForeignKey("families.id", ondelete="CASCADE"), primary_key=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    pin_hash: Mapped[str] = mapped_column(String(255))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
