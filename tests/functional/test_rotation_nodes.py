"""A master key rotation across two running `onestory serve` nodes under load.

Two nodes (own instance folders, own copies of the keyring and index key
files, one PostgreSQL database for data and one for keys) serve the API
while a few threads read shared records, create families and write entries
on both. Meanwhile, on node 1: `keys add`, the keyring file copied to node 2,
`keys activate 2` (with its re-wrap), `keys retire 1`, and the file copied
again. Not one request may fail, no data key may stay under version 1, and
every family must read on both nodes afterwards.

Run with `-s` to see the figures. Every process started here is stopped in a
`finally` block; the load is bounded in requests and in time.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from coordination.crypto import write_secret_file
from coordination.keystore import KeyStore
from coordination.nodes import node_id
from tests.cli import assert_ok, run
from tests.conftest import AUDIT_KEY
from tests.functional.test_serve import SECRET, clean_env, server, wait_healthy
from tests.pg import create_database, free_port

LOAD_THREADS = 4
MAX_REQUESTS_PER_THREAD = 400
LOAD_DEADLINE = 90.0  # seconds: the load stops by then whatever happens
WAIT = 20.0  # seconds to wait for a node's heartbeat to show a change


def call(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method,  # noqa: S310 - loopback only
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode(errors="replace")


@dataclass
class Load:
    """Threads reading, creating and writing on both nodes until stopped."""

    bases: list[str]
    token: str
    families: list[tuple[str, str]]  # (id, display name)
    stop: threading.Event = field(default_factory=threading.Event)
    requests: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        deadline = time.monotonic() + LOAD_DEADLINE
        for n in range(MAX_REQUESTS_PER_THREAD):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            base = self.bases[(seed + n) % len(self.bases)]
            with self.lock:
                family, name = rng.choice(self.families)
            kind = rng.choice(["read", "read", "read", "write", "create"])
            try:
                if kind == "read":
                    status, body = call("GET", f"{base}/api/v1/families/{family}", self.token)
                    ok = status == 200 and body["display_name"] == name
                elif kind == "write":
                    status, body = call("POST", f"{base}/api/v1/families/{family}/entries",
                                        self.token, {"field": "health", "value": f"note {n}"})
                    ok = status == 201
                else:
                    name = f"Load Family {seed}-{n}"
                    status, body = call("POST", f"{base}/api/v1/families", self.token,
                                        {"display_name": name})
                    ok = status == 201
                    if ok:
                        with self.lock:
                            self.families.append((body["id"], name))
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                ok, status, body = False, 0, repr(exc)
            with self.lock:
                self.requests[kind] += 1
                if not ok:
                    self.errors.append(f"{kind} on {base}: {status} {str(body)[:200]}")


class Node1Cli:
    """`onestory ...` on node 1, run in this process (the servers are real
    subprocesses; a command line is the same code either way, and starting
    Python for each would double the test's time on a loaded machine)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                 env: dict[str, str]) -> None:
        self.capsys = capsys
        for name in [n for n in os.environ if n.startswith("ONESTORY_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            if name.startswith("ONESTORY_"):
                monkeypatch.setenv(name, value)

    def __call__(self, *args: str) -> str:
        result = run(self.capsys, *args)
        assert_ok(result)
        return result.out


def wait_for(cli: Node1Cli, node: str, report: str) -> str:
    """`keys status` until `node`'s line ends with `report` (its heartbeat caught up)."""
    deadline = time.monotonic() + WAIT
    while True:
        out = cli("keys", "status")
        lines = [line for line in out.splitlines() if line.startswith(f"  {node}: seen ")]
        if (lines and lines[0].endswith(report)) or time.monotonic() > deadline:
            assert lines and lines[0].endswith(report), out
            return out
        time.sleep(0.5)


def test_two_nodes_rotate_under_load_without_errors(
        pg_admin_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    data_url, keys_url = create_database(pg_admin_url), create_database(pg_admin_url)
    folders = [tmp_path / "node1", tmp_path / "node2"]
    for folder in folders:
        folder.mkdir()
    keyring = [folder / "keyring.json" for folder in folders]
    index_key = [folder / "index_key" for folder in folders]
    envs = [clean_env(tmp_path, ONESTORY_INSTANCE=str(folder), ONESTORY_DATABASE_URL=data_url,
                      ONESTORY_KEYSTORE_URL=keys_url, ONESTORY_SECRET_KEY=SECRET,
                      ONESTORY_KEYRING_FILE=str(keyring[i]),
                      ONESTORY_INDEX_KEY_FILE=str(index_key[i]),
                      ONESTORY_AUDIT_SIGNING_KEY=AUDIT_KEY,
                      ONESTORY_NODE_HEARTBEAT_SECONDS="1")
            for i, folder in enumerate(folders)]
    one, two = envs
    cli = Node1Cli(capsys, monkeypatch, one)
    cli("keys", "init", "--keyring-file", str(keyring[0]), "--index-key-file", str(index_key[0]))
    write_secret_file(keyring[1], keyring[0].read_text())
    write_secret_file(index_key[1], index_key[0].read_text())
    cli("init")
    cli("agency", "add", "health-centre", "--name", "Health centre", "--kind", "health")
    cli("user", "add", "nurse1", "--agency", "health-centre", "--role", "practitioner")
    token = cli("token", "create", "nurse1").strip()
    node_two = node_id(folders[1])

    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    logs = [folder / "serve.log" for folder in folders]
    with server(one, "serve", "--port", str(ports[0]), log=logs[0]) as first, \
            server(two, "serve", "--port", str(ports[1]), log=logs[1]) as second:
        wait_healthy(bases[0], first, logs[0].read_text)
        wait_healthy(bases[1], second, logs[1].read_text)
        families = []
        for n in range(40):
            status, body = call("POST", f"{bases[n % 2]}/api/v1/families", token,
                                {"display_name": f"Seed Family {n}"})
            assert status == 201, body
            families.append((body["id"], f"Seed Family {n}"))

        load = Load(bases, token, families)
        threads = [threading.Thread(target=load.run, args=(seed,), daemon=True)
                   for seed in range(LOAD_THREADS)]
        started = time.monotonic()
        steps: dict[str, float] = {}
        for thread in threads:
            thread.start()
        try:
            time.sleep(2)
            cli("keys", "add")
            steps["add"] = time.monotonic() - started
            write_secret_file(keyring[1], keyring[0].read_text(), replace=True)
            wait_for(cli, node_two, "holds 1, 2; read 1 as active")
            steps["copied"] = time.monotonic() - started
            # Small batches: the re-wrap interleaves with the nodes' new keys.
            activated = cli("keys", "activate", "2", "--batch", "5")
            steps["activate"] = time.monotonic() - started
            wait_for(cli, node_two, "holds 1, 2; read 2 as active")
            cli("keys", "retire", "1")
            steps["retire"] = time.monotonic() - started
            write_secret_file(keyring[1], keyring[0].read_text(), replace=True)
            time.sleep(3)  # load on the retired keyrings too
        finally:
            load.stop.set()
            for thread in threads:
                thread.join(timeout=60)
        seconds = time.monotonic() - started

        store = KeyStore.from_url(keys_url)
        try:
            under = store.count_under()
        finally:
            store.engine.dispose()
        def unreadable_on(base: str) -> list[str]:
            failed = []
            for family, name in load.families:
                status, body = call("GET", f"{base}/api/v1/families/{family}", token)
                if status != 200 or body["display_name"] != name:
                    failed.append(f"{family} on {base}: {status}")
            return failed

        with ThreadPoolExecutor(len(bases)) as pool:
            unreadable = [f for failed in pool.map(unreadable_on, bases) for f in failed]
        total = sum(load.requests.values())
        with capsys.disabled():  # shown with `-s`, beside the command line's captured output
            print(f"\ntwo-node rotation: {total} requests under load "
                  f"({dict(load.requests)}), {len(load.errors)} errors, {seconds:.1f} s "
                  f"(add at {steps['add']:.1f} s, copied by {steps['copied']:.1f} s, "
                  f"activate + re-wrap done at {steps['activate']:.1f} s, "
                  f"retire at {steps['retire']:.1f} s); {len(load.families)} families, "
                  f"keys per master version {under}; {len(unreadable)} families unreadable "
                  f"afterwards on either node; {activated.strip()}")
        assert load.errors == [], load.errors[:10]
        assert total > 0 and load.requests["create"] > 0 and load.requests["write"] > 0
        assert under == {2: len(load.families)}, under
        assert unreadable == [], unreadable[:10]
        versions = [line for line in cli("keys", "status").splitlines()
                    if line.startswith("version")]
        assert versions == [f"version 2 (active): {len(load.families)} data keys"], versions
        assert first.poll() is None and second.poll() is None
    for log in logs:
        text = log.read_text()
        # No refusal for a missing master key (`MasterKeyMissing`), no failure.
        assert "Traceback" not in text and "this node's keyring (" not in text, text[-3000:]
