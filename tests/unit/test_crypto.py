"""The key hierarchy without the application: the keyring, the envelope
vault's ciphers, wrapped data keys and the keyed blind index.

The key store is a throwaway SQLite file made by its Alembic migration
(a few milliseconds); no data database is involved.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from coordination import migrate
from coordination.crypto import (
    AESGCM_TAG,
    NONCE_BYTES,
    EnvelopeVault,
    FamilyCipher,
    Keyring,
    KeyringError,
    MasterKeyMissing,
    PlaintextVault,
    VaultError,
    new_keyring_document,
    normalise,
    rewrap_all,
    unwrap,
    wrap,
    write_secret_file,
)
from coordination.db import make_engine
from coordination.keystore import KeyStore, NoActiveVersion, NotActive, WrappedKey

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
INDEX_KEY = b"i" * 32
SECRET = "Aylin Demir, Storgata 12, 14032412345"
HEADER = 5  # format tag (1 byte) + data-key version (4 bytes, big-endian)
GCM_TAG = 16


@pytest.fixture
def keystore(tmp_path: Path) -> Iterator[KeyStore]:
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    migrate.upgrade(engine, keystore=True)
    yield KeyStore(engine)
    engine.dispose()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(new_keyring_document())


@pytest.fixture
def vault(keyring: Keyring, keystore: KeyStore) -> EnvelopeVault:
    return EnvelopeVault(keyring, keystore, INDEX_KEY)


def sealed(vault: EnvelopeVault, family: str = "fam_a", table: str = "entries",
           column: str = "value", row: str = "ent_1", text: str = SECRET) -> bytes:
    """A value sealed by a newly made family (its key stored in the key store)."""
    return vault.new_family(family, T0).seal(table, column, row, text)


def fresh(vault: EnvelopeVault, family: str) -> FamilyCipher:
    """The cipher a later request gets: its key unwrapped from the key store."""
    return vault.for_family(family)


# --- round trip and format ----------------------------------------------------------


@pytest.mark.parametrize("text", ["", SECRET, "Ünïcode ✓ 李小龍 👪", "x" * 10_000])
def test_round_trip(vault: EnvelopeVault, text: str) -> None:
    cipher = vault.new_family("fam_a", T0)
    blob = cipher.seal("entries", "value", "ent_1", text)
    assert cipher.open("entries", "value", "ent_1", blob) == text
    # A later request unwraps the key from the key store, one or many at a time.
    assert fresh(vault, "fam_a").open("entries", "value", "ent_1", blob) == text
    many = vault.for_families(["fam_a"])
    assert many["fam_a"].open("entries", "value", "ent_1", blob) == text


def test_a_later_request_seals_what_the_first_can_open(vault: EnvelopeVault) -> None:
    first = vault.new_family("fam_a", T0)
    blob = fresh(vault, "fam_a").seal("families", "address", "fam_a", SECRET)
    assert first.open("families", "address", "fam_a", blob) == SECRET


def test_every_ciphertext_differs(vault: EnvelopeVault) -> None:
    cipher = vault.new_family("fam_a", T0)
    blobs = [cipher.seal("entries", "value", "ent_1", SECRET) for _ in range(50)]
    assert len(set(blobs)) == len(blobs)
    nonces = {b[HEADER:HEADER + NONCE_BYTES] for b in blobs}
    assert len(nonces) == len(blobs)  # a fresh 96-bit nonce every time
    assert all(SECRET.encode() not in b for b in blobs)


def test_ciphertext_carries_format_and_data_key_version(vault: EnvelopeVault) -> None:
    blob = sealed(vault)
    assert AESGCM_TAG == b"\x01"
    assert blob[:1] == b"\x01"
    assert struct.unpack(">I", blob[1:HEADER]) == (1,)
    assert len(blob) == HEADER + NONCE_BYTES + len(SECRET.encode()) + GCM_TAG
    assert SECRET.encode() not in blob


def test_two_families_have_different_data_keys(vault: EnvelopeVault, keyring: Keyring,
                                               keystore: KeyStore) -> None:
    vault.new_family("fam_a", T0)
    vault.new_family("fam_b", T0)
    keys = keystore.get_many(["fam_a", "fam_b"])
    assert unwrap(keyring, keys["fam_a"]) != unwrap(keyring, keys["fam_b"])
    assert all(k.master_version == 1 and k.key_version == 1 for k in keys.values())


# --- fail closed: moved, damaged or cut ciphertexts ------------------------------------


@pytest.mark.parametrize(
    ("table", "column", "row"),
    [
        ("entries", "value", "ent_2"),  # another row
        ("entries", "other", "ent_1"),  # another column
        ("families", "value", "ent_1"),  # another table
    ],
    ids=["row", "column", "table"],
)
def test_a_ciphertext_moved_elsewhere_does_not_open(vault: EnvelopeVault, table: str,
                                                    column: str, row: str) -> None:
    blob = sealed(vault)
    with pytest.raises(VaultError) as failure:
        fresh(vault, "fam_a").open(table, column, row, blob)
    assert SECRET not in str(failure.value)


def test_a_ciphertext_moved_to_another_family_does_not_open(vault: EnvelopeVault) -> None:
    blob = sealed(vault, "fam_a")
    vault.new_family("fam_b", T0)
    with pytest.raises(VaultError):
        fresh(vault, "fam_b").open("entries", "value", "ent_1", blob)


def test_the_family_is_bound_even_under_the_same_data_key(
    vault: EnvelopeVault, keyring: Keyring, keystore: KeyStore
) -> None:
    """The associated data names the family: even a family holding the very
    same data key cannot open another family's value."""
    blob = sealed(vault, "fam_a")
    data_key = unwrap(keyring, keystore.get_many(["fam_a"])["fam_a"])
    keystore.add(wrap(keyring, "fam_b", 1, data_key, 1), T0)
    with pytest.raises(VaultError):
        fresh(vault, "fam_b").open("entries", "value", "ent_1", blob)


