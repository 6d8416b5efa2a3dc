"""The real server: `onestory serve` and `onestory demo` as subprocesses.

Every process started here is stopped in a `finally` block, with bounded waits.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import AUDIT_KEY, INDEX_KEY
from tests.pg import free_port

SECRET = "test-secret-key-for-the-serve-test-0123456789"
START_TIMEOUT = 30.0
CLI_TIMEOUT = 120.0


def onestory_command() -> list[str]:
    script = Path(sys.executable).parent / "onestory"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "coordination.cli"]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESTORY_")}
    env["ONESTORY_INSTANCE"] = str(tmp_path / "instance")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def onestory(env: dict[str, str], *args: str, stdin: str | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*onestory_command(), *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT, cwd=cwd)


def checked(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout


def stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a server we started: SIGTERM to its process group, then SIGKILL."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
    # Workers left behind in the group (if the master died first) go too.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def server(env: dict[str, str], *args: str, log: Path) -> Iterator[subprocess.Popen[str]]:
    """`onestory ARGS` in its own process group, output to `log`; always stopped."""
    with log.open("w") as out:
        proc = subprocess.Popen([*onestory_command(), *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True, cwd=log.parent,
                                start_new_session=True)
    try:
        yield proc
    finally:
        stop(proc)


def request(url: str, token: str | None = None,
            timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, headers=headers)  # noqa: S310 - http://127.0.0.1 only
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def wait_healthy(base: str, proc: subprocess.Popen[Any], log: Callable[[], str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log()}")
        try:
            status, _headers, body = request(f"{base}/healthz", timeout=2)
            if status == 200:
                assert json.loads(body) == {"status": "ok"}
                return
            last = status
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(0.2)
    pytest.fail(f"/healthz did not answer 200 within {START_TIMEOUT} s ({last}):\n{log()}")


# --- onestory serve ---------------------------------------------------------------


def test_serve_answers_the_api(db_url: str, tmp_path: Path, keyring_file: Path) -> None:
    env = clean_env(tmp_path, ONESTORY_DATABASE_URL=db_url, ONESTORY_SECRET_KEY=SECRET,
                    ONESTORY_KEYRING_FILE=str(keyring_file), ONESTORY_INDEX_KEY=INDEX_KEY,
                    ONESTORY_AUDIT_SIGNING_KEY=AUDIT_KEY)
    checked(onestory(env, "init"))
    checked(onestory(env, "agency", "add", "health-centre", "--name", "Health centre",
                     "--kind", "health"))
    checked(onestory(env, "agency", "add", "harbour", "--name", "Harbour drop-in",
                     "--kind", "ngo", "--minimal-data"))
    checked(onestory(env, "user", "add", "nurse1", "--agency", "health-centre",
                     "--role", "practitioner", "--password-stdin",
                     stdin="a long enough password\n"))
    out = checked(onestory(env, "token", "create", "nurse1"))
    assert out.count("\n") == 1
    token = out.strip()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with server(env, "serve", "--host", "127.0.0.1", "--port", str(port), log=log) as proc:
        wait_healthy(base, proc, log.read_text)

        status, headers, body = request(f"{base}/api/v1/agencies", token)
        assert status == 200, body
        assert headers["Content-Type"].startswith("application/json")
        agencies = {a["id"]: a for a in json.loads(body)}
        assert agencies == {
            "health-centre": {"id": "health-centre", "name": "Health centre",
                              "kind": "health", "minimal_data": False},
            "harbour": {"id": "harbour", "name": "Harbour drop-in", "kind": "ngo",
                        "minimal_data": True},
        }

        for bad in (None, token + "x", "os_not-a-token"):
            status, headers, body = request(f"{base}/api/v1/agencies", bad)
            assert status == 401, (bad, body)
            assert headers["Content-Type"].startswith("application/problem+json")
            problem = json.loads(body)
            assert problem["status"] == 401
            assert {"type", "title", "status", "detail", "errors"} <= set(problem)
            assert token not in body.decode()
        assert proc.poll() is None, log.read_text()
    assert proc.poll() is not None
    assert "Traceback" not in log.read_text()


def test_serve_in_production_without_a_secret_fails_at_once(db_url: str,
                                                             tmp_path: Path) -> None:
    env = clean_env(tmp_path, ONESTORY_DATABASE_URL=db_url)
    port = free_port()
    result = onestory(env, "serve", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode != 0
    message = result.stderr.strip()
    assert message and "\n" not in message, result.stderr
    assert "ONESTORY_SECRET_KEY" in message
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "instance" / "secret_key").exists()


# --- onestory demo ------------------------------------------------------------------


class Output:
    """The lines a process writes to a pipe, read by a thread so the pipe never fills."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def until(self, pattern: str, proc: subprocess.Popen[str], timeout: float) -> list[str]:
        """Every line up to and including the first one that contains `pattern`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no {pattern!r} within {timeout} s:\n{self.text()}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                proc.wait(timeout=15)
                pytest.fail(f"exited ({proc.returncode}) before {pattern!r}:\n{self.text()}")
            self.lines.append(line)
            if pattern in line:
                return list(self.lines)

    def text(self) -> str:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return "".join(self.lines)

    def close(self) -> None:
        self._thread.join(timeout=10)


@contextmanager
def demo_server(env: dict[str, str], port: int,
                cwd: Path) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    proc = subprocess.Popen([*onestory_command(), "demo", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=cwd, start_new_session=True)
    assert proc.stdout is not None
    output = Output(proc.stdout)
    try:
        yield proc, output
    finally:
        stop(proc)
        output.close()
        proc.stdout.close()


LOGIN = re.compile(
    r"^  (\S+)\s+/ (\S+)\s+(practitioner|coordinator|auditor|admin|evaluator)\s+(\S+)$")
TOKEN = re.compile(r"^\s+API token: (\S+)$")
FAMILY = re.compile(r"^  (norway|belgium)\s+(\S+)$")


def parse_demo(lines: list[str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """(logins by username: role, agency, password, token; family ids by scenario)."""
    logins: dict[str, dict[str, str]] = {}
    families: dict[str, str] = {}
    last: str | None = None
    for raw in lines:
        line = raw.rstrip("\n")
        if m := LOGIN.match(line):
            last = m[1]
            logins[last] = {"password": m[2], "role": m[3], "agency": m[4]}
        elif (m := TOKEN.match(line)) and last is not None:
            logins[last]["token"] = m[1]
        elif m := FAMILY.match(line):
            families[m[1]] = m[2]
    return logins, families


def test_demo_serves_with_printed_logins(tmp_path: Path) -> None:
    # SQLite in the instance folder, once: `demo` makes its own database.
    env = clean_env(tmp_path)
    env.pop("ONESTORY_DATABASE_URL", None)
    env.pop("ONESTORY_ENV", None)
    env.pop("ONESTORY_SECRET_KEY", None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with demo_server(env, port, tmp_path) as (proc, output):
        lines = output.until("Serving OneStory on", proc, START_TIMEOUT)
        assert f"http://127.0.0.1:{port}" in lines[-1]
        logins, families = parse_demo(lines)

        roles = {login["role"] for login in logins.values()}
        assert roles == {"practitioner", "coordinator", "auditor", "admin", "evaluator"}
        assert all(login.get("token") for login in logins.values()), logins
        assert len({login["token"] for login in logins.values()}) == len(logins)
        assert set(families) == {"norway", "belgium"}
        assert re.search(r"code \S+, PIN \d+", "".join(lines))

        wait_healthy(base, proc, output.text)
        # The output ends with what to open and how to sign in: gunicorn's
        # start-up lines do not follow it.
        assert f"Open {base}/sign-in and sign in as coord1 / coord1-demo" in output.text()
        assert "Starting gunicorn" not in output.text()
        assert "Booting worker" not in output.text()

        # nurse1 (health centre, a practitioner) created the Norway family.
        assert logins["nurse1"]["role"] == "practitioner"
        status, _h, body = request(f"{base}/api/v1/families/{families['norway']}",
                                   logins["nurse1"]["token"])
        assert status == 200, body
        record = json.loads(body)
        assert record["id"] == families["norway"]
        assert record["display_name"] == "Aylin Demir"
        assert record["fields"]["health"]

        # The NGO's practitioner has no part in the Norway family: it does not exist.
        status, headers, _b = request(f"{base}/api/v1/families/{families['norway']}",
                                      logins["ngo1"]["token"])
        assert status == 404
        assert headers["Content-Type"].startswith("application/problem+json")

        # Every printed token works.
        for username, login in logins.items():
            # Evaluators read reports only (the catalogue refuses them).
            path = ("/api/v1/reports/needs?from=2026-01&to=2026-01"
                    if login["role"] == "evaluator" else "/api/v1/agencies")
            status, _h, body = request(f"{base}{path}", login["token"])
            assert status == 200, (username, body)
        assert proc.poll() is None, output.text()
    assert proc.poll() is not None
    assert "Traceback" not in output.text()
    assert (tmp_path / "instance" / "onestory.db").exists()

    # A second `demo` on the same instance keeps the data and prints fresh tokens.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with demo_server(env, port, tmp_path) as (proc, output):
        lines = output.until("Serving OneStory on", proc, START_TIMEOUT)
        again, _families = parse_demo(lines)
        assert set(again) == set(logins)
        assert all(again[u]["token"] != logins[u]["token"] for u in logins)
        wait_healthy(base, proc, output.text)
        status, _h, body = request(f"{base}/api/v1/families/{families['norway']}",
                                   again["nurse1"]["token"])
        assert status == 200, body
    assert proc.poll() is not None
    assert "Traceback" not in output.text()


def test_chunked_body_over_the_limit_is_413_through_gunicorn(db_url: str, tmp_path: Path,
                                                             keyring_file: Path) -> None:
    """Without Content-Length the server must still refuse, not cut, a large body."""
    import http.client

    env = clean_env(tmp_path, ONESTORY_DATABASE_URL=db_url, ONESTORY_SECRET_KEY=SECRET,
                    ONESTORY_KEYRING_FILE=str(keyring_file), ONESTORY_INDEX_KEY=INDEX_KEY,
                    ONESTORY_AUDIT_SIGNING_KEY=AUDIT_KEY)
    checked(onestory(env, "init"))
    port = free_port()
    log = tmp_path / "serve.log"
    with server(env, "serve", "--host", "127.0.0.1", "--port", str(port), log=log) as proc:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log.read_text)
        for body in (b'{"display_name": "x"}' + b" " * 70_000, b"[" * 200_000):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.putrequest("POST", "/api/v1/families")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.putheader("Content-Type", "application/json")
            conn.endheaders()
            for i in range(0, len(body), 8192):
                chunk = body[i:i + 8192]
                conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            conn.send(b"0\r\n\r\n")
            try:
                status = conn.getresponse().status
            except ConnectionError:
                status = 413  # the server may close a connection it will not read
            finally:
                conn.close()
            assert status == 413
