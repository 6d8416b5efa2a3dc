"""What bench/load.py reads from the tools it runs: wrk's summary line (printed
by bench/load.lua), the server's access log, and the CPU time of process trees
from /proc. Standard library only, so that tests/unit/test_bench_load.py can
load it alone.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

WRK_MARK = "wrk-result"
WRK_FIELDS = ("requests", "duration_us", "connect", "read", "write", "status", "timeout",
              "p50_us", "p99_us", "mean_us", "max_us")
# The access log `onestory serve` writes (coordination.serving):
#   %(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss  ->  127.0.0.1 "GET /healthz" 200 16 0.001s
ACCESS_LINE = re.compile(r'^\S+ "(?P<method>[A-Z]+) (?P<path>[^" ]*)" (?P<status>\d{3}) ')


class ToolOutputError(Exception):
    """A tool's output is not what the benchmark expects: the tool failed."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run as bench/load.lua's `done` reports it (times in µs)."""

    requests: int  # responses wrk read, whatever their status
    duration_us: int
    connect: int  # socket errors: connect, read, write, timeout
    read: int
    write: int
    status: int  # responses with a status over 399
    timeout: int
    p50_us: float
    p99_us: float
    mean_us: float
    max_us: float

    @property
    def per_second(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def socket_errors(self) -> int:
        return self.connect + self.read + self.write + self.timeout

    def socket_error_parts(self, timeout_s: int) -> list[str]:
        """wrk's socket errors in words ("read x3"), those that happened."""
        return [f"{kind} x{n}" for kind, n in (
            ("connect", self.connect), ("read", self.read), ("write", self.write),
            (f"timeout (over {timeout_s} s)", self.timeout)) if n]


def parse_wrk(output: str) -> WrkResult:
    """The summary line bench/load.lua prints (`wrk-result key=value ...`), from
    wrk's whole standard output; ToolOutputError when it is missing or short."""
    lines = [line for line in output.splitlines() if line.startswith(WRK_MARK + " ")]
    if len(lines) != 1:
        raise ToolOutputError(f"expected one '{WRK_MARK}' line from wrk, found {len(lines)}")
    values: dict[str, float] = {}
    for pair in lines[0].split()[1:]:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ToolOutputError(f"not key=value in wrk's summary: {pair!r}")
        try:
            values[key] = float(value)
        except ValueError:
            raise ToolOutputError(f"not a number in wrk's summary: {pair!r}") from None
    missing = [name for name in WRK_FIELDS if name not in values]
    if missing:
        raise ToolOutputError(f"wrk's summary lacks {', '.join(missing)}")
    ints = {"requests", "duration_us", "connect", "read", "write", "status", "timeout"}
    return WrkResult(**{name: int(values[name]) if name in ints else values[name]
                        for name in WRK_FIELDS})  # type: ignore[arg-type]


def access_statuses(lines: Iterable[str]) -> Counter[int]:
    """Requests answered, by status, in access-log lines (other lines, such as
    gunicorn's own messages, are skipped)."""
    statuses: Counter[int] = Counter()
    for line in lines:
        found = ACCESS_LINE.match(line)
        if found:
            statuses[int(found["status"])] += 1
    return statuses


def ok_count(statuses: Mapping[int, int]) -> int:
    """Requests answered with a 2xx status."""
    return sum(n for status, n in statuses.items() if 200 <= status < 300)


def log_exact(logged: Mapping[str, int], ok: int, action: str | None) -> bool:
    """A run's log grew by exactly one row per 2xx answer, every row of the
    run's action (`logged`: rows added during the run, by action)."""
    return sum(logged.values()) == ok and set(logged) <= {action}


# --- CPU time of process trees -----------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    ticks: int  # user + system time of the process and of its children it has reaped


def parse_proc_stat(text: str) -> ProcStat:
    """/proc/<pid>/stat. The command name (field 2) is in parentheses and may
    hold spaces and parentheses itself: the fields after it are split after the
    last ')'. utime, stime, cutime and cstime are fields 14 to 17."""
    head, sep, tail = text.rpartition(")")
    if not sep:
        raise ValueError("not a /proc/<pid>/stat line")
    pid = int(head.split("(", 1)[0])
    fields = tail.split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ProcStat(pid, ppid, utime + stime + cutime + cstime)


def tree_ticks(procs: Mapping[int, ProcStat], roots: Iterable[int]) -> int:
    """CPU ticks of the trees under `roots`: every living process in them, its
    own time and that of the children it reaped (a child that ended is counted
    once, in its parent). Roots that are not in `procs` count nothing."""
    children: dict[int, list[int]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    seen: set[int] = set()
    todo = [pid for pid in roots if pid in procs]
    total = 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += procs[pid].ticks
        todo.extend(children.get(pid, ()))
    return total


def read_procs(proc: Path = Path("/proc")) -> dict[int, ProcStat]:
    """Every process's stat now (processes that end while being read are skipped)."""
    found: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = parse_proc_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
        found[stat.pid] = stat
    return found


def cpu_seconds(roots: Iterable[int]) -> float:
    """CPU seconds used so far by the process trees under `roots` (Linux)."""
    return tree_ticks(read_procs(), roots) / os.sysconf("SC_CLK_TCK")


def busy_ticks(line: str) -> int:
    """The machine's busy ticks from /proc/stat's first line (`cpu  user nice
    system idle iowait irq softirq steal ...`): all but idle and iowait, over
    the first eight counters (guest time is in user already)."""
    name, *values = line.split()
    if name != "cpu" or len(values) < 8:
        raise ValueError("not /proc/stat's 'cpu' line")
    ticks = [int(v) for v in values[:8]]
    return sum(ticks) - ticks[3] - ticks[4]


def machine_busy_seconds(stat: Path = Path("/proc/stat")) -> float:
    """CPU seconds the whole machine has been busy since boot (Linux)."""
    with stat.open() as handle:
        return busy_ticks(handle.readline()) / os.sysconf("SC_CLK_TCK")