def test_any_flipped_byte_fails(vault: EnvelopeVault) -> None:
    blob = sealed(vault, text="short secret")
    cipher = fresh(vault, "fam_a")
    for position in range(len(blob)):
        for mask in (0x01, 0x80):
            damaged = bytearray(blob)
            damaged[position] ^= mask
            with pytest.raises(VaultError):
                cipher.open("entries", "value", "ent_1", bytes(damaged))
    assert cipher.open("entries", "value", "ent_1", blob) == "short secret"


@pytest.mark.parametrize(
    "cut",
    [lambda b: b"", lambda b: b[:1], lambda b: b[:HEADER], lambda b: b[:HEADER + NONCE_BYTES],
     lambda b: b[:HEADER + NONCE_BYTES + GCM_TAG - 1], lambda b: b[:-1], lambda b: b[:-GCM_TAG],
     lambda b: b[:HEADER] + b[HEADER + 1:], lambda b: b + b"\x00"],
    ids=["empty", "tag-only", "header-only", "no-body", "under-minimum", "last-byte",
         "no-gcm-tag", "byte-removed", "byte-added"],
)
def test_a_truncated_or_extended_blob_fails(vault: EnvelopeVault, cut: Any) -> None:
    blob = sealed(vault)
    with pytest.raises(VaultError):
        fresh(vault, "fam_a").open("entries", "value", "ent_1", cut(blob))


def test_a_plaintext_blob_is_not_accepted(vault: EnvelopeVault) -> None:
    vault.new_family("fam_a", T0)
    plain = PlaintextVault().for_family("fam_a").seal("entries", "value", "ent_1", SECRET * 2)
    with pytest.raises(VaultError):
        fresh(vault, "fam_a").open("entries", "value", "ent_1", plain)


def test_a_missing_data_key_fails(vault: EnvelopeVault, keystore: KeyStore) -> None:
    blob = sealed(vault)
    assert keystore.destroy("fam_a")
    with pytest.raises(VaultError):
        fresh(vault, "fam_a").open("entries", "value", "ent_1", blob)
    with pytest.raises(VaultError):
        vault.for_families(["fam_a"])["fam_a"].open("entries", "value", "ent_1", blob)


# --- the master keyring and wrapped keys -----------------------------------------------


def test_a_keyring_without_the_master_version_cannot_open(
    vault: EnvelopeVault, keyring: Keyring, keystore: KeyStore
) -> None:
    blob = sealed(vault)
    # A keyring that has only a later version (version 1 retired or never copied).
    later = Keyring(new_keyring_document(version=2))
    with pytest.raises(VaultError, match="master key version 1"):
        EnvelopeVault(later, keystore, INDEX_KEY).for_family("fam_a").open(
            "entries", "value", "ent_1", blob)
    # The same through retire(): rotated without re-wrapping, then version 1 retired.
    keyring.add_version()
    keyring.retire(1, active=2)
    with pytest.raises(VaultError):
        fresh(vault, "fam_a").open("entries", "value", "ent_1", blob)


