"""The hot path issues a fixed number of queries, whatever the family holds
(no N+1), and opens each family's values through one cipher per request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from tests.conftest import Api

CATALOGUE = ["contact", "household", "story", "health", "education", "social", "protection"]


@contextmanager
def counting(app: Flask) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = app.extensions["onestory"].engine

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _read(app: Flask, api: Api, family: str, who: str = "physio1") -> int:
    with counting(app) as statements:
        assert api.get(f"/api/v1/families/{family}", who).status_code == 200
    return len(statements)


def test_shared_record_query_count_does_not_grow(app: Flask, api: Api) -> None:
    small = api.new_family("nurse1", members=[{"name": "A", "relation": "child"}])
    api.write(small, "health", "one")
    api.sign(small, {"physio": ["health", "household"]})

    big = api.new_family("nurse1", members=[{"name": f"M{i}", "relation": "child"}
                                            for i in range(10)])
    for i in range(40):
        api.write(big, CATALOGUE[i % len(CATALOGUE)], f"entry {i}")
    api.sign(big, {"physio": ["involvement", *CATALOGUE], "ecec": CATALOGUE,
                   "cps": CATALOGUE})
    for _ in range(3):  # several versions in the history
        api.sign(big, {"physio": ["involvement", *CATALOGUE], "ecec": CATALOGUE})

    assert _read(app, api, small) == _read(app, api, big)
    # token, family, involvements, form, cells, entries, fields, members; the
    # audit append (head locked and read, entry, head); and SQLite's BEGIN.
    assert _read(app, api, big) <= 12


def test_one_cipher_per_family_per_request(app: Flask, api: Api,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    family = api.new_family("nurse1", members=[{"name": "A", "relation": "child"}])
    for i in range(10):
        api.write(family, "health", f"note {i}")
    api.sign(family, {"physio": ["health", "household", "involvement"]})
    vault = app.extensions["onestory"].vault
    calls: list[str] = []
    original = vault.for_family

    def spy(family_id: str) -> Any:
        calls.append(family_id)
        return original(family_id)

    monkeypatch.setattr(vault, "for_family", spy)
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200
    assert calls == [family]


def test_search_query_count_does_not_grow_with_matches(app: Flask, api: Api) -> None:
    first = api.new_family("nurse1", display_name="Same Name")
    api.sign(first, {"physio": ["involvement"]})
    with counting(app) as few:
        api.get("/api/v1/families", "nurse1", query_string={"name": "Same Name"})
    for _ in range(15):
        family = api.new_family("nurse1", display_name="Same Name")
        api.sign(family, {"physio": ["involvement"]})
    with counting(app) as many:
        found = api.get("/api/v1/families", "nurse1", query_string={"name": "Same Name"})
    assert len(found.get_json()) == 16
    assert len(many) == len(few)


def test_a_read_asks_the_key_store_once_and_never_for_the_active_version(
        app: Flask, api: Api) -> None:
    """The active master version is read only where a key is wrapped (a new
    family, a re-wrap), and a node's heartbeat at most once a minute: a
    shared-record read costs one key-store query, its data key's."""
    family = api.new_family("nurse1", members=[{"name": "A", "relation": "child"}])
    api.write(family, "health", "one")
    api.sign(family, {"physio": ["health", "household"]})
    keystore = app.extensions["onestory"].keystore.engine
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.strip().upper() not in {"BEGIN", "COMMIT", "ROLLBACK"}:
            statements.append(statement)

    event.listen(keystore, "before_cursor_execute", count)
    try:
        for who in ("physio1", "nurse1"):
            assert api.get(f"/api/v1/families/{family}", who).status_code == 200
        reads = list(statements)
        statements.clear()
        api.new_family("nurse1")
        wraps = list(statements)
    finally:
        event.remove(keystore, "before_cursor_execute", count)
    assert len(reads) == 2 and all("data_keys" in s for s in reads), reads
    assert not any("master_key_state" in s or "key_nodes" in s for s in reads), reads
    # A new family: the active version read, then the key written only under it.
    assert len(wraps) == 2 and "master_key_state" in wraps[0], wraps
    assert "INSERT INTO data_keys" in wraps[1] and "master_key_state" in wraps[1], wraps
