"""Benchmark: the consented shared-record read, what consent costs it and what
encryption costs it, and how fast a master-key rotation re-wraps data keys.

Builds two databases with the same families (same ids, same values): one
sealed with `PlaintextVault`, one sealed with `EnvelopeVault` (per-family
AES-256-GCM data keys in a key store of their own, wrapped by a master
keyring). SQLite files in a temporary folder, or databases on a throwaway
PostgreSQL cluster with --postgres. At a small and at a large size it times,
each read with a fresh session,

* consented: `coordination.services.shared_record` on the plaintext store, for
  an agency that holds cells on the family's joint consent form
  (physiotherapy: involvement and health granted, not involved, not the
  author),
* plain: the same rows read with SQLAlchemy on the plaintext store (family,
  involvements, current form and its cells, entries with their author's
  username, the field catalogue), every value opened, no consent logic,
* encrypted: `services.shared_record` as in consented, on the encrypted store,
* encrypted plain: the plain read on the encrypted store (so that each store
  is read twice per family, and neither profits more from warm pages),

then adds a master key version and re-wraps every data key with
`coordination.crypto.rewrap_all`. Run `python bench/shared_record.py --help`
for the options.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

# Run as `python bench/shared_record.py`, Python puts bench/ first on the path,
# where another benchmark's module could shadow a package (a bench/audit.py would hide `audit`).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Engine, Table, event, func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

import consent.tables  # noqa: F401  (registers the consent tables)
from consent.services import install_guards
from consent.tables import ConsentCellRow, ConsentFormRow
from coordination import accounts, crypto, migrate, services
from coordination.actors import Actor
from coordination.crypto import (
    EnvelopeVault,
    FamilyCipher,
    Keyring,
    PlaintextVault,
    Vault,
    _AesGcmCipher,
    new_keyring_document,
    rewrap_all,
    wrap,
)
from coordination.db import make_engine, make_session_factory
from coordination.keystore import DataKey, KeyStore, WrappedKey
from coordination.model import Entry, Family, FieldDef, Involvement, Member, Staff
from coordination.roles import InvolvementStatus

ROOT = Path(__file__).resolve().parent.parent

RATIO_TARGET = 2.0  # consented / plain, per-read median (plaintext store)
CRYPTO_TARGET = 1.5  # encrypted / plaintext, consented read, per-read median
GROWTH_TARGET = 25.0  # percent, consented median from the small to the large size
BATCH_ROWS = 5_000  # rows per executemany
CHUNK_FAMILIES = 1_000  # families generated (and committed) at a time
OTHER_LOAD_LIMIT = 10.0  # % of a CPU used by other processes while timing: above, say so
REWRAP_BATCH = 1_000  # data keys per re-wrap transaction (the CLI's default)

AGENCIES = [
    ("health-centre", "Family centre health station", "health", False),
    ("physio", "Family centre physiotherapy", "physiotherapy", False),
    ("ecec", "Sunflower kindergarten", "ecec", False),
    ("ngo", "Harbour drop-in (low-threshold NGO)", "ngo", True),
]
STAFF = [
    ("nurse1", "health-centre", "practitioner"),
    ("coord1", "health-centre", "coordinator"),
    ("physio1", "physio", "practitioner"),
    ("ecec1", "ecec", "practitioner"),
    ("ngo1", "ngo", "practitioner"),
]
READER = "physio1"  # holds cells (involvement, health); not involved, not the author
# Entries per family: (agency, author, field, text).
ENTRIES = [
    ("health-centre", "nurse1", "contact", "Mother's mobile: +47 400 00 {n:03d} (Turkish)."),
    ("health-centre", "nurse1", "health", "Growth on track; late to sit unaided (visit {n})."),
    ("health-centre", "coord1", "story", "Moved here {n} months ago; asked for help with a GP."),
    ("physio", "physio1", "health", "Motor assessment {n}: weekly sessions agreed."),
    ("ecec", "ecec1", "education", "Starts kindergarten in August; place {n} confirmed."),
]
# The joint form's grid: six ticked cells.
CELLS = [
    ("ecec", "education"),
    ("health-centre", "contact"),
    ("health-centre", "health"),
    ("health-centre", "involvement"),
    ("physio", "health"),
    ("physio", "involvement"),
]
PURPOSE = "coordinated support from the family centre"
FIRST = ["Aylin", "Mira", "Emir", "Sofia", "Jonas", "Amina", "Lukas", "Nora", "Omar", "Ida",
         "Yusuf", "Elif", "Mateo", "Lea", "Hamid", "Sara", "Noah", "Zara", "Olav", "Ines"]
LAST = ["Demir", "Hansen", "Kaya", "Johansen", "Peeters", "Nguyen", "Olsen", "Haddad",
        "Larsen", "Janssens", "Ali", "Berg", "Dubois", "Ahmed", "Nilsen", "Maes"]
LANGUAGES = [["nb"], ["tr", "nb"], ["ar", "nb"], ["bg"], ["nl", "fr"], ["so", "en"]]


# --- the two stores -------------------------------------------------------------


@dataclass
class Store:
    """One data database with its vault (and, when encrypted, its key store)."""

    name: str
    engine: Engine
    sessions: sessionmaker[Session]
    vault: Vault
    actor: Actor
    staff_ids: dict[str, int]
    keystore: KeyStore | None = None
    keyring: Keyring | None = None
    load_seconds: float = 0.0  # sealing and inserting, summed over the loads so far
    rows: int = 0
    key_rows: int = 0

    @property
    def engines(self) -> list[Engine]:
        return [self.engine] + ([self.keystore.engine] if self.keystore else [])

    def ciphers(self, family_ids: Sequence[str], now: datetime
                ) -> tuple[dict[str, FamilyCipher], list[dict[str, Any]]]:
        """Ciphers to seal these new families with, and the key-store rows they need.

        Encrypted: one fresh AES-256 data key per family, wrapped under the active
        master key exactly as `EnvelopeVault.new_family` does, but stored in bulk."""
        if not isinstance(self.vault, EnvelopeVault):
            return self.vault.for_families(family_ids), []
        keyring = self.vault.keyring
        ciphers: dict[str, FamilyCipher] = {}
        key_rows: list[dict[str, Any]] = []
        for fid in family_ids:
            data_key = AESGCM.generate_key(bit_length=256)
            wrapped = wrap(keyring, fid, 1, data_key)
            key_rows.append({
                "family_id": fid,
                "key_version": wrapped.key_version,
                "master_version": wrapped.master_version,
                "wrapped": wrapped.wrapped,
                "created_at": now,
                "rewrapped_at": None,
            })
            ciphers[fid] = _AesGcmCipher(self.vault, fid, key=data_key, key_version=1)
        return ciphers, key_rows

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()


def open_store(name: str, url: str, keystore_url: str | None, now: datetime) -> Store:
    engine = make_engine(url)
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    install_guards(sessions)  # as the application does (a no-op for reads)
    keystore: KeyStore | None = None
    vault: Vault
    if keystore_url is None:
        vault = PlaintextVault()
    else:
        # The product's set-up (`Runtime.keystore`, `Runtime.vault`): its own
        # database, schema from the key-store migrations.
        keystore = KeyStore.from_url(keystore_url)
        migrate.upgrade(keystore.engine, keystore=True)
        vault = EnvelopeVault(Keyring(new_keyring_document()), keystore,
                              secrets.token_bytes(32))
    with sessions() as session:
        for slug, agency_name, kind, minimal in AGENCIES:
            accounts.add_agency(session, slug, agency_name, kind, minimal, now)
        for username, agency, role in STAFF:
            accounts.add_staff(session, username, agency, role, None, now)
        staff_ids = dict(session.execute(select(Staff.username, Staff.id)).tuples().all())
        token = accounts.create_token(session, READER, timedelta(hours=1), now)
        actor = accounts.authenticate(session, token, now)
    keyring = vault.keyring if isinstance(vault, EnvelopeVault) else None
    return Store(name, engine, sessions, vault, actor, staff_ids, keystore, keyring)


# --- loading ----------------------------------------------------------------


class Seal(NamedTuple):
    """A value to be sealed by each store's cipher for its family."""

    family_id: str
    table: str
    column: str
    row_id: str
    text: str


