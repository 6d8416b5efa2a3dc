"""The hash chain and its signed checkpoints. Pure functions, no database.

Each entry's hash covers its canonical content and the previous entry's
hash, so editing, deleting, inserting or reordering any entry breaks every
hash after it. Checkpoints sign (seq, hash) of the head with an Ed25519 key
kept outside the database: someone who can write to the database can
rebuild a consistent chain, but cannot sign it, so the checkpoints (those in
the database, and above all those an auditor keeps elsewhere) expose them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

GENESIS = "0" * 64
# The columns a hash covers, in order (see `entry_hash`).
HASHED = ("seq", "at", "action", "outcome", "actor", "agency_id", "role", "family_id",
          "reason", "shown", "withheld", "detail", "request_id")


def audit_time(moment: datetime) -> str:
    """UTC text that sorts as time does: the year always has four digits
    (strftime's %Y drops leading zeros before the year 1000 on Linux)."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.%fZ")


def canonical(values: Sequence[Any]) -> bytes:
    """The hashed form of an entry: each value in HASHED order, '-' for
    none, '+value' otherwise, separated by 0x1f (never inside an id or
    JSON text, which escapes control characters)."""
    return "\x1f".join("-" if v is None else f"+{v}" for v in values).encode()


def entry_hash(prev_hash: str, values: Sequence[Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\x1e" + canonical(values)).hexdigest()


def detail_text(detail: dict[str, Any] | None) -> str | None:
    if not detail:
        return None
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass
class Verification:
    ok: bool
    entries: int
    head: str
    head_seq: int
    first_bad: int | None
    problem: str | None = None


def verify_rows(rows: Iterable[Sequence[Any]],
                keep: Container[int] = (), kept: dict[int, str] | None = None) -> Verification:
    """Walk the chain in seq order. Each row is HASHED values then prev_hash
    and hash. Stops at the first bad entry and names it. The hash of each
    entry whose seq is in `keep` goes into `kept` (for the checkpoints).

    Every entry's hash is recomputed exactly as `entry_hash` computes it: the
    message is built inline (one join over the unpacked row, no generator
    and no call per value), which is where most of verification's time went;
    tests/unit/test_audit_chain.py holds it to `entry_hash`."""
    expected_seq, running, count = 1, GENESIS, 0
    sha256 = hashlib.sha256
    for row in rows:
        (seq_value, at, action, outcome, actor, agency_id, role, family_id, reason, shown,
         withheld, detail, request_id, prev_hash, stored) = row
        seq = int(seq_value)
        if seq != expected_seq:
            return Verification(False, count, running, expected_seq - 1, min(seq, expected_seq),
                                f"entry {expected_seq} is missing or out of order")
        if prev_hash != running:
            return Verification(False, count, running, seq - 1, seq,
                                f"entry {seq} does not follow entry {seq - 1}")
        message = "\x1f".join((
            f"{running}\x1e+{seq_value}",  # the previous hash, then `canonical(values)`
            "-" if at is None else f"+{at}",
            "-" if action is None else f"+{action}",
            "-" if outcome is None else f"+{outcome}",
            "-" if actor is None else f"+{actor}",
            "-" if agency_id is None else f"+{agency_id}",
            "-" if role is None else f"+{role}",
            "-" if family_id is None else f"+{family_id}",
            "-" if reason is None else f"+{reason}",
            "-" if shown is None else f"+{shown}",
            "-" if withheld is None else f"+{withheld}",
            "-" if detail is None else f"+{detail}",
            "-" if request_id is None else f"+{request_id}",
        ))
        if sha256(message.encode()).hexdigest() != stored:
            return Verification(False, count, running, seq - 1, seq,
                                f"entry {seq} was altered")
        if seq in keep and kept is not None:
            kept[seq] = stored
        running, expected_seq, count = stored, seq + 1, count + 1
    return Verification(True, count, running, expected_seq - 1, None)


# --- signed checkpoints --------------------------------------------------------------


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_text(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _statement(seq: int, head: str, at: str) -> bytes:
    return f"onestory-audit-checkpoint\x1f{seq}\x1f{head}\x1f{at}".encode()


def sign_checkpoint(key: Ed25519PrivateKey, seq: int, head: str, at: str) -> dict[str, Any]:
    public = key.public_key()
    return {
        "seq": seq,
        "hash": head,
        "at": at,
        "key_id": key_id(public),
        "public_key": public_text(public),
        "signature": base64.b64encode(key.sign(_statement(seq, head, at))).decode(),
    }


def checkpoint_is_signed(public: Ed25519PublicKey, checkpoint: dict[str, Any]) -> bool:
    """Is this checkpoint signed by *our* key (not merely by the key it names)?"""
    try:
        signature = base64.b64decode(checkpoint["signature"], validate=True)
        public.verify(signature, _statement(int(checkpoint["seq"]), str(checkpoint["hash"]),
                                            str(checkpoint["at"])))
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return False
    return True
