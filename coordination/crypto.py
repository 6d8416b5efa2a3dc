"""The key hierarchy and how identifying values are stored.

    master keyring (versioned; environment or key file, outside both databases)
      └─ wraps ─ per-family data key (AES-256, in the key store database)
           └─ encrypts ─ every identifying value of that family (AES-256-GCM)

Services never write a value to the database directly: they ask the vault
for the family's cipher once per request (`vault.for_family`) and seal or
open each value with the table, column and row it belongs to. The cipher
unwraps the family's data key once, on first use, and keeps it only for that
request. Every ciphertext carries its format and data-key version, a fresh
96-bit nonce, and is bound by associated data to (family, table, column,
row): copied anywhere else it fails to open. Search goes through a keyed
blind index (HMAC-SHA-256 with its own key), never through a stored value.

Anything that cannot be opened raises `VaultError`, and no data is returned.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import struct
import tempfile
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coordination.db import private_folder
from coordination.keystore import KeyStore, NotActive, WrappedKey

PLAINTEXT_TAG = b"\x00"
AESGCM_TAG = b"\x01"
_HEADER = struct.Struct(">cI")  # format tag, data-key version
NONCE_BYTES = 12
_SPACE = re.compile(r"\s+")


class VaultError(Exception):
    """A stored value could not be opened or sealed; no data may be returned.

    Messages name places (table, column, key version), never values.
    """


class KeyringError(Exception):
    """The master keyring is missing or unusable; the message says how to fix it."""


class MasterKeyMissing(VaultError):
    """This node's keyring lacks a master key version it needs: to unwrap a
    data key still under it, or (`active`) to wrap under the version every
    node agreed on. The message names the version and says what to do."""

    def __init__(self, version: int, where: str, active: bool = False) -> None:
        self.version = version
        self.active = active
        if active:
            message = (f"master key version {version} is the active version agreed in the "
                       f"key store, but this node's keyring ({where}) does not hold it: copy "
                       "the keyring file from the node where `onestory keys add` ran")
        else:
            message = (f"master key version {version} is not in this node's keyring "
                       f"({where}): retired, or the keyring file was not copied here")
        super().__init__(message)


def normalise(text: str) -> str:
    """Unicode NFKC, case-folded, white space collapsed: the search form."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


class FamilyCipher(Protocol):
    def seal(self, table: str, column: str, row_id: str, plaintext: str) -> bytes: ...

    def open(self, table: str, column: str, row_id: str, blob: bytes) -> str: ...


class Vault(Protocol):
    def for_family(self, family_id: str) -> FamilyCipher: ...

    def for_families(self, family_ids: Sequence[str]) -> dict[str, FamilyCipher]: ...

    def new_family(self, family_id: str, now: datetime) -> FamilyCipher: ...

    def blind_index(self, purpose: str, value: str) -> str: ...


# --- the master keyring ---------------------------------------------------------


def _b64key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise KeyringError(f"{where} is not base64") from exc
    if len(key) != 32:
        raise KeyringError(f"{where} must be 32 bytes (256 bits), not {len(key)}")
    return key


def new_keyring_document(version: int = 1) -> dict[str, Any]:
    return {"active": version,
            "keys": {str(version): base64.b64encode(secrets.token_bytes(32)).decode()}}


