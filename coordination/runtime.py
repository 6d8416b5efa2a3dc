"""What a running OneStory holds: settings, engine, sessions, vault, clock.

Built by `create_app` and by the command line, never at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from consent.services import install_guards
from coordination.config import Settings
from coordination.crypto import PlaintextVault, Vault
from coordination.db import make_engine, make_session_factory


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    vault: Vault
    clock: Callable[[], datetime] = field(default=utc_now)

    @classmethod
    def build(cls, settings: Settings, clock: Callable[[], datetime] = utc_now) -> Runtime:
        if settings.database_url.startswith("sqlite:///"):
            Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        engine = make_engine(settings.database_url)
        sessions = make_session_factory(engine)
        install_guards(sessions)
        return cls(settings, engine, sessions, PlaintextVault(), clock)

    def now(self) -> datetime:
        return self.clock()