def test_a_wrong_master_key_cannot_open(vault: EnvelopeVault, keystore: KeyStore) -> None:
    blob = sealed(vault)
    impostor = EnvelopeVault(Keyring(new_keyring_document()), keystore, INDEX_KEY)
    with pytest.raises(VaultError, match="does not unwrap"):
        impostor.for_family("fam_a").open("entries", "value", "ent_1", blob)


def test_a_wrapped_key_copied_to_another_family_does_not_unwrap(
    vault: EnvelopeVault, keyring: Keyring, keystore: KeyStore
) -> None:
    blob = sealed(vault, "fam_a")
    of_a = keystore.get_many(["fam_a"])["fam_a"]
    stolen = WrappedKey("fam_b", of_a.key_version, of_a.master_version, of_a.wrapped)
    with pytest.raises(VaultError):
        unwrap(keyring, stolen)
    keystore.add(stolen, T0)
    with pytest.raises(VaultError):
        fresh(vault, "fam_b").open("entries", "value", "ent_1", blob)
    with pytest.raises(VaultError):
        fresh(vault, "fam_b").seal("entries", "value", "ent_1", "anything")


@pytest.mark.parametrize("change", ["key_version", "master_version", "wrapped"])
def test_a_wrapped_key_with_changed_metadata_does_not_unwrap(
    vault: EnvelopeVault, keyring: Keyring, keystore: KeyStore, change: str
) -> None:
    vault.new_family("fam_a", T0)
    keyring.add_version()  # so that master version 2 exists
    key = keystore.get_many(["fam_a"])["fam_a"]
    damaged = {
        "key_version": WrappedKey("fam_a", 2, key.master_version, key.wrapped),
        "master_version": WrappedKey("fam_a", key.key_version, 2, key.wrapped),
        "wrapped": WrappedKey("fam_a", key.key_version, key.master_version,
                              key.wrapped[:-1] + bytes([key.wrapped[-1] ^ 1])),
    }[change]
    with pytest.raises(VaultError):
        unwrap(keyring, damaged)


def test_rotation_keeps_values_readable(vault: EnvelopeVault, keyring: Keyring,
                                        keystore: KeyStore) -> None:
    blobs = {f"fam_{i}": sealed(vault, f"fam_{i}", text=f"value {i}") for i in range(3)}
    assert keyring.add_version() == 2
    keystore.set_active(2, T0)  # the key store, not the keyring, says which is active
    report = rewrap_all(keyring, keystore, T0, batch=2)
    assert report.rewrapped == 3 and report.version == 2
    assert keystore.count_under() == {2: 3}
    keyring.retire(1, active=2)
    for family, blob in blobs.items():
        assert fresh(vault, family).open("entries", "value", "ent_1", blob) == \
            f"value {family[4:]}"
    with pytest.raises(KeyringError):
        keyring.retire(2, active=2)  # the active version


# --- the blind index ------------------------------------------------------------------


def test_blind_index_is_keyed(keyring: Keyring, keystore: KeyStore) -> None:
    one = EnvelopeVault(keyring, keystore, b"1" * 32)
    same = EnvelopeVault(Keyring(new_keyring_document()), keystore, b"1" * 32)
    other = EnvelopeVault(keyring, keystore, b"2" * 32)
    index = one.blind_index("name", "Aylin Demir")
    assert index == one.blind_index("name", "Aylin Demir")
    assert index == same.blind_index("name", "Aylin Demir")  # not tied to the master key
    assert index != other.blind_index("name", "Aylin Demir")
    assert len(index) == 64 and int(index, 16) >= 0
    unkeyed = {
        hashlib.sha256(b"Aylin Demir").hexdigest(),
        hashlib.sha256(normalise("Aylin Demir").encode()).hexdigest(),
        PlaintextVault().blind_index("name", "Aylin Demir"),
    }
    assert index not in unkeyed
    assert one.blind_index("name", "Aylin Demir") != one.blind_index("birth_date",
                                                                     "Aylin Demir")
    assert one.blind_index("name", "Aylin Demir") != one.blind_index("name", "Aylin Demit")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Aylin  Demir", "aylin demir"),
        (" AYLIN\tDEMIR\n", "aylin demir"),
        ("Straße", "STRASSE"),
        ("ﬁona", "FIONA"),
        ("Ａｙｌｉｎ", "aylin"),
    ],
)
def test_blind_index_normalises(vault: EnvelopeVault, a: str, b: str) -> None:
    assert vault.blind_index("name", a) == vault.blind_index("name", b)


