"""Fixtures shared by every tier.

Integration and functional tests take `db_url`, which runs each of them on
SQLite and on PostgreSQL. PostgreSQL is a throwaway cluster started here; in
CI (CI=true) a missing PostgreSQL fails the run, locally it skips with a
message saying how to enable it.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

import audit.services
import consent.tables  # noqa: F401
from audit.model import Action
from coordination import accounts, migrate
from coordination.app import create_app
from coordination.config import Settings
from coordination.crypto import new_keyring_document, write_secret_file
from coordination.db import Base, make_engine
from tests.pg import Cluster, PgUnavailable, create_database

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def _schemas() -> Iterator[dict[str, Any]]:
    """Per backend: (url, engine) of the database migrated for this run."""
    registry: dict[str, Any] = {}
    yield registry
    _dispose(registry)


def _dispose(registry: dict[str, Any]) -> None:
    for _url, engine in registry.values():
        engine.dispose()


@pytest.fixture(scope="session")
def pg_admin_url(_schemas: dict[str, Any]) -> Iterator[str]:
    url = os.environ.get("ONESTORY_TEST_PG_URL")
    if url:
        yield url
        return
    cluster = None
    try:
        cluster = Cluster()
        cluster.start()
    except PgUnavailable as exc:
        if cluster is not None:
            cluster.stop()
        message = (f"PostgreSQL is not available ({exc}); install Debian's postgresql "
                   "package or set ONESTORY_TEST_PG_URL to run these tests")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield cluster.admin_url
    _dispose(_schemas)  # connections close before the server goes away
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, _schemas: dict[str, Any],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database, emptied of data (the field catalogue stays)."""
    backend = request.param
    if backend not in _schemas:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'onestory.db'}"
        else:
            url = create_database(request.getfixturevalue("pg_admin_url"))
        engine = make_engine(url)
        migrate.upgrade(engine)
        _schemas[backend] = (url, engine)
    url, engine = _schemas[backend]
    _empty(engine)
    yield url


