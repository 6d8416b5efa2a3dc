"""With PostgreSQL down, OneStory says so: the API answers 503
`urn:onestory:problem:unavailable` with Retry-After, pages a plain 503 page,
no traceback in the log — and it serves again once the database is back.

Runs on a PostgreSQL cluster of its own (tests.pg.Cluster), stopped and
started here without disturbing the cluster the other tests share.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from coordination import accounts, migrate
from coordination.app import create_app
from coordination.config import Settings
from coordination.db import make_engine
from tests.conftest import AGENCIES, AUDIT_KEY, IN_CI, INDEX_KEY, STAFF, Api, Clock
from tests.pg import Cluster, PgUnavailable, create_database
from tests.web import csrf_token, set_passwords, signed_in

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    own = None
    try:
        own = Cluster()
        own.start()
    except PgUnavailable as exc:
        if own is not None:
            own.stop()
        message = f"PostgreSQL is not available ({exc})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield own
    own.stop()


@pytest.fixture
def down_app(cluster: Cluster, keyring_file: Path, tmp_path: Path,
             clock: Clock) -> Iterator[Flask]:
    """An application on the cluster (data and key store both there)."""
    urls = []
    for keystore in (False, True):
        url = create_database(cluster.admin_url)
        engine = make_engine(url)
        migrate.upgrade(engine, keystore=keystore)
        engine.dispose()
        urls.append(url)
    settings = Settings(env="production", instance=tmp_path, database_url=urls[0],
                        keystore_url=urls[1], keyring_file=keyring_file,
                        index_key_text=INDEX_KEY, audit_key_text=AUDIT_KEY,
                        secret_key="test-secret-key")
    app = create_app(settings, clock=clock)
    try:
        yield app
    finally:
        if not _running(cluster):
            cluster.resume()
        app.extensions["onestory"].dispose()


def _reading_through_two_restarts(cluster: Cluster, read: Callable[[threading.Event], None],
                                  readers: int, wait: float) -> None:
    """`readers` threads run `read` (until its event is set) while the
    cluster is stopped and started twice."""
    stop = threading.Event()
    threads = [threading.Thread(target=read, args=(stop,)) for _ in range(readers)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(2):
            cluster.halt()
            cluster.resume()
    finally:
        stop.set()
        for thread in threads:
            thread.join(wait)


def _running(cluster: Cluster) -> bool:
    return (cluster.data / "postmaster.pid").exists()


def _api(app: Flask, clock: Clock) -> Api:
    tokens = {}
    with app.extensions["onestory"].sessions() as session:
        for slug, name, kind, minimal in AGENCIES:
            accounts.add_agency(session, slug, name, kind, minimal, clock())
        for username, agency, role in STAFF:
            accounts.add_staff(session, username, agency, role, None, clock())
            tokens[username] = accounts.create_token(session, username,
                                                     __import__("datetime").timedelta(days=1),
                                                     clock())
    return Api(app.test_client(), tokens)


def assert_unavailable(response: object) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)[:300]  # type: ignore[attr-defined]
    assert int(response.headers["Retry-After"]) > 0  # type: ignore[attr-defined]


def test_api_answers_503_unavailable_while_the_database_is_down(
    down_app: Flask, cluster: Cluster, clock: Clock, caplog: pytest.LogCaptureFixture,
) -> None:
    api = _api(down_app, clock)
    family = api.new_family("nurse1")
    assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 200

    cluster.halt()
    caplog.clear()
    for response in (
        api.get(f"/api/v1/families/{family}", "nurse1"),
        api.get("/api/v1/agencies", "nurse1"),
        api.post("/api/v1/families", "nurse1", json={"display_name": "Another"}),
        api.post("/api/v1/family/session", json={"receipt_code": "AAAA-BBBB", "pin": "123456"}),
        api.get("/api/v1/audit", "auditor1"),
    ):
        assert_unavailable(response)
        assert response.mimetype == PROBLEM
        body = json.loads(response.get_data(as_text=True))
        assert body["type"] == "urn:onestory:problem:unavailable"
        assert body["status"] == 503
        assert body["errors"] == {}
        assert {"type", "title", "status", "detail", "errors"} <= set(body)
    # One line per request saying what failed, never a traceback.
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert any("database" in r.getMessage() for r in caplog.records)

    cluster.resume()
    assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 200


def test_pages_answer_a_plain_503_while_the_database_is_down(
    down_app: Flask, cluster: Cluster, clock: Clock, caplog: pytest.LogCaptureFixture,
) -> None:
    api = _api(down_app, clock)
    set_passwords(down_app)
    family = api.new_family("nurse1")
    staff = signed_in(down_app, "nurse1")
    assert staff.get(f"/staff/families/{family}").status_code == 200
    visitor = down_app.test_client()
    token = csrf_token(visitor.get("/family/").get_data(as_text=True))

    cluster.halt()
    caplog.clear()
    for response in (
        staff.get(f"/staff/families/{family}"),
        staff.get("/staff/"),
        visitor.post("/family/", data={"receipt_code": "AAAA-BBBB", "pin": "123456",
                                       "csrf_token": token}),
    ):
        assert_unavailable(response)
        assert response.mimetype == "text/html"
        assert "try again" in response.get_data(as_text=True).lower()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"

    cluster.resume()
    assert staff.get(f"/staff/families/{family}").status_code == 200


def test_a_restart_while_the_app_is_idle_fails_no_request(
    down_app: Flask, cluster: Cluster, clock: Clock,
) -> None:
    """PostgreSQL restarts (a failover, a minor upgrade) between two
    requests, however soon: every pooled connection of the data database
    and of the key store is dead, and no request has met a lost one yet.
    The next requests are answered as if nothing happened (a dead pooled
    connection is replaced before use, not used and failed)."""
    api = _api(down_app, clock)
    family = api.new_family("nurse1")
    api.write(family, "health", "before")
    rt = down_app.extensions["onestory"]
    pings: list[str] = []
    for name, engine in (("data", rt.engine), ("keys", rt.keystore.engine)):
        ping = engine.dialect.do_ping
        setattr(engine.dialect, "do_ping",  # noqa: B010 - this engine's dialect only
                lambda conn, ping=ping, name=name: pings.append(name) or ping(conn))
    for _ in range(3):  # in steady use: no check, no round trip
        assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 200
    assert pings == []
    cluster.halt()
    cluster.resume()
    for who in ("nurse1", "coord1", "nurse1"):
        response = api.get(f"/api/v1/families/{family}", who)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert api.post(f"/api/v1/families/{family}/entries", "nurse1",
                    json={"field": "health", "value": "after"}).status_code == 201
    assert {"data", "keys"} <= set(pings)


def test_reads_in_flight_while_the_database_goes_and_comes_back_answer_200_or_503(
    down_app: Flask, cluster: Cluster, clock: Clock,
) -> None:
    """Readers keep reading while PostgreSQL stops and starts again under
    them: every answer is 200 or 503 (never a 500), and every 200 is on
    record (the log holds at least one entry per record shown)."""

    from sqlalchemy import func, select

    from audit.model import AuditEntry

    api = _api(down_app, clock)
    family = api.new_family("nurse1")
    rt = down_app.extensions["onestory"]
    with rt.sessions() as session:
        before = session.scalar(select(func.count()).select_from(AuditEntry))
    answers: list[int] = []

    def read(stop: threading.Event) -> None:
        client = Api(down_app.test_client(), api.tokens)
        while not stop.is_set():
            answers.append(client.get(f"/api/v1/families/{family}", "nurse1").status_code)

    _reading_through_two_restarts(cluster, read, readers=4, wait=60)
    assert set(answers) <= {200, 503}, sorted(set(answers))
    assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 200
    with rt.sessions() as session:
        after = session.scalar(select(func.count()).select_from(AuditEntry))
    assert after - before >= answers.count(200) + 1
    assert answers.count(200) > 0


def test_the_key_store_going_away_alone_answers_503_and_shows_nothing(
    down_app: Flask, cluster: Cluster, clock: Clock,
) -> None:
    """The key store's database drops its connections (restarted on its
    own): the next read is answered as usual. While it refuses connections,
    a read answers 503 and shows nothing (no key, no data); once it is back,
    200 again."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    api = _api(down_app, clock)
    family = api.new_family("nurse1", display_name="Kaya Family")
    assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 200
    rt = down_app.extensions["onestory"]
    keys = make_url(rt.settings.keystore_url).database
    admin = make_engine(cluster.admin_url).execution_options(isolation_level="AUTOCOMMIT")
    drop = text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d "
                "AND pid <> pg_backend_pid()")
    try:
        with admin.connect() as conn:
            assert conn.execute(drop, {"d": keys}).all()  # at least one was open
        assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 200
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{keys}" ALLOW_CONNECTIONS false'))
            conn.execute(drop, {"d": keys})
        response = api.get(f"/api/v1/families/{family}", "nurse1")
        assert_unavailable(response)
        assert "Kaya" not in response.get_data(as_text=True)
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{keys}" ALLOW_CONNECTIONS true'))
        assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 200
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{keys}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_a_connection_lost_before_the_request_ends_is_no_500(
    down_app: Flask, cluster: Cluster, clock: Clock, caplog: pytest.LogCaptureFixture,
) -> None:
    """The server drops the request's connection after its answer is made
    but before the request's session is closed (its transaction, a read,
    still open): the answer stands, and the close neither raises (which a
    server turns into a 500) nor logs a traceback."""
    from sqlalchemy import text

    from coordination.runtime import request_db

    admin = make_engine(cluster.admin_url).execution_options(isolation_level="AUTOCOMMIT")
    lost: list[int] = []

    @down_app.after_request
    def drop_the_connection(response: Any) -> Any:
        if request_db().in_transaction():
            pid = request_db().connection().connection.dbapi_connection.info.backend_pid
            with admin.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                while conn.execute(text("SELECT count(*) FROM pg_stat_activity "
                                        "WHERE pid = :pid"), {"pid": pid}).scalar_one():
                    pass
            lost.append(pid)
        return response

    try:
        api = _api(down_app, clock)
        caplog.clear()
        response = api.get("/api/v1/agencies", "nurse1")
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        assert lost, "the request had no transaction open at its end"
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
        assert api.get("/api/v1/agencies", "nurse1").status_code == 200
    finally:
        admin.dispose()


