"""Benchmark: OneStory at load, over HTTP, as production runs it, against a floor.

1. Starts a throwaway PostgreSQL cluster with fsync, full_page_writes and
   synchronous_commit on (`common.durable_cluster`), with a data database and a
   key store database.
2. Sets OneStory up as the README's "Production deployment" does: `onestory keys
   init` (keyring, index key, audit signing key, each a 0600 file), a secret key
   file, the ONESTORY_* variables naming them and both databases, `onestory init`.
3. Adds the case's agencies and staff (`common.add_case_accounts`, through
   `coordination.accounts` as the command line does) and API tokens for
   `physio1` (reads and searches) and `nurse1` (entry writes), then bulk-loads
   --families families sealed with the installation's keys
   (`common.Loader`, each family with its own data key in the key store,
   indexed for search). Each family's consent form grants physiotherapy its
   `involvement` and `health` cells: physio1 reads every family.
4. Starts `onestory serve --host 127.0.0.1 --port P --workers 4` on a free
   port and, beside it, bench/floor_app.py under the same gunicorn set-up and
   worker count, and drives both with wrk (Debian's package, installed here when
   it is not on PATH) through bench/load.lua:
   * one connection at a time (sequential): /healthz, then a shared-record read;
   * --connections connections: shared-record reads (`GET
     /api/v1/families/<id>`, every family in turn, in random order, as physio1),
     the same on the floor, /healthz on both, searches (`GET
     /api/v1/families?name=<the family's name>&birth_date=<its birth date>`, as
     physio1), entry writes (`POST /api/v1/families/<id>/entries`, as nurse1).
5. For each run: requests/s, p50/p99 latency (wrk), errors (answers other than
   2xx in the server's access log, plus wrk's socket errors), CPU per request
   (the CPU seconds the server's processes, all gunicorn workers and its
   master, and the whole PostgreSQL cluster, postmaster and every backend,
   used over the run, from /proc, divided by the requests the server answered),
   the CPU the rest of the machine used meanwhile, and for audited runs whether
   the log grew by exactly the requests answered with 2xx (audit_log for
   OneStory, the floor's plain table for the floor).

It prints the application's figures as ratios to the floor's and the issue's
targets as MET / NOT MET. It exits 0 whatever the figures; 1 when the benchmark
itself could not run. `python bench/load.py --help` for the options.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

# As in the other benchmarks: the project root before bench/ on the module path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import Loader, Store, add_case_accounts, durable_cluster
from floor_app import log_table
from loadtools import (
    ToolOutputError,
    WrkResult,
    access_statuses,
    cpu_seconds,
    log_exact,
    machine_busy_seconds,
    ok_count,
    parse_wrk,
)
from sqlalchemy import Engine, Table, create_engine, func, select
from sqlalchemy.pool import StaticPool

from audit.model import Action, AuditEntry
from coordination import accounts
from coordination.config import load_settings
from coordination.crypto import write_secret_file
from coordination.runtime import Runtime

if TYPE_CHECKING:
    from tests.pg import Cluster

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "load.lua"
WORKERS = 4  # `onestory serve --workers 4`, as the README's production section runs it
WRITER = "nurse1"  # the health centre is involved with every family: it may write
WRITE_FIELD = "health"
WRITE_TEXT = "Follow-up {n}: walks with support; next review in four weeks."
WARMUP_SECONDS = 2
WRK_TIMEOUT = 2  # seconds: a request not answered by then counts as an error (wrk's default)
START_TIMEOUT = 60.0
# The targets (issue 13, "Targets").
READS_TARGET = 500.0  # audited shared-record reads per second, 0 errors
CPU_TARGET = 1.5  # CPU per read, OneStory / floor
SINGLE_TARGET = 3.0  # one read over HTTP / one /healthz, sequential p50
OTHER_TARGET = 300.0  # searches and entry writes per second
AUDIT = "audit_log"


class BenchError(Exception):
    """The benchmark itself cannot go on (a tool missing or failing)."""


# --- tools --------------------------------------------------------------------------


def ensure_wrk() -> str:
    """wrk's path; installs Debian's package first when it is not on PATH."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is not on PATH: apt-get update && apt-get install -y wrk", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
        try:
            result = subprocess.run(command, env=env, capture_output=True, text=True,
                                    timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"{' '.join(command)} failed: {exc}; install wrk") from exc
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"{' '.join(command)} failed ({result.returncode}): {last}")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is still not on PATH after installing Debian's package")
    return found