@pytest.fixture
def keystore_url(db_url: str, _schemas: dict[str, Any], request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> str:
    """The key store of the same backend as `db_url`: another database."""
    backend = "keystore-" + ("postgresql" if db_url.startswith("postgresql") else "sqlite")
    if backend not in _schemas:
        if backend == "keystore-sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('keys') / 'keys.db'}"
        else:
            url = create_database(request.getfixturevalue("pg_admin_url"))
        engine = make_engine(url)
        migrate.upgrade(engine, keystore=True)
        _schemas[backend] = (url, engine)
    url, engine = _schemas[backend]
    with engine.begin() as conn:
        for table in ("data_keys", "master_key_state", "key_nodes"):
            conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names
    return url


def _empty(engine: Engine) -> None:
    keep = {"fields", "alembic_version", "audit_head"}
    tables = [t for t in reversed(Base.metadata.sorted_tables) if t.name not in keep]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(t.name for t in tables) + " CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())
        conn.execute(text("UPDATE audit_head SET seq = 0, hash = :genesis"),
                     {"genesis": "0" * 64})


class Clock:
    """The time the application sees; tests move it."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keyring_file(tmp_path: Path) -> Path:
    path = tmp_path / "keyring.json"
    write_secret_file(path, json.dumps(new_keyring_document()))
    return path


INDEX_KEY = base64.b64encode(b"i" * 32).decode()
AUDIT_KEY = base64.b64encode(b"a" * 32).decode()


@pytest.fixture
def settings(db_url: str, keystore_url: str, keyring_file: Path, tmp_path: Path) -> Settings:
    return Settings(env="production", instance=tmp_path, database_url=db_url,
                    keystore_url=keystore_url, keyring_file=keyring_file,
                    index_key_text=INDEX_KEY, audit_key_text=AUDIT_KEY,
                    secret_key="test-secret-key")


@pytest.fixture
def app(settings: Settings, clock: Clock) -> Iterator[Flask]:
    application = create_app(settings, clock=clock)
    yield application
    application.extensions["onestory"].dispose()


# The agencies and staff most tests use.
AGENCIES = [
    ("health-centre", "Health centre", "health", False),
    ("physio", "Physiotherapy", "physiotherapy", False),
    ("ecec", "Kindergarten", "ecec", False),
    ("cps", "Child protection", "child-protection", False),
    ("ngo", "Drop-in NGO", "ngo", True),
    ("oversight", "Data protection office", "oversight", False),
]
STAFF = [
    ("nurse1", "health-centre", "practitioner"),
    ("coord1", "health-centre", "coordinator"),
    ("physio1", "physio", "practitioner"),
    ("physiocoord", "physio", "coordinator"),
    ("ecec1", "ecec", "practitioner"),
    ("cps1", "cps", "practitioner"),
    ("ngo1", "ngo", "practitioner"),
    ("ngocoord", "ngo", "coordinator"),
    ("auditor1", "oversight", "auditor"),
    ("admin1", "oversight", "admin"),
]


@dataclass
class Api:
    """A test client that speaks as one user at a time."""

    client: FlaskClient
    tokens: dict[str, str] = field(default_factory=dict)

    def call(self, method: str, path: str, who: str | None = None, json: Any = None,
             **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(who, who)}"
        return self.client.open(path, method=method, json=json, headers=headers, **kwargs)

    def get(self, path: str, who: str | None = None, **kw: Any) -> Any:
        return self.call("GET", path, who, **kw)

    def post(self, path: str, who: str | None = None, json: Any = None, **kw: Any) -> Any:
        return self.call("POST", path, who, json=json, **kw)

    def put(self, path: str, who: str | None = None, json: Any = None, **kw: Any) -> Any:
        return self.call("PUT", path, who, json=json, **kw)

    def patch(self, path: str, who: str | None = None, json: Any = None, **kw: Any) -> Any:
        return self.call("PATCH", path, who, json=json, **kw)

    # --- helpers for arranging a case ---------------------------------------

    def new_family(self, who: str = "nurse1", **body: Any) -> str:
        body.setdefault("display_name", "Test Family")
        response = self.post("/api/v1/families", who, json=body)
        assert response.status_code == 201, response.get_json()
        family_id: str = response.get_json()["id"]
        return family_id

    def write(self, family_id: str, field_id: str, value: str, who: str = "nurse1") -> Any:
        response = self.post(f"/api/v1/families/{family_id}/entries", who,
                             json={"field": field_id, "value": value})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def sign(self, family_id: str, grants: dict[str, list[str]], who: str = "coord1",
             **extra: Any) -> Any:
        body = consent_body(grants, **extra)
        response = self.put(f"/api/v1/families/{family_id}/consent", who, json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()


def engine_at(request: pytest.FixtureRequest, tmp_path: Path, revision: str) -> Engine:
    """A new database at schema `revision`, on the backend the fixture's
    parameter names ("sqlite" or "postgresql"): a migration's starting point."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/old.db"
    else:
        url = create_database(request.getfixturevalue("pg_admin_url"))
    engine = make_engine(url)
    migrate.upgrade(engine, revision)
    return engine


def audit_fails_for(patch: pytest.MonkeyPatch, action: Action) -> None:
    """Make every append of `action` to the audit log fail as an unavailable
    log does; other acts are still recorded."""
    real = audit.services.record

    def failing(session: Any, event: Any, now: Any) -> Any:
        if event.action == action:
            raise audit.services.AuditUnavailable("down")
        return real(session, event, now)

    patch.setattr(audit.services, "record", failing)


def consent_body(grants: dict[str, list[str]], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "signed_by": "Guardian Name",
        "signed_on": T0.date().isoformat(),
        "method": "paper",
        "purpose": "coordinated support from the family centre",
        "legal_basis": "consent",
        "valid_until": (T0.date() + timedelta(days=365)).isoformat(),
        "grants": grants,
    }
    body.update(extra)
    return body


@pytest.fixture
def api(app: Flask, clock: Clock) -> Api:
    """Agencies and staff in place, one token per user."""
    rt = app.extensions["onestory"]
    tokens = {}
    with rt.sessions() as session:
        for slug, name, kind, minimal in AGENCIES:
            accounts.add_agency(session, slug, name, kind, minimal, clock())
        for username, agency, role in STAFF:
            accounts.add_staff(session, username, agency, role, None, clock())
            tokens[username] = accounts.create_token(session, username, timedelta(days=3650),
                                                     clock())
    return Api(app.test_client(), tokens)


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same argon2 hashing, at a test-friendly cost (the product default
    is deliberately slow)."""
    from argon2 import PasswordHasher

    import consent.services

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(consent.services, "_hasher", cheap)
    monkeypatch.setattr(consent.services, "_DUMMY_HASH", None)
    monkeypatch.setattr(accounts, "password_hasher", cheap)


CLI_ENV = ("ONESTORY_DATABASE_URL", "ONESTORY_KEYSTORE_URL", "ONESTORY_KEYRING",
           "ONESTORY_KEYRING_FILE", "ONESTORY_INDEX_KEY", "ONESTORY_INDEX_KEY_FILE",
           "ONESTORY_AUDIT_SIGNING_KEY", "ONESTORY_AUDIT_SIGNING_KEY_FILE",
           "ONESTORY_ENV", "ONESTORY_SECRET_KEY", "ONESTORY_SECRET_KEY_FILE")


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> pytest.MonkeyPatch:
    """`onestory` pointed at the app's data database, key store and keys."""
    for name in CLI_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONESTORY_INSTANCE", str(settings.instance))
    monkeypatch.setenv("ONESTORY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ONESTORY_KEYSTORE_URL", settings.keystore_url)
    monkeypatch.setenv("ONESTORY_KEYRING_FILE", str(settings.keyring_file))
    monkeypatch.setenv("ONESTORY_INDEX_KEY", INDEX_KEY)
    monkeypatch.setenv("ONESTORY_AUDIT_SIGNING_KEY", AUDIT_KEY)
    return monkeypatch
