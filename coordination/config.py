"""Settings from the environment. Secrets never come from the database.

Outside development and demo mode a missing secret stops start-up with a
message naming it and saying how to make one.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordination.casework.entry_kinds import DEFAULT_NEEDS_CODES, needs_code_errors
from coordination.crypto import Keyring, new_keyring_document, write_secret_file
from coordination.db import private_folder
from coordination.reports.disclosure import DEFAULT_K, MIN_K

MAX_K = 1000
REPORT_K_MESSAGE = (f"ONESTORY_REPORT_K must be a whole number, {MIN_K} to {MAX_K}: reports "
                    "suppress every count below it")


class ConfigError(Exception):
    """The configuration cannot work; the message says what to do."""


@dataclass
class Settings:
    env: str = "production"
    instance: Path = field(default_factory=lambda: Path("instance"))
    database_url: str = ""
    secret_key: str | None = None
    keystore_url: str = ""
    keyring_json: str | None = None
    keyring_file: Path | None = None
    index_key_text: str | None = None
    audit_key_text: str | None = None
    staff_token_lifetime: timedelta = timedelta(days=90)
    family_session_lifetime: timedelta = timedelta(minutes=15)
    max_body_bytes: int = 64 * 1024
    # Web UI: session cookies only over HTTPS (off only for development on
    # http://127.0.0.1), staff sessions end after this long without a request.
    cookie_secure: bool = True
    session_idle: timedelta = timedelta(minutes=30)
    oidc_client_secrets: dict[str, str] = field(default_factory=dict)
    # Reverse proxies in front of `onestory serve` whose X-Forwarded-* headers
    # are believed (client address for lockout, https for cookies and links).
    trusted_proxies: int = 0
    # Host names this service answers to; other Host headers get 400 (links
    # such as the sign-in provider's return address are built from it).
    trusted_hosts: list[str] = field(default_factory=list)
    # The time zone families read times in on their page (an IANA name).
    timezone: str = "UTC"
    # How often (at most) each server process records in the key store that
    # its node is alive and which master key versions it holds.
    node_heartbeat_seconds: int = 60
    # Breaking the glass: how long an emergency access stays open (at most
    # 24 hours), and how many attempts one staff member may make an hour.
    emergency_duration: timedelta = timedelta(hours=2)
    emergency_attempts_per_hour: int = 5
    # The codes a `needs` entry may carry (ONESTORY_NEEDS_CODES, comma-separated).
    needs_codes: tuple[str, ...] = DEFAULT_NEEDS_CODES
    # Reports: a count below this is suppressed (coordination.reports.disclosure;
    # never below its MIN_K).
    report_k: int = DEFAULT_K

    @property
    def web_policy(self) -> Any:
        """Sign-in policy of the web UI (`coordination.signin.Policy`)."""
        from coordination.signin import Policy

        return Policy(idle=self.session_idle)

    def checked(self) -> Settings:
        """These settings, or ConfigError for a value no installation may run with."""
        if not MIN_K <= self.report_k <= MAX_K:
            raise ConfigError(REPORT_K_MESSAGE)
        return self

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


    def keyring(self) -> Keyring:
        """The master keyring: ONESTORY_KEYRING (JSON) or ONESTORY_KEYRING_FILE;
        generated into the instance folder in development only."""
        if self.keyring_json:
            return Keyring.from_json(self.keyring_json)
        if self.keyring_file is not None:
            return Keyring.from_file(self.keyring_file)
        if self.development:
            path = self.instance / "keyring.json"
            if not path.exists():
                write_secret_file(path, json.dumps(new_keyring_document(), indent=2) + "\n")
                print(f"onestory: generated a development master keyring at {path} "
                      "(mode 0600); never use it in production", file=sys.stderr)
            return Keyring.from_file(path)
        raise ConfigError(
            "no master keyring: run `onestory keys init --keyring-file /etc/onestory/keyring.json "
            "--index-key-file /etc/onestory/index_key` and set ONESTORY_KEYRING_FILE (and "
            "ONESTORY_INDEX_KEY_FILE) to those files, kept apart from every database and backup"
        )

    def _development_key(self, name: str, what: str) -> str | None:
        """Development only: 32 random bytes (base64) kept in the instance folder, 0600."""
        if not self.development:
            return None
        path = self.instance / name
        if not path.exists():
            write_secret_file(path, base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            print(f"onestory: generated a development {what} at {path} (mode 0600)",
                  file=sys.stderr)
        return path.read_text().strip()

    def index_key(self) -> bytes:
        """The blind-index key (HMAC), its own secret: ONESTORY_INDEX_KEY(_FILE)."""
        text = self.index_key_text or self._development_key("index_key", "search-index key")
        if not text:
            raise ConfigError(
                "ONESTORY_INDEX_KEY is not set: `onestory keys init` makes one; set "
                "ONESTORY_INDEX_KEY_FILE to its file (it must never change once data exists)"
            )
        try:
            key = base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise ConfigError("ONESTORY_INDEX_KEY is not base64") from exc
        if len(key) != 32:
            raise ConfigError("ONESTORY_INDEX_KEY must be 32 bytes (base64 of 256 bits)")
        return key

    def audit_signing_key(self) -> Ed25519PrivateKey:
        """The Ed25519 key that signs audit checkpoints: ONESTORY_AUDIT_SIGNING_KEY(_FILE),
        base64 of its 32-byte seed; generated in development only. Keep it off the
        database server: whoever holds it and the database can rewrite history."""
        text = self.audit_key_text or self._development_key("audit_signing_key",
                                                            "audit signing key")
        if not text:
            raise ConfigError(
                "ONESTORY_AUDIT_SIGNING_KEY is not set: `onestory keys init` makes one; set "
                "ONESTORY_AUDIT_SIGNING_KEY_FILE to its file, kept off the database server"
            )
        try:
            seed = base64.b64decode(text, validate=True)
            return Ed25519PrivateKey.from_private_bytes(seed)
        except ValueError:
            raise ConfigError("ONESTORY_AUDIT_SIGNING_KEY must be base64 of a 32-byte "
                              "Ed25519 seed") from None


def _generated_secret(path: Path) -> str:
    """Development only: a secret kept in the instance folder, mode 0600."""
    if path.exists():
        return path.read_text().strip()
    private_folder(path.parent)
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
    keystore = env_vars.get("ONESTORY_KEYSTORE_URL") or f"sqlite:///{instance / 'keys.db'}"
    if keystore == url:
        raise ConfigError("ONESTORY_KEYSTORE_URL must name another database than "
                          "ONESTORY_DATABASE_URL: keys and data are kept apart")
    keyring_file = env_vars.get("ONESTORY_KEYRING_FILE")
    secure = env_vars.get("ONESTORY_COOKIE_SECURE", "0" if env == "development" else "1")
    if secure not in {"0", "1"}:
        raise ConfigError("ONESTORY_COOKIE_SECURE must be 1 (cookies only over HTTPS) or 0")
    idle = env_vars.get("ONESTORY_SESSION_IDLE_MINUTES", "30")
    if not idle.isdigit() or not 1 <= int(idle) <= 24 * 60:
        raise ConfigError("ONESTORY_SESSION_IDLE_MINUTES must be a whole number of minutes, "
                          "1 to 1440")
    proxies = env_vars.get("ONESTORY_TRUSTED_PROXIES", "0")
    if not proxies.isdigit() or int(proxies) > 5:
        raise ConfigError("ONESTORY_TRUSTED_PROXIES must be the number of reverse proxies "
                          "in front of OneStory, 0 to 5")
    timezone = env_vars.get("ONESTORY_TIMEZONE", "UTC")
    try:
        ZoneInfo(timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigError(f"ONESTORY_TIMEZONE must be a time zone name such as "
                          f"Europe/Oslo, not {timezone!r}") from None
    heartbeat = env_vars.get("ONESTORY_NODE_HEARTBEAT_SECONDS", "60")
    if not heartbeat.isdigit() or not 1 <= int(heartbeat) <= 60:
        raise ConfigError("ONESTORY_NODE_HEARTBEAT_SECONDS must be a whole number of "
                          "seconds, 1 to 60")
    emergency_hours = env_vars.get("ONESTORY_EMERGENCY_HOURS", "2")
    if not emergency_hours.isdigit() or not 1 <= int(emergency_hours) <= 24:
        raise ConfigError("ONESTORY_EMERGENCY_HOURS must be a whole number of hours, 1 to 24")
    emergency_attempts = env_vars.get("ONESTORY_EMERGENCY_ATTEMPTS_PER_HOUR", "5")
    if not emergency_attempts.isdigit() or not 1 <= int(emergency_attempts) <= 100:
        raise ConfigError("ONESTORY_EMERGENCY_ATTEMPTS_PER_HOUR must be a whole number, "
                          "1 to 100")
    needs = env_vars.get("ONESTORY_NEEDS_CODES")
    needs_codes = (tuple(c.strip() for c in needs.split(",") if c.strip())
                   if needs is not None else DEFAULT_NEEDS_CODES)
    problems = needs_code_errors(needs_codes)
    if problems:
        raise ConfigError("ONESTORY_NEEDS_CODES must be comma-separated codes such as "
                          "'income,housing,other': " + "; ".join(problems))
    report_k = env_vars.get("ONESTORY_REPORT_K", str(DEFAULT_K))
    if not (report_k.isascii() and report_k.isdigit()):  # "²" is a digit int() refuses
        raise ConfigError(REPORT_K_MESSAGE)
    return Settings(
        env=env,
        instance=instance,
        database_url=url,
        keystore_url=keystore,
        keyring_json=env_vars.get("ONESTORY_KEYRING") or None,
        keyring_file=Path(keyring_file) if keyring_file else None,
        index_key_text=_secret(env_vars, "ONESTORY_INDEX_KEY"),
        audit_key_text=_secret(env_vars, "ONESTORY_AUDIT_SIGNING_KEY"),
        secret_key=_secret(env_vars, "ONESTORY_SECRET_KEY"),
        cookie_secure=secure == "1",
        session_idle=timedelta(minutes=int(idle)),
        trusted_proxies=int(proxies),
        timezone=timezone,
        node_heartbeat_seconds=int(heartbeat),
        emergency_duration=timedelta(hours=int(emergency_hours)),
        emergency_attempts_per_hour=int(emergency_attempts),
        needs_codes=needs_codes,
        report_k=int(report_k),
        trusted_hosts=[h.strip() for h in env_vars.get("ONESTORY_TRUSTED_HOSTS", "").split(",")
                       if h.strip()],
        oidc_client_secrets=_client_secrets(env_vars.get("ONESTORY_OIDC_CLIENT_SECRETS_FILE")),
    ).checked()


def _client_secrets(file_name: str | None) -> dict[str, str]:
    """Client secrets of agencies' OpenID Connect providers, by agency id, from
    a JSON file readable only by the service (never the database). Agencies
    without one sign in as public clients (PKCE only)."""
    if not file_name:
        return {}
    try:
        data = json.loads(Path(file_name).read_text())
    except OSError as exc:
        raise ConfigError(f"ONESTORY_OIDC_CLIENT_SECRETS_FILE names {file_name}, which cannot "
                          f"be read: {exc.strerror}") from exc
    except ValueError:
        raise ConfigError("ONESTORY_OIDC_CLIENT_SECRETS_FILE is not JSON") from None
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in data.items()):
        raise ConfigError('ONESTORY_OIDC_CLIENT_SECRETS_FILE must hold {"agency-id": "secret"}')
    return data
