"""Settings from the environment. Secrets never come from the database.

Outside development and demo mode a missing secret stops start-up with a
message naming it and saying how to make one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path


class ConfigError(Exception):
    """The configuration cannot work; the message says what to do."""


@dataclass
class Settings:
    env: str = "production"
    instance: Path = field(default_factory=lambda: Path("instance"))
    database_url: str = ""
    secret_key: str | None = None
    staff_token_lifetime: timedelta = timedelta(days=90)
    family_session_lifetime: timedelta = timedelta(minutes=15)
    max_body_bytes: int = 64 * 1024

    @property
    def development(self) -> bool:
        return self.env == "development"

    def require_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        if self.development:
            self.secret_key = _generated_secret(self.instance / "secret_key")
            return self.secret_key
        raise ConfigError(
            "ONESTORY_SECRET_KEY is not set: generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'` and set "
            "ONESTORY_SECRET_KEY, or put it in a file readable only by the service and "
            "set ONESTORY_SECRET_KEY_FILE to its path"
        )


def _generated_secret(path: Path) -> str:
    """Development only: a secret kept in the instance folder, mode 0600."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def _secret(environ: Mapping[str, str], name: str) -> str | None:
    if environ.get(name):
        return environ[name]
    file_name = environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip() or None
        except OSError as exc:
            raise ConfigError(
                f"{name}_FILE names {file_name}, which cannot be read: {exc.strerror}"
            ) from exc
    return None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env_vars = os.environ if environ is None else environ
    env = env_vars.get("ONESTORY_ENV", "production")
    if env not in {"production", "development"}:
        raise ConfigError(f"ONESTORY_ENV must be 'production' or 'development', not {env!r}")
    instance = Path(env_vars.get("ONESTORY_INSTANCE", "instance")).resolve()
    url = env_vars.get("ONESTORY_DATABASE_URL") or f"sqlite:///{instance / 'onestory.db'}"
    return Settings(
        env=env,
        instance=instance,
        database_url=url,
        secret_key=_secret(env_vars, "ONESTORY_SECRET_KEY"),
    )
