"""Benchmark: how long an audited act holds the chain's head, on PostgreSQL.

Every audited act appends to the one chain: `audit.services.record` locks the
head row (SELECT ... FOR UPDATE) and the lock is held until the act's
transaction commits. While one act holds it, every other act's append waits,
whatever the number of app nodes: 1 / (mean hold time) is the most audited
acts per second the whole installation can reach.

On a throwaway PostgreSQL cluster with fsync, full_page_writes and
synchronous_commit on (`common.durable_cluster`), an `EnvelopeVault` store (key
store in a database of its own) with --families families (`common.Loader`),
it reads shared records as `physio1` (`casework.record.shared_record`, fresh
session per read, one client) and times, in process:

* hold: from the call of `audit.services.record` (its first statement takes
  the head's lock) to the return of the transaction's COMMIT;
* of which commit: from the moment SQLAlchemy sends COMMIT to its return
  (the WAL flush to disk, durable);
* read: the whole use case, for context.

It prints median, p90, p99 and mean of each, and the ceiling 1 / mean hold.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import Loader, durable_cluster, open_store, postgres_databases
from sqlalchemy import event

import audit.services as audit_log
from coordination.casework.record import shared_record


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(families: int, reads: int, warmup: int) -> dict[str, list[float]]:
    now = datetime.now(UTC).replace(microsecond=0)
    with postgres_databases(durable_cluster(), ("data", "keys")) as urls:
        store = open_store("envelope", urls["data"], urls["keys"], now)
        try:
            loader = Loader([store], now, store.staff_ids)
            seconds = loader.grow_to(families)
            print(f"{families:,} families loaded in {seconds:.1f} s; {warmup} warm-up reads, "
                  f"then {reads:,} timed...", flush=True)
            marks: dict[str, int] = {}
            original = audit_log.record

            def record(*args: Any, **kwargs: Any) -> Any:
                marks["append"] = time.perf_counter_ns()
                return original(*args, **kwargs)

            def on_commit(_conn: Any) -> None:  # fires just before the DBAPI commit
                marks["commit"] = time.perf_counter_ns()

            def after_commit(_session: Any) -> None:  # fires once the commit returned
                marks["done"] = time.perf_counter_ns()

            event.listen(store.engine, "commit", on_commit)
            event.listen(store.sessions, "after_commit", after_commit)
            audit_log.record = record  # type: ignore[assignment]
            samples: dict[str, list[float]] = {"hold": [], "commit": [], "read": []}
            rng = random.Random(13)
            try:
                for n in range(warmup + reads):
                    actor = dataclasses.replace(store.actor, request_id=uuid.uuid4().hex)
                    marks.clear()
                    started = time.perf_counter_ns()
                    with store.sessions() as session:
                        shared_record(session, store.vault, actor,
                                      rng.choice(loader.family_ids), now)
                    ended = time.perf_counter_ns()
                    if n >= warmup:
                        samples["hold"].append((marks["done"] - marks["append"]) / 1e3)
                        samples["commit"].append((marks["done"] - marks["commit"]) / 1e3)
                        samples["read"].append((ended - started) / 1e3)
            finally:
                audit_log.record = original  # type: ignore[assignment]
            checked = audit_log.verify(store.engine)
            assert checked.ok and checked.entries >= warmup + reads, checked
            return samples
        finally:
            store.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=2_000)
    parser.add_argument("--reads", type=int, default=3_000)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    samples = measure(args.families, args.reads, args.warmup)
    print()
    print("chain head held by one audited shared-record read on PostgreSQL (fsync, "
          "synchronous_commit, full_page_writes on), microseconds, one client")
    print(f"{'':<8} {'median':>8} {'p90':>8} {'p99':>8} {'mean':>8}")
    for name, values in samples.items():
        print(f"{name:<8} {statistics.median(values):>8.0f} {quantile(values, 0.9):>8.0f} "
              f"{quantile(values, 0.99):>8.0f} {statistics.fmean(values):>8.0f}")
    hold = samples["hold"]
    share = statistics.fmean(samples["commit"]) / statistics.fmean(hold)
    print(f"ceiling: 1 / mean hold = {1e6 / statistics.fmean(hold):,.0f} audited acts/s "
          f"(1 / median hold = {1e6 / statistics.median(hold):,.0f}/s) for the whole "
          f"installation, whatever the number of app nodes; the commit (WAL flush) is "
          f"{share:.0%} of the hold")
    print("(hold = from audit.services.record's call, whose first statement locks the head, to "
          "the return of COMMIT; commit = from COMMIT sent to its return; read = the whole use "
          "case; another client's append waits for the whole hold)")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
