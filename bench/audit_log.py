"""Benchmark: what the audit log costs a shared-record read, and how fast the
whole chain verifies.

(1) A read with its audit entry against the floor it cannot beat. Two stores
with the same 2 000 families (one sealed with `EnvelopeVault`, its key store in
a database of its own, as the product runs; one with `PlaintextVault`), each
read as `physio1` with a fresh session per read, interleaved in rounds:

* audited: `coordination.casework.record.shared_record` as it is: it reads, then
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
built in Python with `audit.chain.entry_hash` and bulk-inserted through the
driver (PostgreSQL COPY, SQLite executemany; the head set to its end; several
sizes, as with --ten-million, grow the same chain); then a fresh child process times
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
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as `python bench/audit_log.py`, Python puts bench/ first on the path, where a
# module could shadow a package (a bench/audit.py would hide `audit`): the project root
# goes before it, and bench/common.py is still found.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (
    Loader,
    Pinning,
    Store,
    Timing,
    counting,
    durable_cluster,
    open_store,
    plain_log_table,
    postgres_databases,
    settle,
    sqlite_databases,
    verdict,
)
from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.orm import Session

import audit.services as audit_log
from audit.chain import HASHED, audit_time, detail_text, entry_hash
from audit.model import Action, AuditEntry, AuditHead
from audit.services import Event
from coordination import migrate
from coordination.casework.record import SharedRecord, shared_record
from coordination.db import make_engine

RATIO_TARGET = 1.5  # audited / floor, per-read median
VERIFY_TARGET = 200_000  # entries per second
VERIFY_FLAT = 1.25  # peak memory at the largest size / at the smallest, at most
TRACED_UP_TO = 2_000_000  # entries: larger chains are not walked again under tracemalloc
LOG_BATCH = 20_000  # audit entries per executemany and commit
ROUND = 20  # families per round
BLOCKS = 5  # the timed reads split in time, for the ratio's spread
WARMUP = 200  # reads of each kind before timing

# The plain table of the floor: audit_log's columns, types and indexes; no chain.
FLOOR = plain_log_table("audit_floor")
FILLER_HASH = "f" * 64  # a 64-character hex string, as prev_hash and hash are


# --- measuring ------------------------------------------------------------------


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


def _joined(names: Any) -> str | None:
    return None if names is None else ",".join(names)


def floor_record(seq: Iterator[int]) -> Callable[[Session, Event, datetime], None]:
    """`audit.services.record` without the chain: the same values in the same
    columns, one Core INSERT into the plain table, in the caller's transaction;
    `seq` numbers the rows."""

    def append(session: Session, event: Event, now: datetime) -> None:
        values = (next(seq), audit_time(now), event.action.value,
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


Recorders = dict[str, Callable[..., Any]]  # kind -> what the read calls for its audit entry


def recorders() -> Recorders:
    """One set per store: its floor table numbers its rows from 1."""
    return {"audited": audit_log.record, "floor": floor_record(itertools.count(1)),
            "read only": no_record}


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
              ) -> tuple[float, SharedRecord]:
    """One shared-record read with a fresh session and `record` as the audit
    append; returns microseconds and the record."""
    actor = dataclasses.replace(store.actor, request_id=uuid.uuid4().hex)  # as the API does
    original = audit_log.record
    audit_log.record = record  # type: ignore[assignment]
    try:
        started = time.perf_counter_ns()
        with store.sessions() as session:
            shared = shared_record(session, store.vault, actor, family_id, now)
        return (time.perf_counter_ns() - started) / 1_000, shared
    finally:
        audit_log.record = original


def check_reads(store: Store, record_of: Recorders, family_id: str, now: datetime
                ) -> dict[str, int]:
    """Every kind returns the same record; the floor writes the same row the
    audit does (bar the chain). Returns the statements per read of each kind."""
    counts, bodies = {}, []
    for kind, record in record_of.items():
        with counting(*store.engines) as statements:
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


def measure_reads(stores: list[Store], record_of: dict[str, Recorders], fids: list[str],
                  reads: int, now: datetime, rng: random.Random
                  ) -> dict[str, dict[str, Timing]]:
    """`reads` reads of each kind in each store, on random families, in rounds of
    ROUND families: each round reads its families with every (store, kind), one
    after the other, in an order that changes from round to round."""
    samples = {s.name: {k: Timing() for k in KINDS} for s in stores}
    pairs = [(s, kind, rec) for s in stores for kind, rec in record_of[s.name].items()]
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
            for kind in kinds:
                for fid in picks:
                    us, _ = read_once(store, record_of[store.name][kind], fid, now)
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
        assert stores[0].staff_ids == stores[1].staff_ids
        for store in stores:
            FLOOR.metadata.create_all(store.engine)
        loader = Loader(stores, now, stores[0].staff_ids)
        seconds = loader.grow_to(families)
        fids = loader.family_ids
        print(f"[{backend}] {families:,} families loaded into {len(stores)} stores in "
              f"{seconds:.1f} s; {reads:,} reads of each kind per store...", flush=True)
        rng = random.Random(7)
        record_of = {s.name: recorders() for s in stores}
        counts = {s.name: check_reads(s, record_of[s.name], rng.choice(fids), now)
                  for s in stores}
        pinning = Pinning([e for s in stores for e in s.engines], pin)
        with pinning.pinned():
            samples = measure_reads(stores, record_of, fids, reads, now, rng)
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


def log_rows(first: int, count: int, running: str, start: datetime
             ) -> Iterator[list[tuple[Any, ...]]]:
    """A valid chain of `count` entries of realistic shape and size, from seq
    `first` on (after an entry whose hash is `running`), LOG_BATCH at a time:
    rows of the HASHED values, prev_hash and hash, each hash computed with
    `audit.chain.entry_hash`. The entry at seq n is the same whether the chain
    is built at once or grown in steps."""
    rng = random.Random(1122 + first)
    agencies = [f"agency-{i:02d}" for i in range(12)]
    users = [(f"worker{i:03d}", agencies[i % 12]) for i in range(240)]
    fams = [f"fam_{random.Random(i).getrandbits(80):020x}" for i in range(20_000)]
    splits = [(",".join(sorted(FIELDS[:cut])), ",".join(FIELDS[cut:]))
              for cut in range(1, len(FIELDS))]
    expires = detail_text({"expires": audit_time(start + timedelta(hours=8))})
    second_text, second = "", -1
    batch: list[tuple[Any, ...]] = []
    for seq in range(first, first + count):
        # Four entries a second: the time text changes its prefix once a second.
        if seq // 4 != second:
            second = seq // 4
            second_text = audit_time(start + timedelta(seconds=second))[:19]
        at = f"{second_text}.{(seq % 4) * 250_000:06d}Z"
        action = ACTIONS[int(rng.random() * len(ACTIONS))]
        actor, agency = users[int(rng.random() * 240)]
        family = reason = shown = withheld = detail = None
        outcome = "ok"
        if action in FAMILY_ACTIONS:
            family = fams[int(rng.random() * 20_000)]
        if action is Action.RECORD_READ:
            shown, withheld = splits[int(rng.random() * len(splits))]
        elif action is Action.ENTRY_WRITE:
            shown = FIELDS[int(rng.random() * len(FIELDS))]
        elif action is Action.FAMILY_SEARCH:
            detail = detail_text({"found": rng.sample(fams, int(rng.random() * 4))})
        elif action in (Action.LOGIN, Action.TOKEN_CREATE):
            detail = expires
        elif action is Action.REQUEST_DENIED:
            outcome, reason, family = "denied", "not_visible", fams[int(rng.random() * 20_000)]
        values = (seq, at, action.value, outcome, actor, agency, "practitioner", family,
                  reason, shown, withheld, detail, f"{rng.getrandbits(128):032x}")
        digest = entry_hash(running, values)
        batch.append((*values, running, digest))
        running = digest
        if len(batch) == LOG_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


FAMILY_ACTIONS = frozenset((Action.RECORD_READ, Action.ENTRY_WRITE, Action.CONSENT_READ,
                            Action.ACCESS_LOG_READ))
LOG_COLUMNS = (*HASHED, "prev_hash", "hash")
LOG_INDEXES = ("ix_audit_log_family_seq", "ix_audit_log_actor_seq")


def build_log(url: str, grow_to: int) -> tuple[float, float, str]:
    """Bulk-builds the chain, or grows the one already there, to `grow_to`
    entries; returns (seconds, megabytes on disk, head hash).

    Fast enough for 10 million entries: rows are tuples written through the
    driver (PostgreSQL: COPY; SQLite: executemany of one INSERT), the two
    secondary indexes are dropped for the load and built again after it, one
    commit per LOG_BATCH rows (SQLite) or per COPY of a step (PostgreSQL)."""
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            row = conn.execute(select(AuditHead.seq, AuditHead.hash)
                               .where(AuditHead.id == 1)).one()
        first, running = int(row.seq) + 1, row.hash
        started = time.perf_counter()
        postgres = engine.dialect.name == "postgresql"
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            for name in LOG_INDEXES:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
            raw.commit()
            insert_sql = (f"INSERT INTO audit_log ({', '.join(LOG_COLUMNS)}) VALUES "  # noqa: S608 - constant names
                          f"({', '.join('?' for _ in LOG_COLUMNS)})")
            batches = log_rows(first, max(0, grow_to - first + 1), running,
                               datetime(2025, 1, 1, tzinfo=UTC))
            if postgres:
                with cursor.copy(f"COPY audit_log ({', '.join(LOG_COLUMNS)}) FROM STDIN"
                                 ) as copy:
                    for batch in batches:
                        for entry in batch:
                            copy.write_row(entry)
                        running = batch[-1][-1]
                raw.commit()
            else:
                for batch in batches:
                    cursor.execute("BEGIN")
                    cursor.executemany(insert_sql, batch)
                    cursor.execute("COMMIT")
                    running = batch[-1][-1]
            cursor.close()
        finally:
            raw.close()
        for index in AuditEntry.__table__.indexes:  # type: ignore[attr-defined]
            index.create(bind=engine)
        with engine.begin() as conn:
            conn.execute(update(AuditHead).where(AuditHead.id == 1)
                         .values(seq=grow_to, hash=running))
        settle(engine)
        seconds = time.perf_counter() - started
        with engine.connect() as conn:
            if postgres:
                size = conn.execute(text("SELECT pg_total_relation_size('audit_log')")).scalar()
            else:
                pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
                size = int(pages or 0) * int(conn.exec_driver_sql("PRAGMA page_size").scalar()
                                             or 0)
        return seconds, int(size or 0) / 1e6, running
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
    with audit_log._snapshot(engine) as raw:
        sql = audit_log._columns_sql(engine)
        streamed = sum(1 for _ in audit_log._stream(raw, sql, engine.dialect.name))
    out["stream_seconds"], out["streamed"] = time.perf_counter() - started, streamed
    # Under tracemalloc: the peak of each tenth of the walk, to show that it stays flat.
    deciles: list[float] = []
    step = max(1, streamed // 10)
    original = audit_log._stream

    def watched(raw: Any, sql: str, dialect: str) -> Iterator[Any]:
        for n, row in enumerate(original(raw, sql, dialect), start=1):
            yield row
            if n % step == 0:
                deciles.append(tracemalloc.get_traced_memory()[1] / 1e6)
                tracemalloc.reset_peak()

    out["traced_peak_mb"], out["traced_deciles_mb"] = None, []
    if streamed <= TRACED_UP_TO:  # tracemalloc slows the walk about threefold
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

    @property
    def peak_growth_mb(self) -> float:
        """Peak resident set during verify, less the resident set before it."""
        return float(self.child["peak_rss_mb"] - self.child["rss_before_mb"])


def verify_part(backend: str, url: str, sizes: list[int], profile: bool) -> list[VerifyResult]:
    """Builds the chain to each size in turn (growing the same chain) and
    verifies it at each, in a fresh child process."""
    results = []
    for count in sizes:
        print(f"[{backend}] building the chain to {count:,} entries...", flush=True)
        build_seconds, size_mb, head = build_log(url, count)
        print(f"[{backend}] built in {build_seconds:.1f} s ({size_mb:,.0f} MB); verifying in a "
              "child process...", flush=True)
        args = [sys.executable, str(Path(__file__).resolve()), "--verify-child", url]
        done = subprocess.run(args + (["--profile"] if profile else []), capture_output=True,
                              text=True, timeout=7200, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"verification child failed:\n{done.stderr[-3000:]}")
        child = json.loads(done.stdout.strip().splitlines()[-1])
        assert child["ok"] and child["entries"] == count and child["head"] == head, child
        assert child["streamed"] == count
        results.append(VerifyResult(backend, count, build_seconds, size_mb, child))
    return results


# --- backends -------------------------------------------------------------------


@dataclass
class BackendRun:
    backend: str
    durability: str
    reads: list[ReadResult]
    verification: list[VerifyResult]


DATABASES = ("envelope", "plaintext", "keys", "log")


def sqlite_run(families: int, reads: int, sizes: list[int], pin: bool, profile: bool
               ) -> BackendRun:
    with sqlite_databases(DATABASES, "onestory-bench-audit-") as urls:
        results, settings = (read_part("sqlite", urls, families, reads, pin) if reads
                             else ([], "(reads not run)"))
        verification = verify_part("sqlite", urls["log"], sizes, profile)
        return BackendRun("sqlite", settings, results, verification)


def postgres_run(families: int, reads: int, sizes: list[int], pin: bool, profile: bool
                 ) -> BackendRun:
    with postgres_databases(durable_cluster(), DATABASES) as urls:
        results, settings = (read_part("postgresql", urls, families, reads, pin) if reads
                             else ([], "(reads not run)"))
        verification = verify_part("postgresql", urls["log"], sizes, profile)
        return BackendRun("postgresql", settings, results, verification)


# --- the report -------------------------------------------------------------------


def report(runs: list[BackendRun], reads: int) -> None:
    if any(run.reads for run in runs):
        report_reads(runs, reads)
    report_verification(runs)


def report_reads(runs: list[BackendRun], reads: int) -> None:
    print()
    print(f"(1) what the audit costs a read: shared_record with its audit entry "
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



def report_verification(runs: list[BackendRun]) -> None:
    print()
    print("(2) verifying the chain: audit.services.verify(engine) in a fresh process")
    header = (f"{'backend':<10} {'entries':>9} {'log MB':>7} {'build s':>7} | {'verify s':>8} "
              f"{'entries/s':>9} | {'stream s':>8} {'rows/s':>9} | {'rss MB':>6} "
              f"{'peak +MB':>8} {'maxrss +MB':>10} {'end +MB':>7} | {'traced MB':>9} "
              f"{'halves':>9}  target >= {VERIFY_TARGET:,}/s")
    print(header)
    print("-" * len(header))
    for run in runs:
        for v in run.verification:
            c = v.child
            tenths = c["traced_deciles_mb"] or [c["traced_peak_mb"] or 0.0] * 2
            halves = (f"{max(tenths[:len(tenths) // 2]):.0f}/"
                      f"{max(tenths[len(tenths) // 2:]):.0f}" if c["traced_peak_mb"] else "-")
            traced = f"{c['traced_peak_mb']:.1f}" if c["traced_peak_mb"] else "-"
            print(f"{v.backend:<10} {v.entries:>9,} {v.size_mb:>7,.0f} {v.build_seconds:>7.1f} | "
                  f"{c['seconds']:>8.2f} {v.per_second:>9,.0f} | {c['stream_seconds']:>8.2f} "
                  f"{c['streamed'] / c['stream_seconds']:>9,.0f} | {c['rss_before_mb']:>6.0f} "
                  f"{v.peak_growth_mb:>+8.1f} "
                  f"{c['maxrss_after_mb'] - c['maxrss_before_mb']:>+10.1f} "
                  f"{c['rss_after_mb'] - c['rss_before_mb']:>+7.1f} | {traced:>9} "
                  f"{halves:>9}  {verdict(v.per_second >= VERIFY_TARGET)}")
    for run in runs:
        if len(run.verification) > 1:
            small, large = run.verification[0], run.verification[-1]
            speed = large.per_second / small.per_second
            memory = (small.child["rss_before_mb"] + large.peak_growth_mb) / (
                small.child["rss_before_mb"] + small.peak_growth_mb)
            print(f"{run.backend}: {large.entries:,} against {small.entries:,} entries: "
                  f"entries/s x{speed:.2f}, peak resident set x{memory:.2f} "
                  f"({small.child['rss_before_mb'] + small.peak_growth_mb:.0f} -> "
                  f"{small.child['rss_before_mb'] + large.peak_growth_mb:.0f} MB, target at most "
                  f"x{VERIFY_FLAT:.2f})  {verdict(memory <= VERIFY_FLAT)}")
    print("(log MB = audit_log with its indexes on disk; stream = the same query through "
          "audit.services._stream, rows only counted, no checking: what fetching alone costs; "
          "rss MB = resident set of the verifying process before verify; peak +MB = its peak "
          "during verify (VmHWM, reset just before) minus that; maxrss +MB = growth of "
          "getrusage's ru_maxrss (which starts from the parent's size, inherited at exec, so "
          "it shows only growth beyond that); end +MB = resident set after minus before; "
          "traced MB = tracemalloc's peak over a second verify, halves = that peak over the "
          "first and over the second half of the walk)")
    for run in runs:
        for v in run.verification:
            if "profile" in v.child:
                print()
                print(f"cProfile of verify on {run.backend}, {v.entries:,} entries (by own time):")
                print(v.child["profile"])


def sizes_arg(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",")]
    if not sizes or sizes != sorted(sizes) or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be positive and increasing")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=None,
                        help="families per store (default 2000, --quick 200)")
    parser.add_argument("--reads", type=int, default=None,
                        help="timed reads of each kind per store (default 2000, --quick 200)")
    parser.add_argument("--entries", type=sizes_arg, default=None,
                        help="entries in the verified chain, or several sizes (1000000,10000000)"
                             " to which the same chain grows (default 1000000, --quick 100000)")
    parser.add_argument("--ten-million", action="store_true",
                        help="verification only: the chain at 1 000 000 then 10 000 000 entries")
    parser.add_argument("--verify-only", action="store_true",
                        help="skip (1), the reads; only build and verify the chain")
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
    sizes = args.entries or ([100_000] if args.quick else [1_000_000])
    if args.ten_million:
        sizes, args.verify_only = [1_000_000, 10_000_000], True
    if args.verify_only:
        reads = 0
    backends = [b for b, chosen in (("sqlite", args.sqlite), ("postgresql", args.postgres))
                if chosen] or ["sqlite", "postgresql"]
    started = time.perf_counter()
    runs = []
    for backend in backends:
        run = sqlite_run if backend == "sqlite" else postgres_run
        runs.append(run(families, reads, sizes, not args.no_pin, args.profile))
    report(runs, reads)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
