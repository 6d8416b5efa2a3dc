"""What the benchmarks share: the case they read (the same agencies, staff and
families), the stores they read it from, the databases those live in (a
durable PostgreSQL cluster among them), the plain table a floor appends its
log rows to, and the tools that time the reads.

The scripts import it as `common`: run as `python bench/<name>.py`, Python puts
bench/ on the module path (each script puts the project root before it).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    MetaData,
    Table,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy import Index as SqlIndex
from sqlalchemy.orm import Session, sessionmaker

import consent.tables  # noqa: F401  (registers the consent tables)
from audit.model import AuditEntry
from consent.tables import ConsentCellRow, ConsentFormRow
from coordination import accounts, migrate
from coordination.actors import Actor
from coordination.casework import search_index
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
from coordination.model import Entry, Family, Involvement, Member, SearchIndexed, SearchTerm, Staff
from coordination.roles import InvolvementStatus
from coordination.search_words import name_words

if TYPE_CHECKING:
    from tests.pg import Cluster

BATCH_ROWS = 5_000  # rows per executemany
CHUNK_FAMILIES = 1_000  # families generated (and committed) at a time

# --- the case -------------------------------------------------------------------

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


# --- the stores -----------------------------------------------------------------


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
    load_seconds: float = 0.0  # sealing and inserting, summed over the loads so far
    rows: int = 0
    key_rows: int = 0

    @property
    def engines(self) -> list[Engine]:
        return [self.engine] + ([self.keystore.engine] if self.keystore else [])

    @property
    def keyring(self) -> Keyring | None:
        return self.vault.keyring if isinstance(self.vault, EnvelopeVault) else None

    def ciphers(self, family_ids: Sequence[str], now: datetime
                ) -> tuple[dict[str, FamilyCipher], list[dict[str, Any]]]:
        """Ciphers to seal these new families with, and the key-store rows they need.

        Encrypted: one fresh AES-256 data key per family, wrapped under the active
        master version agreed in the key store exactly as `EnvelopeVault.new_family`
        does, but stored in bulk."""
        if not isinstance(self.vault, EnvelopeVault):
            return self.vault.for_families(family_ids), []
        keyring = self.vault.keyring
        active = self.vault.keystore.active_version(propose=keyring.active, now=now)
        ciphers: dict[str, FamilyCipher] = {}
        key_rows: list[dict[str, Any]] = []
        for fid in family_ids:
            data_key = AESGCM.generate_key(bit_length=256)
            wrapped = wrap(keyring, fid, 1, data_key, active)
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
    """A store with the schema, the agencies and staff, and READER signed in;
    encrypted when it gets a key store."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
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
    staff_ids, actor, _token = add_case_accounts(sessions, now)
    return Store(name, engine, sessions, vault, actor, staff_ids, keystore)


def add_case_accounts(sessions: sessionmaker[Session], now: datetime
                      ) -> tuple[dict[str, int], Actor, str]:
    """The case's AGENCIES and STAFF, added through `coordination.accounts` (as
    the command line adds them) to a database with the schema; returns the
    staff ids by username, READER signed in, and READER's API token (valid
    for 2 hours)."""
    with sessions() as session:
        for slug, agency_name, kind, minimal in AGENCIES:
            accounts.add_agency(session, slug, agency_name, kind, minimal, now)
        for username, agency, role in STAFF:
            accounts.add_staff(session, username, agency, role, None, now)
        staff_ids = dict(session.execute(select(Staff.username, Staff.id)).tuples().all())
        token = accounts.create_token(session, READER, timedelta(hours=2), now)
        actor = accounts.authenticate(session, token, now)
    return staff_ids, actor, token