def test_onestory_serve_through_database_restarts_answers_200_or_503(
    cluster: Cluster, tmp_path: Path, keyring_file: Path,
) -> None:
    """`onestory serve` (several processes) under readers while PostgreSQL
    stops and starts again twice, then once more while it is idle: every
    answer is 200 or 503, never a 500 nor a dropped connection, no
    traceback is logged, every record shown is on record, and the first
    reads after the idle restart are answered."""
    import urllib.error
    import urllib.request

    from sqlalchemy import func, select

    from audit.model import AuditEntry
    from tests.functional.test_serve import checked, onestory, server, wait_healthy
    from tests.functional.test_serve_sqlite import installed_env
    from tests.pg import free_port

    data, keys = create_database(cluster.admin_url), create_database(cluster.admin_url)
    env = installed_env(tmp_path, keyring_file, ONESTORY_DATABASE_URL=data,
                        ONESTORY_KEYSTORE_URL=keys)
    token = checked(onestory(env, "token", "create", "nurse1")).strip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"

    def call(path: str, body: dict[str, str] | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(  # noqa: S310 - loopback
            f"{base}{path}", data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()

    answers: list[int] = []
    with server(env, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
                log=log) as proc:
        wait_healthy(base, proc, log.read_text)
        status, body = call("/api/v1/families", {"display_name": "F"})
        assert status == 201, body
        family = json.loads(body)["id"]
        engine = make_engine(data)
        with engine.connect() as conn:
            before = conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one()

        def read(stop: threading.Event) -> None:
            while not stop.is_set():
                try:
                    answers.append(call(f"/api/v1/families/{family}")[0])
                except OSError:
                    answers.append(0)

        _reading_through_two_restarts(cluster, read, readers=6, wait=90)
        engine.dispose()
        cluster.halt()  # while idle
        cluster.resume()
        after_idle = [call(f"/api/v1/families/{family}")[0] for _ in range(6)]
        assert proc.poll() is None, log.read_text()
    assert set(answers) <= {200, 503}, sorted(set(answers))
    assert answers.count(200) > 0
    assert after_idle == [200] * 6
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    engine = make_engine(data)
    try:
        with engine.connect() as conn:
            after = conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    finally:
        engine.dispose()
    assert after - before >= answers.count(200) + 6