class Index(NamedTuple):
    """A blind-index value, made by each store's vault."""

    purpose: str
    value: str


def _resolve(rows: list[dict[str, Any]], ciphers: dict[str, FamilyCipher],
             vault: Vault) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        done = {}
        for key, value in row.items():
            kind = type(value)
            if kind is Seal:
                value = ciphers[value.family_id].seal(value.table, value.column, value.row_id,
                                                      value.text)
            elif kind is Index:
                value = vault.blind_index(value.purpose, value.value)
            done[key] = value
        out.append(done)
    return out


def _insert(session: Session | Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH_ROWS):
        session.execute(insert(table), rows[start:start + BATCH_ROWS])


@dataclass
class Loader:
    """Generates families once and bulk-inserts them, sealed by each store's
    cipher, into every store with Core executemany."""

    stores: list[Store]
    now: datetime
    staff_ids: dict[str, int]
    rng: random.Random = field(default_factory=lambda: random.Random(20261122))
    family_ids: list[str] = field(default_factory=list)
    next_involvement: int = 1
    next_form: int = 1
    generate_seconds: float = 0.0

    def hex_id(self, prefix: str) -> str:
        # Same shape as services.new_id (random, so index inserts are random too).
        return f"{prefix}_{self.rng.getrandbits(80):020x}"

    def grow_to(self, total: int) -> float:
        """Add families until there are `total`; returns the seconds taken."""
        started = time.perf_counter()
        while len(self.family_ids) < total:
            self._load_chunk(min(CHUNK_FAMILIES, total - len(self.family_ids)))
        for store in self.stores:
            t0 = time.perf_counter()
            if store.engine.dialect.name == "postgresql":
                with store.engine.begin() as conn:
                    # Explicit ids were inserted: move the sequences on.
                    conn.execute(text(
                        "SELECT setval(pg_get_serial_sequence('involvements', 'id'), "
                        "(SELECT max(id) FROM involvements))"))
                    conn.execute(text(
                        "SELECT setval(pg_get_serial_sequence('consent_forms', 'id'), "
                        "(SELECT max(id) FROM consent_forms))"))
            for engine in store.engines:
                settle(engine)
            store.load_seconds += time.perf_counter() - t0
        return time.perf_counter() - started

    def _load_chunk(self, count: int) -> None:
        t0 = time.perf_counter()
        tables = self._generate(count)
        self.generate_seconds += time.perf_counter() - t0
        fids = self.family_ids[-count:]
        for store in self.stores:
            t0 = time.perf_counter()
            ciphers, key_rows = store.ciphers(fids, self.now)
            if store.keystore is not None:
                # Keys first, committed before the data that needs them (as
                # `EnvelopeVault.new_family` does).
                with store.keystore.engine.begin() as conn:
                    _insert(conn, DataKey.__table__, key_rows)  # type: ignore[arg-type]
                store.key_rows += len(key_rows)
            with store.sessions() as session:
                for table, rows in tables:
                    _insert(session, table, _resolve(rows, ciphers, store.vault))
                    store.rows += len(rows)
                session.commit()
            store.load_seconds += time.perf_counter() - t0

    def _generate(self, count: int) -> list[tuple[Table, list[dict[str, Any]]]]:
        """`count` new families as rows whose identifying values are still `Seal`s."""
        rng, now = self.rng, self.now
        families: list[dict[str, Any]] = []
        members: list[dict[str, Any]] = []
        involvements: list[dict[str, Any]] = []
        entries: list[dict[str, Any]] = []
        forms: list[dict[str, Any]] = []
        cells: list[dict[str, Any]] = []
        for _ in range(count):
            n = len(self.family_ids)
            fid = self.hex_id("fam")
            self.family_ids.append(fid)

            def seal(table: str, column: str, row_id: str, value: str,
                     fid: str = fid) -> Seal:
                return Seal(fid, table, column, row_id, value)

            first, last = rng.choice(FIRST), rng.choice(LAST)
            name = f"{first} {last}"
            born = date(2020, 1, 1) + timedelta(days=rng.randrange(5 * 365))
            created = now - timedelta(days=rng.randrange(1, 700), seconds=rng.randrange(86_400))
            families.append({
                "id": fid,
                "display_name": seal("families", "display_name", fid, name),
                "name_index": Index("name", name),
                "birth_date_index": Index("birth_date", born.isoformat()),
                "birth_date": seal("families", "birth_date", fid, born.isoformat()),
                "address": seal("families", "address", fid, f"Storgata {n % 200 + 1}, 0155 Oslo"),
                "national_id": None,
                "languages": seal("families", "languages", fid,
                                  json.dumps(rng.choice(LANGUAGES))),
                "recorded_by_agency": "health-centre",
                "created_at": created,
            })
            for position, (who, relation) in enumerate(((first, "mother"), ("Emir", "child"))):
                member_id = self.hex_id("mem")
                members.append({
                    "id": member_id,
                    "family_id": fid,
                    "position": position,
                    "name": seal("family_members", "name", member_id, f"{who} {last}"),
                    "relation": seal("family_members", "relation", member_id, relation),
                    "birth_date": (
                        seal("family_members", "birth_date", member_id, born.isoformat())
                        if relation == "child" else None
                    ),
                })
            involvements.append({
                "id": self.next_involvement,
                "family_id": fid,
                "agency_id": "health-centre",
                "status": InvolvementStatus.ACTIVE.value,
                "since": created.date(),
                "contact_worker": "nurse1",
                "created_at": created,
                "updated_at": created,
            })
            self.next_involvement += 1
            for i, (agency, author, field_id, template) in enumerate(ENTRIES):
                entry_id = self.hex_id("ent")
                entries.append({
                    "id": entry_id,
                    "family_id": fid,
                    "field_id": field_id,
                    "agency_id": agency,
                    "author_id": self.staff_ids[author],
                    "written_at": created + timedelta(days=i + 1, minutes=rng.randrange(600)),
                    "value": seal("entries", "value", entry_id, template.format(n=n)),
                })
            form_id = self.next_form
            self.next_form += 1
            signed = created + timedelta(days=1)
            forms.append({
                "id": form_id,
                "family_id": fid,
                "version": 1,
                # A form version's free text is bound to (family, version), as
                # `services._write_sealed` seals it.
                "signed_by": seal("consent_forms", "signed_by", "v1", name),
                "signed_on": signed.date(),
                "recorded_at": signed,
                "method": "paper",
                "witness": "coord1",
                "interpreter_language": None,
                "purpose": seal("consent_forms", "purpose", "v1", PURPOSE),
                "legal_basis": "consent",
                "valid_until": (now + timedelta(days=365)).date(),
                "change": "signed",
                "changed_by": "coord1",
            })
            cells.extend(
                {"form_id": form_id, "agency_id": a, "field_id": f} for a, f in CELLS
            )
        return [
            (Family.__table__, families),  # type: ignore[list-item]
            (Member.__table__, members),
            (Involvement.__table__, involvements),
            (ConsentFormRow.__table__, forms),
            (ConsentCellRow.__table__, cells),
            (Entry.__table__, entries),
        ]


