"""Benchmark: what searching by words and birth dates costs against the search
it replaced (the whole recorded name through `families.name_index`).

One application (`create_app`, as `onestory serve` builds it) with --families
families recorded by the health centre through `casework.families.create_family`
(so every family is indexed as the product indexes it): a name of a first name
and a family name drawn from small pools (so that words repeat, as real names
do), a birth date, and two members with their own names and birth dates. Half
the families grant physiotherapy `involvement`; `physio1` searches, so half of
every match is filtered out by visibility inside the query.

Each request is one use case with a fresh session, audit append and commit
included, in rounds whose order alternates (families' receipt PINs are
hashed at a cheap cost while loading):

* exact (the baseline): the previous search, re-stated here as it was: the
  whole name's blind index compared with `families.name_index`;
* whole name: `search_families` with the same whole name (now two words);
* one word: a family name alone (matches many families);
* birth date: a birth date alone (the family's or a member's);
* word + date: a first name and a birth date.

It prints each one's median and p95 in ms, its ratio to the baseline's median,
the families found on average, and the statements per request. On SQLite and a
throwaway PostgreSQL (tests/pg.py) by default; --sqlite or --postgres for one;
--quick for a smoke run.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (
    AGENCIES,
    STAFF,
    Timing,
    counting,
    postgres_databases,
    settle,
    sqlite_databases,
)
from sqlalchemy import select

from audit.model import Action
from coordination import accounts, migrate
from coordination.app import create_app
from coordination.casework import consent_forms, families
from coordination.casework.common import _audit, _visible_to
from coordination.config import Settings
from coordination.crypto import new_keyring_document
from coordination.db import make_engine
from coordination.model import Family

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
FIRST = ["Aylin", "Emir", "Ayşe", "Mehmet", "Fatma", "Ali", "Zeynep", "Yusuf", "Elif", "Omar",
         "Sara", "Jonas", "Nora", "Mira", "Lukas", "Ida", "Amir", "Leyla", "Noah", "Hanna"]
LAST = [f"{stem}{suffix}" for stem in ("Demir", "Yılmaz", "Kaya", "Şahin", "Hansen", "Berg",
                                       "Haddad", "Novak", "Silva", "Popescu")
        for suffix in ("", "oğlu", "sen", "ová", "escu", "i", "son", "er", "ski", "an")]
KINDS = ("exact", "whole name", "one word", "birth date", "word + date")


def birth(rng: random.Random) -> date:
    return date(2012, 1, 1) + timedelta(days=rng.randrange(12 * 365))


def exact_search(session: Any, vault: Any, actor: Any, name: str, now: datetime
                 ) -> list[dict[str, str]]:
    """The search before words: the whole name's blind index, one query, the
    found names opened, the search audited and committed."""
    rows = session.execute(
        select(Family.id, Family.display_name)
        .where(Family.name_index == vault.blind_index("name", name),
               _visible_to(str(actor.agency_id), now))
        .order_by(Family.created_at, Family.id).limit(families.SEARCH_LIMIT)).all()
    ciphers = vault.for_families([row.id for row in rows])
    found = [{"id": row.id, "display_name": ciphers[row.id].open(
        "families", "display_name", row.id, row.display_name)} for row in rows]
    _audit(session, actor, Action.FAMILY_SEARCH, now, found=[f["id"] for f in found])
    session.commit()
    return found


@dataclass
class Result:
    backend: str
    families: int
    timings: dict[str, Timing] = field(default_factory=lambda: {k: Timing() for k in KINDS})
    found: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in KINDS})
    statements: dict[str, int] = field(default_factory=dict)


def run(backend: str, urls: dict[str, str], count: int, reads: int) -> Result:
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
    # The family's receipt PIN is hashed at a cheap cost while loading (as the
    # tests do): the PIN is not what is measured, and argon2 at the product's
    # cost would make loading take minutes.
    from argon2 import PasswordHasher

    import consent.services

    consent.services._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    rng = random.Random(20261130)
    people: list[tuple[str, str, date]] = []  # (first, last, a birth date in the family)
    with rt.sessions() as session:
        for slug, name, kind, minimal in AGENCIES:
            accounts.add_agency(session, slug, name, kind, minimal, NOW)
        for username, agency, role in STAFF:
            accounts.add_staff(session, username, agency, role, None, NOW)

        def as_user(username: str) -> Any:
            token = accounts.create_token(session, username, timedelta(days=1), NOW)
            return accounts.authenticate(session, token, NOW)

        nurse, coord = as_user("nurse1"), as_user("coord1")
        loading = time.perf_counter()
        for n in range(count):
            first, last, born = rng.choice(FIRST), rng.choice(LAST), birth(rng)
            child = birth(rng)
            created = families.create_family(session, rt.vault, nurse, {
                "display_name": f"{first} {last}", "birth_date": born,
                "members": [{"name": f"{rng.choice(FIRST)} {last}", "relation": "child",
                             "birth_date": child},
                            {"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                             "relation": "parent"}]}, NOW)
            if n % 2 == 0:
                consent_forms.record_consent(session, rt.vault, coord, created["id"], {
                    "signed_by": "Guardian", "signed_on": NOW.date(), "method": "paper",
                    "purpose": "coordinated support", "legal_basis": "consent",
                    "valid_until": NOW.date() + timedelta(days=365),
                    "grants": {"physio": ["involvement"]}}, NOW)
            people.append((first, last, child))
        print(f"{backend}: {count} families recorded and indexed in "
              f"{time.perf_counter() - loading:.0f} s", file=sys.stderr)
        reader = as_user("physio1")
    for engine in (rt.engine, rt.keystore.engine):
        settle(engine)

    def ask(kind: str) -> Callable[[Any], list[dict[str, str]]]:
        first, last, child = rng.choice(people)
        if kind == "exact":
            return lambda s: exact_search(s, rt.vault, reader, f"{first} {last}", NOW)
        name, day = {"whole name": (f"{first} {last}", None), "one word": (last, None),
                     "birth date": (None, child), "word + date": (first, child)}[kind]
        return lambda s: families.search_families(s, rt.vault, reader, name, day, NOW)

    def timed(kind: str) -> tuple[float, int]:
        work = ask(kind)
        with rt.sessions() as session:
            started = time.perf_counter()
            found = work(session)
            return (time.perf_counter() - started) * 1e6, len(found)

    result = Result(backend, count)
    for kind in KINDS:
        with counting(rt.engine, rt.keystore.engine) as statements:
            timed(kind)
        result.statements[kind] = len(statements)
    for _ in range(50):
        for kind in KINDS:
            timed(kind)
    for round_ in range(reads):
        for kind in (KINDS if round_ % 2 == 0 else KINDS[::-1]):
            elapsed, found = timed(kind)
            result.timings[kind].samples_us.append(elapsed)
            result.found[kind].append(found)
    rt.dispose()
    return result


def report(results: list[Result], reads: int) -> None:
    print()
    print(f"search as physio1 (half the families visible), {reads} searches of each kind, "
          "ms per search")
    header = (f"{'backend':<10} {'families':>8} {'kind':<12} | {'median':>7} {'p95':>6} | "
              f"{'ratio':>6} | {'found':>6} {'stmts':>5}")
    print(header)
    print("-" * len(header))
    for r in results:
        base = r.timings["exact"].median
        for kind in KINDS:
            t = r.timings[kind]
            found = sum(r.found[kind]) / len(r.found[kind])
            print(f"{r.backend:<10} {r.families:>8,} {kind:<12} | {t.median / 1000:>7.2f} "
                  f"{t.p95 / 1000:>6.2f} | {t.median / base:>5.2f}x | {found:>6.1f} "
                  f"{r.statements[kind]:>5}")
    print("(one use case each, fresh session, audit append and commit included; ratio = "
          "median / the exact whole-name search's median; found = families per answer, "
          "mean; stmts = statements, data database and key store)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=None,
                        help="families recorded (default 2000, --quick 200)")
    parser.add_argument("--reads", type=int, default=None,
                        help="timed searches of each kind (default 500, --quick 100)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes")
    parser.add_argument("--sqlite", action="store_true", help="only SQLite")
    parser.add_argument("--postgres", action="store_true",
                        help="only PostgreSQL (a throwaway cluster from tests/pg.py)")
    args = parser.parse_args(argv)
    count = args.families or (200 if args.quick else 2_000)
    reads = args.reads or (100 if args.quick else 500)
    backends = [b for b, chosen in (("sqlite", args.sqlite), ("postgresql", args.postgres))
                if chosen] or ["sqlite", "postgresql"]
    started = time.perf_counter()
    results = []
    for backend in backends:
        if backend == "sqlite":
            with sqlite_databases(["data", "keys"], "onestory-bench-search-") as urls:
                results.append(run(backend, urls, count, reads))
        else:
            from tests.pg import Cluster

            with postgres_databases(Cluster(), ["data", "keys"]) as urls:
                results.append(run(backend, urls, count, reads))
    report(results, reads)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