class Keyring:
    """Versioned master keys, read from JSON
    `{"active": 2, "keys": {"1": "<base64>", "2": "<base64>"}}` given in
    ONESTORY_KEYRING or in the file ONESTORY_KEYRING_FILE names; a file is
    re-read when it changes, so running servers follow a rotation.

    Which version wraps new data keys is decided in the key store, for every
    node at once (`KeyStore.active_version`), never by this file: `active`
    here is only what this keyring proposes to a key store that names none
    yet, and what `keys activate` last set on this node. The other versions
    unwrap keys not yet re-wrapped."""

    def __init__(self, document: dict[str, Any], path: Path | None = None) -> None:
        self.path = path
        self._stamp = _stamp(path) if path else None
        self._lock = threading.Lock()
        self._load(document)

    def _load(self, document: dict[str, Any]) -> None:
        where = str(self.path) if self.path else "ONESTORY_KEYRING"
        try:
            keys = {int(v): _b64key(k, f"{where} key {v}") for v, k in document["keys"].items()}
            active = int(document["active"])
        except KeyringError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError):
            # `from None`: the original error may quote key material.
            raise KeyringError(
                f"{where} must be JSON like {{\"active\": 1, \"keys\": {{\"1\": \"<base64>\"}}}}"
            ) from None
        if active not in keys:
            raise KeyringError(f"{where}: the active version {active} has no key")
        self.keys, self.active = keys, active

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        try:
            document = json.loads(path.read_text())
        except OSError as exc:
            raise KeyringError(f"the keyring file {path} cannot be read: {exc.strerror}") from exc
        except ValueError as exc:
            raise KeyringError(f"the keyring file {path} is not JSON") from exc
        return cls(document, path)

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        try:
            return cls(json.loads(text))
        except ValueError as exc:
            raise KeyringError("ONESTORY_KEYRING is not JSON") from exc

    def refresh(self) -> None:
        """Re-read the key file if it changed (a rotation or retirement)."""
        if self.path is None:
            return
        try:
            stamp = _stamp(self.path)
        except OSError:
            return  # keep the keys in memory; failing here would stop every read
        if stamp != self._stamp:
            with self._lock:
                fresh = Keyring.from_file(self.path)
                self.keys, self.active, self._stamp = fresh.keys, fresh.active, stamp

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "ONESTORY_KEYRING"

    def key(self, version: int, *, active: bool = False) -> bytes:
        """The master key `version`; `active`: it is the agreed active one
        (said so in the `MasterKeyMissing` raised when it is not held)."""
        if version not in self.keys:
            self.refresh()
        try:
            return self.keys[version]
        except KeyError:
            raise MasterKeyMissing(version, self.where, active) from None

    def document(self) -> dict[str, Any]:
        keys = {str(v): base64.b64encode(k).decode() for v, k in sorted(self.keys.items())}
        return {"active": self.active, "keys": keys}

    def save(self) -> None:
        """Write the key file atomically, readable by its owner only."""
        if self.path is None:
            raise KeyringError("the keyring comes from ONESTORY_KEYRING, not a file; "
                               "set ONESTORY_KEYRING_FILE to let OneStory change it")
        write_secret_file(self.path, json.dumps(self.document(), indent=2) + "\n", replace=True)
        self._stamp = _stamp(self.path)

    def add_version(self, above: int = 0) -> int:
        """Add a new master key, numbered above every version held and above
        `above` (versions known elsewhere: the key store, other nodes), so
        that a number never names two keys. It is not made active."""
        version = max(max(self.keys), above) + 1
        self.keys[version] = secrets.token_bytes(32)
        return version

    def activate(self, version: int) -> None:
        """Record in this keyring that `version` is active (see the class)."""
        if version not in self.keys:
            raise KeyringError(f"there is no master key version {version} in {self.where}")
        self.active = version

    def retire(self, version: int, active: int) -> None:
        """Remove `version`; `active` is the agreed active version, never removed."""
        if version == active:
            raise KeyringError(f"version {version} is the active master key; activate "
                               "another first")
        if version not in self.keys:
            raise KeyringError(f"there is no master key version {version} in {self.where}")
        if active in self.keys:
            self.active = active
        del self.keys[version]
        if self.active not in self.keys:
            self.active = max(self.keys)


def _stamp(path: Path) -> tuple[int, int, int]:
    # A replaced file has a new inode even when its time stamp does not move.
    info = path.stat()
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def write_secret_file(path: Path, text: str, *, replace: bool = False) -> None:
    """Write `text` to `path` with mode 0600; when replacing, atomically
    through a fresh, exclusive temporary file in the same folder."""
    private_folder(path.parent)
    if not replace:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        return
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


# --- ciphers ------------------------------------------------------------------------


