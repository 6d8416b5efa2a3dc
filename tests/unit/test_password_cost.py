"""The shipped cost of the slow hashes: staff passwords and the family's
receipt PIN. Every other test runs argon2 cheap (`_cheap_argon2` in
tests/conftest.py); this one holds the production hashers to RFC 9106's
recommended second choice (argon2id, 64 MiB, 3 passes, 4 lanes)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type, profiles

import consent.services
from coordination import accounts

PRODUCTION = profiles.RFC_9106_LOW_MEMORY
ENCODED = "$argon2id$v=19$m=65536,t=3,p=4$"


@pytest.fixture
def shipped(monkeypatch: pytest.MonkeyPatch) -> dict[str, PasswordHasher]:
    # The autouse fixture patched the hashers through this same monkeypatch:
    # undoing it puts back the ones the modules made at import.
    monkeypatch.undo()
    return {"staff password": accounts.password_hasher,
            "receipt PIN": consent.services._hasher}


@pytest.mark.parametrize("what", ["staff password", "receipt PIN"])
def test_production_argon2_cost(shipped: dict[str, PasswordHasher], what: str) -> None:
    hasher = shipped[what]
    assert hasher.type is Type.ID
    assert (hasher.memory_cost, hasher.time_cost, hasher.parallelism) == (
        PRODUCTION.memory_cost, PRODUCTION.time_cost, PRODUCTION.parallelism)
    assert (hasher.hash_len, hasher.salt_len) == (PRODUCTION.hash_len, PRODUCTION.salt_len)
    stored = hasher.hash("482913")
    assert stored.startswith(ENCODED), stored  # what goes into the database says so too
    assert hasher.verify(stored, "482913")
    assert not hasher.check_needs_rehash(stored)


def test_a_cheaper_hash_is_upgraded_at_sign_in(shipped: dict[str, PasswordHasher]) -> None:
    """A hash made at a lower cost (as every other test makes them) is one the
    shipped hasher wants redone: `signin.with_password` rehashes it."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("pw")
    assert shipped["staff password"].check_needs_rehash(cheap)
