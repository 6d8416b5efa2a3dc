"""Benchmark: is the embedded default (SQLite) fair to mixed clients?

1. Sets OneStory up as the README's embedded default: SQLite databases (the
   data and the key store) in the instance folder, `onestory keys init`, a
   secret key file, `onestory init` (bench/load.py's `production_env`, with
   SQLite URLs).
2. Adds the case's agencies and staff (`common.add_case_accounts`), API tokens
   for `physio1` (reads) and `nurse1` (entry writes), and bulk-loads
   --families families (`common.Loader`, a data key per family in the key
   store). Each family's form grants physiotherapy `involvement` and `health`.
3. Starts `onestory serve --host 127.0.0.1 --port P` on a free port (with
   `--workers N` when given) and drives it with wrk through
   bench/load.lua: --connections connections, each request drawn at
   random, --write-percent of them entry writes (`POST
   /api/v1/families/<id>/entries` as nurse1) and the rest shared-record reads
   (`GET /api/v1/families/<id>` as physio1), over random families.
4. Prints requests/s, p50, p99 and the slowest request (wrk's, and the
   access log's own time), errors (answers other than 2xx, and wrk's socket
   errors, a timeout being a request not answered within 2 s), p99 / p50, and
   whether the audit log grew by exactly the 2xx answers (one `record.read`
   per 2xx GET, one `entry.write` per 2xx POST, from the access log); then the
   issue's targets (issue 13, point 4) as MET / NOT MET: p99 at most 10x the
   median, no request over 2 s, 0 errors.

It exits 0 whatever the figures; 1 when the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

# As in the other benchmarks: the project root before bench/ on the module path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import Loader, Store, add_case_accounts
from load import (
    WRITE_FIELD,
    WRITE_TEXT,
    WRITER,
    BenchError,
    ensure_wrk,
    free_port,
    onestory_command,
    production_env,
    running,
)
from loadtools import ACCESS_LINE, ToolOutputError, WrkResult, log_exact, parse_wrk
from sqlalchemy import Engine, create_engine, func, select

from audit.model import Action, AuditEntry
from coordination import accounts
from coordination.config import load_settings
from coordination.runtime import Runtime

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "load.lua"
WRK_TIMEOUT = 2  # seconds; also the "no request over 2 s"
WARMUP_SECONDS = 3
RATIO_TARGET = 10.0  # p99 / p50
SLOWEST_TARGET = 2.0  # seconds
READ, WRITE = Action.RECORD_READ.value, Action.ENTRY_WRITE.value


@dataclass
class Mix:
    requests: Path
    lines: int
    reader_token: str
    writer_token: str


def install(folder: Path, families: int, write_percent: int, rng: random.Random
            ) -> tuple[dict[str, str], str, Mix, float]:
    """The embedded default's instance, its case and the request file."""
    instance = folder / "instance"
    data_url = f"sqlite:///{instance / 'onestory.db'}"
    env = production_env(folder, data_url, f"sqlite:///{instance / 'keys.db'}")
    rt = Runtime.build(load_settings(env))
    try:
        now = rt.now().replace(microsecond=0)
        staff_ids, actor, reader_token = add_case_accounts(rt.sessions, now)
        with rt.sessions() as session:
            writer_token = accounts.create_token(session, WRITER, timedelta(hours=2), now)
        store = Store("data", rt.engine, rt.sessions, rt.vault, actor, staff_ids, rt.keystore)
        loader = Loader([store], now, staff_ids)
        print(f"loading {families:,} families...", flush=True)
        seconds = loader.grow_to(families)
        ids = list(loader.family_ids)
    finally:
        rt.dispose()
    lines = []
    for n in range(max(20_000, len(ids))):
        fid = rng.choice(ids)
        if rng.randrange(100) < write_percent:
            body = json.dumps({"field": WRITE_FIELD, "value": WRITE_TEXT.format(n=n)})
            lines.append(f"2\tPOST\t/api/v1/families/{fid}/entries\t{body}")
        else:
            lines.append(f"1\tGET\t/api/v1/families/{fid}")
    path = folder / "mix.txt"
    path.write_text("\n".join(lines) + "\n")
    return env, data_url, Mix(path, len(lines), reader_token, writer_token), seconds