# --- the two reads ----------------------------------------------------------


def consented_read(session: Session, vault: Vault, actor: Actor, family_id: str,
                   now: datetime) -> dict[str, Any]:
    return services.shared_record(session, vault, actor, family_id, now).body


def plain_read(session: Session, vault: Vault, actor: Actor, family_id: str,
               now: datetime) -> dict[str, Any]:
    """The same rows as the service reads, with no consent logic; opens every value."""
    family = session.get(Family, family_id)
    if family is None:
        raise LookupError(family_id)
    cipher = vault.for_family(family_id)
    involvements = session.scalars(
        select(Involvement)
        .where(Involvement.family_id == family_id)
        .order_by(Involvement.since, Involvement.id)
    ).all()
    form = session.scalars(
        select(ConsentFormRow)
        .where(ConsentFormRow.family_id == family_id)
        .order_by(ConsentFormRow.version.desc())
        .limit(1)
    ).first()
    grid: list[tuple[str, str]] = []
    if form is not None:
        grid = [(a, f) for a, f in session.execute(
            select(ConsentCellRow.agency_id, ConsentCellRow.field_id)
            .where(ConsentCellRow.form_id == form.id)
        )]
    rows = session.execute(
        select(Entry, Staff.username)
        .join(Staff, Staff.id == Entry.author_id)
        .where(Entry.family_id == family_id)
        .order_by(Entry.written_at, Entry.id)
    ).all()
    fields: dict[str, list[dict[str, str]]] = {
        f.id: [] for f in session.scalars(
            select(FieldDef).order_by(FieldDef.position, FieldDef.id)
        )
    }
    for entry, author in rows:
        fields[entry.field_id].append({
            "id": entry.id,
            "agency": entry.agency_id,
            "author": author,
            "written_at": services.iso_time(entry.written_at),
            "value": cipher.open("entries", "value", entry.id, entry.value),
        })
    return {
        "id": family.id,
        "display_name": cipher.open("families", "display_name", family.id, family.display_name),
        "fields": fields,
        "grid": sorted(grid),
        "involvements": [
            {"agency": i.agency_id, "status": i.status, "since": i.since.isoformat(),
             "contact_worker": i.contact_worker}
            for i in involvements
        ],
    }


