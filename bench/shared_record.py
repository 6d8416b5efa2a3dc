"""Benchmark: the consented shared-record read, what consent costs it and what
encryption costs it, and how fast a master-key rotation re-wraps data keys.

Builds two databases with the same families (same ids, same values): one
sealed with `PlaintextVault`, one sealed with `EnvelopeVault` (per-family
AES-256-GCM data keys in a key store of their own, wrapped by a master
keyring). SQLite files in a temporary folder, or databases on a throwaway
PostgreSQL cluster with --postgres. At a small and at a large size it times,
each read with a fresh session,

* consented: `coordination.casework.record.shared_record` on the plaintext store, for
  an agency that holds cells on the family's joint consent form
  (physiotherapy: involvement and health granted, not involved, not the
  author),
* plain: the same rows read with SQLAlchemy on the plaintext store (family,
  involvements, current form and its cells, entries with their author's
  username, the field catalogue), every value opened, no consent logic,
* encrypted: `shared_record` as in consented, on the encrypted store,
* encrypted plain: the plain read on the encrypted store (so that each store
  is read twice per family, and neither profits more from warm pages),

then adds a master key version and re-wraps every data key with
`coordination.crypto.rewrap_all`.

With --million (`make bench-million`) it asks one question instead: does the
encrypted read stay flat from 1 000 to 1 000 000 families? It bulk-loads the
encrypted store alone (the plaintext twin is left out at that size), says how
long each load took, ANALYZEs after it (as an operator would after a restore),
shows the query plan of each of the read's statements at the large size, and
times the consented encrypted read on families drawn at random over all of
them. Run `python bench/shared_record.py --help` for the options.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as `python bench/shared_record.py`, Python puts bench/ first on the path, where a
# module could shadow a package (a bench/audit.py would hide `audit`): the project root
# goes before it, and bench/common.py is still found.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (
    CHUNK_FAMILIES,
    READER,
    Loader,
    Pinning,
    Store,
    Timing,
    counting,
    open_store,
    postgres_databases,
    sample_ids,
    sqlite_databases,
    verdict,
)
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from consent.services import install_guards
from consent.tables import ConsentCellRow, ConsentFormRow
from coordination import crypto
from coordination.actors import Actor
from coordination.casework import entry_kinds
from coordination.casework.common import iso_time
from coordination.casework.record import shared_record
from coordination.crypto import Keyring, Vault, rewrap_all
from coordination.keystore import KeyStore, WrappedKey
from coordination.model import Entry, Family, FieldDef, Involvement, Staff

RATIO_TARGET = 2.0  # consented / plain, per-read median (plaintext store)
CRYPTO_TARGET = 1.5  # encrypted / plaintext, consented read, per-read median
GROWTH_TARGET = 25.0  # percent, consented median from the small to the large size
OTHER_LOAD_LIMIT = 10.0  # % of a CPU used by other processes while timing: above, say so
REWRAP_BATCH = 1_000  # data keys per re-wrap transaction (the CLI's default)
MILLION = 1_000_000  # --million: the large size
WARM_UP = 200  # reads before timing, on families of their own
SQLITE_COMMIT_FAMILIES = 10_000  # --million on SQLite: families per load transaction


# --- the two reads ----------------------------------------------------------


def consented_read(session: Session, vault: Vault, actor: Actor, family_id: str,
                   now: datetime) -> dict[str, Any]:
    return shared_record(session, vault, actor, family_id, now).body


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
        opened = cipher.open("entries", "value", entry.id, entry.value)
        data = entry_kinds.stored_data(entry.kind, opened)
        fields[entry.field_id].append({
            "id": entry.id,
            "agency": entry.agency_id,
            "author": author,
            "written_at": iso_time(entry.written_at),
            "kind": entry.kind,
            "data": data,
            "value": entry_kinds.in_words(entry.kind, data, opened),
        })
    return {
        "id": family.id,
        "display_name": cipher.open("families", "display_name", family.id, family.display_name),
        "fields": fields,
        "grid": sorted(grid),
        "involvements": [
            {"agency": i.agency_id, "status": i.status, "since": i.since.isoformat(),
             "contact_worker": i.contact_worker.username if i.contact_worker else None}
            for i in involvements
        ],
    }


Read = Callable[[Session, Vault, Actor, str, datetime], dict[str, Any]]


# --- measuring ----------------------------------------------------------------


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
    keystore.set_active(version, now)  # `keys activate`: for every node, through the key store
    gc.collect()
    report = rewrap_all(store.keyring, keystore, now, REWRAP_BATCH)
    assert report.rewrapped == store.key_rows, (report.rewrapped, store.key_rows)
    assert keystore.count_under() == {version: store.key_rows}, keystore.count_under()
    return Rotation(report.rewrapped, version, report.seconds, keystore.select_seconds,
                    keystore.update_seconds)


# --- the run ----------------------------------------------------------------


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
        for store in stores:
            install_guards(store.sessions)  # as the application does (a no-op for reads)
        pinning = Pinning([e for s in stores for e in s.engines], pin)
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


# --- flat to a million families (--million) ------------------------------------------


@dataclass
class FlatResult:
    families: int
    load_seconds: float  # generating, sealing and inserting this size's new families
    loaded: int  # families added by that load
    read: Timing
    data_statements: int
    key_statements: int
    pinning: str
    other_load: float | None
    peak_rss_mb: float  # of this process so far (the PostgreSQL server not included)
    plans: list[tuple[str, list[str]]]

    @property
    def per_second(self) -> float:
        return self.loaded / self.load_seconds if self.load_seconds else 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


@contextmanager
def capturing(*engines: Engine) -> Iterator[list[tuple[Engine, str, Any]]]:
    """The statements sent on these engines inside the block, with their parameters."""
    sent: list[tuple[Engine, str, Any]] = []

    def listener(engine: Engine) -> Callable[..., None]:
        def record(_conn: Any, _cursor: Any, statement: str, parameters: Any,
                   *_args: Any) -> None:
            sent.append((engine, statement, parameters))
        return record

    listeners = [(engine, listener(engine)) for engine in engines]
    for engine, fn in listeners:
        event.listen(engine, "before_cursor_execute", fn)
    try:
        yield sent
    finally:
        for engine, fn in listeners:
            event.remove(engine, "before_cursor_execute", fn)


def explain(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The plan the database chooses for one statement with its parameters
    (PostgreSQL `EXPLAIN`, SQLite `EXPLAIN QUERY PLAN`; nothing is executed)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute("EXPLAIN " + statement, parameters)
            lines = [row[0] for row in cursor.fetchall()]
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            lines = [row[-1] for row in cursor.fetchall()]
        cursor.close()
        raw.rollback()
    finally:
        raw.close()
    return lines


def read_plans(store: Store, family_id: str, now: datetime) -> list[tuple[str, list[str]]]:
    """Each data statement of one encrypted read (and the key store's) with its plan."""
    assert store.keystore is not None
    with capturing(store.engine, store.keystore.engine) as sent, store.sessions() as session:
        consented_read(session, store.vault, store.actor, family_id, now)
    plans = []
    for engine, statement, parameters in sent:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb not in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}:
            continue
        where = "keys" if engine is store.keystore.engine else "data"
        plans.append((f"[{where}] " + " ".join(statement.split()),
                      explain(engine, statement, parameters)))
    return plans


