"""Benchmark: the consented shared-record read against a plain read of the same rows.

Builds a fresh database (SQLite in a temporary folder, or a throwaway
PostgreSQL cluster with --postgres), bulk-loads families, and times

* consented: `coordination.services.shared_record` for an agency that holds
  cells on the family's joint consent form (physiotherapy: involvement and
  health granted, not involved, not the author), and
* plain: the same rows read with SQLAlchemy (family, involvements, current
  form and its cells, entries with their author's username, the field
  catalogue), every value opened, no consent logic,

each with a fresh session per read, at a small and at a large database size.
Run `python bench/shared_record.py --help` for the options.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

import consent.tables  # noqa: F401  (registers the consent tables)
from consent.services import install_guards
from consent.tables import ConsentCellRow, ConsentFormRow
from coordination import accounts, migrate, services
from coordination.actors import Actor
from coordination.crypto import PlaintextVault, Vault
from coordination.db import make_engine, make_session_factory
from coordination.model import Entry, Family, FieldDef, Involvement, Member, Staff
from coordination.roles import InvolvementStatus

ROOT = Path(__file__).resolve().parent.parent

RATIO_TARGET = 2.0  # consented / plain, per-read median
GROWTH_TARGET = 25.0  # percent, consented median from the small to the large size
BATCH_ROWS = 5_000  # rows per executemany
CHUNK_FAMILIES = 1_000  # families generated (and committed) at a time

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
FIRST = ["Aylin", "Mira", "Emir", "Sofia", "Jonas", "Amina", "Lukas", "Nora", "Omar", "Ida",
         "Yusuf", "Elif", "Mateo", "Lea", "Hamid", "Sara", "Noah", "Zara", "Olav", "Ines"]
LAST = ["Demir", "Hansen", "Kaya", "Johansen", "Peeters", "Nguyen", "Olsen", "Haddad",
        "Larsen", "Janssens", "Ali", "Berg", "Dubois", "Ahmed", "Nilsen", "Maes"]
LANGUAGES = [["nb"], ["tr", "nb"], ["ar", "nb"], ["bg"], ["nl", "fr"], ["so", "en"]]


# --- loading ----------------------------------------------------------------


@dataclass
class Loader:
    """Generates families and bulk-inserts them with Core executemany."""

    engine: Engine
    sessions: sessionmaker[Session]
    vault: Vault
    now: datetime
    staff_ids: dict[str, int]
    rng: random.Random = field(default_factory=lambda: random.Random(20261122))
    family_ids: list[str] = field(default_factory=list)
    next_involvement: int = 1
    next_form: int = 1
    rows: int = 0

    def hex_id(self, prefix: str) -> str:
        # Same shape as services.new_id (random, so index inserts are random too).
        return f"{prefix}_{self.rng.getrandbits(80):020x}"

    def grow_to(self, total: int) -> float:
        """Add families until there are `total`; returns the seconds taken."""
        started = time.perf_counter()
        while len(self.family_ids) < total:
            self._load_chunk(min(CHUNK_FAMILIES, total - len(self.family_ids)))
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                # Explicit ids were inserted: move the sequences on.
                conn.execute(text("SELECT setval(pg_get_serial_sequence('involvements', 'id'), "
                                  "(SELECT max(id) FROM involvements))"))
                conn.execute(text("SELECT setval(pg_get_serial_sequence('consent_forms', 'id'), "
                                  "(SELECT max(id) FROM consent_forms))"))
        settle(self.engine)
        return time.perf_counter() - started

    def _load_chunk(self, count: int) -> None:
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
            cipher = self.vault.for_family(fid)

            def seal(column: str, value: str, fid: str = fid, cipher: Any = cipher) -> bytes:
                return cipher.seal("families", column, fid, value)

            first, last = rng.choice(FIRST), rng.choice(LAST)
            name = f"{first} {last}"
            born = date(2020, 1, 1) + timedelta(days=rng.randrange(5 * 365))
            created = now - timedelta(days=rng.randrange(1, 700), seconds=rng.randrange(86_400))
            families.append({
                "id": fid,
                "display_name": seal("display_name", name),
                "name_index": self.vault.blind_index("name", name),
                "birth_date_index": self.vault.blind_index("birth_date", born.isoformat()),
                "birth_date": seal("birth_date", born.isoformat()),
                "address": seal("address", f"Storgata {n % 200 + 1}, 0155 Oslo"),
                "national_id": None,
                "languages": seal("languages", json.dumps(rng.choice(LANGUAGES))),
                "recorded_by_agency": "health-centre",
                "created_at": created,
            })
            for position, (who, relation) in enumerate(((first, "mother"), ("Emir", "child"))):
                member_id = self.hex_id("mem")
                members.append({
                    "id": member_id,
                    "family_id": fid,
                    "position": position,
                    "name": cipher.seal("family_members", "name", member_id, f"{who} {last}"),
                    "relation": cipher.seal("family_members", "relation", member_id, relation),
                    "birth_date": (
                        cipher.seal("family_members", "birth_date", member_id, born.isoformat())
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
                    "value": cipher.seal("entries", "value", entry_id, template.format(n=n)),
                })
            form_id = self.next_form
            self.next_form += 1
            signed = created + timedelta(days=1)
            forms.append({
                "id": form_id,
                "family_id": fid,
                "version": 1,
                "signed_by": cipher.seal("consent_forms", "signed_by", "v1", name),
                "signed_on": signed.date(),
                "recorded_at": signed,
                "method": "paper",
                "witness": "coord1",
                "interpreter_language": None,
                "purpose": "coordinated support from the family centre",
                "legal_basis": "consent",
                "valid_until": (now + timedelta(days=365)).date(),
                "change": "signed",
                "changed_by": "coord1",
            })
            cells.extend(
                {"form_id": form_id, "agency_id": a, "field_id": f} for a, f in CELLS
            )
        with self.sessions() as session:
            for table, rows in (
                (Family.__table__, families),
                (Member.__table__, members),
                (Involvement.__table__, involvements),
                (ConsentFormRow.__table__, forms),
                (ConsentCellRow.__table__, cells),
                (Entry.__table__, entries),
            ):
                for start in range(0, len(rows), BATCH_ROWS):
                    session.execute(insert(table), rows[start:start + BATCH_ROWS])
                self.rows += len(rows)
            session.commit()


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
    on another (Linux, two CPUs or more). Left to the scheduler on a small
    machine, client and backend share a core some minutes and not others, and
    the read time jumps between two levels. Off with --no-pin."""

    def __init__(self, engine: Engine, enabled: bool) -> None:
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.enabled = enabled and len(self.cpus) > 1
        self.server = engine.dialect.name == "postgresql"
        self.backends: set[int] = set()
        self.active = False
        self.failed = ""
        if self.enabled and self.server:
            event.listen(engine, "connect", self._connected)

    @property
    def note(self) -> str:
        if not self.enabled:
            return "not pinned to CPUs"
        client = f"client on CPU {self.cpus[0]}"
        if not self.server:
            return client
        if self.failed or not self.backends:
            return f"{client}, server backend not pinned {self.failed}".rstrip()
        return f"{client}, server backend on CPU {self.cpus[1]}"

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
class Result:
    families: int
    load_seconds: float
    consented: Timing
    plain: Timing
    queries: tuple[int, int]  # statements per read: consented, plain
    pinning: str

    @property
    def ratio(self) -> float:
        return self.consented.median / self.plain.median


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