Read = Callable[[Session, Vault, Actor, str, datetime], dict[str, Any]]


# --- measuring ----------------------------------------------------------------


class Pinning:
    """While measuring, keep this process on one CPU and its PostgreSQL backends
    (data and key store alike) on another (Linux, two CPUs or more). Left to the
    scheduler on a small machine, client and backend share a core some minutes
    and not others, and the read time jumps between two levels. Off with --no-pin."""

    def __init__(self, engines: Iterable[Engine], enabled: bool) -> None:
        engines = list(engines)
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.enabled = enabled and len(self.cpus) > 1
        self.server = any(e.dialect.name == "postgresql" for e in engines)
        self.backends: set[int] = set()
        self.active = False
        self.failed = ""
        if self.server:  # backends are tracked for OtherLoad even when not pinned
            for engine in engines:
                event.listen(engine, "connect", self._connected)

    @property
    def note(self) -> str:
        if not self.enabled:
            return "not pinned to CPUs"
        client = f"client on CPU {self.cpus[0]}"
        if not self.server:
            return client
        if self.failed or not self.backends:
            return f"{client}, server backends not pinned {self.failed}".rstrip()
        return f"{client}, server backends on CPU {self.cpus[1]}"

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        pid = int(cursor.fetchone()[0])
        cursor.close()
        self.backends.add(pid)
        if self.active:
            self._set(pid, {self.cpus[1]})

    def _set(self, pid: int, cpus: set[int]) -> None:
        try:
            os.sched_setaffinity(pid, cpus)
        except OSError as exc:  # a backend that is gone, or not ours to move
            self.backends.discard(pid)
            self.failed = f"({exc.strerror})"

    @contextmanager
    def pinned(self) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self.active = True
        self._set(0, {self.cpus[0]})
        for pid in list(self.backends):
            self._set(pid, {self.cpus[1]})
        try:
            yield
        finally:
            self.active = False
            for pid in [0, *self.backends]:
                self._set(pid, set(self.cpus))