# --- parsing the keyring ----------------------------------------------------------------

GOOD = base64.b64encode(b"k" * 32).decode()
SHORT = base64.b64encode(b"s" * 16).decode()
LONG = base64.b64encode(b"L" * 48).decode()


@pytest.mark.parametrize(
    ("text", "problem", "material"),
    [
        ('{"active": 1, "keys": {"1": "' + GOOD, "not JSON", GOOD),
        ('{"active": 1, "keys": {"1": "' + SHORT + '"}}', "32 bytes", SHORT),
        ('{"active": 1, "keys": {"1": "' + LONG + '"}}', "32 bytes", LONG),
        ('{"active": 1, "keys": {"1": "' + GOOD[:-3] + '!!!"}}', "not base64", GOOD[:-3]),
        ('{"active": 2, "keys": {"1": "' + GOOD + '"}}', "active version 2 has no key", GOOD),
        ('{"keys": {"1": "' + GOOD + '"}}', "must be JSON like", GOOD),
        ('{"active": 1}', "must be JSON like", GOOD),
        ('{"active": 1, "keys": ["' + GOOD + '"]}', "must be JSON like", GOOD),
        ('{"active": 1, "keys": {"one": "' + GOOD + '"}}', "must be JSON like", GOOD),
        ('{"active": 1, "keys": {"1": 12345}}', "not base64", "12345"),
        ('["' + GOOD + '"]', "must be JSON like", GOOD),
        ("null", "must be JSON like", GOOD),
    ],
    ids=["bad-json", "short-key", "long-key", "not-base64", "active-missing", "no-active",
         "no-keys", "keys-a-list", "version-not-a-number", "key-not-a-string",
         "not-an-object", "null"],
)
def test_keyring_errors_name_the_problem_not_the_key(text: str, problem: str,
                                                     material: str) -> None:
    with pytest.raises(KeyringError) as failure:
        Keyring.from_json(text)
    message = str(failure.value)
    assert problem in message
    assert "ONESTORY_KEYRING" in message
    assert material not in message
    if material != "12345":
        assert material not in repr(failure.value)


def test_a_keyring_error_chain_holds_no_key_material() -> None:
    """A start-up failure is often logged with its traceback (a WSGI server
    importing the app factory): no part of the chain may hold a key, even when
    keys and versions are swapped by mistake."""
    for document in ({"active": 1, "keys": {GOOD: "1"}}, {"active": GOOD, "keys": {"1": GOOD}}):
        with pytest.raises(KeyringError) as failure:
            Keyring.from_json(json.dumps(document))
        chain = "".join(traceback.format_exception(failure.value))
        assert GOOD not in chain, "the key appears in the exception chain"


def test_keyring_file_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="cannot be read"):
        Keyring.from_file(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"active": 1, "keys": {"1": "' + GOOD)
    with pytest.raises(KeyringError, match="not JSON") as failure:
        Keyring.from_file(broken)
    assert GOOD not in str(failure.value)
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"active": 1, "keys": {"1": SHORT}}))
    with pytest.raises(KeyringError, match="32 bytes") as failure:
        Keyring.from_file(short)
    assert str(short) in str(failure.value) and SHORT not in str(failure.value)


def test_keyring_document_round_trips() -> None:
    document = {"active": 2, "keys": {"1": GOOD, "2": base64.b64encode(b"m" * 32).decode()}}
    keyring = Keyring.from_json(json.dumps(document))
    assert keyring.active == 2 and keyring.key(1) == b"k" * 32
    assert keyring.document() == document
    with pytest.raises(VaultError, match="version 3"):
        keyring.key(3)


