"""Benchmark: what the audit log costs a shared-record read, and how fast the
whole chain verifies.

(1) A read with its audit entry against the floor it cannot beat. Two stores
with the same 2 000 families (one sealed with `EnvelopeVault`, its key store in
a database of its own, as the product runs; one with `PlaintextVault`), each
read as `physio1` with a fresh session per read, interleaved in rounds:

* audited: `coordination.services.shared_record` as it is: it reads, then
  `audit.services.record` appends the entry (head row locked, hash chained,
  head updated) and the service commits;
* floor: the same call with `audit.services.record` swapped for one Core
  INSERT of a row with the same columns and the same values (same indexes,
  no chain, no head) into a plain table `audit_floor`; the service commits it.
  So: the same queries and decryption, plus one committed insert;
* read only: the same call with `record` swapped for nothing (context only).

Durability is kept: SQLite as the product configures it (WAL,
synchronous=NORMAL, deferred BEGIN), PostgreSQL on a cluster started here
with fsync, full_page_writes and synchronous_commit at their defaults (on).

(2) Verification: a valid chain of --entries entries (1 000 000 by default) is
built in Python with `audit.chain.entry_hash` and bulk-inserted with Core
executemany (the head set to its end); then a fresh child process times
`audit.services.verify(engine)`, times the same rows only fetched, and reports
its memory growth during verification (peak resident set, ru_maxrss, and
tracemalloc's peak in a second pass, per half of the walk). --profile adds a
cProfile of one verification.

Both backends by default; --sqlite or --postgres for one. --quick: 200
families, 100 000 entries. Run `python bench/audit_log.py --help` for the options.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import json
import os
import random
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path; the project
# root goes before it so that nothing there can shadow a package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Column,
    Engine,
    Index,
    MetaData,
    Table,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

import audit.services as audit_log
import consent.tables  # noqa: F401  (registers the consent tables)
from audit.chain import GENESIS, HASHED, audit_time, detail_text, entry_hash
from audit.model import Action, AuditEntry, AuditHead, Outcome
from audit.services import Event
from consent.tables import ConsentCellRow, ConsentFormRow
from coordination import accounts, migrate, services
from coordination.actors import Actor
from coordination.crypto import (
    EnvelopeVault,
    FamilyCipher,
    Keyring,
    PlaintextVault,
    Vault,
    _AesGcmCipher,
    new_keyring_document,
    wrap,
)
from coordination.db import make_engine, make_session_factory
from coordination.keystore import DataKey, KeyStore
from coordination.model import Entry, Family, Involvement, Member, Staff
from coordination.roles import InvolvementStatus

RATIO_TARGET = 1.5  # audited / floor, per-read median
VERIFY_TARGET = 100_000  # entries per second
BATCH_ROWS = 5_000  # rows per executemany (families)
LOG_BATCH = 20_000  # audit entries per executemany and commit
ROUND = 20  # families per round
BLOCKS = 5  # the timed reads split in time, for the ratio's spread
WARMUP = 200  # reads of each kind before timing

AGENCIES = [
    ("health-centre", "Family centre health station", "health", False),
    ("physio", "Family centre physiotherapy", "physiotherapy", False),
    ("ecec", "Sunflower kindergarten", "ecec", False),
]
STAFF = [
    ("nurse1", "health-centre", "practitioner"),
    ("coord1", "health-centre", "coordinator"),
    ("physio1", "physio", "practitioner"),
    ("ecec1", "ecec", "practitioner"),
]
READER = "physio1"  # holds cells (involvement, health); not involved, not the author
ENTRIES = [
    ("health-centre", "nurse1", "contact", "Mother's mobile: +47 400 00 {n:03d} (Turkish)."),
    ("health-centre", "nurse1", "health", "Growth on track; late to sit unaided (visit {n})."),
    ("health-centre", "coord1", "story", "Moved here {n} months ago; asked for help with a GP."),
    ("physio", "physio1", "health", "Motor assessment {n}: weekly sessions agreed."),
    ("ecec", "ecec1", "education", "Starts kindergarten in August; place {n} confirmed."),
]
CELLS = [
    ("ecec", "education"),
    ("health-centre", "contact"),
    ("health-centre", "health"),
    ("health-centre", "involvement"),
    ("physio", "health"),
    ("physio", "involvement"),
]
FIRST = ["Aylin", "Mira", "Emir", "Sofia", "Jonas", "Amina", "Lukas", "Nora", "Omar", "Ida"]
LAST = ["Demir", "Hansen", "Kaya", "Johansen", "Peeters", "Nguyen", "Olsen", "Haddad"]

# The plain table of the floor: audit_log's columns, types and indexes; no chain.
_LOG: Table = AuditEntry.__table__  # type: ignore[assignment]
FLOOR = Table(
    "audit_floor", MetaData(),
    *(Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable,
             autoincrement=False) for c in _LOG.columns),
    Index("ix_audit_floor_family_seq", "family_id", "seq"),
    Index("ix_audit_floor_actor_seq", "actor", "seq"),
)
FILLER_HASH = "f" * 64  # a 64-character hex string, as prev_hash and hash are


# --- measuring ------------------------------------------------------------------


@dataclass
class Timing:
    samples_us: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_us)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples_us)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.samples_us, n=20)[-1]


class Pinning:
    """While measuring, this process on the first CPU and its PostgreSQL
    backends on the second (as bench/shared_record.py does): left to the
    scheduler, client and backend share a core some minutes and not others."""

    def __init__(self, engines: list[Engine], enabled: bool) -> None:
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.enabled = enabled and len(self.cpus) > 1
        self.server = any(e.dialect.name == "postgresql" for e in engines)
        self.backends: set[int] = set()
        self.active = False
        if self.enabled and self.server:
            for engine in engines:
                event.listen(engine, "connect", self._connected)
                engine.dispose()  # connect afresh, so that every backend is known

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        pid = int(cursor.fetchone()[0])
        cursor.close()
        self.backends.add(pid)
        if self.active:
            self._set(pid, {self.cpus[1]})

    @property
    def note(self) -> str:
        if not self.enabled:
            return "not pinned to CPUs"
        if not self.server:
            return f"client on CPU {self.cpus[0]}"
        return f"client on CPU {self.cpus[0]}, server backends on CPU {self.cpus[1]}"

    def _set(self, pid: int, cpus: set[int]) -> None:
        try:
            os.sched_setaffinity(pid, cpus)
        except OSError:
            self.backends.discard(pid)

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


@contextmanager
def counting(engines: list[Engine]) -> Iterator[list[str]]:
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", note)


def settle(engine: Engine) -> None:
    """After a bulk load: statistics fresh, dirty pages written."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            conn.execute(text("CHECKPOINT"))
    else:
        raw = engine.raw_connection()  # outside any transaction: a checkpoint needs that
        try:
            cursor = raw.cursor()
            cursor.execute("ANALYZE")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.close()
        finally:
            raw.close()
    if hasattr(os, "sync"):
        os.sync()


