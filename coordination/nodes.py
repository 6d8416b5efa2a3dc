"""This app node as the other nodes see it: its id and its heartbeat in the key store.

Several nodes (hosts, or instance folders on one host) serve one data
database and one key store. Each process records, at most once per
`interval` and at once when its keyring file changed, that its node is
alive, which master key versions its keyring holds and which version it
read as active (`KeyStore.beat`). `onestory keys activate` and `keys
retire` read these rows: a node seen within `LIVE` counts.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from coordination.crypto import Keyring, KeyringError
from coordination.keystore import KeyStore, NoActiveVersion

LIVE = timedelta(minutes=5)
log = logging.getLogger("onestory.keys")


def node_id(instance: Path) -> str:
    """host:instance folder; one id for every process serving that folder."""
    host = socket.gethostname()
    ident = f"{host}:{instance.resolve()}"
    if len(ident) > 255:
        ident = f"{host[:200]}:{hashlib.sha256(str(instance).encode()).hexdigest()[:32]}"
    return ident


class Heartbeat:
    """One process's heartbeat. `maybe` is called on every request and costs
    a stat of the keyring file unless a beat is due."""

    def __init__(self, keystore: KeyStore, keyring: Keyring, node: str,
                 interval: float) -> None:
        self.keystore = keystore
        self.keyring = keyring
        self.node = node
        self.interval = interval
        self._lock = threading.Lock()
        self._last: float | None = None
        self._reported: frozenset[int] | None = None

    def maybe(self, now: datetime) -> None:
        """Beat when the last beat is `interval` old or the keyring changed.
        Never fails the request: a key store that cannot be written is logged
        (once per interval) and the request goes on to meet it, or not."""
        try:
            self.keyring.refresh()
        except KeyringError:
            return  # the request that needs a key reports it
        held = frozenset(self.keyring.keys)
        due = (self._last is None or held != self._reported
               or time.monotonic() - self._last >= self.interval)
        if not due or not self._lock.acquire(blocking=False):
            return
        try:
            self.beat(now)
        except (SQLAlchemyError, NoActiveVersion) as exc:
            self._last = time.monotonic()
            log.warning("this node's heartbeat could not be written to the key store (%s)",
                        type(exc).__name__)
        finally:
            self._lock.release()

    def beat(self, now: datetime) -> int:
        """Write the heartbeat now; returns the active version it read."""
        held = frozenset(self.keyring.keys)
        active = self.keystore.beat(self.node, held, now, propose=self.keyring.active)
        self._last, self._reported = time.monotonic(), held
        return active