class OtherLoad:
    """CPU time the rest of the machine used while reads were timed: everything
    but this process and its PostgreSQL backends, in % of one CPU (Linux only).
    Other work on the machine moves the figures; this says when it was there."""

    def __init__(self, backends: set[int]) -> None:
        self.backends = backends
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as handle:
                cpu = [int(v) for v in handle.readline().split()[1:9]]
            ours = 0.0
            for pid in self.backends:
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                ours += (int(fields[11]) + int(fields[12])) / self.tick
        except (OSError, ValueError, IndexError):
            return None
        busy = (sum(cpu) - cpu[3] - cpu[4]) / self.tick  # all but idle and iowait
        mine = os.times()
        return busy, ours + mine.user + mine.system, time.monotonic()

    def percent(self) -> float | None:
        end = self._sample()
        if self.start is None or end is None:
            return None
        busy, ours, wall = (e - s for e, s in zip(end, self.start, strict=True))
        return max(0.0, (busy - ours) / wall * 100) if wall > 0 else None


@dataclass
class Timing:
    samples_us: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_us)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples_us)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.samples_us, n=20)[-1]


@dataclass
class Rotation:
    keys: int
    master_version: int
    seconds: float
    select_seconds: float  # KeyStore.not_under: finding keys still under an old version
    update_seconds: float  # KeyStore.rewrap: the UPDATEs and their commit

    @property
    def per_second(self) -> float:
        return self.keys / self.seconds if self.seconds else 0.0

    @property
    def other_seconds(self) -> float:  # unwrap, wrap, and the loop itself
        return self.seconds - self.select_seconds - self.update_seconds


@dataclass
class Counts:
    """What one read costs in statements and key work."""

    consented: int  # statements, plaintext store
    plain: int
    encrypted: int  # statements on the encrypted data database
    key_queries: int  # statements on the key store, encrypted read
    unwraps: int  # data keys unwrapped, encrypted read


@dataclass
class Result:
    families: int
    load_seconds: float
    plaintext_load: float
    encrypted_load: float
    consented: Timing
    plain: Timing
    encrypted: Timing
    encrypted_plain: Timing
    counts: Counts
    rotation: Rotation
    pinning: str
    other_load: float | None  # % of a CPU used by other processes while reads were timed

    @property
    def ratio(self) -> float:
        return self.consented.median / self.plain.median

    @property
    def crypto_ratio(self) -> float:
        return self.encrypted.median / self.consented.median

    @property
    def plain_crypto_ratio(self) -> float:
        return self.encrypted_plain.median / self.plain.median


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@contextmanager
def counting_unwraps() -> Iterator[list[int]]:
    """Counts `crypto.unwrap` calls (the cipher looks it up in its module)."""
    original = crypto.unwrap
    calls = [0]

    def counted(keyring: Keyring, key: WrappedKey) -> bytes:
        calls[0] += 1
        return original(keyring, key)

    crypto.unwrap = counted
    try:
        yield calls
    finally:
        crypto.unwrap = original