def durability(engine: Engine) -> str:
    """The settings that decide whether a commit survives a crash, as in force."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            names = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method")
            return ", ".join(f"{n}={conn.exec_driver_sql(f'SHOW {n}').scalar()}" for n in names)
        journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
            int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)]
        return f"journal_mode={journal}, synchronous={sync}, deferred BEGIN"


# --- (1) the read and its floor ------------------------------------------------------


@dataclass
class Store:
    name: str  # the vault: "envelope" (as the product runs) or "plaintext"
    engine: Engine
    sessions: sessionmaker[Session]
    vault: Vault
    actor: Actor
    keystore: KeyStore | None = None
    floor_seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def engines(self) -> list[Engine]:
        return [self.engine] + ([self.keystore.engine] if self.keystore else [])

    def ciphers(self, family_ids: list[str], now: datetime
                ) -> tuple[dict[str, FamilyCipher], list[dict[str, Any]]]:
        """Ciphers to seal new families with, and the key-store rows they need
        (a fresh data key per family, wrapped as `EnvelopeVault.new_family` does)."""
        if not isinstance(self.vault, EnvelopeVault):
            return self.vault.for_families(family_ids), []
        ciphers: dict[str, FamilyCipher] = {}
        rows = []
        for fid in family_ids:
            data_key = AESGCM.generate_key(bit_length=256)
            wrapped = wrap(self.vault.keyring, fid, 1, data_key)
            rows.append({"family_id": fid, "key_version": 1,
                         "master_version": wrapped.master_version, "wrapped": wrapped.wrapped,
                         "created_at": now, "rewrapped_at": None})
            ciphers[fid] = _AesGcmCipher(self.vault, fid, key=data_key, key_version=1)
        return ciphers, rows

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()


def open_store(name: str, url: str, keystore_url: str | None, now: datetime) -> Store:
    engine = make_engine(url)
    migrate.upgrade(engine)
    FLOOR.metadata.create_all(engine)
    sessions = make_session_factory(engine)
    keystore = None
    vault: Vault = PlaintextVault()
    if keystore_url is not None:
        keystore = KeyStore.from_url(keystore_url)
        migrate.upgrade(keystore.engine, keystore=True)
        vault = EnvelopeVault(Keyring(new_keyring_document()), keystore,
                              secrets.token_bytes(32))
    with sessions() as session:
        for slug, agency_name, kind, minimal in AGENCIES:
            accounts.add_agency(session, slug, agency_name, kind, minimal, now)
        for username, agency, role in STAFF:
            accounts.add_staff(session, username, agency, role, None, now)
        token = accounts.create_token(session, READER, timedelta(hours=2), now)
        actor = accounts.authenticate(session, token, now)
    return Store(name, engine, sessions, vault, actor, keystore)


def load_families(stores: list[Store], count: int, now: datetime) -> list[str]:
    """`count` families, the same in every store, bulk-inserted with Core
    executemany: a family row, 2 members, an active involvement (health centre),
    5 entries and a consent form with 6 cells each."""
    rng = random.Random(20261122)
    staff = {username: i for i, (username, _, _) in enumerate(STAFF, start=1)}
    fids = [f"fam_{rng.getrandbits(80):020x}" for _ in range(count)]
    # Values are (family, table, column, row id, text) until each store seals them.
    families, members, involvements, forms, cells, entries = [], [], [], [], [], []
    for n, fid in enumerate(fids):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        born = date(2020, 1, 1) + timedelta(days=rng.randrange(5 * 365))
        created = now - timedelta(days=rng.randrange(1, 700), seconds=rng.randrange(86_400))
        families.append({
            "id": fid, "display_name": (fid, "families", "display_name", fid, f"{first} {last}"),
            "name_index": ("name", f"{first} {last}"),
            "birth_date_index": ("birth_date", born.isoformat()),
            "birth_date": (fid, "families", "birth_date", fid, born.isoformat()),
            "address": (fid, "families", "address", fid, f"Storgata {n % 200 + 1}, 0155 Oslo"),
            "national_id": None,
            "languages": (fid, "families", "languages", fid, json.dumps(["tr", "nb"])),
            "recorded_by_agency": "health-centre", "created_at": created,
        })
        for position, (who, relation) in enumerate(((first, "mother"), ("Emir", "child"))):
            mid = f"mem_{rng.getrandbits(80):020x}"
            members.append({
                "id": mid, "family_id": fid, "position": position,
                "name": (fid, "family_members", "name", mid, f"{who} {last}"),
                "relation": (fid, "family_members", "relation", mid, relation),
                "birth_date": None,
            })
        involvements.append({
            "id": n + 1, "family_id": fid, "agency_id": "health-centre",
            "status": InvolvementStatus.ACTIVE.value, "since": created.date(),
            "contact_worker": "nurse1", "created_at": created, "updated_at": created,
        })
        for i, (agency, author, field_id, template) in enumerate(ENTRIES):
            eid = f"ent_{rng.getrandbits(80):020x}"
            entries.append({
                "id": eid, "family_id": fid, "field_id": field_id, "agency_id": agency,
                "author_id": staff[author],
                "written_at": created + timedelta(days=i + 1, minutes=rng.randrange(600)),
                "value": (fid, "entries", "value", eid, template.format(n=n)),
            })
        signed = created + timedelta(days=1)
        forms.append({
            "id": n + 1, "family_id": fid, "version": 1,
            "signed_by": (fid, "consent_forms", "signed_by", "v1", f"{first} {last}"),
            "signed_on": signed.date(), "recorded_at": signed, "method": "paper",
            "witness": "coord1", "interpreter_language": None,
            "purpose": (fid, "consent_forms", "purpose", "v1", "coordinated support"),
            "legal_basis": "consent", "valid_until": (now + timedelta(days=365)).date(),
            "change": "signed", "changed_by": "coord1",
        })
        cells.extend({"form_id": n + 1, "agency_id": a, "field_id": f} for a, f in CELLS)
    tables: list[tuple[Any, list[dict[str, Any]]]] = [
        (Family.__table__, families), (Member.__table__, members),
        (Involvement.__table__, involvements), (ConsentFormRow.__table__, forms),
        (ConsentCellRow.__table__, cells), (Entry.__table__, entries),
    ]
    for store in stores:
        with store.sessions() as session:
            assert dict(session.execute(select(Staff.username, Staff.id)).tuples().all()) == staff
        ciphers, key_rows = store.ciphers(fids, now)
        if store.keystore is not None:
            with store.keystore.engine.begin() as conn:
                conn.execute(insert(DataKey.__table__), key_rows)
        with store.sessions() as session:
            for table, rows in tables:
                sealed = [{k: _seal(v, ciphers, store.vault) for k, v in row.items()}
                          for row in rows]
                for start in range(0, len(sealed), BATCH_ROWS):
                    session.execute(insert(table), sealed[start:start + BATCH_ROWS])
            session.commit()
        for engine in store.engines:
            settle(engine)
    return fids


def _seal(value: Any, ciphers: dict[str, FamilyCipher], vault: Vault) -> Any:
    if type(value) is not tuple:
        return value
    if len(value) == 2:
        return vault.blind_index(*value)
    fid, table, column, row_id, plain = value
    return ciphers[fid].seal(table, column, row_id, plain)


def _joined(names: Any) -> str | None:
    return None if names is None else ",".join(names)


def floor_record(store: Store) -> Callable[[Session, Event, datetime], None]:
    """`audit.services.record` without the chain: the same values in the same
    columns, one Core INSERT into the plain table, in the caller's transaction."""

    def append(session: Session, event: Event, now: datetime) -> None:
        values = (next(store.floor_seq), audit_time(now), event.action.value,
                  event.outcome.value, event.actor, event.agency_id, event.role,
                  event.family_id, event.reason, _joined(event.shown),
                  _joined(event.withheld), detail_text(event.detail), event.request_id)
        row = dict(zip(HASHED, values, strict=True))
        row["prev_hash"] = row["hash"] = FILLER_HASH
        session.execute(insert(FLOOR), row)

    return append


