"""Benchmark: how long a report takes over 1 000 and 100 000 families, and
what sealing each family's values under its own key costs it.

Two data databases get the same population, bulk-loaded through the driver
(`common._insert`: COPY on PostgreSQL, executemany of 5 000 rows on SQLite, one
commit per 1 000 families):

* the **encrypted store**, as the product runs (`EnvelopeVault`, per-family
  data keys in a key store of its own, wrapped under the master keyring);
* the **plaintext store** (`PlaintextVault`): the baseline, measured in the
  same run on the same rows.

Each family: a sealed name, an area (sealed; 85 % have one, of 8 districts),
1 to 4 involved agencies, a consent form (85 % say `statistics: true`; 5 %
have none), a free-text entry (never opened by a report), a needs entry for
60 % (1 to 3 of De Sloep's codes), 1 or 2 attendance entries for half, and a
referral for 30 % (accepted in most cases, an appointment attended in most
of those). Dates fall over the 18 months before NOW.

Then every report (`coordination.reports.services.run_report`, as the API
calls it: role check, facts a chunk at a time with the chunk's keys fetched
in one key-store query, figures, disclosure control, audit entry, commit) is
timed as an evaluator over the 12 months before NOW, grouped by agency (and
`needs` also by area, which opens every family's area), on both stores, at
1 000 families and again after growing the same databases to --families
(100 000 by default). It prints per report: the median seconds on each store,
the ratio encrypted / plaintext, the time per 1 000 families at each size
(flat = linear), the statements per run, and the peak Python memory of one run
(tracemalloc, in a run of its own: bounded by the chunk, except for the
medians' samples, one number per family in a group).

    make bench                                      # SQLite, 1 000 then 100 000 families
    .venv/bin/python bench/reports.py --postgres    # on a throwaway PostgreSQL instead
    .venv/bin/python bench/reports.py --quick       # smoke run: 200 then 2 000 families
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (
    AGENCIES,
    CHUNK_FAMILIES,
    FIRST,
    LAST,
    Index,
    Seal,
    Store,
    _insert,
    _resolve,
    counting,
    open_store,
    postgres_databases,
    settle,
    sqlite_databases,
)
from sqlalchemy import Table, text

from consent.tables import ConsentCellRow, ConsentFormRow
from coordination import accounts
from coordination.actors import Actor
from coordination.keystore import DataKey
from coordination.model import (
    AgencyArea,
    Appointment,
    Entry,
    Family,
    Involvement,
    Referral,
    ReferralEvent,
)
from coordination.reports.figures import NEED_CODES
from coordination.reports.services import run_report

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PERIOD = ("2025-12", "2026-11")
AREAS = [(f"D{n}", f"District {n}") for n in range(1, 9)]
AGENCY_IDS = [slug for slug, *_ in AGENCIES]
# De Sloep's 2014 reception counts (DOMAIN.md), as weights of the codes.
NEED_WEIGHTS = [441, 427, 390, 389, 316, 267, 256, 241, 133, 92, 45, 356]
RUNS: list[tuple[str, str]] = [("needs", "agency"), ("needs", "area"),
                               ("involvement", "agency"), ("consent-coverage", "agency"),
                               ("referrals", "agency"), ("attendance", "agency")]
K = 10


@dataclass
class Population:
    """Generates families once; each store seals and inserts them."""

    stores: list[Store]
    staff_ids: dict[str, int]
    rng: random.Random = field(default_factory=lambda: random.Random(20261130))
    families: int = 0
    next_involvement: int = 1
    next_form: int = 1
    generate_seconds: float = 0.0

    def hex_id(self, prefix: str) -> str:
        return f"{prefix}_{self.rng.getrandbits(80):020x}"

    def grow_to(self, total: int) -> None:
        while self.families < total:
            self._chunk(min(CHUNK_FAMILIES, total - self.families))
        for store in self.stores:
            started = time.perf_counter()
            if store.engine.dialect.name == "postgresql":
                with store.engine.begin() as conn:
                    for table in ("involvements", "consent_forms"):
                        conn.execute(text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                            f"(SELECT max(id) FROM {table}))"))
            for engine in store.engines:
                settle(engine)
            store.load_seconds += time.perf_counter() - started

    def _chunk(self, count: int) -> None:
        started = time.perf_counter()
        fids, tables = self._generate(count)
        self.generate_seconds += time.perf_counter() - started
        for store in self.stores:
            started = time.perf_counter()
            ciphers, key_rows = store.ciphers(fids, NOW)
            if store.keystore is not None:
                with store.keystore.engine.begin() as conn:
                    _insert(conn, DataKey.__table__, key_rows)  # type: ignore[arg-type]
            with store.sessions() as session:
                for table, rows in tables:
                    _insert(session, table, _resolve(rows, ciphers, store.vault))
                    store.rows += len(rows)
                session.commit()
            store.load_seconds += time.perf_counter() - started

    def _generate(self, count: int) -> tuple[list[str], list[tuple[Table, list[dict[str, Any]]]]]:
        rng = self.rng
        staff = self.staff_ids
        out: dict[str, list[dict[str, Any]]] = {
            name: [] for name in ("families", "involvements", "forms", "cells", "entries",
                                  "referrals", "events", "appointments")}
        fids = []
        for _ in range(count):
            self.families += 1
            fid = self.hex_id("fam")
            fids.append(fid)

            def seal(table: str, column: str, row_id: str, value: str, fid: str = fid) -> Seal:
                return Seal(fid, table, column, row_id, value)

            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            created = NOW - timedelta(days=rng.randrange(1, 540), seconds=rng.randrange(86_400))
            area = rng.choice(AREAS)[0] if rng.random() < 0.85 else None
            out["families"].append({
                "id": fid, "display_name": seal("families", "display_name", fid, name),
                "name_index": Index("name", name), "birth_date_index": None,
                "birth_date": None, "address": None, "national_id": None, "languages": None,
                "area": seal("families", "area", fid, area) if area else None,
                "recorded_by_agency": "health-centre", "created_at": created})
            agencies = ["health-centre", *rng.sample(AGENCY_IDS[1:], rng.choice([0, 0, 1, 1,
                                                                                2, 3]))]
            for agency in agencies:
                closed = rng.random() < 0.2
                out["involvements"].append({
                    "id": self.next_involvement, "family_id": fid, "agency_id": agency,
                    "status": "closed" if closed else "active", "since": created.date(),
                    "contact_worker_id": None, "contact_since": None, "created_at": created,
                    "updated_at": created + timedelta(days=rng.randrange(30, 200))
                    if closed else created})
                self.next_involvement += 1
            if rng.random() < 0.95:
                form_id = self.next_form
                self.next_form += 1
                out["forms"].append({
                    "id": form_id, "family_id": fid, "version": 1,
                    "signed_by": seal("consent_forms", "signed_by", "v1", "Guardian"),
                    "signed_on": created.date(), "recorded_at": created, "method": "paper",
                    "witness": "coord1", "interpreter_language": None,
                    "purpose": seal("consent_forms", "purpose", "v1", "coordinated support"),
                    "legal_basis": "consent", "valid_until": (NOW + timedelta(days=200)).date(),
                    "change": "signed", "changed_by": "coord1",
                    "statistics": rng.random() < 0.85 / 0.95})
                out["cells"].extend({"form_id": form_id, "agency_id": agency, "field_id": f}
                                    for agency in agencies for f in ("involvement", "health"))

            def entry(kind: str, field_id: str, data: str, author: str = "nurse1",
                      agency: str = "health-centre", fid: str = fid,
                      created: datetime = created) -> None:
                entry_id = self.hex_id("ent")
                written = created + timedelta(days=rng.randrange(0, 120))
                out["entries"].append({
                    "id": entry_id, "family_id": fid, "field_id": field_id,
                    "agency_id": agency, "author_id": staff[author],
                    "written_at": min(written, NOW), "kind": kind,
                    "value": Seal(fid, "entries", "value", entry_id, data)})

            entry("text", "story", "Moved here last year; asked for help with a GP.")
            if rng.random() < 0.6:
                codes = sorted(set(rng.choices(NEED_CODES, NEED_WEIGHTS, k=rng.randint(1, 3))))
                entry("needs", "social", json.dumps({"codes": codes}))
            if rng.random() < 0.5:
                for _ in range(rng.randint(1, 2)):
                    offered = rng.randint(10, 60)
                    data = {"attended": rng.randint(offered // 3, offered), "offered": offered,
                            "from": "2026-01-05", "to": "2026-03-27"}
                    entry("attendance", "education", json.dumps(data), "ecec1", "ecec")
            if rng.random() < 0.3:
                self._referral(fid, created, out)
        tables = [(Family.__table__, out["families"]),
                  (Involvement.__table__, out["involvements"]),
                  (ConsentFormRow.__table__, out["forms"]),
                  (ConsentCellRow.__table__, out["cells"]),
                  (Entry.__table__, out["entries"]),
                  (Referral.__table__, out["referrals"]),
                  (ReferralEvent.__table__, out["events"]),
                  (Appointment.__table__, out["appointments"])]
        return fids, tables  # type: ignore[return-value]

    def _referral(self, fid: str, created: datetime, out: dict[str, list[dict[str, Any]]]
                  ) -> None:
        rng = self.rng
        ref_id = self.hex_id("ref")
        made = created + timedelta(days=rng.randrange(0, 60))
        to = rng.choice(AGENCY_IDS[1:])
        steps = ["sent"]
        if rng.random() < 0.8:
            steps += ["accepted", "booked"]
            steps.append("attended" if rng.random() < 0.75 else "missed")
        elif rng.random() < 0.5:
            steps.append("declined")
        out["referrals"].append({
            "id": ref_id, "family_id": fid, "from_agency": "health-centre", "to_agency": to,
            "state": steps[-1], "urgency": "routine", "created_at": made,
            "respond_by": (made + timedelta(days=14)).date(), "interpreter_language": None,
            "accompany": False, "fields": "involvement,health",
            "reason": Seal(fid, "referrals", "reason", ref_id, "Please assess.")})
        at = made
        for seq, state in enumerate(steps, start=1):
            at += timedelta(days=rng.randrange(1, 20), hours=rng.randrange(24))
            out["events"].append({"referral_id": ref_id, "seq": seq, "at": at, "state": state,
                                  "by": "coord1", "agency_id": to, "note": None})
        if "booked" in steps:
            apt = self.hex_id("apt")
            out["appointments"].append({
                "id": apt, "referral_id": ref_id, "at": at,
                "place": Seal(fid, "appointments", "place", apt, "Room 4"),
                "interpreter_language": None, "accompanied_by": None, "outcome": steps[-1],
                "note": None, "created_at": at})


def evaluator(store: Store) -> Actor:
    with store.sessions() as session:
        accounts.add_staff(session, "eval1", "health-centre", "evaluator", None, NOW)
        for code, name in AREAS:
            session.add(AgencyArea(agency_id="health-centre", code=code, name=name))
        session.commit()
        token = accounts.create_token(session, "eval1", timedelta(days=1), NOW)
        return accounts.authenticate(session, token, NOW)


@dataclass
class Measure:
    seconds: dict[str, list[float]] = field(default_factory=dict)
    statements: int = 0
    peak_mb: float = 0.0
    rows: int = 0
    suppressed: int = 0


def run_once(store: Store, actor: Actor, name: str, by: str) -> Any:
    with store.sessions() as session:
        return run_report(session, store.vault, actor, name, *PERIOD, by, NOW, k=K)


def measure(stores: dict[str, Store], actors: dict[str, Actor], repeats: int
            ) -> dict[tuple[str, str], Measure]:
    results: dict[tuple[str, str], Measure] = {}
    for name, by in RUNS:
        found = results[(name, by)] = Measure()
        for kind, store in stores.items():
            run_once(store, actors[kind], name, by)  # warm the caches
        for _ in range(repeats):
            for kind, store in stores.items():  # interleaved, so load moves both alike
                started = time.perf_counter()
                report = run_once(store, actors[kind], name, by)
                found.seconds.setdefault(kind, []).append(time.perf_counter() - started)
        encrypted = stores["encrypted"]
        with counting(*encrypted.engines) as statements:
            report = run_once(encrypted, actors["encrypted"], name, by)
        found.statements = len(statements)
        found.rows, found.suppressed = len(report.rows), report.suppressed
        plain = run_once(stores["plaintext"], actors["plaintext"], name, by)
        assert plain.out() == report.out(), f"{name} by {by}: the stores disagree"
        tracemalloc.start()
        run_once(encrypted, actors["encrypted"], name, by)
        found.peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        print(f"  {name} by {by}: sealed {median(found.seconds['encrypted']):.2f} s, "
              f"plaintext {median(found.seconds['plaintext']):.2f} s", flush=True)
    return results


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(sizes: list[tuple[int, dict[tuple[str, str], Measure]]]) -> None:
    (small, at_small), (large, at_large) = sizes
    print(f"\nreports over {PERIOD[0]}..{PERIOD[1]}, k={K}, as an evaluator; seconds are "
          "medians of the runs")
    header = (f"{'report':<26}{'families':>9}{'plain s':>9}{'sealed s':>10}{'ratio':>7}"
              f"{'s/1000':>8}{'stmts':>7}{'peak MB':>9}{'rows':>6}{'withheld':>9}")
    print(header)
    print("-" * len(header))
    for key in RUNS:
        label = f"{key[0]} by {key[1]}"
        for families, results in ((small, at_small), (large, at_large)):
            m = results[key]
            plain, sealed = median(m.seconds["plaintext"]), median(m.seconds["encrypted"])
            print(f"{label:<26}{families:>9}{plain:>9.3f}{sealed:>10.3f}"
                  f"{sealed / plain:>6.2f}x{sealed / families * 1000:>8.3f}{m.statements:>7}"
                  f"{m.peak_mb:>9.1f}{m.rows:>6}{m.suppressed:>9}")
        growth = (median(at_large[key].seconds["encrypted"]) / large) / (
            median(at_small[key].seconds["encrypted"]) / small)
        print(f"{'':<26}time per family, {large} against {small}: {growth:.2f}x")


def run(backend: str, urls: dict[str, str], small: int, large: int) -> None:
    stores = {"plaintext": open_store("plaintext", urls["plain"], None, NOW),
              "encrypted": open_store("encrypted", urls["data"], urls["keys"], NOW)}
    actors = {kind: evaluator(store) for kind, store in stores.items()}
    population = Population(list(stores.values()), stores["encrypted"].staff_ids)
    sizes = []
    for size, repeats in ((small, 5), (large, 3)):
        started = time.perf_counter()
        population.grow_to(size)
        took = time.perf_counter() - started
        loads = ", ".join(f"{s.name} {s.load_seconds:.1f} s" for s in stores.values())
        print(f"{backend}: {size} families loaded ({took:.1f} s for this step; so far: "
              f"generating {population.generate_seconds:.1f} s, {loads}; "
              f"{stores['encrypted'].rows} rows per store)", flush=True)
        sizes.append((size, measure(stores, actors, repeats)))
    print_table(sizes)
    for store in stores.values():
        store.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=None,
                        help="the large size (default 100 000, --quick 2 000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200, then 2 000")
    parser.add_argument("--postgres", action="store_true",
                        help="PostgreSQL (a throwaway cluster from tests/pg.py), not SQLite")
    args = parser.parse_args(argv)
    small = 200 if args.quick else 1_000
    large = args.families or (2_000 if args.quick else 100_000)
    started = time.perf_counter()
    opener: Callable[[], Any]
    if args.postgres:
        from tests.pg import Cluster

        def opener() -> Any:
            return postgres_databases(Cluster(), ["plain", "data", "keys"])
        backend = "postgresql"
    else:
        def opener() -> Any:
            return sqlite_databases(["plain", "data", "keys"], "onestory-bench-reports-")
        backend = "sqlite"
    with opener() as urls:
        run(backend, urls, small, large)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
