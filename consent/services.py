"""Reading and writing consent form versions and receipts.

These functions take a session and plain values and never commit: the
calling use case (in `coordination.casework`) owns the transaction. Values
that identify a person (the guardian's name) arrive sealed by the caller's
cipher; this package never sees an encryption key.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import event, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from consent.errors import FormImmutable
from consent.model import Cell, Form
from consent.tables import ConsentCellRow, ConsentFormRow, ConsentReceipt

RECEIPT_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud, typed by hand
PIN_DIGITS = 6
# Wrong PINs slow a receipt code down; they never lock the family out for good.
FREE_ATTEMPTS = 3
MAX_DELAY = timedelta(minutes=15)


class StoredVersion(Protocol):
    """What the decision reads of a stored form version (its row, or a
    read's plain copy of it)."""

    @property
    def version(self) -> int: ...

    @property
    def valid_until(self) -> date: ...


def form_of(row: StoredVersion, cells: Iterable[Cell]) -> Form:
    """The decision's form: a stored version with its cells."""
    return Form(version=row.version, valid_until=row.valid_until, cells=frozenset(cells))


def _cells_of(session: Session, form_ids: list[int]) -> dict[int, list[Cell]]:
    """The cells of these form versions, by version row id (one query)."""
    cells: dict[int, list[Cell]] = defaultdict(list)
    if form_ids:
        for form_id, agency, field in session.execute(
            select(
                ConsentCellRow.form_id, ConsentCellRow.agency_id, ConsentCellRow.field_id
            ).where(ConsentCellRow.form_id.in_(form_ids))
        ):
            cells[form_id].append((agency, field))
    return cells


def current_forms(session: Session, family_ids: Sequence[str]) -> dict[str, Form]:
    """Current forms of many families at once (two queries)."""
    if not family_ids:
        return {}
    newest = (
        select(ConsentFormRow.family_id, func.max(ConsentFormRow.version).label("version"))
        .where(ConsentFormRow.family_id.in_(family_ids))
        .group_by(ConsentFormRow.family_id)
        .subquery()
    )
    rows = session.scalars(
        select(ConsentFormRow).join(
            newest,
            (ConsentFormRow.family_id == newest.c.family_id)
            & (ConsentFormRow.version == newest.c.version),
        )
    ).all()
    cells = _cells_of(session, [row.id for row in rows])
    return {row.family_id: form_of(row, cells[row.id]) for row in rows}


def history(session: Session, family_id: str) -> list[tuple[ConsentFormRow, Form]]:
    """Every version, oldest first (two queries)."""
    rows = session.scalars(
        select(ConsentFormRow)
        .where(ConsentFormRow.family_id == family_id)
        .order_by(ConsentFormRow.version)
    ).all()
    cells = _cells_of(session, [row.id for row in rows])
    return [(row, form_of(row, cells[row.id])) for row in rows]


@dataclass(frozen=True)
class FormMeta:
    """What a signed form says besides its grid."""

    signed_by: bytes  # sealed by the caller
    signed_on: date
    method: str
    witness: str | None
    interpreter_language: str | None
    purpose: bytes  # sealed by the caller
    legal_basis: str
    valid_until: date
    # May the family be counted in anonymous statistics? Carried over by every
    # version derived from this one; only a newly signed form or the family
    # itself changes it.
    statistics: bool = False

    @classmethod
    def of(cls, row: ConsentFormRow) -> FormMeta:
        return cls(
            signed_by=row.signed_by,
            signed_on=row.signed_on,
            method=row.method,
            witness=row.witness,
            interpreter_language=row.interpreter_language,
            purpose=row.purpose,
            legal_basis=row.legal_basis,
            valid_until=row.valid_until,
            statistics=bool(row.statistics),
        )


def write_version(
    session: Session,
    family_id: str,
    version: int,
    meta: FormMeta,
    cells: frozenset[Cell],
    *,
    change: str,
    changed_by: str,
    now: datetime,
) -> tuple[ConsentFormRow, Form]:
    """Add a new, immutable form version. The (family, version) uniqueness
    constraint makes two concurrent writers conflict instead of forking."""
    row = ConsentFormRow(
        family_id=family_id,
        version=version,
        signed_by=meta.signed_by,
        signed_on=meta.signed_on,
        recorded_at=now,
        method=meta.method,
        witness=meta.witness,
        interpreter_language=meta.interpreter_language,
        purpose=meta.purpose,
        legal_basis=meta.legal_basis,
        valid_until=meta.valid_until,
        statistics=meta.statistics,
        change=change,
        changed_by=changed_by,
    )
    session.add(row)
    session.flush()
    session.add_all(
        ConsentCellRow(form_id=row.id, agency_id=agency, field_id=field)
        for agency, field in sorted(cells)
    )
    return row, form_of(row, cells)


def _refuse_changes_to_forms(session: Session, _context: Any, _instances: Any) -> None:
    for obj in session.dirty:
        if isinstance(obj, ConsentFormRow | ConsentCellRow) and session.is_modified(obj):
            raise FormImmutable("a signed consent form version cannot be changed")
    for obj in session.deleted:
        if isinstance(obj, ConsentFormRow | ConsentCellRow):
            raise FormImmutable("a signed consent form version cannot be deleted")


def install_guards(factory: sessionmaker[Session]) -> None:
    """Make sessions from `factory` refuse to update or delete a form version."""
    # Marked on the factory itself: SQLAlchemy's event registry is keyed by
    # object id, which a collected factory can hand on to a new one.
    if not getattr(factory, "_onestory_form_guard", False):
        event.listen(factory, "before_flush", _refuse_changes_to_forms)
        factory._onestory_form_guard = True  # type: ignore[attr-defined]


# --- receipts: the family's own way in -------------------------------------

_hasher = PasswordHasher()
_DUMMY_HASH = None


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _code_hash(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


def issue_receipt(session: Session, family_id: str, now: datetime) -> tuple[str, str]:
    """Issue (or re-issue) the family's receipt code and PIN; returns both once.

    A re-issue keeps nothing of the old PIN: it stops working at once.
    """
    pin = "".join(secrets.choice("0123456789") for _ in range(PIN_DIGITS))
    receipt = session.get(ConsentReceipt, family_id)
    if receipt is None:
        raw = "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(8))
        code = f"{raw[:4]}-{raw[4:]}"
        receipt = ConsentReceipt(family_id=family_id, code_hash=_code_hash(code), issued_at=now)
        session.add(receipt)
    else:
        # The code is only stored hashed, so a re-issue also gets a new code.
        raw = "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(8))
        code = f"{raw[:4]}-{raw[4:]}"
        receipt.code_hash = _code_hash(code)
        receipt.issued_at = now
    receipt.pin_hash = _hasher.hash(pin)
    receipt.failed_attempts = 0
    receipt.not_before = None
    return code, pin


@dataclass(frozen=True)
class ReceiptCheck:
    family_id: str | None
    retry_after: int = 0  # seconds, when slowed down
    attempted: str | None = None  # the family whose code was tried (for the audit log)
    known: bool = True  # False: no receipt has this code (nothing was counted)


def _delay(failures: int) -> timedelta:
    # The exponent is capped before it is used: 2**n seconds overflows a
    # timedelta long before anyone stops guessing.
    return min(timedelta(seconds=2 ** min(failures - FREE_ATTEMPTS, 20)), MAX_DELAY)


def slowed_until(failures: int, now: datetime) -> datetime | None:
    """Until when a code is slowed down after `failures` wrong attempts in a
    row (None: not yet). The one rule for real and unknown codes alike."""
    return now + _delay(failures) if failures >= FREE_ATTEMPTS else None


def seconds_until(moment: datetime, now: datetime) -> int:
    """The Retry-After, in whole seconds, of a code slowed down until `moment`."""
    return max(int((moment - now).total_seconds()) + 1, 1)


def check_receipt(session: Session, code: str, pin: str, now: datetime, *,
                  before_check: Callable[[], None] = lambda: None) -> ReceiptCheck:
    """Check a receipt code and PIN; counts failures. Does not commit
    (but see `before_check`).

    The attempt is claimed first, atomically (an UPDATE that also takes the
    row's write lock), so parallel guesses cannot slip past the delay: each
    waits for the one before it and then finds the code slowed down.
    `before_check` is called once the attempt is claimed, right before the
    PIN is checked (`coordination.accounts.attempt_in_turn`: on SQLite it
    commits the claim, so that the slow check holds up no one else).
    Returns the family id on success; `family_id=None` on a wrong code or
    PIN; `retry_after > 0` while the code is slowed down after failures;
    `known=False`, with nothing counted or checked, when no receipt has the code.
    """
    code_hash = _code_hash(code)
    claimed = session.execute(
        update(ConsentReceipt)
        .where(ConsentReceipt.code_hash == code_hash,
               or_(ConsentReceipt.not_before.is_(None), ConsentReceipt.not_before <= now))
        .values(failed_attempts=ConsentReceipt.failed_attempts + 1)
        .execution_options(synchronize_session=False)
    )
    receipt = session.scalars(
        select(ConsentReceipt).where(ConsentReceipt.code_hash == code_hash)
        .execution_options(populate_existing=True)
    ).first()
    if receipt is None:
        # The caller counts (and slows down) unknown codes like real ones,
        # then spends the same effort as a real check (`check_nothing`).
        return ReceiptCheck(None, known=False)
    if not claimed.rowcount:  # type: ignore[attr-defined]
        assert receipt.not_before is not None
        return ReceiptCheck(None, retry_after=seconds_until(receipt.not_before, now),
                            attempted=receipt.family_id)
    # Slowed down as if the PIN were wrong until the check says otherwise, so
    # that a guess whose outcome is never recorded still counts in full.
    receipt.not_before = slowed_until(receipt.failed_attempts, now)
    before_check()
    checked = receipt.pin_hash
    right = _verify(checked, pin)
    # The check may have run outside the claim's transaction (SQLite): a
    # receipt re-issued or erased meanwhile lets no one in with the old one.
    now_held = session.execute(
        select(ConsentReceipt.code_hash, ConsentReceipt.pin_hash)
        .where(ConsentReceipt.family_id == receipt.family_id)
    ).first()
    if now_held is None:
        return ReceiptCheck(None)
    if tuple(now_held) != (code_hash, checked):
        return ReceiptCheck(None, attempted=receipt.family_id)
    if right:
        receipt.failed_attempts = 0
        receipt.not_before = None
        return ReceiptCheck(receipt.family_id)
    receipt.not_before = slowed_until(receipt.failed_attempts, now)
    return ReceiptCheck(None, attempted=receipt.family_id)


def check_nothing(pin: str) -> None:
    """Spend the effort of checking a PIN against a real receipt, so that
    timing does not tell whether a code exists."""
    _verify(_dummy_hash(), pin)


def _verify(pin_hash: str, pin: str) -> bool:
    try:
        return _hasher.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _hasher.hash(secrets.token_hex(8))
    return _DUMMY_HASH