def check_reads(sessions: sessionmaker[Session], engine: Engine, vault: Vault, actor: Actor,
                family_id: str, now: datetime) -> tuple[int, int]:
    """Both reads agree on what the reader may see; returns statements per read."""
    counts = []
    bodies = []
    for read in (consented_read, plain_read):
        with counting(engine) as statements, sessions() as session:
            bodies.append(read(session, vault, actor, family_id, now))
        counts.append(len(statements))
    consented, plain = bodies
    assert sorted(consented["fields"]) == ["health", "involvement"], consented["fields"]
    assert consented["fields"]["health"] == plain["fields"]["health"]
    assert consented["display_name"] == plain["display_name"]
    assert consented["involvements"] == plain["involvements"]
    assert "members" not in consented and "address" not in consented
    return counts[0], counts[1]


def measure(sessions: sessionmaker[Session], vault: Vault, actor: Actor, ids: list[str],
            now: datetime, reads: int, rng: random.Random) -> tuple[Timing, Timing]:
    """`reads` reads of each kind on random families, alternating in rounds of 20:
    one round reads its families consented then plain, the next plain then consented."""
    reads_by: dict[str, Read] = {"consented": consented_read, "plain": plain_read}
    samples: dict[str, list[float]] = {"consented": [], "plain": []}
    clock = time.perf_counter_ns

    def one(kind: str, family_id: str) -> float:
        read = reads_by[kind]
        started = clock()
        with sessions() as session:
            read(session, vault, actor, family_id, now)
        return (clock() - started) / 1_000

    for fid in rng.sample(ids, min(200, len(ids))):  # warm up caches and the pool
        one("consented", fid)
        one("plain", fid)
    gc.collect()
    round_size = 20
    for r, start in enumerate(range(0, reads, round_size)):
        picks = [rng.choice(ids) for _ in range(min(round_size, reads - start))]
        order = ("consented", "plain") if r % 2 == 0 else ("plain", "consented")
        for kind in order:
            for fid in picks:
                samples[kind].append(one(kind, fid))
    return Timing(samples["consented"]), Timing(samples["plain"])