# --- loading families -------------------------------------------------------------


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
    """Insert `rows` (dicts with the same keys) into `table` in the caller's
    transaction, through the driver: PostgreSQL with `COPY ... FROM STDIN`
    (psycopg's `cursor.copy`), SQLite with the driver's `executemany`, BATCH_ROWS
    rows at a time. Each value goes through its column type's bind processor
    first (`UTCDateTime` to naive UTC, dates to SQLite's text), as a Core
    `insert(table)` would send it; without SQLAlchemy's per-row work in between
    a million families load in minutes."""
    if not rows:
        return
    conn = session.connection() if isinstance(session, Session) else session
    dialect = conn.dialect
    names = list(rows[0])
    processors = [table.c[name].type.bind_processor(dialect) for name in names]
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in names)
    driver = conn.connection.driver_connection
    assert driver is not None

    processed = [(i, p) for i, p in enumerate(processors) if p is not None]

    def values(row: dict[str, Any]) -> list[Any]:
        out = [row[name] for name in names]
        for i, process in processed:
            if out[i] is not None:
                out[i] = process(out[i])
        return out

    if dialect.name == "postgresql":
        with driver.cursor() as cursor, cursor.copy(  # type: ignore[attr-defined]
                f"COPY {quote(table.name)} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(values(row))
        return
    if dialect.name != "sqlite":
        for start in range(0, len(rows), BATCH_ROWS):
            session.execute(insert(table), rows[start:start + BATCH_ROWS])
        return
    statement = (f"INSERT INTO {quote(table.name)} ({columns}) "  # noqa: S608 (quoted names)
                 f"VALUES ({', '.join('?' * len(names))})")
    cursor = driver.cursor()
    try:
        for start in range(0, len(rows), BATCH_ROWS):
            cursor.executemany(statement, [values(r) for r in rows[start:start + BATCH_ROWS]])
    finally:
        cursor.close()


@dataclass
class Loader:
    """Generates families once and bulk-inserts them, sealed by each store's
    cipher, into every store with Core executemany. Each family gets a family
    row, 2 members, an active involvement (health centre), the 5 ENTRIES and a
    consent form with the 6 CELLS. With `index_search`, each family is also
    indexed for search as `casework.search_index.write` indexes it (a term per
    word of each name and per birth date, and the family marked current), and
    `people` keeps each family's name and birth date (what a search asks).

    `family_ids` holds every id loaded, or with `keep_ids=False` only the last
    chunk's (memory stays flat at a million families; `loaded` counts them and
    `sample_ids` draws ids from the database). Families are committed
    `commit_families` at a time: on SQLite each commit writes every page it
    dirtied to the WAL (and the checkpoint again to the file), and with random
    ids nearly every row dirties a page of its own, so fewer, larger commits
    write several times less."""

    stores: list[Store]
    now: datetime
    staff_ids: dict[str, int]
    rng: random.Random = field(default_factory=lambda: random.Random(20261122))
    index_search: bool = False
    people: dict[str, tuple[str, date]] = field(default_factory=dict)
    family_ids: list[str] = field(default_factory=list)
    keep_ids: bool = True
    commit_families: int = CHUNK_FAMILIES  # families per transaction
    loaded: int = 0
    next_involvement: int = 1
    next_form: int = 1
    generate_seconds: float = 0.0

    def hex_id(self, prefix: str) -> str:
        # Same shape as casework.common.new_id (random, so index inserts are random too).
        return f"{prefix}_{self.rng.getrandbits(80):020x}"

    def grow_to(self, total: int) -> float:
        """Add families until there are `total`; returns the seconds taken."""
        started = time.perf_counter()
        while self.loaded < total:
            self._load_batch(min(self.commit_families, total - self.loaded))
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

    def _load_batch(self, count: int) -> None:
        """`count` families in one transaction per database, generated and
        inserted CHUNK_FAMILIES at a time; each store's keys are committed
        before the data that needs them (as `EnvelopeVault.new_family` does)."""
        sessions = [store.sessions() for store in self.stores]
        keys = [store.keystore.engine.connect() if store.keystore else None
                for store in self.stores]
        try:
            for conn in keys:
                if conn is not None:
                    conn.begin()  # `_insert` writes through the driver: begin here
            done = 0
            while done < count:
                chunk = min(CHUNK_FAMILIES, count - done)
                self._load_chunk(chunk, sessions, keys)
                done += chunk
            for store, session, conn in zip(self.stores, sessions, keys, strict=True):
                t0 = time.perf_counter()
                if conn is not None:
                    conn.commit()
                session.commit()
                store.load_seconds += time.perf_counter() - t0
        finally:
            for session in sessions:
                session.close()
            for conn in keys:
                if conn is not None:
                    conn.close()

    def _load_chunk(self, count: int, sessions: list[Session],
                    keys: list[Connection | None]) -> None:
        t0 = time.perf_counter()
        if not self.keep_ids:
            self.family_ids.clear()
        tables = self._generate(count)
        self.generate_seconds += time.perf_counter() - t0
        fids = self.family_ids[-count:]
        for store, session, conn in zip(self.stores, sessions, keys, strict=True):
            t0 = time.perf_counter()
            ciphers, key_rows = store.ciphers(fids, self.now)
            if conn is not None:
                _insert(conn, DataKey.__table__, key_rows)  # type: ignore[arg-type]
                store.key_rows += len(key_rows)
            for table, rows in tables:
                _insert(session, table, _resolve(rows, ciphers, store.vault))
                store.rows += len(rows)
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
        terms: list[dict[str, Any]] = []
        indexed: list[dict[str, Any]] = []
        for _ in range(count):
            n = self.loaded
            self.loaded += 1
            fid = self.hex_id("fam")
            self.family_ids.append(fid)

            def seal(table: str, column: str, row_id: str, value: str,
                     fid: str = fid) -> Seal:
                return Seal(fid, table, column, row_id, value)

            first, last = rng.choice(FIRST), rng.choice(LAST)
            name = f"{first} {last}"
            born = date(2020, 1, 1) + timedelta(days=rng.randrange(5 * 365))
            created = now - timedelta(days=rng.randrange(1, 700), seconds=rng.randrange(86_400))
            people = [search_index.Person(fid, name, born.isoformat())]
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
                people.append(search_index.Person(
                    member_id, f"{who} {last}", born.isoformat() if relation == "child" else None))
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
                "contact_worker_id": self.staff_ids["nurse1"],
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
                # `casework.form_versions._write_sealed` seals it.
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
            if self.index_search:
                self.people[fid] = (name, born)
                terms.extend({"family_id": fid, "owner": owner, "term": term}
                             for owner, term in sorted(_search_terms(people)))
                indexed.append({
                    "family_id": fid,
                    "scheme": Index("search_scheme", search_index.SCHEME_VERSION),
                    "indexed_at": now,
                })
        search_tables = [
            (SearchTerm.__table__, terms),
            (SearchIndexed.__table__, indexed),
        ] if self.index_search else []
        return [
            (Family.__table__, families),  # type: ignore[list-item]
            (Member.__table__, members),
            (Involvement.__table__, involvements),
            (ConsentFormRow.__table__, forms),
            (ConsentCellRow.__table__, cells),
            (Entry.__table__, entries),
            *search_tables,  # type: ignore[list-item]
        ]


def sample_ids(engine: Engine, count: int, rng: random.Random) -> list[str]:
    """`count` family ids drawn uniformly at random, with replacement, from all
    the families in the database, in random order. Streams the ids in key
    order and keeps only the drawn ones: memory stays flat however many
    families there are."""
    with engine.connect() as conn:
        total = conn.scalar(select(func.count()).select_from(Family.__table__))
        if not total:
            raise ValueError("no families to draw from")
        wanted: dict[int, int] = {}
        for _ in range(count):
            position = rng.randrange(total)
            wanted[position] = wanted.get(position, 0) + 1
        drawn: list[str] = []
        rows = conn.execution_options(yield_per=10_000).execute(
            select(Family.__table__.c.id).order_by(Family.__table__.c.id))
        for position, (family_id,) in enumerate(rows):
            drawn.extend([family_id] * wanted.get(position, 0))
    rng.shuffle(drawn)
    return drawn


def _search_terms(people: list[search_index.Person]) -> set[tuple[str, Index]]:
    """`search_index.terms` with the HMACs left to each store's vault."""
    found: set[tuple[str, Index]] = set()
    for person in people:
        found.update((person.owner, Index(search_index.WORD, word))
                     for word in name_words(person.name))
        if person.birth_date:
            found.add((person.owner, Index(search_index.BIRTH_DATE, person.birth_date)))
    return found


# --- the databases ------------------------------------------------------------------


@contextmanager
def sqlite_databases(names: Iterable[str], prefix: str) -> Iterator[dict[str, str]]:
    """A URL for each name: SQLite files in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield {name: f"sqlite:///{Path(folder) / f'{name}.db'}" for name in names}


@contextmanager
def postgres_databases(cluster: Cluster, names: Iterable[str]) -> Iterator[dict[str, str]]:
    """A URL for each name: databases on `cluster`, started here and removed afterwards.
    The caller picks the cluster (tests/pg.py's, or one with other settings)."""
    from tests.pg import create_database

    try:
        cluster.start()
        yield {name: create_database(cluster.admin_url) for name in names}
    finally:
        cluster.stop()


def durable_cluster() -> Cluster:
    """tests/pg.py's throwaway cluster without its fsync=off and
    full_page_writes=off: every setting that keeps commits durable stays at
    PostgreSQL's default (fsync, full_page_writes, synchronous_commit on).
    Room for 200 connections (a multi-worker server holds a pool per worker)."""
    from tests.pg import Cluster

    class DurableCluster(Cluster):
        def start(self) -> None:
            if self._as_postgres:
                import pwd

                pw = pwd.getpwnam("postgres")
                os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                      "--auth=trust", "-E", "UTF8", "--locale=C")
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                       "-c max_connections=200")
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                      "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")

    return DurableCluster()


