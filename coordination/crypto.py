"""How identifying values are stored: the vault and its per-family ciphers.

Services never write a value to the database directly: they ask the vault
for the family's cipher once per request (`vault.for_family`) and seal or
open each value with the table, column and row it belongs to, so that a
later encrypting vault can bind ciphertext to exactly that place and unwrap a
family's data key only once per request. Search goes through
`blind_index`, never through a stored value.

`PlaintextVault` is the storage format of this release: values are kept as
tagged UTF-8. The encrypting vault (AES-256-GCM under per-family data keys)
replaces it behind the same interface.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Protocol

PLAINTEXT_TAG = b"\x00"
_SPACE = re.compile(r"\s+")


class VaultError(Exception):
    """A stored value could not be opened; no data may be returned."""


def normalise(text: str) -> str:
    """Unicode NFKC, case-folded, white space collapsed: the search form."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


class FamilyCipher(Protocol):
    def seal(self, table: str, column: str, row_id: str, plaintext: str) -> bytes: ...

    def open(self, table: str, column: str, row_id: str, blob: bytes) -> str: ...


class Vault(Protocol):
    def for_family(self, family_id: str) -> FamilyCipher: ...

    def blind_index(self, purpose: str, value: str) -> str: ...


class _PlaintextCipher:
    def seal(self, table: str, column: str, row_id: str, plaintext: str) -> bytes:
        return PLAINTEXT_TAG + plaintext.encode("utf-8")

    def open(self, table: str, column: str, row_id: str, blob: bytes) -> str:
        if not blob.startswith(PLAINTEXT_TAG):
            raise VaultError(f"{table}.{column} of row {row_id} is in an unknown format")
        try:
            return blob[1:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VaultError(f"{table}.{column} of row {row_id} is damaged") from exc


class PlaintextVault:
    """Stores values unencrypted; the search index is an unkeyed digest."""

    _cipher = _PlaintextCipher()

    def for_family(self, family_id: str) -> FamilyCipher:
        return self._cipher

    def blind_index(self, purpose: str, value: str) -> str:
        digest = hashlib.sha256(f"{purpose}\x1f{normalise(value)}".encode())
        return digest.hexdigest()