def check_reads(plaintext: Store, encrypted: Store, family_id: str, now: datetime) -> Counts:
    """Both reads agree on what the reader may see, and the encrypted store
    returns exactly what the plaintext store does; returns the cost per read."""
    counts = []
    bodies = []
    for read in (consented_read, plain_read):
        with counting(plaintext.engine) as statements, plaintext.sessions() as session:
            bodies.append(read(session, plaintext.vault, plaintext.actor, family_id, now))
        counts.append(len(statements))
    consented, plain = bodies
    assert sorted(consented["fields"]) == ["health", "involvement"], consented["fields"]
    assert consented["fields"]["health"] == plain["fields"]["health"]
    assert consented["display_name"] == plain["display_name"]
    assert consented["involvements"] == plain["involvements"]
    assert "members" not in consented and "address" not in consented

    assert encrypted.keystore is not None
    with counting(encrypted.engine) as data_statements, \
            counting(encrypted.keystore.engine) as key_statements, \
            counting_unwraps() as unwraps, encrypted.sessions() as session:
        sealed = consented_read(session, encrypted.vault, encrypted.actor, family_id, now)
    assert sealed == consented, "the encrypted store reads differently"
    with encrypted.sessions() as session:
        row = session.get(Entry, consented["fields"]["health"][0]["id"])
        assert row is not None and row.value[:1] == crypto.AESGCM_TAG, "not sealed"
    return Counts(counts[0], counts[1], len(data_statements), len(key_statements), unwraps[0])


def measure(kinds: dict[str, tuple[Store, Read]], ids: list[str], now: datetime, reads: int,
            rng: random.Random, backends: set[int]) -> tuple[dict[str, Timing], float | None]:
    """`reads` reads of each kind on random families, in rounds of 20 families:
    each round reads its families with every kind, one kind after the other, and
    the order of the kinds changes from round to round (every permutation in turn)."""
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    orders = list(itertools.permutations(kinds))
    clock = time.perf_counter_ns

    def one(kind: str, family_id: str) -> float:
        store, read = kinds[kind]
        started = clock()
        with store.sessions() as session:
            read(session, store.vault, store.actor, family_id, now)
        return (clock() - started) / 1_000

    for fid in rng.sample(ids, min(200, len(ids))):  # warm up caches and the pools
        for kind in kinds:
            one(kind, fid)
    gc.collect()
    load = OtherLoad(backends)
    round_size = 20
    for r, start in enumerate(range(0, reads, round_size)):
        picks = [rng.choice(ids) for _ in range(min(round_size, reads - start))]
        for kind in orders[r % len(orders)]:
            for fid in picks:
                samples[kind].append(one(kind, fid))
    return {kind: Timing(s) for kind, s in samples.items()}, load.percent()


class TimedKeyStore(KeyStore):
    """The key store, timing the two calls `rewrap_all` makes of it."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.select_seconds = 0.0
        self.update_seconds = 0.0

    def not_under(self, master_version: int, limit: int) -> list[WrappedKey]:
        started = time.perf_counter()
        try:
            return super().not_under(master_version, limit)
        finally:
            self.select_seconds += time.perf_counter() - started

    def rewrap(self, keys: Iterable[tuple[WrappedKey, WrappedKey]], now: datetime) -> int:
        started = time.perf_counter()
        try:
            return super().rewrap(keys, now)
        finally:
            self.update_seconds += time.perf_counter() - started


def rotate(store: Store, now: datetime) -> Rotation:
    """Add a master key version and re-wrap every data key under it."""
    assert store.keystore is not None and store.keyring is not None
    keystore = TimedKeyStore(store.keystore.engine)
    version = store.keyring.add_version()
    gc.collect()
    report = rewrap_all(store.keyring, keystore, now, REWRAP_BATCH)
    assert report.rewrapped == store.key_rows, (report.rewrapped, store.key_rows)
    assert keystore.count_under() == {version: store.key_rows}, keystore.count_under()
    return Rotation(report.rewrapped, version, report.seconds, keystore.select_seconds,
                    keystore.update_seconds)


# --- the run ----------------------------------------------------------------


def settle(engine: Engine) -> None:
    """After a bulk load: statistics fresh, dirty pages written, nothing left for
    background work to catch up on while reads are timed."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            conn.execute(text("CHECKPOINT"))
    else:
        # Outside any transaction, on the driver's own connection: `make_engine`
        # begins every SQLAlchemy transaction with BEGIN, and a checkpoint
        # cannot run inside one.
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("ANALYZE")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.close()
        finally:
            raw.close()
    if hasattr(os, "sync"):
        os.sync()  # the kernel's write-back of the load would otherwise overlap the timing