def onestory_command() -> list[str]:
    script = Path(sys.executable).parent / "onestory"
    return [str(script)] if script.exists() else [sys.executable, "-m", "coordination.cli"]


def onestory(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([*onestory_command(), *args], env=env, capture_output=True,
                            text=True, timeout=300)
    if result.returncode != 0:
        raise BenchError(f"onestory {args[0]} failed ({result.returncode}): "
                         f"{result.stderr.strip()[-500:]}")
    return result.stdout


# --- the installation ---------------------------------------------------------------


@dataclass
class Installation:
    env: dict[str, str]  # the ONESTORY_* variables `onestory serve` runs with
    data_url: str
    reader_token: str
    writer_token: str
    family_ids: list[str]
    people: dict[str, tuple[str, Any]]  # family id: (name, birth date)
    load_seconds: float


def production_env(folder: Path, data_url: str, keys_url: str) -> dict[str, str]:
    """Keys and variables as the README's production section makes them."""
    keys = folder / "etc"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESTORY_")}
    env.update({
        "ONESTORY_INSTANCE": str(folder / "instance"),
        "ONESTORY_DATABASE_URL": data_url,
        "ONESTORY_KEYSTORE_URL": keys_url,
        "ONESTORY_KEYRING_FILE": str(keys / "keyring.json"),
        "ONESTORY_INDEX_KEY_FILE": str(keys / "index_key"),
        "ONESTORY_AUDIT_SIGNING_KEY_FILE": str(keys / "audit_signing_key"),
        "ONESTORY_SECRET_KEY_FILE": str(keys / "secret_key"),
        "PYTHONUNBUFFERED": "1",
    })
    onestory(env, "keys", "init", "--keyring-file", env["ONESTORY_KEYRING_FILE"],
             "--index-key-file", env["ONESTORY_INDEX_KEY_FILE"],
             "--audit-key-file", env["ONESTORY_AUDIT_SIGNING_KEY_FILE"])
    write_secret_file(Path(env["ONESTORY_SECRET_KEY_FILE"]), secrets.token_urlsafe(48) + "\n")
    onestory(env, "init")
    return env


def install(cluster: Cluster, folder: Path, families: int) -> Installation:
    from tests.pg import create_database

    data_url = create_database(cluster.admin_url)
    env = production_env(folder, data_url, create_database(cluster.admin_url))
    rt = Runtime.build(load_settings(env))
    try:
        now = rt.now().replace(microsecond=0)
        staff_ids, actor, reader_token = add_case_accounts(rt.sessions, now)
        with rt.sessions() as session:
            writer_token = accounts.create_token(session, WRITER, timedelta(hours=2), now)
        store = Store("data", rt.engine, rt.sessions, rt.vault, actor, staff_ids, rt.keystore)
        loader = Loader([store], now, staff_ids, index_search=True)
        print(f"loading {families:,} families...", flush=True)
        seconds = loader.grow_to(families)
        return Installation(env, data_url, reader_token, writer_token, loader.family_ids,
                            loader.people, seconds)
    finally:
        rt.dispose()


def request_files(folder: Path, inst: Installation, rng: random.Random) -> dict[str, Path]:
    """One file of requests per kind, for bench/load.lua: every family once, in
    random order."""
    ids = list(inst.family_ids)
    rng.shuffle(ids)
    lines: dict[str, list[str]] = {
        "healthz": ["GET\t/healthz"],
        "read": [f"GET\t/api/v1/families/{fid}" for fid in ids],
        "search": [],
        "write": [],
    }
    for n, fid in enumerate(ids):
        name, born = inst.people[fid]
        query = urllib.parse.urlencode({"name": name, "birth_date": born.isoformat()})
        lines["search"].append(f"GET\t/api/v1/families?{query}")
        body = json.dumps({"field": WRITE_FIELD, "value": WRITE_TEXT.format(n=n)})
        lines["write"].append(f"POST\t/api/v1/families/{fid}/entries\t{body}")
    paths = {}
    for kind, requests in lines.items():
        path = folder / f"{kind}.txt"
        path.write_text("\n".join(requests) + "\n")
        paths[kind] = path
    return paths


# --- the servers --------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_size(self) -> int:
        return self.log.stat().st_size

    def statuses_since(self, offset: int) -> Counter[int]:
        with self.log.open("rb") as handle:
            handle.seek(offset)
            return access_statuses(handle.read().decode(errors="replace").splitlines())

    def wait_idle(self) -> None:
        """Until the access log has not grown for half a second (the requests
        in flight when wrk stopped are answered)."""
        deadline = time.monotonic() + 30
        size = self.log_size()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.log_size()
            if now == size:
                return
            size = now
        raise BenchError(f"the {self.name} server did not go idle within 30 s")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


def free_port() -> int:
    from tests.pg import free_port as pick

    return pick()


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@contextmanager
def running(name: str, command: Sequence[str], env: dict[str, str], log: Path,
            port: int) -> Iterator[Server]:
    """A server started in its own process group, answering /healthz; always
    stopped (SIGTERM to its group, then SIGKILL)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(list(command), env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=log.parent, start_new_session=True)
    server = Server(name, proc, log, port)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise BenchError(f"the {name} server exited with {proc.returncode}:\n"
                                 f"{server.tail()}")
            with suppress(OSError):
                if _get(f"{server.base}/healthz") == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError(f"the {name} server did not answer /healthz within "
                                 f"{START_TIMEOUT:.0f} s:\n{server.tail()}")
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # workers left behind by a master gone first


# --- the runs -----------------------------------------------------------------------


@dataclass
class Run:
    label: str
    server: str
    connections: int
    wrk: WrkResult
    statuses: Counter[int]  # answers by status, from the server's access log
    cpu_seconds: float  # the server's processes and the PostgreSQL cluster
    db_seconds: float  # of which the PostgreSQL cluster's
    client_seconds: float  # wrk's own CPU
    other_seconds: float  # the rest of the machine
    wall_seconds: float
    logged: Counter[str] | None = None  # rows the run added to its log table, by action
    expected_action: str | None = None

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return ok_count(self.statuses)

    @property
    def errors(self) -> int:
        return self.answered - self.ok + self.wrk.socket_errors

    @property
    def error_detail(self) -> str:
        """What the errors were: statuses other than 2xx, and wrk's socket errors."""
        parts = [f"{status} x{n}" for status, n in sorted(self.statuses.items())
                 if not 200 <= status < 300]
        parts += self.wrk.socket_error_parts(WRK_TIMEOUT)
        return ", ".join(parts)

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds * 1000 / self.answered if self.answered else float("nan")

    @property
    def db_ms(self) -> float:
        return self.db_seconds * 1000 / self.answered if self.answered else float("nan")

    @property
    def other_percent(self) -> float:
        return self.other_seconds / self.wall_seconds * 100 if self.wall_seconds else 0.0

    @property
    def log_growth(self) -> int:
        return sum(self.logged.values()) if self.logged is not None else 0

    @property
    def log_exact(self) -> bool:
        """The log grew by exactly one row per 2xx answer, all of the run's action."""
        return self.logged is None or log_exact(self.logged, self.ok, self.expected_action)


@dataclass
class Bench:
    wrk: str
    engine: Engine  # the bench's own connection to the data database (one, kept open)
    postmaster: int
    threads: int
    rng: random.Random
    runs: list[Run] = field(default_factory=list)

    def log_mark(self, table: Table | None) -> int:
        if table is None:
            return 0
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(table.c.seq), 0))).scalar_one())

    def log_since(self, table: Table, mark: int) -> Counter[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.action, func.count())
                                .where(table.c.seq > mark).group_by(table.c.action)).all()
        return Counter({str(action): int(n) for action, n in rows})

    def drive(self, server: Server, label: str, requests: Path, token: str | None,
              connections: int, seconds: int, log: Table | None = None,
              action: str | None = None, keep: bool = True) -> Run:
        """One wrk run against `server`; `log`: the table the run must grow by
        one row per 2xx answer."""
        threads = min(self.threads, connections)
        # Each run begins at a random place in the file: not on the families
        # the runs before it have just read.
        with requests.open() as handle:
            start = self.rng.randrange(sum(1 for _ in handle))
        mark = self.log_mark(log)
        offset = server.log_size()
        roots = [server.proc.pid, self.postmaster]
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine = os.times()
        busy, served, started = machine_busy_seconds(), cpu_seconds(roots), time.monotonic()
        database = cpu_seconds([self.postmaster])
        command = [self.wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                   "--timeout", f"{WRK_TIMEOUT}s", "-s", str(LUA), server.base,
                   "--", str(requests), token or "-", str(threads), str(start)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
        if result.returncode != 0:
            raise BenchError(f"wrk failed ({result.returncode}): {result.stderr.strip()[-500:]}")
        try:
            summary = parse_wrk(result.stdout)
        except ToolOutputError as exc:
            raise BenchError(f"{exc}:\n{result.stdout[-1000:]}{result.stderr[-500:]}") from exc
        server.wait_idle()
        wall = time.monotonic() - started
        served = cpu_seconds(roots) - served
        database = cpu_seconds([self.postmaster]) - database
        busy = machine_busy_seconds() - busy
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
        me = os.times()
        own = (me.user - mine.user) + (me.system - mine.system)
        run = Run(label, server.name, connections, summary, server.statuses_since(offset),
                  served, database, client, max(0.0, busy - served - client - own), wall)
        if log is not None:
            run.logged = self.log_since(log, mark)
            run.expected_action = action
        if keep:
            self.runs.append(run)
        return run


def audit_row_template(engine: Engine) -> dict[str, Any]:
    """The newest `record.read` entry's columns but seq: the floor appends rows
    of this size."""
    log: Table = AuditEntry.__table__  # type: ignore[assignment]
    with engine.connect() as conn:
        row = conn.execute(select(log).where(log.c.action == Action.RECORD_READ.value)
                           .order_by(log.c.seq.desc()).limit(1)).mappings().first()
    if row is None:
        raise BenchError("no record.read entry on the audit log after the warm-up reads")
    return {k: v for k, v in row.items() if k != "seq"}


def postmaster_pid(cluster: Cluster) -> int:
    return int((cluster.data / "postmaster.pid").read_text().split()[0])


def durability(engine: Engine) -> str:
    """The server, the settings that keep commits durable, and the data database's size."""
    with engine.connect() as conn:
        names = ("server_version", "fsync", "synchronous_commit", "full_page_writes")
        values = {n: conn.exec_driver_sql(f"SHOW {n}").scalar() for n in names}
        size = conn.exec_driver_sql(
            "SELECT pg_size_pretty(pg_database_size(current_database()))").scalar()
    version = str(values.pop("server_version")).split()[0]
    return (f"PostgreSQL {version}, " + ", ".join(f"{k}={v}" for k, v in values.items())
            + f", data database {size}")


@dataclass
class Outcome:
    families: int
    load_seconds: float
    durability: str
    connections: int
    threads: int
    seconds: int
    sequential_seconds: int
    runs: list[Run]

    def run(self, label: str, server: str = "onestory") -> Run:
        return next(r for r in self.runs if r.label == label and r.server == server)


def measure(args: argparse.Namespace) -> Outcome:
    wrk = ensure_wrk()
    rng = random.Random(13)
    with tempfile.TemporaryDirectory(prefix="onestory-bench-load-") as tmp:
        folder = Path(tmp)
        cluster = durable_cluster()
        try:
            cluster.start()
            inst = install(cluster, folder, args.families)
            print(f"{args.families:,} families loaded in {inst.load_seconds:.1f} s", flush=True)
            files = request_files(folder, inst, rng)
            engine = create_engine(inst.data_url, poolclass=StaticPool)
            try:
                outcome = drive_all(args, wrk, cluster, engine, inst, files, folder, rng)
            finally:
                engine.dispose()
            return outcome
        finally:
            cluster.stop()


def drive_all(args: argparse.Namespace, wrk: str, cluster: Cluster, engine: Engine,
              inst: Installation, files: dict[str, Path], folder: Path,
              rng: random.Random) -> Outcome:
    bench = Bench(wrk, engine, postmaster_pid(cluster), args.threads, rng)
    audit: Table = AuditEntry.__table__  # type: ignore[assignment]
    floor_log = log_table()
    floor_log.metadata.create_all(engine)
    read, search, write = (Action.RECORD_READ.value, Action.FAMILY_SEARCH.value,
                           Action.ENTRY_WRITE.value)
    reader, writer = inst.reader_token, inst.writer_token
    conns, secs, seq = args.connections, args.duration, args.sequential
    port = free_port()
    serve = [*onestory_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(WORKERS)]
    print(f"onestory serve --workers {WORKERS} on {port}: warming up...", flush=True)
    with running("onestory", serve, inst.env, folder / "onestory.log", port) as app:
        bench.drive(app, "warm-up", files["read"], reader, conns, WARMUP_SECONDS, keep=False)
        template = folder / "audit_row.json"
        template.write_text(json.dumps(audit_row_template(engine)))
        floor_port = free_port()
        floor_cmd = [sys.executable, str(BENCH / "floor_app.py"), "--database-url",
                     inst.data_url, "--audit-row", str(template), "--port", str(floor_port),
                     "--workers", str(WORKERS)]
        with running("floor", floor_cmd, inst.env, folder / "floor.log", floor_port) as floor:
            bench.drive(floor, "warm-up", files["read"], None, conns, WARMUP_SECONDS,
                        keep=False)
            print(f"measuring: {secs} s per loaded run, {seq} s per sequential run...",
                  flush=True)
            bench.drive(app, "sequential /healthz", files["healthz"], None, 1, seq)
            bench.drive(app, "sequential read", files["read"], reader, 1, seq, audit, read)
            bench.drive(floor, "sequential /healthz", files["healthz"], None, 1, seq)
            bench.drive(floor, "sequential read", files["read"], None, 1, seq, floor_log,
                        read)
            bench.drive(app, "reads", files["read"], reader, conns, secs, audit, read)
            bench.drive(floor, "reads", files["read"], None, conns, secs, floor_log, read)
            bench.drive(app, "/healthz", files["healthz"], None, conns, secs)
            bench.drive(floor, "/healthz", files["healthz"], None, conns, secs)
            bench.drive(app, "searches", files["search"], reader, conns, secs, audit, search)
            bench.drive(app, "entry writes", files["write"], writer, conns, secs, audit, write)
    return Outcome(len(inst.family_ids), inst.load_seconds, durability(engine), conns,
                   args.threads, secs, seq, bench.runs)


# --- the report ---------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def report(out: Outcome) -> None:
    print()
    print(f"load: {out.durability}; {out.families:,} families (bulk load "
          f"{out.load_seconds:.1f} s); "
          f"onestory serve --workers {WORKERS} and the floor under the same gunicorn set-up; "
          f"wrk with {out.threads} threads, {out.connections} connections, {out.seconds} s per "
          f"run (sequential: 1 connection, {out.sequential_seconds} s)")
    header = (f"{'run':<20} {'server':<8} {'conns':>5} {'req/s':>8} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'errors':>6} {'CPU ms/req':>10} {'of it db':>8} {'other %':>7}  "
              "audit log")
    print(header)
    print("-" * len(header))
    for r in out.runs:
        if r.logged is None:
            log = ""
        else:
            log = (f"+{r.log_growth:,} for {r.ok:,} 2xx: "
                   f"{'exact' if r.log_exact else 'MISMATCH ' + str(dict(r.logged))}")
        print(f"{r.label:<20} {r.server:<8} {r.connections:>5} {r.wrk.per_second:>8,.0f} "
              f"{r.wrk.p50_us / 1000:>7.2f} {r.wrk.p99_us / 1000:>7.2f} {r.errors:>6,} "
              f"{r.cpu_ms:>10.2f} {r.db_ms:>8.2f} {r.other_percent:>6.0f}%  {log}")
    for r in out.runs:
        if r.errors:
            print(f"errors of {r.label} ({r.server}): {r.error_detail}")
    reads, floor_reads = out.run("reads"), out.run("reads", "floor")
    health, floor_health = out.run("/healthz"), out.run("/healthz", "floor")
    seq_read, seq_health = out.run("sequential read"), out.run("sequential /healthz")
    floor_seq_read = out.run("sequential read", "floor")
    floor_seq_health = out.run("sequential /healthz", "floor")
    searches, writes = out.run("searches"), out.run("entry writes")
    print()
    print("onestory / floor:  "
          f"reads/s {ratio(reads.wrk.per_second, floor_reads.wrk.per_second):.2f}x, "
          f"p50 {ratio(reads.wrk.p50_us, floor_reads.wrk.p50_us):.2f}x, "
          f"p99 {ratio(reads.wrk.p99_us, floor_reads.wrk.p99_us):.2f}x, "
          f"CPU per read {ratio(reads.cpu_ms, floor_reads.cpu_ms):.2f}x; "
          f"/healthz/s {ratio(health.wrk.per_second, floor_health.wrk.per_second):.2f}x; "
          f"sequential read p50 {ratio(seq_read.wrk.p50_us, floor_seq_read.wrk.p50_us):.2f}x")
    single = ratio(seq_read.wrk.p50_us, seq_health.wrk.p50_us)
    print(f"single read over HTTP (sequential p50): onestory {seq_read.wrk.p50_us / 1000:.2f} ms "
          f"= {single:.2f}x its /healthz ({seq_health.wrk.p50_us / 1000:.2f} ms); floor "
          f"{floor_seq_read.wrk.p50_us / 1000:.2f} ms = "
          f"{ratio(floor_seq_read.wrk.p50_us, floor_seq_health.wrk.p50_us):.2f}x its /healthz")
    cpu = ratio(reads.cpu_ms, floor_reads.cpu_ms)
    audited = [r for r in out.runs if r.logged is not None]
    print()
    print("targets (issue 13):")
    targets = [
        (f">= {READS_TARGET:.0f} audited shared-record reads/s, 0 errors",
         f"{reads.wrk.per_second:,.0f}/s, {reads.errors} errors",
         reads.wrk.per_second >= READS_TARGET and reads.errors == 0),
        (f"CPU per read <= {CPU_TARGET}x the floor's", f"{cpu:.2f}x", cpu <= CPU_TARGET),
        (f"single read <= {SINGLE_TARGET:.0f}x /healthz", f"{single:.2f}x",
         single <= SINGLE_TARGET),
        (f"searches >= {OTHER_TARGET:.0f}/s", f"{searches.wrk.per_second:,.0f}/s, "
         f"{searches.errors} errors", searches.wrk.per_second >= OTHER_TARGET),
        (f"entry writes >= {OTHER_TARGET:.0f}/s", f"{writes.wrk.per_second:,.0f}/s, "
         f"{writes.errors} errors", writes.wrk.per_second >= OTHER_TARGET),
        ("every audited run's log grew by exactly its 2xx answers",
         f"{sum(r.log_exact for r in audited)} of {len(audited)} runs exact"
         + "".join(f"; MISMATCH: {r.label} ({r.server})" for r in audited if not r.log_exact),
         all(r.log_exact for r in audited)),
    ]
    for name, figure, met in targets:
        print(f"  {name:<58} {figure:<28} {verdict(met)}")
    print()
    print("(req/s, p50, p99: wrk; errors: answers other than 2xx in the server's access log "
          "plus wrk's socket errors; CPU ms/req: CPU time of the server's processes (gunicorn "
          "master and workers) and of the whole PostgreSQL cluster over the run, from /proc, "
          "per request answered, and of it the PostgreSQL cluster's (of it db); other %: "
          "CPU the rest of the machine used meanwhile, wrk and "
          "this script excluded, in % of one CPU -- a high figure means a noisy run; audit log: "
          "rows the run added to audit_log (onestory) or to the floor's plain table (floor), "
          "against the requests answered with 2xx)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=20_000,
                        help="families to load (default 20000)")
    parser.add_argument("--duration", type=int, default=10,
                        help="seconds of load per run (default 10)")
    parser.add_argument("--connections", type=int, default=16,
                        help="wrk's connections for the loaded runs (default 16)")
    parser.add_argument("--threads", type=int, default=2,
                        help="wrk's threads (default 2)")
    parser.add_argument("--sequential", type=int, default=5,
                        help="seconds of each one-connection run (default 5)")
    args = parser.parse_args(argv)
    for name in ("families", "duration", "connections", "threads", "sequential"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if sys.platform != "linux":
        parser.error("needs Linux (/proc, Debian's wrk and postgresql packages)")
    started = time.perf_counter()
    try:
        outcome = measure(args)
    except BenchError as exc:
        print(f"bench/load.py: {exc}", file=sys.stderr)
        return 1
    report(outcome)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