def no_record(session: Session, event: Event, now: datetime) -> None:
    return None


KINDS = ("audited", "floor", "read only")


def recorders(store: Store) -> dict[str, Callable[..., Any]]:
    return {"audited": audit_log.record, "floor": floor_record(store), "read only": no_record}


@dataclass
class ReadResult:
    backend: str
    store: str
    families: int
    timings: dict[str, Timing]
    statements: dict[str, int]
    pinning: str

    @property
    def ratio(self) -> float:
        return self.timings["audited"].median / self.timings["floor"].median

    @property
    def block_ratios(self) -> list[float]:
        """The ratio within each fifth of the run (the kinds were read side by side,
        so the n-th fifth of each covers the same minutes): how steady it was."""
        audited, floor = self.timings["audited"].samples_us, self.timings["floor"].samples_us
        size = max(1, len(audited) // BLOCKS)
        return [statistics.median(audited[i:i + size]) / statistics.median(floor[i:i + size])
                for i in range(0, size * BLOCKS, size) if audited[i:i + size]]


def read_once(store: Store, record: Callable[..., Any], family_id: str, now: datetime
              ) -> tuple[float, services.SharedRecord]:
    """One shared-record read with a fresh session and `record` as the audit
    append; returns microseconds and the record."""
    actor = dataclasses.replace(store.actor, request_id=uuid.uuid4().hex)  # as the API does
    original = audit_log.record
    audit_log.record = record  # type: ignore[assignment]
    try:
        started = time.perf_counter_ns()
        with store.sessions() as session:
            shared = services.shared_record(session, store.vault, actor, family_id, now)
        return (time.perf_counter_ns() - started) / 1_000, shared
    finally:
        audit_log.record = original


def check_reads(store: Store, family_id: str, now: datetime) -> dict[str, int]:
    """Every kind returns the same record; the floor writes the same row the
    audit does (bar the chain). Returns the statements per read of each kind."""
    counts, bodies = {}, []
    for kind, record in recorders(store).items():
        with counting(store.engines) as statements:
            _, shared = read_once(store, record, family_id, now)
        counts[kind] = len(statements)
        bodies.append(shared.body)
    assert bodies[0] == bodies[1] == bodies[2], "the kinds read differently"
    assert sorted(bodies[0]["fields"]) == ["health", "involvement"], bodies[0]["fields"]
    with store.sessions() as session:
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        floor = session.execute(select(FLOOR).order_by(FLOOR.c.seq.desc())).first()
    assert last is not None and floor is not None
    for name in HASHED[1:]:
        if name not in ("at", "request_id"):
            assert getattr(last, name) == getattr(floor, name), name
    return counts


def measure_reads(stores: list[Store], fids: list[str], reads: int, now: datetime,
                  rng: random.Random) -> dict[str, dict[str, Timing]]:
    """`reads` reads of each kind in each store, on random families, in rounds of
    ROUND families: each round reads its families with every (store, kind), one
    after the other, in an order that changes from round to round."""
    samples = {s.name: {k: Timing() for k in KINDS} for s in stores}
    pairs = [(s, kind, rec) for s in stores for kind, rec in recorders(s).items()]
    for fid in rng.sample(fids, min(WARMUP, len(fids))):
        for store, _kind, record in pairs:
            read_once(store, record, fid, now)
    gc.collect()
    orders = list(itertools.permutations(range(len(KINDS))))
    for r, start in enumerate(range(0, reads, ROUND)):
        picks = [rng.choice(fids) for _ in range(min(ROUND, reads - start))]
        stores_now = stores if r % 2 == 0 else stores[::-1]
        for store in stores_now:
            kinds = [KINDS[i] for i in orders[r % len(orders)]]
            record_of = recorders(store)
            for kind in kinds:
                for fid in picks:
                    us, _ = read_once(store, record_of[kind], fid, now)
                    samples[store.name][kind].samples_us.append(us)
    return samples


def read_part(backend: str, urls: dict[str, str], families: int, reads: int, pin: bool
              ) -> tuple[list[ReadResult], str]:
    """urls: "plaintext", "envelope" (data databases) and "keys" (key store)."""
    now = datetime.now(UTC).replace(microsecond=0)
    stores: list[Store] = []
    try:
        stores.append(open_store("envelope", urls["envelope"], urls["keys"], now))
        stores.append(open_store("plaintext", urls["plaintext"], None, now))
        t0 = time.perf_counter()
        fids = load_families(stores, families, now)
        print(f"[{backend}] {families:,} families loaded into {len(stores)} stores in "
              f"{time.perf_counter() - t0:.1f} s; {reads:,} reads of each kind per store...",
              flush=True)
        rng = random.Random(7)
        counts = {s.name: check_reads(s, rng.choice(fids), now) for s in stores}
        pinning = Pinning([e for s in stores for e in s.engines], pin)
        with pinning.pinned():
            samples = measure_reads(stores, fids, reads, now, rng)
        for store in stores:  # the chain the audited reads made is whole
            with store.sessions() as session:
                floor_rows = session.scalar(select(func.count()).select_from(FLOOR))
            checked = audit_log.verify(store.engine)
            assert checked.ok, checked
            assert checked.entries == floor_rows + 1, (checked.entries, floor_rows)
        settings = durability(stores[0].engine)
        return [ReadResult(backend, s.name, families, samples[s.name], counts[s.name],
                           pinning.note) for s in stores], settings
    finally:
        for store in stores:
            store.dispose()


# --- (2) verifying a long chain ------------------------------------------------------


ACTIONS = ([Action.RECORD_READ] * 70 + [Action.FAMILY_SEARCH] * 8 + [Action.ENTRY_WRITE] * 8
           + [Action.CONSENT_READ] * 5 + [Action.LOGIN] * 3 + [Action.TOKEN_CREATE] * 2
           + [Action.REQUEST_DENIED] * 2 + [Action.ACCESS_LOG_READ] * 2)
FIELDS = ["involvement", "contact", "household", "story", "health", "education", "social",
          "protection"]


def log_rows(count: int, start: datetime) -> Iterator[list[dict[str, Any]]]:
    """A valid chain of `count` entries of realistic shape and size, LOG_BATCH at
    a time; each hash computed with `audit.chain.entry_hash`."""
    rng = random.Random(1122)
    agencies = [f"agency-{i:02d}" for i in range(12)]
    users = [(f"worker{i:03d}", agencies[i % 12]) for i in range(240)]
    fams = [f"fam_{rng.getrandbits(80):020x}" for _ in range(20_000)]
    running = GENESIS
    batch: list[dict[str, Any]] = []
    for seq in range(1, count + 1):
        action = rng.choice(ACTIONS)
        actor, agency = rng.choice(users)
        role, family, reason, shown, withheld, detail = "practitioner", None, None, None, None, None
        outcome = Outcome.OK
        if action in (Action.RECORD_READ, Action.ENTRY_WRITE, Action.CONSENT_READ,
                      Action.ACCESS_LOG_READ):
            family = rng.choice(fams)
        if action is Action.RECORD_READ:
            cut = rng.randrange(1, len(FIELDS))
            shown, withheld = ",".join(sorted(FIELDS[:cut])), ",".join(FIELDS[cut:])
        elif action is Action.ENTRY_WRITE:
            shown = rng.choice(FIELDS)
        elif action is Action.FAMILY_SEARCH:
            detail = detail_text({"found": rng.sample(fams, rng.randrange(4))})
        elif action in (Action.LOGIN, Action.TOKEN_CREATE):
            detail = detail_text({"expires": audit_time(start + timedelta(hours=8))})
        elif action is Action.REQUEST_DENIED:
            outcome, reason, family = Outcome.DENIED, "not_visible", rng.choice(fams)
        values = (seq, audit_time(start + timedelta(milliseconds=seq * 250)), action.value,
                  outcome.value, actor, agency, role, family, reason, shown, withheld, detail,
                  f"{rng.getrandbits(128):032x}")
        digest = entry_hash(running, values)
        row = dict(zip(HASHED, values, strict=True))
        row["prev_hash"], row["hash"] = running, digest
        batch.append(row)
        running = digest
        if len(batch) == LOG_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def build_log(url: str, count: int) -> tuple[float, float, str]:
    """Bulk-builds the chain; returns (seconds, megabytes on disk, head hash)."""
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        started = time.perf_counter()
        head, seq = GENESIS, 0
        for batch in log_rows(count, datetime(2025, 1, 1, tzinfo=UTC)):
            with engine.begin() as conn:
                conn.execute(insert(AuditEntry.__table__), batch)
            head, seq = batch[-1]["hash"], batch[-1]["seq"]
        with engine.begin() as conn:
            conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=head))
        settle(engine)
        seconds = time.perf_counter() - started
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                size = conn.execute(text("SELECT pg_total_relation_size('audit_log')")).scalar()
            else:
                pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
                size = int(pages or 0) * int(conn.exec_driver_sql("PRAGMA page_size").scalar()
                                             or 0)
        return seconds, int(size or 0) / 1e6, head
    finally:
        engine.dispose()


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _reset_peak_rss() -> bool:
    """Linux: restart the process's peak resident set (VmHWM) from its current one."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e3
    return 0.0


def verify_child(url: str, profile: bool) -> dict[str, Any]:
    """In a fresh process (so that ru_maxrss says something about verification
    alone): the timed `verify`, a pass that only streams the rows, and a pass
    under tracemalloc."""
    import tracemalloc

    engine = make_engine(url)
    with engine.connect() as conn:  # connect (and import the driver's parts) first
        conn.execute(select(func.count()).select_from(AuditHead))
    gc.collect()
    out: dict[str, Any] = {"maxrss_before_mb": resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1e3, "rss_before_mb": _rss_mb()}
    hwm = _reset_peak_rss()
    started = time.perf_counter()
    result = audit_log.verify(engine)
    out["seconds"] = time.perf_counter() - started
    out["maxrss_after_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    out["rss_after_mb"] = _rss_mb()
    out["peak_rss_mb"] = _peak_rss_mb() if hwm else out["maxrss_after_mb"]
    out["ok"], out["entries"], out["head"] = result.ok, result.entries, result.head
    started = time.perf_counter()
    streamed = sum(1 for _ in audit_log._stream(engine))
    out["stream_seconds"], out["streamed"] = time.perf_counter() - started, streamed
    # Under tracemalloc: the peak of each tenth of the walk, to show that it stays flat.
    deciles: list[float] = []
    step = max(1, streamed // 10)
    original = audit_log._stream

    def watched(engine: Engine) -> Iterator[Any]:
        for n, row in enumerate(original(engine), start=1):
            yield row
            if n % step == 0:
                deciles.append(tracemalloc.get_traced_memory()[1] / 1e6)
                tracemalloc.reset_peak()

    gc.collect()
    tracemalloc.start()
    audit_log._stream = watched  # type: ignore[assignment]
    try:
        again = audit_log.verify(engine)
    finally:
        audit_log._stream = original  # type: ignore[assignment]
    out["traced_peak_mb"] = max([tracemalloc.get_traced_memory()[1] / 1e6, *deciles])
    out["traced_deciles_mb"] = deciles
    tracemalloc.stop()
    assert again.ok
    if profile:
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        audit_log.verify(engine)
        profiler.disable()
        text_out = io.StringIO()
        pstats.Stats(profiler, stream=text_out).sort_stats("tottime").print_stats(18)
        out["profile"] = text_out.getvalue()
    engine.dispose()
    return out


@dataclass
class VerifyResult:
    backend: str
    entries: int
    build_seconds: float
    size_mb: float
    child: dict[str, Any]

    @property
    def per_second(self) -> float:
        return self.child["entries"] / self.child["seconds"]


def verify_part(backend: str, url: str, count: int, profile: bool) -> VerifyResult:
    print(f"[{backend}] building a chain of {count:,} entries...", flush=True)
    build_seconds, size_mb, head = build_log(url, count)
    print(f"[{backend}] built in {build_seconds:.1f} s ({size_mb:,.0f} MB); verifying in a "
          "child process...", flush=True)
    args = [sys.executable, str(Path(__file__).resolve()), "--verify-child", url]
    done = subprocess.run(args + (["--profile"] if profile else []), capture_output=True,
                          text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"verification child failed:\n{done.stderr[-3000:]}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["ok"] and child["entries"] == count and child["head"] == head, child
    assert child["streamed"] == count
    return VerifyResult(backend, count, build_seconds, size_mb, child)


# --- backends -------------------------------------------------------------------


@dataclass
class BackendRun:
    backend: str
    durability: str
    reads: list[ReadResult]
    verification: VerifyResult


def sqlite_run(families: int, reads: int, entries: int, pin: bool, profile: bool
               ) -> BackendRun:
    with tempfile.TemporaryDirectory(prefix="onestory-bench-audit-") as folder:
        urls = {name: f"sqlite:///{Path(folder) / f'{name}.db'}"
                for name in ("envelope", "plaintext", "keys", "log")}
        results, settings = read_part("sqlite", urls, families, reads, pin)
        verification = verify_part("sqlite", urls["log"], entries, profile)
        return BackendRun("sqlite", settings, results, verification)


def postgres_run(families: int, reads: int, entries: int, pin: bool, profile: bool
                 ) -> BackendRun:
    from tests.pg import Cluster, create_database

    class DurableCluster(Cluster):
        """tests/pg.py's throwaway cluster without its fsync=off and
        full_page_writes=off: every setting that keeps commits durable stays at
        PostgreSQL's default."""

        def start(self) -> None:
            if self._as_postgres:
                import pwd

                pw = pwd.getpwnam("postgres")
                os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                      "--auth=trust", "-E", "UTF8", "--locale=C")
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                      "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")

    cluster = DurableCluster()
    try:
        cluster.start()
        urls = {name: create_database(cluster.admin_url)
                for name in ("envelope", "plaintext", "keys", "log")}
        results, settings = read_part("postgresql", urls, families, reads, pin)
        verification = verify_part("postgresql", urls["log"], entries, profile)
        return BackendRun("postgresql", settings, results, verification)
    finally:
        cluster.stop()


