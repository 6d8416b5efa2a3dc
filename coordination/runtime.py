"""What a running OneStory holds: settings, engine, sessions, vault, clock.

Built by `create_app` and by the command line, never at import time.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import current_app, g, request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from consent.services import install_guards
from coordination.config import Settings
from coordination.crypto import EnvelopeVault, Vault
from coordination.db import make_engine, make_session_factory
from coordination.keystore import KeyStore
from coordination.nodes import Heartbeat, node_id


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime] = field(default=utc_now)
    _keystore: KeyStore | None = None
    _vault: Vault | None = None
    _audit_key: Ed25519PrivateKey | None = None
    _heartbeat: Heartbeat | None = None

    @classmethod
    def build(cls, settings: Settings, clock: Callable[[], datetime] = utc_now) -> Runtime:
        engine = make_engine(settings.database_url)
        sessions = make_session_factory(engine)
        install_guards(sessions)
        return cls(settings, engine, sessions, clock)

    @property
    def keystore(self) -> KeyStore:
        if self._keystore is None:
            self._keystore = KeyStore.from_url(self.settings.keystore_url)
        return self._keystore

    @property
    def vault(self) -> Vault:
        """Built on first use: commands that touch no family need no keys."""
        if self._vault is None:
            self._vault = EnvelopeVault(self.settings.keyring(), self.keystore,
                                        self.settings.index_key())
        return self._vault

    @property
    def heartbeat(self) -> Heartbeat:
        """This process's heartbeat as an app node (`coordination.nodes`)."""
        if self._heartbeat is None:
            vault = self.vault
            assert isinstance(vault, EnvelopeVault)
            self._heartbeat = Heartbeat(self.keystore, vault.keyring,
                                        node_id(self.settings.instance),
                                        self.settings.node_heartbeat_seconds)
        return self._heartbeat

    @property
    def audit_key(self) -> Ed25519PrivateKey:
        if self._audit_key is None:
            self._audit_key = self.settings.audit_signing_key()
        return self._audit_key

    def now(self) -> datetime:
        return self.clock()

    def dispose(self) -> None:
        self.engine.dispose()
        if self._keystore is not None:
            self._keystore.engine.dispose()


def current() -> Runtime:
    """The runtime of the application serving this request."""
    rt: Runtime = current_app.extensions["onestory"]
    return rt


REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id() -> str:
    """This request's id for the audit log: the caller's X-Request-ID when it
    is a plain token, else a new random one."""
    if "request_id" not in g:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    rid: str = g.request_id
    return rid


def request_db() -> Session:
    """This request's database session (closed when the request ends)."""
    if "db" not in g:
        g.db = current().sessions()
    session: Session = g.db
    return session