# --- the key file ---------------------------------------------------------------------


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_save_writes_mode_0600_atomically(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    write_secret_file(path, json.dumps(new_keyring_document()))
    assert mode(path) == 0o600
    keyring = Keyring.from_file(path)
    before = path.stat().st_ino
    old_umask = os.umask(0)  # the mode must not depend on the caller's umask
    try:
        keyring.add_version()
        keyring.save()
    finally:
        os.umask(old_umask)
    assert mode(path) == 0o600
    assert path.stat().st_ino != before  # a new file renamed into place, not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyring.json"]  # no temp left
    assert Keyring.from_file(path).document() == keyring.document()


def test_save_is_0600_even_over_a_stale_temporary_file(tmp_path: Path) -> None:
    """A save interrupted earlier (or a file planted beside the key file)
    must not decide the mode of the next key file."""
    path = tmp_path / "keyring.json"
    write_secret_file(path, json.dumps(new_keyring_document()))
    stale = tmp_path / "keyring.json.tmp"
    stale.write_text("left over")
    stale.chmod(0o644)
    keyring = Keyring.from_file(path)
    keyring.add_version()
    keyring.save()
    assert mode(path) == 0o600, f"the saved keyring has mode {mode(path):o}"


def test_write_secret_file_refuses_to_overwrite_unless_replacing(tmp_path: Path) -> None:
    path = tmp_path / "index_key"
    write_secret_file(path, "one")
    with pytest.raises(FileExistsError):
        write_secret_file(path, "two")
    assert path.read_text() == "one"


def test_save_needs_a_file() -> None:
    keyring = Keyring.from_json(json.dumps(new_keyring_document()))
    with pytest.raises(KeyringError, match="ONESTORY_KEYRING_FILE"):
        keyring.save()
    keyring.refresh()  # nothing to re-read: no error


def touch_later(path: Path) -> None:
    """Move the file's mtime on by a second, so the test does not depend on
    the file system's timestamp granularity."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_refresh_picks_up_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    write_secret_file(path, json.dumps(new_keyring_document()))
    server = Keyring.from_file(path)
    server.refresh()  # unchanged: nothing happens
    assert server.active == 1
    operator = Keyring.from_file(path)
    operator.add_version()  # `keys add`: a new version, not active
    operator.save()
    touch_later(path)
    server.refresh()
    assert server.active == 1 and server.keys == operator.keys and set(server.keys) == {1, 2}
    operator.retire(1, active=2)
    operator.save()
    touch_later(path)
    server.refresh()
    assert set(server.keys) == {2} and server.active == 2
    path.unlink()  # a vanished file keeps the keys in memory
    server.refresh()
    assert set(server.keys) == {2}


def test_a_vault_follows_a_retirement_in_the_key_file(tmp_path: Path,
                                                      keystore: KeyStore) -> None:
    path = tmp_path / "keyring.json"
    write_secret_file(path, json.dumps(new_keyring_document()))
    vault = EnvelopeVault(Keyring.from_file(path), keystore, INDEX_KEY)
    blob = sealed(vault)
    assert fresh(vault, "fam_a").open("entries", "value", "ent_1", blob) == SECRET
    write_secret_file(path, json.dumps(new_keyring_document(version=2)), replace=True)
    touch_later(path)
    with pytest.raises(VaultError):
        fresh(vault, "fam_a").open("entries", "value", "ent_1", blob)


# --- the active master version, agreed in the key store ---------------------------------


def test_a_new_key_store_takes_the_first_proposal_and_keeps_it(keystore: KeyStore) -> None:
    with pytest.raises(NoActiveVersion):
        keystore.active_version()
    assert keystore.active_version(propose=3, now=T0) == 3
    # A later proposal (another node's keyring file) changes nothing.
    assert keystore.active_version(propose=5, now=T0) == 3
    keystore.set_active(4, T0)
    assert keystore.active_version(propose=1, now=T0) == 4


def test_new_keys_are_wrapped_under_the_agreed_version_not_the_keyrings(
        keystore: KeyStore) -> None:
    keystore.set_active(1, T0)
    # This node's keyring was given version 2 and even names it active: no matter.
    keyring = Keyring(new_keyring_document())
    keyring.add_version()
    keyring.activate(2)
    vault = EnvelopeVault(keyring, keystore, INDEX_KEY)
    blob = sealed(vault, "fam_a")
    assert keystore.get_many(["fam_a"])["fam_a"].master_version == 1
    assert fresh(vault, "fam_a").open("entries", "value", "ent_1", blob) == SECRET
    keystore.set_active(2, T0)
    vault.new_family("fam_b", T0)
    assert keystore.get_many(["fam_b"])["fam_b"].master_version == 2


def test_a_keyring_without_the_agreed_version_wraps_nothing(keystore: KeyStore) -> None:
    keystore.set_active(3, T0)
    keyring = Keyring(new_keyring_document())
    keyring.add_version()  # holds 1 and 2, not 3
    vault = EnvelopeVault(keyring, keystore, INDEX_KEY)
    with pytest.raises(MasterKeyMissing) as refused:
        vault.new_family("fam_a", T0)
    assert refused.value.version == 3 and refused.value.active
    assert "master key version 3" in str(refused.value)
    assert "ONESTORY_KEYRING" in str(refused.value)
    assert keystore.get_many(["fam_a"]) == {}
    with pytest.raises(MasterKeyMissing, match="version 3"):
        rewrap_all(keyring, keystore, T0)


def test_the_key_store_stores_a_key_only_under_the_active_version(
        vault: EnvelopeVault, keyring: Keyring, keystore: KeyStore) -> None:
    vault.new_family("fam_a", T0)  # version 1 agreed
    keyring.add_version()
    data_key = unwrap(keyring, keystore.get_many(["fam_a"])["fam_a"])
    with pytest.raises(NotActive):
        keystore.add(wrap(keyring, "fam_b", 1, data_key, 2), T0)
    assert keystore.get_many(["fam_b"]) == {}
    # A re-wrap to a version activated and then replaced is refused too.
    old = keystore.get_many(["fam_a"])["fam_a"]
    assert keystore.rewrap([(old, wrap(keyring, "fam_a", 1, data_key, 2))], T0) == 0
    assert keystore.get_many(["fam_a"])["fam_a"] == old


def test_a_new_family_activated_meanwhile_is_wrapped_again_under_the_new_version(
        keyring: Keyring, keystore: KeyStore) -> None:
    keyring.add_version()
    keystore.set_active(1, T0)

    class ActivatedMeanwhile(KeyStore):
        """`keys activate 2` lands between reading the version and writing the key."""

        def __init__(self) -> None:
            super().__init__(keystore.engine)
            self.reads = 0

        def active_version(self, propose: int | None = None,
                           now: datetime | None = None) -> int:
            self.reads += 1
            found = super().active_version(propose, now)
            if self.reads == 1:
                keystore.set_active(2, T0)
            return found

    racing = ActivatedMeanwhile()
    EnvelopeVault(keyring, racing, INDEX_KEY).new_family("fam_a", T0)
    assert racing.reads == 2
    assert keystore.get_many(["fam_a"])["fam_a"].master_version == 2


def test_add_version_numbers_above_what_is_known_and_activates_nothing() -> None:
    keyring = Keyring(new_keyring_document())
    assert keyring.add_version() == 2
    assert keyring.add_version(above=6) == 7
    assert keyring.active == 1 and sorted(keyring.keys) == [1, 2, 7]
    with pytest.raises(KeyringError):
        keyring.activate(5)


def test_heartbeats_record_versions_and_the_active_one(keystore: KeyStore) -> None:
    later = datetime(2026, 11, 22, 10, 1, tzinfo=UTC)
    assert keystore.beat("host-a:/srv/a", [1], T0, propose=1) == 1
    keystore.set_active(2, T0)
    assert keystore.beat("host-b:/srv/b", [2, 1], later) == 2
    reports = keystore.nodes()
    assert [(n.node_id, n.seen_at, n.versions, n.active_version) for n in reports] == [
        ("host-b:/srv/b", later, frozenset({1, 2}), 2),
        ("host-a:/srv/a", T0, frozenset({1}), 1),
    ]
    assert [n.node_id for n in keystore.nodes(since=later)] == ["host-b:/srv/b"]
    keystore.beat("host-a:/srv/a", [1, 2], later)  # one row per node, updated
    assert {n.node_id: n.versions for n in keystore.nodes()}["host-a:/srv/a"] == {1, 2}


@pytest.mark.parametrize("value", ["0", "61", "ten", "-5", "1.5"])
def test_the_heartbeat_interval_is_checked(value: str) -> None:
    from coordination.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="ONESTORY_NODE_HEARTBEAT_SECONDS"):
        load_settings({"ONESTORY_NODE_HEARTBEAT_SECONDS": value})
    assert load_settings({}).node_heartbeat_seconds == 60
    assert load_settings({"ONESTORY_NODE_HEARTBEAT_SECONDS": "5"}).node_heartbeat_seconds == 5