def plain_log_table(name: str, *, numbered_by_database: bool = False) -> Table:
    """A plain table with audit_log's columns, types and indexes and no chain:
    where a floor appends rows of the same size as audit entries. Its `seq` is
    given by the caller, or with `numbered_by_database` by the database (for
    writers in several processes)."""
    log: Table = AuditEntry.__table__  # type: ignore[assignment]
    columns = []
    for c in log.columns:
        if c.name == "seq" and numbered_by_database:
            columns.append(Column("seq", BigInteger, primary_key=True, autoincrement=True))
        else:
            columns.append(Column(c.name, c.type, primary_key=c.primary_key,
                                  nullable=c.nullable, autoincrement=False))
    return Table(
        name, MetaData(), *columns,
        SqlIndex(f"ix_{name}_family_seq", "family_id", "seq"),
        SqlIndex(f"ix_{name}_actor_seq", "actor", "seq"),
    )


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


# --- timing -------------------------------------------------------------------------


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

    @property
    def p90(self) -> float:
        return statistics.quantiles(self.samples_us, n=10)[-1]


class Pinning:
    """While measuring, keep this process on one CPU and its PostgreSQL backends
    (data and key store alike) on another (Linux, two CPUs or more). Left to the
    scheduler on a small machine, client and backend share a core some minutes
    and not others, and the read time jumps between two levels. Off with --no-pin.

    It learns each backend as it connects, so it starts the engines' pools afresh."""

    def __init__(self, engines: Iterable[Engine], enabled: bool) -> None:
        engines = list(engines)
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.enabled = enabled and len(self.cpus) > 1
        self.server = any(e.dialect.name == "postgresql" for e in engines)
        self.backends: set[int] = set()
        self.active = False
        self.failed = ""
        if self.server:  # tracked even when not pinned: shared_record.py's OtherLoad uses them
            for engine in engines:
                event.listen(engine, "connect", self._connected)
        for engine in engines:
            engine.dispose()

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


@contextmanager
def counting(*engines: Engine) -> Iterator[list[str]]:
    """The statements sent on these engines inside the block."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"
