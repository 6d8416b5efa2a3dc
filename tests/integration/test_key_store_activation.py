"""An activation landing while a node writes a new family's key: the key
store refuses the write under the old version (and says so), on both
backends, rather than store it or report a key it did not store."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from coordination.db import make_engine
from coordination.keystore import KeyStore, NotActive, WrappedKey

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_a_key_written_while_an_activation_commits_is_refused(keystore_url: str) -> None:
    store = KeyStore.from_url(keystore_url)
    activation = make_engine(keystore_url)
    try:
        store.set_active(1, NOW)
        outcome: list[str] = []

        def write_under_one() -> None:
            try:
                store.add(WrappedKey("fam_racing", 1, 1, b"w" * 60), NOW)
                outcome.append("stored")
            except NotActive:
                outcome.append("refused")

        with activation.connect() as conn:
            # `keys activate 2`, not yet committed, when the node writes its key.
            conn.execute(text("UPDATE master_key_state SET active_version = 2 WHERE id = 1"))
            writer = threading.Thread(target=write_under_one)
            writer.start()
            time.sleep(0.5)  # the write waits for the activation (lock or busy wait)
            conn.commit()
            writer.join(timeout=60)
        assert outcome == ["refused"]
        assert store.get_many(["fam_racing"]) == {}
        assert store.count_under() == {}
        # Under the version now active it is stored.
        store.add(WrappedKey("fam_racing", 1, 2, b"w" * 60), NOW)
        assert store.count_under() == {2: 1}
    finally:
        activation.dispose()
        store.engine.dispose()


@pytest.mark.parametrize("version", [1, 3])
def test_a_key_under_another_version_than_the_active_is_refused(keystore_url: str,
                                                               version: int) -> None:
    store = KeyStore.from_url(keystore_url)
    try:
        store.set_active(2, NOW)
        with pytest.raises(NotActive):
            store.add(WrappedKey("fam_a", 1, version, b"w" * 60), NOW)
        assert store.count_under() == {}
    finally:
        store.engine.dispose()


def test_a_rewrap_to_a_version_no_longer_active_is_refused(keystore_url: str) -> None:
    store = KeyStore.from_url(keystore_url)
    try:
        store.set_active(1, NOW)
        old = WrappedKey("fam_a", 1, 1, b"o" * 60)
        store.add(old, NOW)
        store.set_active(3, NOW)  # another activation came after the one to 2
        assert store.rewrap([(old, WrappedKey("fam_a", 1, 2, b"n" * 60))], NOW) == 0
        assert store.get_many(["fam_a"]) == {"fam_a": old}
        assert store.rewrap([(old, WrappedKey("fam_a", 1, 3, b"n" * 60))], NOW) == 1
        assert store.count_under() == {3: 1}
    finally:
        store.engine.dispose()