def flat_run(urls: dict[str, str], sizes: list[int], reads: int, label: str,
             pin: bool, show_plans: bool) -> list[FlatResult]:
    """An encrypted store per size (`urls`: "data<i>" and "keys<i>"), each
    bulk-loaded to its size; then `reads` consented encrypted reads on each, on
    families drawn at random over all of its families, the sizes interleaved
    read by read (so that other work on the machine weighs on both alike)."""
    now = datetime.now(UTC).replace(microsecond=0)
    stores: list[Store] = []
    try:
        loads: list[tuple[float, float]] = []  # (seconds, peak RSS MB after it)
        for i, size in enumerate(sizes):
            store = open_store(f"{size:,}", urls[f"data{i}"], urls[f"keys{i}"], now)
            stores.append(store)
            install_guards(store.sessions)
            loader = Loader([store], now, store.staff_ids, keep_ids=False,
                            commit_families=SQLITE_COMMIT_FAMILIES
                            if store.engine.dialect.name == "sqlite" else CHUNK_FAMILIES)
            print(f"[{label}] loading {size:,} families...", flush=True)
            seconds = loader.grow_to(size)
            with store.sessions() as session:
                counted = session.scalar(select(func.count()).select_from(Family))
            assert counted == size, (counted, size)
            settled = (" and VACUUM, CHECKPOINT" if store.engine.dialect.name == "postgresql"
                       else "")
            print(f"[{label}] {size:,} families loaded in {seconds:.1f} s "
                  f"({size / seconds:,.0f} families/s; {store.rows:,} rows, "
                  f"{store.key_rows:,} data keys), then ANALYZE{settled}", flush=True)
            loads.append((seconds, peak_rss_mb()))
        pinning = Pinning([e for s in stores for e in s.engines], pin)
        rng = random.Random(13)
        drawn = {store.name: sample_ids(store.engine, WARM_UP + reads, rng) for store in stores}
        counts = []
        for store in stores:
            assert store.keystore is not None
            with store.sessions() as session:
                body = consented_read(session, store.vault, store.actor, drawn[store.name][0],
                                      now)
            assert sorted(body["fields"]) == ["health", "involvement"], body["fields"]
            with counting(store.engine) as data, counting(store.keystore.engine) as keys, \
                    store.sessions() as session:
                consented_read(session, store.vault, store.actor, drawn[store.name][1], now)
            counts.append((len(data), len(keys)))
        plans = read_plans(stores[-1], drawn[stores[-1].name][2], now) if show_plans else []
        print(f"[{label}] timing {reads:,} reads at each size, interleaved...", flush=True)
        with pinning.pinned():
            timings, other_load = timed_reads(stores, drawn, now, pinning.backends)
        return [FlatResult(size, seconds, size, timings[store.name], data, keys, pinning.note,
                           other_load, rss, plans if store is stores[-1] else [])
                for size, store, (seconds, rss), (data, keys)
                in zip(sizes, stores, loads, counts, strict=True)]
    finally:
        for store in stores:
            store.dispose()