def _aad(family_id: str, table: str, column: str, row_id: str) -> bytes:
    return "\x1f".join(("onestory/v1", family_id, table, column, row_id)).encode()


def _wrap_aad(family_id: str, key_version: int, master_version: int) -> bytes:
    return f"onestory/dk\x1f{family_id}\x1f{key_version}\x1f{master_version}".encode()


def wrap(keyring: Keyring, family_id: str, key_version: int, data_key: bytes,
         master_version: int) -> WrappedKey:
    """Wrap under `master_version`: the active one agreed in the key store
    (`KeyStore.active_version`), which the caller read; raises
    `MasterKeyMissing` when this keyring does not hold it."""
    version = master_version
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(keyring.key(version, active=True)).encrypt(
        nonce, data_key, _wrap_aad(family_id, key_version, version))
    return WrappedKey(family_id, key_version, version, nonce + sealed)


def unwrap(keyring: Keyring, key: WrappedKey) -> bytes:
    master = keyring.key(key.master_version)
    try:
        return AESGCM(master).decrypt(
            key.wrapped[:NONCE_BYTES], key.wrapped[NONCE_BYTES:],
            _wrap_aad(key.family_id, key.key_version, key.master_version))
    except InvalidTag:
        raise VaultError(f"the data key of a family does not unwrap under master key version "
                         f"{key.master_version} (wrong key or tampered)") from None


class _AesGcmCipher:
    """One family's cipher for one request: the key is unwrapped on first use."""

    def __init__(self, vault: EnvelopeVault, family_id: str,
                 wrapped: WrappedKey | None = None, key: bytes | None = None,
                 key_version: int = 1) -> None:
        self._vault = vault
        self._family_id = family_id
        self._wrapped = wrapped
        self._key = key
        self._key_version = wrapped.key_version if wrapped else key_version
        self._aead: AESGCM | None = AESGCM(key) if key else None

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            wrapped = self._wrapped
            if wrapped is None:
                wrapped = self._vault.keystore.get_many([self._family_id]).get(self._family_id)
            if wrapped is None:
                raise VaultError("a family's data key is missing (erased, or never made)")
            self._key_version = wrapped.key_version
            self._aead = AESGCM(unwrap(self._vault.keyring, wrapped))
        return self._aead

    def seal(self, table: str, column: str, row_id: str, plaintext: str) -> bytes:
        aead = self._cipher()
        nonce = secrets.token_bytes(NONCE_BYTES)
        header = _HEADER.pack(AESGCM_TAG, self._key_version)
        aad = header + _aad(self._family_id, table, column, row_id)
        return header + nonce + aead.encrypt(nonce, plaintext.encode("utf-8"), aad)

    def open(self, table: str, column: str, row_id: str, blob: bytes) -> str:
        if len(blob) < _HEADER.size + NONCE_BYTES + 16 or blob[:1] != AESGCM_TAG:
            raise VaultError(f"{table}.{column} holds a value in an unknown format")
        aead = self._cipher()
        _, version = _HEADER.unpack(blob[:_HEADER.size])
        if version != self._key_version:
            raise VaultError(f"{table}.{column} was sealed under data key version {version}")
        nonce = blob[_HEADER.size:_HEADER.size + NONCE_BYTES]
        aad = blob[:_HEADER.size] + _aad(self._family_id, table, column, row_id)
        try:
            return aead.decrypt(nonce, blob[_HEADER.size + NONCE_BYTES:], aad).decode("utf-8")
        except InvalidTag:
            raise VaultError(f"{table}.{column} does not open: tampered, moved or "
                             "under another key") from None


