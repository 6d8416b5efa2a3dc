"""The audit hash chain and its signed checkpoints, without a database.

A synthetic chain is built with `entry_hash` exactly as `audit.services.record`
builds it; each test tampers with it the way someone with write access to the
table could (edit, delete, insert, reorder, relink) and checks that
`verify_rows` stops at the right entry.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.chain import (
    GENESIS,
    HASHED,
    audit_time,
    canonical,
    checkpoint_is_signed,
    detail_text,
    entry_hash,
    key_id,
    public_text,
    sign_checkpoint,
    verify_rows,
)
from tests.conftest import AUDIT_KEY, T0

Row = list[Any]
N = 12


def values_for(seq: int, **changes: Any) -> list[Any]:
    """HASHED values of a plausible entry number `seq`."""
    row: dict[str, Any] = {
        "seq": seq,
        "at": f"2026-11-22T10:00:{seq % 60:02d}.000000Z",
        "action": "record.read" if seq % 2 else "entry.write",
        "outcome": "ok",
        "actor": f"nurse{seq % 3}",
        "agency_id": "health-centre",
        "role": "practitioner",
        "family_id": f"fam-{seq % 4}",
        "reason": None,
        "shown": "health,story" if seq % 2 else None,
        "withheld": "protection" if seq % 2 else None,
        "detail": detail_text({"n": seq}),
        "request_id": f"req-{seq}",
    }
    row.update(changes)
    return [row[name] for name in HASHED]


def build_chain(count: int = N) -> list[Row]:
    """Rows as `verify_rows` reads them: HASHED values, prev_hash, hash."""
    rows: list[Row] = []
    prev = GENESIS
    for seq in range(1, count + 1):
        values = values_for(seq)
        digest = entry_hash(prev, values)
        rows.append([*values, prev, digest])
        prev = digest
    return rows


def relink(rows: list[Row], start: int) -> list[Row]:
    """Recompute prev_hash and hash from list position `start` onward (what a
    careful forger does); returns new rows."""
    out = [list(r) for r in rows]
    prev = out[start - 1][-1] if start > 0 else GENESIS
    for row in out[start:]:
        row[-2] = prev
        row[-1] = entry_hash(prev, row[:-2])
        prev = row[-1]
    return out


def col(name: str) -> int:
    return HASHED.index(name)


# --- canonical form and entry hashes -------------------------------------------------


def test_canonical_is_deterministic_and_ordered() -> None:
    values = values_for(3)
    assert canonical(values) == canonical(list(values)) == canonical(tuple(values))
    assert canonical(values) != canonical(list(reversed(values)))
    assert canonical(["a", None, 5]) == b"+a\x1f-\x1f+5"


def test_canonical_distinguishes_none_from_empty_and_dash() -> None:
    # A missing value, an empty string and the text "-" must not hash alike.
    forms = {canonical([None]), canonical([""]), canonical(["-"]), canonical(["+"])}
    assert len(forms) == 4


def test_canonical_distinguishes_moved_values() -> None:
    assert canonical(["a", None]) != canonical([None, "a"])
    assert canonical(["ab", "c"]) != canonical(["a", "bc"])


def test_entry_hash_is_sha256_of_prev_and_canonical() -> None:
    values = values_for(1)
    expected = hashlib.sha256(GENESIS.encode() + b"\x1e" + canonical(values)).hexdigest()
    assert entry_hash(GENESIS, values) == expected
    assert entry_hash(GENESIS, values) == entry_hash(GENESIS, list(values))  # repeatable
    assert len(expected) == 64 and int(expected, 16) >= 0


def test_entry_hash_depends_on_every_hashed_value_and_on_prev() -> None:
    values = values_for(5)
    base = entry_hash(GENESIS, values)
    assert entry_hash("1" * 64, values) != base
    for index, name in enumerate(HASHED):
        changed = list(values)
        changed[index] = "changed" if values[index] != "changed" else "other"
        assert entry_hash(GENESIS, changed) != base, name
        if values[index] is not None:
            changed[index] = None
            assert entry_hash(GENESIS, changed) != base, name


def test_seq_hashes_the_same_as_int_or_text() -> None:
    # The database hands seq back as an int; the canonical form must not depend on it.
    assert canonical(values_for(7)) == canonical([str(v) if i == 0 else v
                                                  for i, v in enumerate(values_for(7))])


def test_detail_text_is_canonical_json() -> None:
    assert detail_text({}) is None
    assert detail_text(None) is None
    assert detail_text({"b": 1, "a": "é"}) == '{"a":"\\u00e9","b":1}'
    assert detail_text({"b": 1, "a": 2}) == detail_text({"a": 2, "b": 1})


def test_audit_time_is_fixed_width_utc() -> None:
    text = audit_time(T0)
    assert text == "2026-11-22T10:00:00.000000Z"
    assert len(text) == 27


# --- verify_rows ---------------------------------------------------------------------


def test_a_good_chain_verifies() -> None:
    rows = build_chain()
    result = verify_rows(rows)
    assert result.ok
    assert result.entries == N
    assert result.head_seq == N
    assert result.head == rows[-1][-1]
    assert result.first_bad is None
    assert result.problem is None


def test_an_empty_chain_verifies_at_genesis() -> None:
    result = verify_rows([])
    assert result.ok and result.entries == 0 and result.head == GENESIS and result.head_seq == 0


def test_verify_rows_reads_an_iterator_once() -> None:
    result = verify_rows(iter([tuple(r) for r in build_chain()]))
    assert result.ok and result.entries == N


@pytest.mark.parametrize("seq", [1, 2, 6, N])
@pytest.mark.parametrize("name", ["at", "action", "outcome", "actor", "agency_id", "role",
                                  "family_id", "reason", "shown", "withheld", "detail",
                                  "request_id"])
def test_an_edited_value_is_caught_at_its_entry(seq: int, name: str) -> None:
    rows = build_chain()
    old = rows[seq - 1][col(name)]
    rows[seq - 1][col(name)] = "" if old is None else None  # even None <-> "" counts
    result = verify_rows(rows)
    assert not result.ok
    assert result.first_bad == seq
    assert result.entries == seq - 1
    assert result.head_seq == seq - 1
    assert result.problem is not None and str(seq) in result.problem


@pytest.mark.parametrize("seq", [1, 5, N])
def test_an_edited_stored_hash_is_caught_at_its_entry(seq: int) -> None:
    rows = build_chain()
    rows[seq - 1][-1] = "f" * 64
    result = verify_rows(rows)
    assert not result.ok and result.first_bad == seq


@pytest.mark.parametrize("seq", [1, 2, 6, N - 1])
def test_a_deleted_entry_is_caught_at_its_number(seq: int) -> None:
    rows = build_chain()
    del rows[seq - 1]
    result = verify_rows(rows)
    assert not result.ok
    assert result.first_bad == seq
    assert result.entries == seq - 1
    assert "missing" in (result.problem or "")


def test_deleting_a_relinked_entry_is_still_caught_by_its_number() -> None:
    # Even when everything after is re-hashed, the gap in the numbering shows.
    rows = build_chain()
    del rows[4]  # entry 5
    result = verify_rows(relink(rows, 4))
    assert not result.ok and result.first_bad == 5


@pytest.mark.parametrize("seq", [1, 4, N])
def test_an_inserted_entry_is_caught(seq: int) -> None:
    """A forged entry numbered `seq`, self-consistent (hashed from its
    predecessor), placed before the genuine entry `seq`: the genuine one then
    duplicates a number already used."""
    rows = build_chain()
    prev = rows[seq - 2][-1] if seq > 1 else GENESIS
    forged_values = values_for(seq, actor="mallory")
    forged = [*forged_values, prev, entry_hash(prev, forged_values)]
    rows.insert(seq - 1, forged)
    result = verify_rows(rows)
    assert not result.ok
    assert result.first_bad == seq
    assert result.entries == seq  # the forged entry itself is consistent


@pytest.mark.parametrize("seq", [1, 4, N - 1])
def test_an_inserted_entry_with_renumbering_is_caught_after_it(seq: int) -> None:
    """Insert a self-consistent forged entry `seq` and renumber the genuine
    ones after it: the genuine entry (now seq + 1) no longer follows."""
    rows = build_chain()
    prev = rows[seq - 2][-1] if seq > 1 else GENESIS
    forged_values = values_for(seq, actor="mallory")
    forged = [*forged_values, prev, entry_hash(prev, forged_values)]
    for row in rows[seq - 1:]:
        row[0] += 1
    rows.insert(seq - 1, forged)
    result = verify_rows(rows)
    assert not result.ok
    assert result.first_bad == seq + 1
    assert "does not follow" in (result.problem or "")


def test_a_replaced_entry_is_caught_at_the_next_one() -> None:
    rows = build_chain()
    prev = rows[4][-1]
    forged_values = values_for(6, actor="mallory")
    rows[5] = [*forged_values, prev, entry_hash(prev, forged_values)]
    result = verify_rows(rows)
    assert not result.ok and result.first_bad == 7


@pytest.mark.parametrize(("i", "j"), [(1, 2), (3, 8), (5, 6), (N - 1, N), (1, N)])
def test_two_entries_swapped_are_caught_at_the_earlier(i: int, j: int) -> None:
    rows = build_chain()
    rows[i - 1], rows[j - 1] = rows[j - 1], rows[i - 1]
    result = verify_rows(rows)
    assert not result.ok
    assert result.first_bad == i
    assert result.entries == i - 1


@pytest.mark.parametrize(("i", "j"), [(1, 2), (3, 8), (N - 1, N)])
def test_two_entries_swapped_in_place_are_caught_at_the_earlier(i: int, j: int) -> None:
    """Contents (and hashes) swapped while each row keeps its number, as in a
    table whose primary key is seq."""
    rows = build_chain()
    a, b = rows[i - 1], rows[j - 1]
    rows[i - 1], rows[j - 1] = [i, *b[1:]], [j, *a[1:]]
    result = verify_rows(rows)
    assert not result.ok
    assert result.first_bad == i


@pytest.mark.parametrize("seq", [1, 2, 7, N])
def test_a_changed_prev_hash_is_caught_at_its_entry(seq: int) -> None:
    rows = build_chain()
    rows[seq - 1][-2] = "e" * 64
    result = verify_rows(rows)
    assert not result.ok
    assert result.first_bad == seq
    assert "does not follow" in (result.problem or "")


@pytest.mark.parametrize("seq", [2, 7, N])
def test_a_relinked_prev_hash_with_recomputed_hash_is_caught(seq: int) -> None:
    # The entry is self-consistent with a wrong predecessor: still caught at it.
    rows = build_chain()
    rows[seq - 1][-2] = "e" * 64
    rows[seq - 1][-1] = entry_hash("e" * 64, rows[seq - 1][:-2])
    result = verify_rows(rows)
    assert not result.ok and result.first_bad == seq


def test_a_consistent_rewrite_passes_verify_rows_but_changes_the_head() -> None:
    """What only a checkpoint can catch: a rewrite with every hash recomputed."""
    rows = build_chain()
    genuine_head = rows[-1][-1]
    rows[5][col("actor")] = "mallory"
    result = verify_rows(relink(rows, 5))
    assert result.ok
    assert result.head != genuine_head
    assert result.head_seq == N


def test_a_chain_not_starting_at_genesis_is_caught() -> None:
    # Entry 1 hashed from another predecessor, and everything after relinked to it.
    rows = build_chain()
    rows[0][-2] = "1" * 64
    rows[0][-1] = entry_hash("1" * 64, rows[0][:-2])
    result = verify_rows(relink(rows, 1))
    assert not result.ok and result.first_bad == 1


def test_a_chain_starting_after_one_is_caught() -> None:
    rows = build_chain()[3:]  # the first three entries removed
    result = verify_rows(rows)
    assert not result.ok and result.first_bad == 1


# --- signed checkpoints -----------------------------------------------------------


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(AUDIT_KEY))


def checkpoint(key: Ed25519PrivateKey) -> dict[str, Any]:
    rows = build_chain()
    return sign_checkpoint(key, N, rows[-1][-1], audit_time(T0))


def test_a_checkpoint_names_its_key_and_verifies(key: Ed25519PrivateKey) -> None:
    signed = checkpoint(key)
    assert signed["seq"] == N
    assert signed["hash"] == build_chain()[-1][-1]
    assert signed["at"] == "2026-11-22T10:00:00.000000Z"
    assert signed["key_id"] == key_id(key.public_key())
    assert signed["public_key"] == public_text(key.public_key())
    assert len(base64.b64decode(signed["signature"])) == 64
    assert checkpoint_is_signed(key.public_key(), signed)


def test_signing_is_deterministic(key: Ed25519PrivateKey) -> None:
    assert checkpoint(key) == checkpoint(key)  # Ed25519 signatures are deterministic


def test_a_checkpoint_survives_a_json_round_trip(key: Ed25519PrivateKey) -> None:
    import json

    signed = json.loads(json.dumps(checkpoint(key)))
    assert checkpoint_is_signed(key.public_key(), signed)
    signed["seq"] = str(signed["seq"])  # a seq given as text is the same statement
    assert checkpoint_is_signed(key.public_key(), signed)


def test_a_checkpoint_by_another_key_is_refused(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    forged = checkpoint(other)
    assert checkpoint_is_signed(other.public_key(), forged)  # signed by *a* key ...
    assert not checkpoint_is_signed(key.public_key(), forged)  # ... not ours
    # Naming our key in the checkpoint does not help.
    forged["key_id"] = key_id(key.public_key())
    forged["public_key"] = public_text(key.public_key())
    assert not checkpoint_is_signed(key.public_key(), forged)
    assert not checkpoint_is_signed(other.public_key(), checkpoint(key))


@pytest.mark.parametrize(("name", "value"), [
    ("seq", N - 1),
    ("seq", N + 1),
    ("seq", 0),
    ("hash", "0" * 64),
    ("hash", build_chain()[-2][-1]),
    ("hash", build_chain()[-1][-1].upper()),
    ("at", "2026-11-22T10:00:00.000001Z"),
    ("at", "2099-01-01T00:00:00.000000Z"),
])
def test_an_altered_checkpoint_is_refused(key: Ed25519PrivateKey, name: str,
                                          value: Any) -> None:
    signed = checkpoint(key)
    signed[name] = value
    assert not checkpoint_is_signed(key.public_key(), signed)


@pytest.mark.parametrize("signature", [
    None, "", "not base64!", base64.b64encode(b"x" * 64).decode(),
    base64.b64encode(b"x" * 10).decode(), 12345,
])
def test_a_bad_or_missing_signature_is_refused(key: Ed25519PrivateKey,
                                               signature: Any) -> None:
    signed = checkpoint(key)
    if signature is None:
        del signed["signature"]
    else:
        signed["signature"] = signature
    assert not checkpoint_is_signed(key.public_key(), signed)


@pytest.mark.parametrize("missing", ["seq", "hash", "at"])
def test_a_checkpoint_missing_a_field_is_refused(key: Ed25519PrivateKey,
                                                 missing: str) -> None:
    signed = checkpoint(key)
    del signed[missing]
    assert not checkpoint_is_signed(key.public_key(), signed)


def test_a_non_numeric_seq_is_refused(key: Ed25519PrivateKey) -> None:
    signed = checkpoint(key)
    signed["seq"] = "twelve"
    assert not checkpoint_is_signed(key.public_key(), signed)


def test_verify_rows_hashes_every_value_as_entry_hash_does() -> None:
    """`verify_rows` builds each entry's message inline: it must accept exactly
    the chains `entry_hash` makes, with a missing value in any column (and a
    value that is not text), and refuse the chain when any value changes."""
    for name in HASHED[1:]:
        for value in (None, "", "-", "+", 7):
            rows: list[Row] = []
            prev = GENESIS
            for seq in range(1, 4):
                values = values_for(seq, **{name: value})
                digest = entry_hash(prev, values)
                rows.append([*values, prev, digest])
                prev = digest
            assert verify_rows(rows).ok, (name, value)
            assert verify_rows(rows).head == prev
            changed = [list(r) for r in rows]
            changed[1][HASHED.index(name)] = "x" if value is None else None
            result = verify_rows(changed)
            assert not result.ok and result.first_bad == 2, (name, value)


def test_verify_rows_keeps_the_hashes_of_the_entries_asked_for() -> None:
    rows = build_chain()
    kept: dict[int, str] = {}
    assert verify_rows(rows, {3, 7, 99}, kept).ok
    assert kept == {3: rows[2][-1], 7: rows[6][-1]}