# --- the run ----------------------------------------------------------------


def settle(engine: Engine) -> None:
    """After a bulk load: statistics fresh, dirty pages written, nothing left for
    background work to catch up on while reads are timed."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("VACUUM ANALYZE"))
            conn.execute(text("CHECKPOINT"))
        else:
            conn.execute(text("ANALYZE"))
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    if hasattr(os, "sync"):
        os.sync()  # the kernel's write-back of the load would otherwise overlap the timing


def run(url: str, sizes: list[int], reads: int, label: str, pin: bool) -> list[Result]:
    engine = make_engine(url)
    pinning = Pinning(engine, pin)
    try:
        migrate.upgrade(engine)
        sessions = make_session_factory(engine)
        install_guards(sessions)  # as the application does (a no-op for reads)
        vault = PlaintextVault()
        now = datetime.now(UTC).replace(microsecond=0)
        with sessions() as session:
            for slug, name, kind, minimal in AGENCIES:
                accounts.add_agency(session, slug, name, kind, minimal, now)
            for username, agency, role in STAFF:
                accounts.add_staff(session, username, agency, role, None, now)
            staff_ids = dict(session.execute(select(Staff.username, Staff.id)).tuples().all())
            token = accounts.create_token(session, READER, timedelta(hours=1), now)
            actor = accounts.authenticate(session, token, now)
        loader = Loader(engine, sessions, vault, now, staff_ids)
        rng = random.Random(7)
        results = []
        for size in sizes:
            seconds = loader.grow_to(size)
            with sessions() as session:
                counted = session.scalar(select(func.count()).select_from(Family))
            assert counted == size, (counted, size)
            print(f"[{label}] {size:,} families loaded in {seconds:.1f} s "
                  f"({loader.rows:,} rows so far); measuring {reads:,} reads of each kind...",
                  flush=True)
            queries = check_reads(sessions, engine, vault, actor, rng.choice(loader.family_ids),
                                  now)
            with pinning.pinned():
                consented, plain = measure(sessions, vault, actor, loader.family_ids, now, reads,
                                           rng)
            results.append(Result(size, seconds, consented, plain, queries, pinning.note))
        return results
    finally:
        engine.dispose()


def sqlite_run(sizes: list[int], reads: int, pin: bool) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="onestory-bench-") as folder:
        return run(f"sqlite:///{Path(folder) / 'bench.db'}", sizes, reads, "sqlite", pin)


def postgres_run(sizes: list[int], reads: int, pin: bool) -> list[Result]:
    sys.path.insert(0, str(ROOT))
    from tests.pg import Cluster, create_database

    cluster = Cluster()
    try:
        cluster.start()
        return run(create_database(cluster.admin_url), sizes, reads, "postgresql", pin)
    finally:
        cluster.stop()


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(backend: str, results: list[Result], reads: int) -> None:
    print()
    print(f"shared_record on {backend}: {reads:,} reads of each kind per size, "
          f"fresh session per read, {results[-1].pinning}; times in microseconds per read")
    header = (f"{'families':>10} {'load s':>7} | {'consented':>9} {'mean':>7} {'p95':>7} | "
              f"{'plain':>7} {'mean':>7} {'p95':>7} | {'ratio':>6} {'queries':>7}  "
              f"target <= {RATIO_TARGET:.1f}x")
    print(header)
    print("-" * len(header))
    for r in results:
        c, p = r.consented, r.plain
        print(f"{r.families:>10,} {r.load_seconds:>7.1f} | {c.median:>9.0f} {c.mean:>7.0f} "
              f"{c.p95:>7.0f} | {p.median:>7.0f} {p.mean:>7.0f} {p.p95:>7.0f} | "
              f"{r.ratio:>5.2f}x {r.queries[0]:>3}/{r.queries[1]:<3}  "
              f"{verdict(r.ratio <= RATIO_TARGET)}")
    small, big = results[0], results[-1]
    growth = (big.consented.median / small.consented.median - 1) * 100
    plain_growth = (big.plain.median / small.plain.median - 1) * 100
    print(f"consented median {small.families:,} -> {big.families:,} families: "
          f"{growth:+.1f}% (target <= {GROWTH_TARGET:.0f}%: {verdict(growth <= GROWTH_TARGET)}); "
          f"plain: {plain_growth:+.1f}%")
    print("(consented = services.shared_record; plain = the same rows, no consent logic; "
          "ratio = consented median / plain median; queries = statements per read, "
          "consented/plain)")


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