@dataclass
class EnvelopeVault:
    """AES-256-GCM under per-family data keys wrapped by the master keyring."""

    keyring: Keyring
    keystore: KeyStore
    index_key: bytes

    def for_family(self, family_id: str) -> FamilyCipher:
        self.keyring.refresh()
        return _AesGcmCipher(self, family_id)

    def for_families(self, family_ids: Sequence[str]) -> dict[str, FamilyCipher]:
        """Ciphers for many families, their keys fetched in one query."""
        self.keyring.refresh()
        found = self.keystore.get_many(list(family_ids))
        return {fid: _AesGcmCipher(self, fid, wrapped=found.get(fid)) for fid in family_ids}

    def new_family(self, family_id: str, now: datetime) -> FamilyCipher:
        """Make and store a new family's data key (committed before any data),
        wrapped under the active master version agreed in the key store and
        under no other; raises `MasterKeyMissing` when this node's keyring
        lacks that version, and nothing is stored."""
        self.keyring.refresh()
        data_key = AESGCM.generate_key(bit_length=256)
        for _attempt in range(3):
            active = self.keystore.active_version(propose=self.keyring.active, now=now)
            try:
                self.keystore.add(wrap(self.keyring, family_id, 1, data_key, active), now)
            except NotActive:
                continue  # activated meanwhile: wrap again under the new version
            return _AesGcmCipher(self, family_id, key=data_key, key_version=1)
        raise VaultError("the active master key version kept changing; nothing was stored")

    def blind_index(self, purpose: str, value: str) -> str:
        message = f"{purpose}\x1f{normalise(value)}".encode()
        return hmac.new(self.index_key, message, hashlib.sha256).hexdigest()


# --- plaintext store: the benchmark's baseline, never used by a running server ----


class _PlaintextCipher:
    def seal(self, table: str, column: str, row_id: str, plaintext: str) -> bytes:
        return PLAINTEXT_TAG + plaintext.encode("utf-8")

    def open(self, table: str, column: str, row_id: str, blob: bytes) -> str:
        if not blob.startswith(PLAINTEXT_TAG):
            raise VaultError(f"{table}.{column} is in an unknown format")
        try:
            return blob[1:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VaultError(f"{table}.{column} is damaged") from exc


class PlaintextVault:
    """Stores values unencrypted (tagged UTF-8) with an unkeyed index. Only
    for measuring what encryption costs; `Runtime` never builds one."""

    _cipher = _PlaintextCipher()

    def for_family(self, family_id: str) -> FamilyCipher:
        return self._cipher

    def for_families(self, family_ids: Sequence[str]) -> dict[str, FamilyCipher]:
        return {fid: self._cipher for fid in family_ids}

    def new_family(self, family_id: str, now: datetime) -> FamilyCipher:
        return self._cipher

    def blind_index(self, purpose: str, value: str) -> str:
        digest = hashlib.sha256(f"{purpose}\x1f{normalise(value)}".encode())
        return digest.hexdigest()


# --- rotation -----------------------------------------------------------------------


@dataclass
class RewrapReport:
    rewrapped: int
    seconds: float
    version: int = 0  # the active master version the keys are now under

    @property
    def per_second(self) -> float:
        return self.rewrapped / self.seconds if self.seconds else 0.0


def rewrap_all(keyring: Keyring, keystore: KeyStore, now: datetime, batch: int = 1000,
               on_batch: Any = None) -> RewrapReport:
    """Re-wrap every data key not yet under the active master version agreed
    in the key store, in batches of one transaction each; the data itself is
    not touched. Raises `MasterKeyMissing` when this keyring lacks a version
    it needs (the active one, or one a key is still under).

    Resumable: it only ever looks at keys still under another version, so an
    interrupted run is finished by running it again. Servers keep working
    throughout: a key is readable under its old master version until the
    moment it is re-wrapped, and under the new one after it. The active
    version is read again for every batch: a batch written after another
    activation is refused by the key store and done again under the new one.
    """
    import time

    started = time.perf_counter()
    total = 0
    active = 0
    while True:
        active = keystore.active_version(propose=keyring.active, now=now)
        keyring.key(active, active=True)  # refuse before reading any key
        old_keys = keystore.not_under(active, batch)
        if not old_keys:
            break
        pairs = [(old, wrap(keyring, old.family_id, old.key_version, unwrap(keyring, old),
                            active))
                 for old in old_keys]
        done = keystore.rewrap(pairs, now)
        total += done
        if on_batch is not None:
            on_batch(total)
    return RewrapReport(total, time.perf_counter() - started, active)