@dataclass
class Result:
    wrk: WrkResult
    answered: Counter[tuple[str, int]]  # (method, status): requests, from the access log
    slowest_logged: float  # seconds, the access log's longest request
    logged: Counter[str]  # audit entries the run added, by action
    wall: float

    @property
    def ok(self) -> Counter[str]:
        """2xx answers by the action they must have logged."""
        found: Counter[str] = Counter()
        for (method, status), n in self.answered.items():
            if 200 <= status < 300:
                found[READ if method == "GET" else WRITE] += n
        return found

    @property
    def errors(self) -> int:
        others = sum(n for (_m, status), n in self.answered.items()
                     if not 200 <= status < 300)
        return others + self.wrk.socket_errors

    @property
    def error_detail(self) -> str:
        parts = [f"{m} {s} x{n}" for (m, s), n in sorted(self.answered.items())
                 if not 200 <= s < 300]
        parts += self.wrk.socket_error_parts(WRK_TIMEOUT)
        return ", ".join(parts)

    @property
    def exact(self) -> bool:
        ok = self.ok
        return all(log_exact(Counter({a: self.logged[a]}), ok[a], a) for a in (READ, WRITE)) \
            and set(self.logged) <= {READ, WRITE}


def audit_mark(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(AuditEntry.seq), 0))).scalar_one())


def audit_since(engine: Engine, mark: int) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEntry.action, func.count())
                            .where(AuditEntry.seq > mark).group_by(AuditEntry.action)).all()
    return Counter({str(action): int(n) for action, n in rows})


def access_since(log: Path, offset: int) -> tuple[Counter[tuple[str, int]], float]:
    """(method, status) counts and the longest request time in the access log
    after `offset` (lines end with the request's time, `0.012s`)."""
    answered: Counter[tuple[str, int]] = Counter()
    slowest = 0.0
    with log.open("rb") as handle:
        handle.seek(offset)
        for line in handle.read().decode(errors="replace").splitlines():
            found = ACCESS_LINE.match(line)
            if not found:
                continue
            answered[(found["method"], int(found["status"]))] += 1
            last = line.rsplit(" ", 1)[-1]
            if last.endswith("s"):
                with suppress(ValueError):
                    slowest = max(slowest, float(last[:-1]))
    return answered, slowest


def drive(wrk: str, base: str, log: Path, engine: Engine, mix: Mix, connections: int,
          threads: int, seconds: int, rng: random.Random) -> Result:
    threads = min(threads, connections)
    mark, offset = audit_mark(engine), log.stat().st_size
    command = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
               "--timeout", f"{WRK_TIMEOUT}s", "-s", str(LUA), base, "--",
               str(mix.requests), f"{mix.reader_token},{mix.writer_token}", str(threads),
               str(rng.randrange(mix.lines))]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    try:
        summary = parse_wrk(done.stdout)
    except ToolOutputError as exc:
        raise BenchError(f"{exc}:\n{done.stdout[-1000:]}{done.stderr[-500:]}") from exc
    # Until the access log stops growing: requests in flight when wrk stopped are answered.
    size, deadline = log.stat().st_size, time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if log.stat().st_size == size:
            break
        size = log.stat().st_size
    answered, slowest = access_since(log, offset)
    return Result(summary, answered, slowest, audit_since(engine, mark),
                  time.monotonic() - started)


