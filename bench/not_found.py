"""Benchmark: does the 404 tell a family that does not exist from one that is
not visible? Both must take the same path (the same statements, the same work),
so their medians should be the same.

One application (`create_app`, as `onestory serve` runs it, through Flask's test
client: the whole request, the refusal's audit entry included) with --families
families recorded by the health centre, whose forms grant physiotherapy cells
and ECEC nothing. `ecec1` then asks for a family's record, in rounds:

* absent: a random id no family has (a new one each time);
* invisible: a random one of those families (it exists; ECEC may not know it).

Both answer 404. It prints each one's median, mean and p95 in ms, the ratio
invisible / absent (target: within 5 % of 1.00), and the statements per request
(data database + key store) of each. On SQLite and on a throwaway PostgreSQL
(tests/pg.py) by default; --sqlite or --postgres for one; --quick for a smoke run.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (
    AGENCIES,
    STAFF,
    Pinning,
    Timing,
    counting,
    postgres_databases,
    settle,
    sqlite_databases,
    verdict,
)

from coordination import accounts, migrate
from coordination.app import create_app
from coordination.config import Settings
from coordination.crypto import new_keyring_document
from coordination.db import make_engine

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
READER = "ecec1"  # sees none of the families
RATIO_TARGET = 0.05  # |invisible / absent - 1|
KINDS = ("absent", "invisible")


@dataclass
class Result:
    backend: str
    families: int
    timings: dict[str, Timing] = field(default_factory=lambda: {k: Timing() for k in KINDS})
    statements: dict[str, int] = field(default_factory=dict)
    pinning: str = ""

    @property
    def ratio(self) -> float:
        return self.timings["invisible"].median / self.timings["absent"].median


def absent_id() -> str:
    return "fam_" + secrets.token_hex(10)


def run(backend: str, urls: dict[str, str], families: int, reads: int, pin: bool) -> Result:
    for name, keystore in (("data", False), ("keys", True)):
        engine = make_engine(urls[name])
        migrate.upgrade(engine, keystore=keystore)
        engine.dispose()
    settings = Settings(
        env="production", instance=Path(tempfile.gettempdir()), database_url=urls["data"],
        keystore_url=urls["keys"], keyring_json=json.dumps(new_keyring_document()),
        index_key_text=base64.b64encode(secrets.token_bytes(32)).decode(),
        audit_key_text=base64.b64encode(secrets.token_bytes(32)).decode(),
        secret_key=secrets.token_urlsafe(32))
    app = create_app(settings, clock=lambda: NOW)
    rt = app.extensions["onestory"]
    tokens = {}
    with rt.sessions() as session:
        for slug, name, kind, minimal in AGENCIES:
            accounts.add_agency(session, slug, name, kind, minimal, NOW)
        for username, agency, role in STAFF:
            accounts.add_staff(session, username, agency, role, None, NOW)
            tokens[username] = accounts.create_token(session, username, timedelta(days=1), NOW)
    client = app.test_client()

    def as_(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[who]}"}

    present = []
    for n in range(families):
        made = client.post("/api/v1/families", headers=as_("nurse1"),
                           json={"display_name": f"Family {n}", "birth_date": "2024-03-14"})
        family = made.get_json()["id"]
        client.post(f"/api/v1/families/{family}/entries", headers=as_("nurse1"),
                    json={"field": "health", "value": f"note {n}"})
        client.put(f"/api/v1/families/{family}/consent", headers=as_("coord1"), json={
            "signed_by": "Guardian", "signed_on": "2026-11-22", "method": "paper",
            "purpose": "coordinated support", "legal_basis": "consent",
            "valid_until": "2027-11-22",
            "grants": {"physio": ["involvement", "health"], "health-centre": ["involvement"]}})
        present.append(family)
    for engine in (rt.engine, rt.keystore.engine):
        settle(engine)

    def ask(kind: str) -> float:
        family = absent_id() if kind == "absent" else secrets.choice(present)
        started = time.perf_counter()
        response = client.get(f"/api/v1/families/{family}", headers=as_(READER))
        elapsed = time.perf_counter() - started
        assert response.status_code == 404, response.get_data(as_text=True)
        return elapsed * 1e6

    result = Result(backend, families)
    for kind in KINDS:
        with counting(rt.engine, rt.keystore.engine) as statements:
            ask(kind)
        result.statements[kind] = len(statements)
    pinning = Pinning([rt.engine, rt.keystore.engine], pin)
    result.pinning = pinning.note
    for _ in range(100):  # warm up both paths
        for kind in KINDS:
            ask(kind)
    with pinning.pinned():
        for round_ in range(reads):
            order = KINDS if round_ % 2 == 0 else KINDS[::-1]
            for kind in order:
                result.timings[kind].samples_us.append(ask(kind))
    rt.dispose()
    return result


def report(results: list[Result], reads: int) -> None:
    print()
    print(f"404 for a family that does not exist (absent) and one that is not visible "
          f"(invisible), {reads} requests of each, ms per request")
    header = (f"{'backend':<10} {'families':>8} | {'absent':>7} {'mean':>6} {'p95':>6} | "
              f"{'invisible':>9} {'mean':>6} {'p95':>6} | {'ratio':>6} {'stmts':>6}  "
              f"target 1.00 +/- {RATIO_TARGET:.2f}")
    print(header)
    print("-" * len(header))
    for r in results:
        a, i = r.timings["absent"], r.timings["invisible"]
        stmts = f"{r.statements['absent']}/{r.statements['invisible']}"
        print(f"{r.backend:<10} {r.families:>8,} | {a.median / 1000:>7.2f} {a.mean / 1000:>6.2f} "
              f"{a.p95 / 1000:>6.2f} | {i.median / 1000:>9.2f} {i.mean / 1000:>6.2f} "
              f"{i.p95 / 1000:>6.2f} | {r.ratio:>5.2f}x {stmts:>6}  "
              f"{verdict(abs(r.ratio - 1) <= RATIO_TARGET)}")
    for r in results:
        print(f"{r.backend}: {r.pinning}")
    print("(the whole request through Flask's test client, the refusal's audit entry "
          "included; ratio = invisible / absent, medians; stmts = statements per request, "
          "absent/invisible, data database and key store, SQLite's BEGIN included)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=None,
                        help="families recorded (default 300, --quick 50)")
    parser.add_argument("--reads", type=int, default=None,
                        help="timed requests of each kind (default 2000, --quick 200)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes")
    parser.add_argument("--sqlite", action="store_true", help="only SQLite")
    parser.add_argument("--postgres", action="store_true",
                        help="only PostgreSQL (a throwaway cluster from tests/pg.py)")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin client and server to one CPU each while timing")
    args = parser.parse_args(argv)
    families = args.families or (50 if args.quick else 300)
    reads = args.reads or (200 if args.quick else 2_000)
    backends = [b for b, chosen in (("sqlite", args.sqlite), ("postgresql", args.postgres))
                if chosen] or ["sqlite", "postgresql"]
    started = time.perf_counter()
    results = []
    for backend in backends:
        if backend == "sqlite":
            with sqlite_databases(["data", "keys"], "onestory-bench-404-") as urls:
                results.append(run(backend, urls, families, reads, not args.no_pin))
        else:
            from tests.pg import Cluster

            with postgres_databases(Cluster(), ["data", "keys"]) as urls:
                results.append(run(backend, urls, families, reads, not args.no_pin))
    report(results, reads)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