def timed_reads(stores: list[Store], drawn: dict[str, list[str]], now: datetime,
                backends: set[int]) -> tuple[dict[str, Timing], float | None]:
    """Step by step, one consented read on each store of the next family drawn
    for it (the order of the stores swapped every step); the first WARM_UP steps
    warm up, the others are timed."""
    clock = time.perf_counter_ns
    samples: dict[str, list[float]] = {store.name: [] for store in stores}
    load = OtherLoad(backends)
    steps = min(len(ids) for ids in drawn.values())
    for step in range(steps):
        for store in (stores if step % 2 else stores[::-1]):
            started = clock()
            with store.sessions() as session:
                consented_read(session, store.vault, store.actor, drawn[store.name][step], now)
            if step >= WARM_UP:
                samples[store.name].append((clock() - started) / 1_000)
        if step + 1 == WARM_UP:
            gc.collect()
            load = OtherLoad(backends)
    return {name: Timing(s) for name, s in samples.items()}, load.percent()


def flat_report(backend: str, results: list[FlatResult], reads: int) -> None:
    small, big = results[0], results[-1]
    print()
    print(f"flat to a million families on {backend}: the consented encrypted read "
          f"(coordination.casework.record.shared_record as {READER}, EnvelopeVault store "
          "with its key store, a data key per family: fetched, unwrapped once, values opened; "
          "its audit append and commit included), fresh session per read, "
          f"{reads:,} timed reads per size on families drawn at random over all of them "
          f"(after {WARM_UP} warm-up reads on others), a store per size, the sizes interleaved "
          f"read by read, {big.pinning}. The plaintext twin store and the key rotation are "
          "left out here.")
    if all(r.other_load is not None for r in results):
        print("other processes on the machine while reads were timed: " + ", ".join(
            f"{r.families:,}: {r.other_load:.0f}%" for r in results) + " of a CPU" + (
            " -- MORE THAN 10%: figures disturbed"
            if any((r.other_load or 0) > OTHER_LOAD_LIMIT for r in results) else ""))
    header = (f"{'families':>10} {'load s':>8} {'fam/s':>7} | "
              f"{'median us':>9} {'p90 us':>8} {'mean us':>8} | {'queries':>7} "
              f"{'peak RSS MB':>11}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.families:>10,} {r.load_seconds:>8.1f} "
              f"{r.per_second:>7,.0f} | {r.read.median:>9.0f} {r.read.p90:>8.0f} "
              f"{r.read.mean:>8.0f} | {r.data_statements:>3}+{r.key_statements:<3} "
              f"{r.peak_rss_mb:>11.0f}")
    g = growth(small.read, big.read)
    g90 = (big.read.p90 / small.read.p90 - 1) * 100
    print(f"read median {small.families:,} -> {big.families:,} families: {g:+.1f}% "
          f"(p90 {g90:+.1f}%); target <= {GROWTH_TARGET:.0f}%: "
          f"{'MET' if g <= GROWTH_TARGET else 'NOT MET'}")
    print("(load s = all of: generating, sealing with the vault (a fresh data key per family, "
          "wrapped by the master keyring, stored in the key store), inserting in bulk, then "
          "ANALYZE; "
          "queries = statements per read, data database + key store; peak RSS = this process "
          "after that load)")
    if big.plans:
        print()
        print(f"query plans of one read at {big.families:,} families:")
        for statement, plan in big.plans:
            print(f"  {statement[:160]}{'...' if len(statement) > 160 else ''}")
            for line in plan:
                print(f"      {line}")


