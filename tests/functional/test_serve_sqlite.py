"""`onestory serve` on the embedded default (SQLite): one process whose
requests take turns; many concurrent writers all land with their audit
entries, failures hand the turn on, and the command line still writes beside
it. Real `onestory serve` and command line processes; nothing is timed."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, func, select

from audit.model import AuditEntry
from consent.tables import ConsentReceipt
from coordination.accounts import throttle_key
from coordination.model import Entry, SignInThrottle
from tests.conftest import AUDIT_KEY, INDEX_KEY
from tests.functional.test_serve import (
    SECRET,
    checked,
    clean_env,
    onestory,
    request,
    server,
    wait_healthy,
)
from tests.pg import free_port

CLIENTS = 12
ROUNDS = 3


def embedded_env(tmp_path: Path, keyring_file: Path) -> dict[str, str]:
    """The embedded default: no database URL, SQLite in the instance folder."""
    return installed_env(tmp_path, keyring_file)


def installed_env(tmp_path: Path, keyring_file: Path, **databases: str) -> dict[str, str]:
    """An installation made by the command line (`init`, the health centre,
    nurse1 with a password) on `databases` (ONESTORY_DATABASE_URL and
    ONESTORY_KEYSTORE_URL; none: the embedded default), and its variables."""
    env = clean_env(tmp_path, ONESTORY_SECRET_KEY=SECRET,
                    ONESTORY_KEYRING_FILE=str(keyring_file), ONESTORY_INDEX_KEY=INDEX_KEY,
                    ONESTORY_AUDIT_SIGNING_KEY=AUDIT_KEY, **databases)
    checked(onestory(env, "init"))
    checked(onestory(env, "agency", "add", "health-centre", "--name", "Health centre",
                     "--kind", "health"))
    checked(onestory(env, "user", "add", "nurse1", "--agency", "health-centre",
                     "--role", "practitioner", "--password-stdin",
                     stdin="a long enough password\n"))
    return env


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def send(url: str, token: str, method: str = "GET",
         body: dict[str, object] | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers,  # noqa: S310 - loopback
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def test_serve_on_sqlite_is_one_process_and_refuses_several(tmp_path: Path,
                                                           keyring_file: Path) -> None:
    env = embedded_env(tmp_path, keyring_file)
    port = free_port()
    refused = onestory(env, "serve", "--host", "127.0.0.1", "--port", str(port),
                       "--workers", "2")
    assert refused.returncode == 2
    message = refused.stderr.strip()
    assert "\n" not in message and "Traceback" not in message, refused.stderr
    assert "--workers 2" in message and "SQLite" in message and "PostgreSQL" in message
    assert "SQLite" in checked(onestory(env, "serve", "--help"))

    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with server(env, "serve", "--host", "127.0.0.1", "--port", str(port), log=log) as proc:
        wait_healthy(base, proc, log.read_text)
        assert len(children(proc.pid)) == 1, log.read_text()  # gunicorn's master and one worker
    assert "Traceback" not in log.read_text()


def test_concurrent_writers_on_sqlite_all_land_with_their_entries(
        tmp_path: Path, keyring_file: Path) -> None:
    env = embedded_env(tmp_path, keyring_file)
    token = checked(onestory(env, "token", "create", "nurse1")).strip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    answers: Counter[tuple[str, int]] = Counter()
    guard = threading.Lock()
    problems: list[str] = []

    def client(n: int) -> None:
        try:
            for r in range(ROUNDS):
                status, body = send(f"{base}/api/v1/families", token, "POST",
                                    {"display_name": f"Family {n}-{r}"})
                got = [("create", status)]
                if status == 201:
                    family = json.loads(body)["id"]
                    status, _ = send(f"{base}/api/v1/families/{family}/entries", token,
                                     "POST", {"field": "health", "value": f"Visit {n}-{r}"})
                    got.append(("write", status))
                    status, _ = send(f"{base}/api/v1/families/{family}", token)
                    got.append(("read", status))
                # Use cases that fail and roll back: the next writers must still get on.
                status, _ = send(f"{base}/api/v1/families/fam_absent{n}r{r}/entries", token,
                                 "POST", {"field": "health", "value": "nobody"})
                got.append(("absent", status))
                status, _ = send(f"{base}/api/v1/families", token, "POST", {"bogus": 1})
                got.append(("invalid", status))
                with guard:
                    answers.update(got)
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            with guard:
                problems.append(repr(exc))

    with server(env, "serve", "--host", "127.0.0.1", "--port", str(port), log=log) as proc:
        wait_healthy(base, proc, log.read_text)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        # The command line, another process, writes while the server is loaded.
        for name in ("ecec", "physio", "school"):
            checked(onestory(env, "agency", "add", name, "--name", name.title(),
                             "--kind", "ecec" if name != "physio" else "physiotherapy"))
        cli_token = checked(onestory(env, "token", "create", "nurse1")).strip()
        for thread in threads:
            thread.join(300)
            assert not thread.is_alive()
        assert problems == []
        assert request(f"{base}/api/v1/agencies", cli_token)[0] == 200
        assert proc.poll() is None, log.read_text()
    assert "Traceback" not in log.read_text()

    total = CLIENTS * ROUNDS
    assert answers == Counter({("create", 201): total, ("write", 201): total,
                               ("read", 200): total, ("absent", 404): total,
                               ("invalid", 422): total})
    engine = create_engine(f"sqlite:///{tmp_path / 'instance' / 'onestory.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(AuditEntry.action, func.count())
                                .group_by(AuditEntry.action)).all()
        logged = Counter({str(action): int(n) for action, n in rows})
    finally:
        engine.dispose()
    assert logged["family.create"] == total
    assert logged["entry.write"] == total
    assert logged["record.read"] == total
    assert logged["request.denied"] >= total  # each absent family's refusal, on record
    assert "intact" in checked(onestory(env, "audit", "verify"))


WAIT = 20.0  # seconds a step may take before the test fails (never reached when it works)


class Provider(http.server.BaseHTTPRequestHandler):
    """An agency's sign-in provider whose discovery document is answered only
    once the test says so (`release`), noting when it is asked (`asked`)."""

    asked = threading.Event()
    release = threading.Event()
    issuer = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.asked.set()
        self.release.wait(3 * WAIT)
        body = json.dumps({"issuer": self.issuer,
                           "authorization_endpoint": f"{self.issuer}/auth",
                           "token_endpoint": f"{self.issuer}/token",
                           "jwks_uri": f"{self.issuer}/jwks"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_no_turn_is_held_while_a_provider_is_asked(tmp_path: Path,
                                                   keyring_file: Path) -> None:
    """The OpenID Connect sign-in asks the agency's provider over the network:
    meanwhile the server's other requests still write (no transaction, so no
    turn, is held across it)."""
    env = embedded_env(tmp_path, keyring_file)
    token = checked(onestory(env, "token", "create", "nurse1")).strip()
    provider = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    Provider.issuer = f"http://127.0.0.1:{provider.server_address[1]}"
    Provider.asked.clear()
    Provider.release.clear()
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    checked(onestory(env, "agency", "oidc", "health-centre", "--issuer", Provider.issuer,
                     "--client-id", "onestory"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    signed: list[int] = []
    written = threading.Event()

    def sign_in() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=4 * WAIT)
        try:
            conn.request("GET", "/sign-in/oidc/health-centre")
            signed.append(conn.getresponse().status)
        finally:
            conn.close()

    def write() -> None:
        status, _ = send(f"{base}/api/v1/families", token, "POST", {"display_name": "Ada"})
        if status == 201:
            written.set()

    try:
        with server(env, "serve", "--host", "127.0.0.1", "--port", str(port),
                    log=log) as proc:
            wait_healthy(base, proc, log.read_text)
            asking = threading.Thread(target=sign_in)
            asking.start()
            assert Provider.asked.wait(WAIT), log.read_text()
            writer = threading.Thread(target=write)
            writer.start()
            landed = written.wait(WAIT)
            Provider.release.set()
            asking.join(4 * WAIT)
            writer.join(4 * WAIT)
            assert landed, "a write waited for the sign-in's call to its provider"
            assert signed == [302]  # on to the provider's sign-in page
        assert "Traceback" not in log.read_text()
    finally:
        Provider.release.set()
        provider.shutdown()
        provider.server_close()


def test_a_worker_killed_while_writing_leaves_a_whole_chain(tmp_path: Path,
                                                            keyring_file: Path) -> None:
    """The server's worker is killed (kill -9) while writers are busy: every
    write answered 201 is on record with its audit entry, none is half
    written, the chain verifies, and the restarted worker takes turns again."""
    import os
    import signal
    import time

    env = embedded_env(tmp_path, keyring_file)
    token = checked(onestory(env, "token", "create", "nurse1")).strip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    written: Counter[str] = Counter()
    guard = threading.Lock()
    stop = threading.Event()

    with server(env, "serve", "--host", "127.0.0.1", "--port", str(port), log=log) as proc:
        wait_healthy(base, proc, log.read_text)
        status, body = send(f"{base}/api/v1/families", token, "POST", {"display_name": "F"})
        assert status == 201
        family = json.loads(body)["id"]

        def writer() -> None:
            while not stop.is_set():
                try:
                    status, _ = send(f"{base}/api/v1/families/{family}/entries", token,
                                     "POST", {"field": "health", "value": "a visit"})
                except (OSError, http.client.HTTPException):
                    status = 0  # the connection went with the worker
                with guard:
                    written[str(status)] += 1

        threads = [threading.Thread(target=writer) for _ in range(8)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + WAIT
        while written["201"] < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        [worker] = children(proc.pid)
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 3 * WAIT
        while time.monotonic() < deadline and (
                children(proc.pid) in ([], [worker]) or written["201"] < 40):
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join(WAIT * 3)
        assert children(proc.pid) not in ([], [worker]), log.read_text()
        assert send(f"{base}/api/v1/families/{family}", token)[0] == 200
    assert set(written) <= {"201", "0", "503"}, written
    assert written["201"] >= 40, written
    engine = create_engine(f"sqlite:///{tmp_path / 'instance' / 'onestory.db'}")
    try:
        with engine.connect() as conn:
            logged = conn.execute(select(func.count()).select_from(AuditEntry)
                                  .where(AuditEntry.action == "entry.write")).scalar_one()
            entries = conn.execute(select(func.count()).select_from(Entry)).scalar_one()
    finally:
        engine.dispose()
    assert written["201"] <= logged <= written["201"] + written["0"]
    assert entries == logged  # no entry without its audit entry, nor the reverse
    assert "intact" in checked(onestory(env, "audit", "verify"))


def test_a_client_dribbling_its_body_holds_up_no_other_request(
        tmp_path: Path, keyring_file: Path) -> None:
    """A client with a valid token sends a write's headers and then its
    body a little at a time (or never the rest): while its body is still
    coming, other requests on the embedded default are answered; the turn
    is not taken before the body has arrived."""
    import socket

    env = embedded_env(tmp_path, keyring_file)
    token = checked(onestory(env, "token", "create", "nurse1")).strip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with server(env, "serve", "--host", "127.0.0.1", "--port", str(port), log=log) as proc:
        wait_healthy(base, proc, log.read_text)
        status, body = send(f"{base}/api/v1/families", token, "POST", {"display_name": "F"})
        assert status == 201, body
        family = json.loads(body)["id"]
        write = json.dumps({"field": "health", "value": "slowly"}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as slow:
            slow.sendall((f"POST /api/v1/families/{family}/entries HTTP/1.1\r\n"
                          f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                          "Content-Type: application/json\r\n"
                          f"Content-Length: {len(write)}\r\n\r\n").encode() + write[:5])
            answered: list[int] = []
            reader = threading.Thread(target=lambda: answered.append(
                send(f"{base}/api/v1/families/{family}", token)[0]))
            reader.start()
            reader.join(WAIT)
            while_coming = list(answered)
            slow.sendall(write[5:])
            assert slow.recv(12).startswith(b"HTTP/1.1 201")
            reader.join(3 * WAIT)
        assert while_coming == [200], "a request waited for another's body"
        assert answered == [200]
        assert proc.poll() is None, log.read_text()


def test_a_burst_of_wrong_pins_through_serve_on_sqlite_is_counted_while_reads_go_on(
        tmp_path: Path, keyring_file: Path) -> None:
    """Real `onestory serve` on the embedded default: bursts of wrong PINs on
    a real receipt code and on an unknown one, at once, while staff read the
    family's record. Reads are answered; every guess is refused (`401`, or
    `429` once slowed down), each on record; each code's count is at least
    the guesses that were checked (answered `401`); the chain stays whole."""
    from tests.conftest import consent_body

    env = embedded_env(tmp_path, keyring_file)
    checked(onestory(env, "user", "add", "coord1", "--agency", "health-centre",
                     "--role", "coordinator"))
    token = checked(onestory(env, "token", "create", "nurse1")).strip()
    coord = checked(onestory(env, "token", "create", "coord1")).strip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    answers: Counter[tuple[str, int]] = Counter()
    guard = threading.Lock()
    problems: list[str] = []
    done = threading.Event()

    def guesser(code: str, kind: str) -> None:
        try:
            for _ in range(ROUNDS):
                status, _ = send(f"{base}/api/v1/family/session", "", "POST",
                                 {"receipt_code": code, "pin": "000000"})
                with guard:
                    answers[(kind, status)] += 1
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            with guard:
                problems.append(repr(exc))

    def reader(family: str) -> None:
        try:
            while not done.is_set():
                status, _ = send(f"{base}/api/v1/families/{family}", token)
                with guard:
                    answers[("read", status)] += 1
        except Exception as exc:  # noqa: BLE001
            with guard:
                problems.append(repr(exc))

    with server(env, "serve", "--host", "127.0.0.1", "--port", str(port), log=log) as proc:
        wait_healthy(base, proc, log.read_text)
        status, body = send(f"{base}/api/v1/families", token, "POST",
                            {"display_name": "Family"})
        assert status == 201, body
        family = json.loads(body)["id"]
        status, body = send(f"{base}/api/v1/families/{family}/consent", coord, "PUT",
                            consent_body({"health-centre": ["health"]}))
        assert status == 201, body
        code = json.loads(body)["receipt"]["code"]
        readers = [threading.Thread(target=reader, args=(family,)) for _ in range(2)]
        guessers = [threading.Thread(target=guesser, args=(c, k))
                    for c, k in ((code, "real"), ("ZZZZ-ZZZZ", "unknown")) for _ in range(6)]
        for thread in readers + guessers:
            thread.start()
        for thread in guessers:
            thread.join(300)
            assert not thread.is_alive()
        done.set()
        for thread in readers:
            thread.join(300)
            assert not thread.is_alive()
        assert proc.poll() is None, log.read_text()
    assert "Traceback" not in log.read_text()
    assert problems == []
    guesses = 6 * ROUNDS
    for kind in ("real", "unknown"):
        assert answers[(kind, 401)] + answers[(kind, 429)] == guesses, answers
        assert answers[(kind, 401)] >= 1
    assert answers[("read", 200)] >= 1
    assert {key for key in answers if key[0] == "read"} == {("read", 200)}, answers
    engine = create_engine(f"sqlite:///{tmp_path / 'instance' / 'onestory.db'}")
    try:
        with engine.connect() as conn:
            real_count = conn.execute(select(ConsentReceipt.failed_attempts)).scalar_one()
            unknown_count = conn.execute(select(SignInThrottle.failures).where(
                SignInThrottle.key_hash == throttle_key("receipt", "ZZZZZZZZ"))).scalar_one()
            failed = conn.execute(select(func.count()).where(
                AuditEntry.action == "login.failed")).scalar_one()
    finally:
        engine.dispose()
    assert real_count >= answers[("real", 401)]
    assert unknown_count >= answers[("unknown", 401)]
    assert failed == 2 * guesses
    assert "intact" in checked(onestory(env, "audit", "verify"))
