"""Benchmark: how long an audited act holds the chain's head, on PostgreSQL.

Every audited act appends to the one chain: `audit.services.record`'s first
statement locks the head row (on PostgreSQL its only statement, which locks
the head, hashes the entry, moves the head and writes the entry) and the lock
is held until the act's transaction commits. While one act holds it, every
other act's append waits, whatever the number of app nodes: 1 / (mean hold time) is the most audited
acts per second the whole installation can reach.

On a throwaway PostgreSQL cluster with fsync, full_page_writes and
synchronous_commit on (`common.durable_cluster`), an `EnvelopeVault` store (key
store in a database of its own) with --families families (`common.Loader`),
it reads shared records as `physio1` (`casework.record.shared_record`, fresh
session per read, one client) and times, in process:

* hold: from the moment `audit.services.record` sends its first statement
  (which takes the head's lock) to the return of the transaction's COMMIT;
* of which commit: from the moment SQLAlchemy sends COMMIT to its return
  (the WAL flush to disk, durable);
* read: the whole use case, for context.

Reads alternate between the shipped append (`audit.services.record`: on
PostgreSQL one statement, the hash computed by the database) and, as the
baseline in the same run, the append as it was before migration 0014 (the
head locked and read, the hash computed in Python, then the entry written
with the head moved: `former_record`); both write the same chain.

It prints median, p90, p99 and mean of each (and of hold - commit: the part
before COMMIT, which the append's statements make), the ceiling 1 / mean
hold of each, and the ratios shipped / former.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import Loader, durable_cluster, open_store, postgres_databases
from sqlalchemy import Table, bindparam, event, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

import audit.services as audit_log
from audit.chain import HASHED, audit_time, detail_text, entry_hash
from audit.model import AuditEntry, AuditHead
from coordination.casework.record import shared_record


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@functools.cache
def _former_statements() -> tuple[Executable, Executable]:
    """The append's statements on PostgreSQL before migration 0014: the head
    locked and read, then (the hash computed in Python) the entry written with
    the head moved."""
    head, log = cast(Table, AuditHead.__table__), cast(Table, AuditEntry.__table__)
    lock = select(head.c.seq, head.c.hash).where(head.c.id == 1).with_for_update()
    move = (update(head).where(head.c.id == 1)
            .values(seq=bindparam("head_seq", type_=head.c.seq.type),
                    prev_hash=bindparam("prev_hash", type_=head.c.prev_hash.type),
                    hash=bindparam("head_hash", type_=head.c.hash.type)))
    write = insert(log).values({name: bindparam(name, type_=log.c[name].type)
                                for name in (*HASHED, "prev_hash", "hash")})
    return lock, write.add_cte(move.cte("head_moved"))


def former_record(session: Session, event: audit_log.Event, now: datetime) -> AuditEntry:
    """The baseline: `audit.services.record` as it was on PostgreSQL before
    migration 0014 (two statements, the hash computed in Python while the head
    is held). It writes the same entry the shipped append would."""
    lock, write = _former_statements()
    prev_seq, prev_hash = session.execute(lock).one()
    values = (prev_seq + 1, audit_time(now), event.action.value, event.outcome.value,
              event.actor, event.agency_id, event.role, event.family_id, event.reason,
              None if event.shown is None else ",".join(event.shown),
              None if event.withheld is None else ",".join(event.withheld),
              detail_text(event.detail), event.request_id)
    digest = entry_hash(prev_hash, values)
    row = {**dict(zip(HASHED, values, strict=True)), "prev_hash": prev_hash, "hash": digest}
    session.execute(write, {**row, "head_seq": values[0], "head_hash": digest})
    return AuditEntry(**row)


APPENDS = {"shipped": audit_log.record, "former": former_record}
KINDS = ("hold", "commit", "read")


def measure(families: int, reads: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    """Samples per append ("shipped", "former") and kind (KINDS); the two
    appends alternate read by read, over the same store and chain."""
    now = datetime.now(UTC).replace(microsecond=0)
    with postgres_databases(durable_cluster(), ("data", "keys")) as urls:
        store = open_store("envelope", urls["data"], urls["keys"], now)
        try:
            loader = Loader([store], now, store.staff_ids)
            seconds = loader.grow_to(families)
            print(f"{families:,} families loaded in {seconds:.1f} s; {warmup} warm-up reads, "
                  f"then {reads:,} timed of each append, alternating...", flush=True)
            marks: dict[str, int] = {}
            original = audit_log.record
            which = ["shipped"]

            def record(*args: Any, **kwargs: Any) -> Any:
                marks["in_record"] = 1
                return APPENDS[which[0]](*args, **kwargs)

            def on_statement(*_args: Any) -> None:  # the append's first statement locks
                if "in_record" in marks and "append" not in marks:
                    marks["append"] = time.perf_counter_ns()

            def on_commit(_conn: Any) -> None:  # fires just before the DBAPI commit
                marks["commit"] = time.perf_counter_ns()

            def after_commit(_session: Any) -> None:  # fires once the commit returned
                marks["done"] = time.perf_counter_ns()

            event.listen(store.engine, "before_cursor_execute", on_statement)
            event.listen(store.engine, "commit", on_commit)
            event.listen(store.sessions, "after_commit", after_commit)
            audit_log.record = record  # type: ignore[assignment]
            samples = {name: {kind: [] for kind in KINDS} for name in APPENDS}
            rng = random.Random(13)
            try:
                for n in range(warmup + 2 * reads):
                    which[0] = ("shipped", "former")[n % 2]
                    actor = dataclasses.replace(store.actor, request_id=uuid.uuid4().hex)
                    marks.clear()
                    started = time.perf_counter_ns()
                    with store.sessions() as session:
                        shared_record(session, store.vault, actor,
                                      rng.choice(loader.family_ids), now)
                    ended = time.perf_counter_ns()
                    if n >= warmup:
                        got = samples[which[0]]
                        got["hold"].append((marks["done"] - marks["append"]) / 1e3)
                        got["commit"].append((marks["done"] - marks["commit"]) / 1e3)
                        got["read"].append((ended - started) / 1e3)
            finally:
                audit_log.record = original  # type: ignore[assignment]
            checked = audit_log.verify(store.engine)
            assert checked.ok and checked.entries >= warmup + 2 * reads, checked
            return samples
        finally:
            store.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=2_000)
    parser.add_argument("--reads", type=int, default=3_000, help="timed reads of each append")
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    samples = measure(args.families, args.reads, args.warmup)
    print()
    print("chain head held by one audited shared-record read on PostgreSQL (fsync, "
          "synchronous_commit, full_page_writes on), microseconds, one client")
    print(f"{'':<22} {'median':>8} {'p90':>8} {'p99':>8} {'mean':>8}")
    for name, kinds in samples.items():
        kinds["before commit"] = [h - c for h, c in zip(kinds["hold"], kinds["commit"],
                                                          strict=True)]
        for kind in (*KINDS, "before commit"):
            values = kinds[kind]
            print(f"{name + ' ' + kind:<22} {statistics.median(values):>8.0f} "
                  f"{quantile(values, 0.9):>8.0f} {quantile(values, 0.99):>8.0f} "
                  f"{statistics.fmean(values):>8.0f}")
    for name, kinds in samples.items():
        hold = kinds["hold"]
        share = statistics.fmean(kinds["commit"]) / statistics.fmean(hold)
        print(f"{name}: ceiling 1 / mean hold = {1e6 / statistics.fmean(hold):,.0f} audited "
              f"acts/s (1 / median hold = {1e6 / statistics.median(hold):,.0f}/s); the commit "
              f"(WAL flush) is {share:.0%} of the hold")
    shipped, former = samples["shipped"], samples["former"]
    for kind in ("hold", "before commit"):
        print(f"shipped / former, {kind}: median "
              f"{statistics.median(shipped[kind]) / statistics.median(former[kind]):.2f}, mean "
              f"{statistics.fmean(shipped[kind]) / statistics.fmean(former[kind]):.2f}")
    print("(shipped = audit.services.record, one statement on PostgreSQL; former = the append "
          "before migration 0014, two statements with the hash computed in Python; they "
          "alternate read by read. hold = from the append's first statement, which locks the "
          "head, to the return of COMMIT; commit = from COMMIT sent to its return; before "
          "commit = hold - commit; read = the whole use case; the ceiling is for the whole "
          "installation, whatever the number of app nodes: another client's append waits "
          "for the whole hold)")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
