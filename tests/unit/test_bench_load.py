"""bench/loadtools.py: what the load benchmark reads from wrk, the server's
access log and /proc (bench/ is not a package: the module is loaded by path)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

PATH = Path(__file__).resolve().parents[2] / "bench" / "loadtools.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_loadtools", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tools = _load()

WRK_OUT = """Running 10s test @ http://127.0.0.1:8000
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    74.10ms   20.02ms 301.13ms   71.32%
  2150 requests in 10.02s, 2.10MB read
Requests/sec:    214.57
Transfer/sec:    214.69KB
wrk-result requests=2150 duration_us=10020000 connect=0 read=1 write=0 status=3 timeout=2 \
p50_us=71234 p99_us=150999 mean_us=74100.5 max_us=301130
"""


def test_parse_wrk_reads_the_summary_line() -> None:
    result = tools.parse_wrk(WRK_OUT)
    assert result.requests == 2150
    assert result.p50_us == 71234 and result.p99_us == 150999
    assert result.mean_us == pytest.approx(74100.5)
    assert result.status == 3
    assert result.socket_errors == 3  # read 1 + timeout 2 (status errors are not socket errors)
    assert result.per_second == pytest.approx(2150 / 10.02)


@pytest.mark.parametrize("output, says", [
    ("Running 10s test\n", "found 0"),
    (WRK_OUT + WRK_OUT.splitlines()[-1] + "\n", "found 2"),
    ("wrk-result requests=10 duration_us=1\n", "lacks"),
    ("wrk-result requests=ten\n", "not a number"),
    ("wrk-result requests\n", "not key=value"),
])
def test_parse_wrk_refuses_what_is_not_one_full_summary(output: str, says: str) -> None:
    with pytest.raises(tools.ToolOutputError, match=says):
        tools.parse_wrk(output)


def test_access_statuses_counts_answers_by_status_and_skips_other_lines() -> None:
    lines = [
        "[2026-11-30 19:50:00 +0000] [123] [INFO] Booting worker with pid: 123",
        '127.0.0.1 "GET /api/v1/families/fam_0a" 200 812 0.012s',
        '127.0.0.1 "GET /api/v1/families/fam_0b" 200 790 0.010s',
        '127.0.0.1 "POST /api/v1/families/fam_0b/entries" 201 120 0.020s',
        '127.0.0.1 "GET /api/v1/families" 404 150 0.003s',
        '127.0.0.1 "GET /healthz" 503 90 0.001s',
        "a line that mentions \"GET /x\" 200 but is not one",
    ]
    statuses = tools.access_statuses(lines)
    assert statuses == {200: 2, 201: 1, 404: 1, 503: 1}
    assert tools.ok_count(statuses) == 3


def test_log_exact_wants_one_row_of_the_runs_action_per_2xx_answer() -> None:
    assert tools.log_exact({"record.read": 120}, 120, "record.read")
    assert tools.log_exact({}, 0, "record.read")
    assert not tools.log_exact({"record.read": 121}, 120, "record.read")  # one too many
    assert not tools.log_exact({"record.read": 119}, 120, "record.read")  # one missing
    # as many rows, but one of them another action (a refusal's entry, say)
    assert not tools.log_exact({"record.read": 119, "request.denied": 1}, 120, "record.read")


def test_parse_proc_stat_reads_past_a_command_name_with_spaces_and_parentheses() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime ...
    line = "4242 (gunicorn: (worker) x) S 4200 4200 4200 0 -1 4194560 10 0 0 0 " \
           "150 30 7 3 20 0 5 0 100 0 0\n"
    stat = tools.parse_proc_stat(line)
    assert (stat.pid, stat.ppid, stat.ticks) == (4242, 4200, 150 + 30 + 7 + 3)
    with pytest.raises(ValueError):
        tools.parse_proc_stat("no parentheses here")


def test_tree_ticks_sums_every_living_descendant_once() -> None:
    stat = tools.ProcStat
    procs = {
        1: stat(1, 0, 1000),  # init: not asked for
        10: stat(10, 1, 5),  # the server's master (its reaped workers are in its ticks)
        11: stat(11, 10, 100),
        12: stat(12, 10, 200),
        13: stat(13, 12, 7),  # a grandchild
        20: stat(20, 1, 50),  # the postmaster
        21: stat(21, 20, 60),
        30: stat(30, 1, 999),  # someone else
    }
    assert tools.tree_ticks(procs, [10]) == 5 + 100 + 200 + 7
    assert tools.tree_ticks(procs, [10, 20]) == 312 + 50 + 60
    assert tools.tree_ticks(procs, [10, 12]) == 312  # a root inside another tree: once
    assert tools.tree_ticks(procs, [99]) == 0  # gone


def test_busy_ticks_leaves_out_idle_and_iowait() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    assert tools.busy_ticks("cpu  100 5 40 9000 300 2 3 1 50 0") == 100 + 5 + 40 + 2 + 3 + 1
    with pytest.raises(ValueError):
        tools.busy_ticks("cpu0 1 2 3 4 5 6 7 8")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc only")
def test_cpu_seconds_of_this_process_grows_with_work() -> None:
    before = tools.cpu_seconds([os.getpid()])
    deadline = tools.cpu_seconds([os.getpid()]) + 0.05
    while tools.cpu_seconds([os.getpid()]) < deadline:
        sum(i * i for i in range(10_000))
    assert tools.cpu_seconds([os.getpid()]) > before