def uptime() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=2_000,
                        help="families to load (default 2000)")
    parser.add_argument("--duration", type=int, default=20,
                        help="seconds of the measured run (default 20)")
    parser.add_argument("--connections", type=int, default=16,
                        help="wrk's connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads (default 2)")
    parser.add_argument("--write-percent", type=int, default=20,
                        help="entry writes among the requests, in %% (default 20)")
    parser.add_argument("--workers", type=int, default=None,
                        help="pass --workers N to onestory serve (default: serve's own)")
    args = parser.parse_args(argv)
    for name in ("families", "duration", "connections", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not 0 <= args.write_percent <= 100:
        parser.error("--write-percent must be 0 to 100")
    if sys.platform != "linux":
        parser.error("needs Linux (Debian's wrk)")
    started = time.perf_counter()
    rng = random.Random(13)
    try:
        wrk = ensure_wrk()
        with tempfile.TemporaryDirectory(prefix="onestory-bench-sqlite-") as tmp:
            folder = Path(tmp)
            env, data_url, mix, load_seconds = install(folder, args.families,
                                                       args.write_percent, rng)
            print(f"{args.families:,} families loaded in {load_seconds:.1f} s", flush=True)
            port = free_port()
            serve = [*onestory_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
            if args.workers is not None:
                serve += ["--workers", str(args.workers)]
            engine = create_engine(data_url)
            log = folder / "onestory.log"
            try:
                with running("onestory", serve, env, log, port) as app:
                    print(f"{' '.join(serve[1:])}: warming up...", flush=True)
                    drive(wrk, app.base, log, engine, mix, args.connections, args.threads,
                          WARMUP_SECONDS, rng)
                    print(f"measuring {args.duration} s...", flush=True)
                    load_before = uptime()
                    result = drive(wrk, app.base, log, engine, mix, args.connections,
                                   args.threads, args.duration, rng)
                    load_after = uptime()
                    processes = subprocess.run(
                        ["pgrep", "-g", str(app.proc.pid)], capture_output=True, text=True
                    ).stdout.split()
                verify = subprocess.run([*onestory_command(), "audit", "verify"], env=env,
                                        capture_output=True, text=True, timeout=600)
            finally:
                engine.dispose()
    except BenchError as exc:
        print(f"bench/sqlite_load.py: {exc}", file=sys.stderr)
        return 1
    report(args, result, processes, load_before, load_after, verify)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


def report(args: argparse.Namespace, r: Result, processes: list[str], load_before: str,
           load_after: str, verify: subprocess.CompletedProcess[str]) -> None:
    w = r.wrk
    ratio = w.p99_us / w.p50_us if w.p50_us else float("nan")
    slowest = max(w.max_us / 1e6, r.slowest_logged)
    ok = r.ok
    print()
    workers = "serve's default" if args.workers is None else str(args.workers)
    print(f"SQLite, {args.families:,} families; onestory serve (--workers: {workers}; "
          f"{len(processes)} processes in its group: master and workers); wrk with "
          f"{min(args.threads, args.connections)} threads, {args.connections} connections, "
          f"{args.duration} s, {100 - args.write_percent}% shared-record reads (physio1), "
          f"{args.write_percent}% entry writes (nurse1)")
    print(f"load average (1, 5, 15 min) before the run {load_before}, after it {load_after}")
    print(f"  requests/s       {w.per_second:,.0f}  ({w.requests:,} in {w.duration_us / 1e6:.1f} s;"
          f" 2xx reads {ok[READ]:,}, 2xx writes {ok[WRITE]:,})")
    print(f"  p50              {w.p50_us / 1000:.1f} ms")
    print(f"  p99              {w.p99_us / 1000:.1f} ms")
    print(f"  max              {w.max_us / 1000:.1f} ms (wrk); slowest in the access log "
          f"{r.slowest_logged * 1000:.1f} ms")
    print(f"  p99 / p50        {ratio:.1f}x")
    print(f"  over {SLOWEST_TARGET:.0f} s         {'yes' if slowest > SLOWEST_TARGET else 'no'}"
          f" (wrk timeouts: {w.timeout})")
    print(f"  errors           {r.errors}" + (f" ({r.error_detail})" if r.errors else ""))
    print(f"  audit log        +{r.logged[READ]:,} {READ} for {ok[READ]:,} 2xx GET, "
          f"+{r.logged[WRITE]:,} {WRITE} for {ok[WRITE]:,} 2xx POST"
          + "".join(f", +{n} {a}" for a, n in r.logged.items() if a not in (READ, WRITE))
          + f": {'exact' if r.exact else 'MISMATCH'}")
    print(f"  audit verify     exit {verify.returncode}: "
          f"{(verify.stdout.strip() or verify.stderr.strip()).splitlines()[-1:]}")
    print()
    print("targets (issue 13, point 4):")
    targets = [
        (f"p99 <= {RATIO_TARGET:.0f}x median", f"{ratio:.1f}x", ratio <= RATIO_TARGET),
        (f"no request over {SLOWEST_TARGET:.0f} s", f"slowest {slowest:.2f} s",
         slowest <= SLOWEST_TARGET and w.timeout == 0),
        ("0 errors", str(r.errors), r.errors == 0),
        ("audit log grew by exactly the 2xx answers", "exact" if r.exact else "MISMATCH",
         r.exact),
        ("onestory audit verify", f"exit {verify.returncode}", verify.returncode == 0),
    ]
    for name, figure, met in targets:
        print(f"  {name:<44} {figure:<16} {'MET' if met else 'NOT MET'}")


if __name__ == "__main__":
    sys.exit(main())