# --- the report -------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(runs: list[BackendRun], reads: int) -> None:
    print()
    print(f"(1) what the audit costs a read: services.shared_record with its audit entry "
          f"(audited) vs the same call with audit.services.record swapped for one Core INSERT "
          f"of the same row into a plain table (floor); {reads:,} reads of each kind, fresh "
          f"session per read; microseconds per read")
    header = (f"{'backend':<10} {'vault':<9} {'families':>8} | {'audited':>7} {'mean':>6} "
              f"{'p95':>6} | {'floor':>6} {'mean':>6} {'p95':>6} | {'read':>6} | {'ratio':>6} "
              f"{'fifths':>9} {'stmts':>8}  target <= {RATIO_TARGET:.1f}x")
    print(header)
    print("-" * len(header))
    for run in runs:
        for r in run.reads:
            a, f, o = (r.timings[k] for k in KINDS)
            stmts = "/".join(str(r.statements[k]) for k in KINDS)
            spread = f"{min(r.block_ratios):.2f}-{max(r.block_ratios):.2f}"
            print(f"{r.backend:<10} {r.store:<9} {r.families:>8,} | {a.median:>7.0f} "
                  f"{a.mean:>6.0f} {a.p95:>6.0f} | {f.median:>6.0f} {f.mean:>6.0f} "
                  f"{f.p95:>6.0f} | {o.median:>6.0f} | {r.ratio:>5.2f}x {spread:>9} {stmts:>8}  "
                  f"{verdict(r.ratio <= RATIO_TARGET)}")
    print("chain cost (audited - floor) and insert cost (floor - read), median us: " + "; ".join(
        f"{r.backend} {r.store}: {r.timings['audited'].median - r.timings['floor'].median:+.0f}"
        f" / {r.timings['floor'].median - r.timings['read only'].median:+.0f}"
        for run in runs for r in run.reads))
    for run in runs:
        print(f"{run.backend}: {run.durability}; {run.reads[0].pinning}")
    print("(vault envelope = EnvelopeVault with its key store in a database of its own, as the "
          "product runs; plaintext = PlaintextVault, a cheaper read, so the audit weighs more; "
          "read = the same call with record swapped for nothing, no write; ratio = audited / "
          "floor, medians; fifths = that ratio's lowest and highest over the run's five "
          "consecutive fifths; stmts = statements per read, audited/floor/read, SQLite's "
          "BEGIN and the key-store query included)")

    print()
    print("(2) verifying the chain: audit.services.verify(engine) in a fresh process")
    header = (f"{'backend':<10} {'entries':>9} {'log MB':>7} {'build s':>7} | {'verify s':>8} "
              f"{'entries/s':>9} | {'stream s':>8} {'rows/s':>9} | {'rss MB':>6} "
              f"{'peak +MB':>8} {'maxrss +MB':>10} {'end +MB':>7} | {'traced MB':>9} "
              f"{'halves':>9}  target > {VERIFY_TARGET:,}/s")
    print(header)
    print("-" * len(header))
    for run in runs:
        v, c = run.verification, run.verification.child
        tenths = c["traced_deciles_mb"] or [c["traced_peak_mb"]] * 2
        halves = f"{max(tenths[:len(tenths) // 2]):.0f}/{max(tenths[len(tenths) // 2:]):.0f}"
        print(f"{v.backend:<10} {v.entries:>9,} {v.size_mb:>7,.0f} {v.build_seconds:>7.1f} | "
              f"{c['seconds']:>8.2f} {v.per_second:>9,.0f} | {c['stream_seconds']:>8.2f} "
              f"{c['streamed'] / c['stream_seconds']:>9,.0f} | {c['rss_before_mb']:>6.0f} "
              f"{c['peak_rss_mb'] - c['rss_before_mb']:>+8.1f} "
              f"{c['maxrss_after_mb'] - c['maxrss_before_mb']:>+10.1f} "
              f"{c['rss_after_mb'] - c['rss_before_mb']:>+7.1f} | {c['traced_peak_mb']:>9.1f} "
              f"{halves:>9}  {verdict(v.per_second > VERIFY_TARGET)}")
    print("(log MB = audit_log with its indexes on disk; stream = the same query through "
          "audit.services._stream, rows only counted, no checking: what fetching alone costs; "
          "rss MB = resident set of the verifying process before verify; peak +MB = its peak "
          "during verify (VmHWM, reset just before) minus that; maxrss +MB = growth of "
          "getrusage's ru_maxrss (which starts from the parent's size, inherited at exec, so "
          "it shows only growth beyond that); end +MB = resident set after minus before; "
          "traced MB = tracemalloc's peak over a second verify, halves = that peak over the "
          "first and over the second half of the walk)")
    for run in runs:
        if "profile" in run.verification.child:
            print()
            print(f"cProfile of verify on {run.backend} (by own time):")
            print(run.verification.child["profile"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=None,
                        help="families per store (default 2000, --quick 200)")
    parser.add_argument("--reads", type=int, default=None,
                        help="timed reads of each kind per store (default 2000, --quick 200)")
    parser.add_argument("--entries", type=int, default=None,
                        help="entries in the verified chain (default 1000000, --quick 100000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes")
    parser.add_argument("--sqlite", action="store_true", help="only SQLite")
    parser.add_argument("--postgres", action="store_true",
                        help="only PostgreSQL (a throwaway cluster, durable settings)")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin client and server to one CPU each while timing reads")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile one verification and print where its time goes")
    parser.add_argument("--verify-child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.verify_child:
        print(json.dumps(verify_child(args.verify_child, args.profile)))
        return 0
    families = args.families or (200 if args.quick else 2_000)
    reads = args.reads or (200 if args.quick else 2_000)
    entries = args.entries or (100_000 if args.quick else 1_000_000)
    backends = [b for b, chosen in (("sqlite", args.sqlite), ("postgresql", args.postgres))
                if chosen] or ["sqlite", "postgresql"]
    started = time.perf_counter()
    runs = []
    for backend in backends:
        run = sqlite_run if backend == "sqlite" else postgres_run
        runs.append(run(families, reads, entries, not args.no_pin, args.profile))
    report(runs, reads)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