DATABASES = ("plaintext", "encrypted", "keys")


def sqlite_run(sizes: list[int], reads: int, pin: bool) -> list[Result]:
    with sqlite_databases(DATABASES, "onestory-bench-") as urls:
        return run(urls, sizes, reads, "sqlite", pin)


def postgres_run(sizes: list[int], reads: int, pin: bool) -> list[Result]:
    from tests.pg import Cluster

    with postgres_databases(Cluster(), DATABASES) as urls:
        return run(urls, sizes, reads, "postgresql", pin)


def flat_databases(sizes: list[int]) -> list[str]:
    return [f"{kind}{i}" for i in range(len(sizes)) for kind in ("data", "keys")]


def flat_sqlite_run(sizes: list[int], reads: int, pin: bool,
                    show_plans: bool) -> list[FlatResult]:
    with sqlite_databases(flat_databases(sizes), "onestory-bench-") as urls:
        return flat_run(urls, sizes, reads, "sqlite", pin, show_plans)


def flat_postgres_run(sizes: list[int], reads: int, pin: bool,
                      show_plans: bool) -> list[FlatResult]:
    from tests.pg import Cluster

    with postgres_databases(Cluster(), flat_databases(sizes)) as urls:
        return flat_run(urls, sizes, reads, "postgresql", pin, show_plans)


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
    print("(consented = shared_record, plaintext store; plain = the same rows, no "
          "consent logic; encrypted = shared_record, EnvelopeVault store (the plain "
          "read runs there too, so each store is read twice per family); load s = "
          "sealing and inserting that store; queries = statements per read: consented/plain "
          "in (a), data+key store in (b); unwraps = data keys unwrapped per read; select s = "
          "KeyStore.not_under, update s = KeyStore.rewrap, crypto s = unwrap, wrap and the "
          "rest)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=None,
                        help="the large size (default 100000, --million 1000000; "
                             "the small size is 1000)")
    parser.add_argument("--million", action="store_true",
                        help="flat to a million: the encrypted read alone at 1000 and "
                             "1000000 families, load times and query plans")
    parser.add_argument("--no-plans", action="store_true",
                        help="with --million: do not print the read's query plans")
    parser.add_argument("--reads", type=int, default=None,
                        help="reads of each kind per size (default 2000, --quick 200)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 200 and 2000 families, 200 reads")
    parser.add_argument("--postgres", action="store_true",
                        help="run on a throwaway PostgreSQL cluster (tests/pg.py), not SQLite")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin client and server to one CPU while measuring")
    args = parser.parse_args(argv)
    default = MILLION if args.million else 100_000
    small, big = (200, 2_000) if args.quick else (1_000, args.families or default)
    reads = args.reads or (200 if args.quick else 2_000)
    if big <= small:
        parser.error(f"--families must be more than {small}")
    sizes = [small, big]
    backend = "postgresql" if args.postgres else "sqlite"
    started = time.perf_counter()
    if args.million:
        flat = (flat_postgres_run if args.postgres else flat_sqlite_run)(
            sizes, reads, not args.no_pin, not args.no_plans)
        flat_report(backend, flat, reads)
        print(f"total {time.perf_counter() - started:.0f} s")
        return 0
    results = (postgres_run if args.postgres else sqlite_run)(sizes, reads, not args.no_pin)
    report(backend, results, reads)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