def run(urls: dict[str, str], sizes: list[int], reads: int, label: str,
        pin: bool) -> list[Result]:
    """`urls`: "plaintext", "encrypted" (data) and "keys" (the key store)."""
    now = datetime.now(UTC).replace(microsecond=0)
    stores: list[Store] = []
    try:
        plaintext = open_store("plaintext", urls["plaintext"], None, now)
        stores.append(plaintext)
        encrypted = open_store("encrypted", urls["encrypted"], urls["keys"], now)
        stores.append(encrypted)
        assert plaintext.staff_ids == encrypted.staff_ids
        engines = [e for s in stores for e in s.engines]
        pinning = Pinning(engines, pin)
        for engine in engines:
            engine.dispose()  # connect afresh, so that Pinning learns every backend
        loader = Loader(stores, now, plaintext.staff_ids)
        kinds: dict[str, tuple[Store, Read]] = {
            "consented": (plaintext, consented_read),
            "plain": (plaintext, plain_read),
            "encrypted": (encrypted, consented_read),
            # Read each store twice per family: a read that follows another of
            # the same family on the same database finds its pages warm.
            "encrypted plain": (encrypted, plain_read),
        }
        rng = random.Random(7)
        results = []
        for size in sizes:
            before = (plaintext.load_seconds, encrypted.load_seconds, loader.generate_seconds)
            seconds = loader.grow_to(size)
            for store in stores:
                with store.sessions() as session:
                    counted = session.scalar(select(func.count()).select_from(Family))
                assert counted == size, (store.name, counted, size)
            plaintext_load = plaintext.load_seconds - before[0]
            encrypted_load = encrypted.load_seconds - before[1]
            generate = loader.generate_seconds - before[2]
            print(f"[{label}] {size:,} families loaded in {seconds:.1f} s: generated "
                  f"{generate:.1f} s, plaintext store {plaintext_load:.1f} s "
                  f"({plaintext.rows:,} rows so far), encrypted store {encrypted_load:.1f} s "
                  f"({encrypted.rows:,} rows, {encrypted.key_rows:,} data keys); "
                  f"measuring {reads:,} reads of each kind...", flush=True)
            counts = check_reads(plaintext, encrypted, rng.choice(loader.family_ids), now)
            with pinning.pinned():
                timings, other_load = measure(kinds, loader.family_ids, now, reads, rng,
                                              pinning.backends)
                print(f"[{label}] re-wrapping {encrypted.key_rows:,} data keys under a new "
                      "master key version...", flush=True)
                rotation = rotate(encrypted, now)
            # Reads still open after the rotation (keys unwrap under the new version).
            check_reads(plaintext, encrypted, rng.choice(loader.family_ids), now)
            results.append(Result(size, seconds, plaintext_load, encrypted_load,
                                  timings["consented"], timings["plain"], timings["encrypted"],
                                  timings["encrypted plain"], counts, rotation, pinning.note,
                                  other_load))
        return results
    finally:
        for store in stores:
            store.dispose()


def sqlite_run(sizes: list[int], reads: int, pin: bool) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="onestory-bench-") as folder:
        urls = {name: f"sqlite:///{Path(folder) / f'{name}.db'}"
                for name in ("plaintext", "encrypted", "keys")}
        return run(urls, sizes, reads, "sqlite", pin)


def postgres_run(sizes: list[int], reads: int, pin: bool) -> list[Result]:
    sys.path.insert(0, str(ROOT))
    from tests.pg import Cluster, create_database

    cluster = Cluster()
    try:
        cluster.start()
        urls = {name: create_database(cluster.admin_url)
                for name in ("plaintext", "encrypted", "keys")}
        return run(urls, sizes, reads, "postgresql", pin)
    finally:
        cluster.stop()


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def growth(small: Timing, big: Timing) -> float:
    return (big.median / small.median - 1) * 100


def report(backend: str, results: list[Result], reads: int) -> None:
    small, big = results[0], results[-1]
    print()
    print(f"shared_record on {backend}: {reads:,} reads of each kind per size, "
          f"fresh session per read, {big.pinning}; times in microseconds per read")
    if all(r.other_load is not None for r in results):
        busy = [r for r in results if (r.other_load or 0) > OTHER_LOAD_LIMIT]
        print("other processes on the machine while reads were timed: " + ", ".join(
            f"{r.families:,}: {r.other_load:.0f}%" for r in results) + " of a CPU" + (
            f" -- MORE THAN {OTHER_LOAD_LIMIT:.0f}%: the figures at "
            f"{', '.join(f'{r.families:,}' for r in busy)} families are disturbed"
            if busy else ""))

    print()
    print("(a) what consent costs: consented vs plain read, plaintext store")
    header = (f"{'families':>10} {'load s':>7} | {'consented':>9} {'mean':>7} {'p95':>7} | "
              f"{'plain':>7} {'mean':>7} {'p95':>7} | {'ratio':>6} {'queries':>7}  "
              f"target <= {RATIO_TARGET:.1f}x")
    print(header)
    print("-" * len(header))
    for r in results:
        c, p, n = r.consented, r.plain, r.counts
        print(f"{r.families:>10,} {r.plaintext_load:>7.1f} | {c.median:>9.0f} {c.mean:>7.0f} "
              f"{c.p95:>7.0f} | {p.median:>7.0f} {p.mean:>7.0f} {p.p95:>7.0f} | "
              f"{r.ratio:>5.2f}x {n.consented:>3}/{n.plain:<3}  "
              f"{verdict(r.ratio <= RATIO_TARGET)}")
    g = growth(small.consented, big.consented)
    print(f"consented median {small.families:,} -> {big.families:,} families: "
          f"{g:+.1f}% (target <= {GROWTH_TARGET:.0f}%: {verdict(g <= GROWTH_TARGET)}); "
          f"plain: {growth(small.plain, big.plain):+.1f}%")

    print()
    print("(b) what encryption costs: shared_record, EnvelopeVault vs PlaintextVault store")
    header = (f"{'families':>10} {'load s':>7} | {'encrypted':>9} {'mean':>7} {'p95':>7} | "
              f"{'plaintxt':>8} {'mean':>7} {'p95':>7} | {'ratio':>6} {'queries':>7} "
              f"{'unwraps':>7}  target <= {CRYPTO_TARGET:.1f}x")
    print(header)
    print("-" * len(header))
    for r in results:
        e, c, n = r.encrypted, r.consented, r.counts
        queries = f"{n.encrypted}+{n.key_queries}"
        print(f"{r.families:>10,} {r.encrypted_load:>7.1f} | {e.median:>9.0f} {e.mean:>7.0f} "
              f"{e.p95:>7.0f} | {c.median:>8.0f} {c.mean:>7.0f} {c.p95:>7.0f} | "
              f"{r.crypto_ratio:>5.2f}x {queries:>7} {n.unwraps:>7}  "
              f"{verdict(r.crypto_ratio <= CRYPTO_TARGET)}")
    g = growth(small.encrypted, big.encrypted)
    print(f"encrypted median {small.families:,} -> {big.families:,} families: "
          f"{g:+.1f}% (target <= {GROWTH_TARGET:.0f}%: {verdict(g <= GROWTH_TARGET)})")
    print("plain read (opens all 6 values), encrypted vs plaintext store, median: " + "; ".join(
        f"{r.families:,}: {r.encrypted_plain.median:.0f} vs {r.plain.median:.0f} "
        f"({r.plain_crypto_ratio:.2f}x)" for r in results))

    print()
    print(f"(c) key rotation: add a master key version, rewrap_all in batches of "
          f"{REWRAP_BATCH:,}")
    header = (f"{'families':>10} {'master':>6} {'keys':>8} {'seconds':>8} {'keys/s':>8} | "
              f"{'select s':>8} {'update s':>8} {'crypto s':>8}")
    print(header)
    print("-" * len(header))
    for r in results:
        t = r.rotation
        print(f"{r.families:>10,} {'v' + str(t.master_version):>6} {t.keys:>8,} "
              f"{t.seconds:>8.2f} {t.per_second:>8,.0f} | {t.select_seconds:>8.2f} "
              f"{t.update_seconds:>8.2f} {t.other_seconds:>8.2f}")

    print()
    print("(consented = services.shared_record, plaintext store; plain = the same rows, no "
          "consent logic; encrypted = services.shared_record, EnvelopeVault store (the plain "
          "read runs there too, so each store is read twice per family); load s = "
          "sealing and inserting that store; queries = statements per read: consented/plain "
          "in (a), data+key store in (b); unwraps = data keys unwrapped per read; select s = "
          "KeyStore.not_under, update s = KeyStore.rewrap, crypto s = unwrap, wrap and the "
          "rest)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=100_000,
                        help="the large size (default 100000; the small size is 1000)")
    parser.add_argument("--reads", type=int, default=None,
                        help="reads of each kind per size (default 2000, --quick 200)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 200 and 2000 families, 200 reads")
    parser.add_argument("--postgres", action="store_true",
                        help="run on a throwaway PostgreSQL cluster (tests/pg.py), not SQLite")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin client and server to one CPU while measuring")
    args = parser.parse_args(argv)
    small, big = (200, 2_000) if args.quick else (1_000, args.families)
    reads = args.reads or (200 if args.quick else 2_000)
    if big <= small:
        parser.error(f"--families must be more than {small}")
    sizes = [small, big]
    backend = "postgresql" if args.postgres else "sqlite"
    started = time.perf_counter()
    results = (postgres_run if args.postgres else sqlite_run)(sizes, reads, not args.no_pin)
    report(backend, results, reads)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
