"""The hot path issues a fixed number of queries, whatever the family holds
(no N+1), and opens each family's values through one cipher per request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from tests.conftest import Api, Clock

CATALOGUE = ["contact", "household", "story", "health", "education", "social", "protection"]


@contextmanager
def _statements_on(engine: Any, leave_out: frozenset[str] = frozenset()) -> Iterator[list[str]]:
    """The statements `engine` sends meanwhile (but those in `leave_out`)."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.strip().upper() not in leave_out:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def counting(app: Flask) -> AbstractContextManager[list[str]]:
    """The data database's statements."""
    return _statements_on(app.extensions["onestory"].engine)


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
    for field, kind, data in [  # typed entries read in words without another query
            ("education", "attendance",
             {"attended": 4, "offered": 5, "from": "2026-09-01", "to": "2026-09-30"}),
            ("social", "needs", {"codes": ["housing"]})]:
        assert api.post(f"/api/v1/families/{big}/entries", "nurse1",
                        json={"field": field, "kind": kind, "data": data}).status_code == 201
    api.sign(big, {"physio": ["involvement", *CATALOGUE], "ecec": CATALOGUE,
                   "cps": CATALOGUE})
    for _ in range(3):  # several versions in the history
        api.sign(big, {"physio": ["involvement", *CATALOGUE], "ecec": CATALOGUE})

    assert _read(app, api, small) == _read(app, api, big)
    # The token; the family with its current form and cells, involvements,
    # duty grants and the caller's open emergency access; the catalogue with
    # the family's entries, their authors and members; the append (the head
    # locked and moved, the entry hashed and written, in one statement): 4 on
    # PostgreSQL (BEGIN and COMMIT are the driver's); 7 on SQLite (its BEGIN,
    # and the head locked, the entry written and the head moved apart).
    budget = 4 if app.extensions["onestory"].engine.dialect.name == "postgresql" else 7
    assert _read(app, api, big) == budget


def test_exceptional_access_adds_no_statement(app: Flask, api: Api, clock: Clock) -> None:
    """A read resting on an open emergency access, over entries of a
    minimal-data agency it may not open, costs what a consented read costs."""
    from tests.functional.test_emergency_access import GRID, allow_agency, open_glass

    allow_agency(app, clock, "health-centre")
    family = api.new_family("physio1", display_name="Aylin Demir", birth_date="2024-03-14",
                            members=[{"name": "Elif Demir", "relation": "mother"}])
    api.write(family, "health", "Allergic to penicillin.", who="physio1")
    api.sign(family, GRID, who="physiocoord")
    assert api.post(f"/api/v1/families/{family}/involvements", "physiocoord",
                    json={"agency": "ngo"}).status_code == 201
    api.write(family, "story", "Sleeps at the shelter on Tuesdays.", who="ngo1")
    consented = _read(app, api, family, "physio1")
    assert open_glass(api).status_code == 201
    with counting(app) as statements:
        read = api.get(f"/api/v1/families/{family}", "nurse1")
    assert read.status_code == 200
    record = read.get_json()
    assert record["fields"]["health"] and record["fields"]["story"] == []
    assert len(statements) == consented


def test_an_area_adds_no_statement(app: Flask, api: Api, clock: Clock) -> None:
    """The family's area, named from the reader's or the recorder's list,
    comes with the read's statements (another agency's list only when
    neither names the code)."""
    from coordination.casework import areas

    with app.extensions["onestory"].sessions() as session:
        areas.set_agency_areas(session, "health-centre", {"A2": "South"}, [], clock())
        areas.set_agency_areas(session, "physio", {"A1": "Nord"}, [], clock())
    plain = api.new_family("nurse1", members=[{"name": "A", "relation": "child"}])
    placed = api.new_family("nurse1", members=[{"name": "A", "relation": "child"}], area="A2")
    for family in (plain, placed):
        api.write(family, "health", "one")
        api.sign(family, {"physio": ["involvement", "contact", "health", "household"]})
    assert _read(app, api, plain) == _read(app, api, placed)
    read = api.get(f"/api/v1/families/{placed}", "physio1").get_json()
    assert read["area"] == {"code": "A2", "name": "South"}


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


def key_store_asked(app: Flask) -> AbstractContextManager[list[str]]:
    """The key store's statements (BEGIN, COMMIT, ROLLBACK left out)."""
    return _statements_on(app.extensions["onestory"].keystore.engine,
                          frozenset({"BEGIN", "COMMIT", "ROLLBACK"}))


def test_search_query_count_does_not_grow_with_matches(app: Flask, api: Api) -> None:
    first = api.new_family("nurse1", display_name="Same Name", birth_date="2020-05-01")
    api.sign(first, {"physio": ["involvement"]})
    with counting(app) as few:
        api.get("/api/v1/families", "nurse1", query_string={"name": "Same Name"})
    for _ in range(15):
        family = api.new_family("nurse1", display_name="Same Name", birth_date="2020-05-01")
        api.sign(family, {"physio": ["involvement"]})
    for query in ({"name": "Same Name"}, {"name": "Same Name", "birth_date": "2020-05-01"},
                  {"birth_date": "2020-05-01"}):
        with counting(app) as many, key_store_asked(app) as keys:
            found = api.get("/api/v1/families", "nurse1", query_string=query)
        assert len(found.get_json()) == 16
        assert len(many) == len(few)
        # The token; the visible families matching, in one statement; the
        # search appended (PostgreSQL: head locked, entry hashed and written,
        # head moved in one statement): 3 on PostgreSQL (BEGIN and COMMIT are
        # the driver's), 6 on SQLite (its BEGIN; head locked, entry and head
        # apart).
        assert len(many) == (3 if app.extensions["onestory"].engine.dialect.name
                             == "postgresql" else 6), many
        # The 16 families' data keys in one key-store query.
        assert len(keys) == 1 and "data_keys" in keys[0], keys


def test_entry_write_statements(app: Flask, api: Api) -> None:
    """An entry write: a fixed number of statements, the field read with the
    family's lock, and one key-store query (the family's data key)."""
    family = api.new_family("nurse1", members=[{"name": "A", "relation": "child"}])
    api.sign(family, {"physio": ["involvement", "health"]})
    for i in range(5):
        api.write(family, "health", f"note {i}")
    for body in ({"field": "health", "value": "a note"},
                 {"field": "social", "kind": "needs", "data": {"codes": ["housing"]}}):
        with counting(app) as statements, key_store_asked(app) as keys:
            written = api.post(f"/api/v1/families/{family}/entries", "nurse1", json=body)
        assert written.status_code == 201, written.get_json()
        # The token; the family locked with the field read (PostgreSQL; SQLite
        # needs no lock and reads the field alone); the family with its form,
        # involvements, duty grants and emergency access; the entry inserted;
        # the write appended (PostgreSQL: one statement, see the search's): 5
        # on PostgreSQL (BEGIN and COMMIT are the driver's), 8 on SQLite (its
        # BEGIN; head locked, entry and head apart).
        postgres = app.extensions["onestory"].engine.dialect.name == "postgresql"
        assert len(statements) == (5 if postgres else 8), statements
        assert not any("FROM fields ORDER BY" in s for s in statements), statements
        assert len(keys) == 1 and "data_keys" in keys[0], keys


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


# --- "absent" and "not visible" take the same path ----------------------------------

ABSENT = "fam_00000000000000000000"


@contextmanager
def work_done(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Everything a request does with storage, in order: each statement on the
    data database and on the key store, each cipher made, each key unwrapped."""
    import coordination.crypto as crypto

    done: list[str] = []
    rt = app.extensions["onestory"]
    vault = rt.vault

    def data(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        done.append("data: " + statement)

    def keys(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        done.append("keys: " + statement)

    for_family, unwrap = vault.for_family, crypto.unwrap

    def spy_for_family(family_id: str) -> Any:
        done.append("cipher")
        return for_family(family_id)

    def spy_unwrap(*args: Any) -> Any:
        done.append("unwrap")
        return unwrap(*args)

    monkeypatch.setattr(vault, "for_family", spy_for_family)
    monkeypatch.setattr(crypto, "unwrap", spy_unwrap)
    event.listen(rt.engine, "before_cursor_execute", data)
    event.listen(rt.keystore.engine, "before_cursor_execute", keys)
    try:
        yield done
    finally:
        event.remove(rt.engine, "before_cursor_execute", data)
        event.remove(rt.keystore.engine, "before_cursor_execute", keys)
        monkeypatch.undo()


FAMILY_ROUTES = [
    ("GET", "/api/v1/families/{id}", None),
    ("GET", "/api/v1/families/{id}/consent", None),
    ("GET", "/api/v1/families/{id}/consent/history", None),
    ("GET", "/api/v1/families/{id}/access-log", None),
    ("POST", "/api/v1/families/{id}/entries", {"field": "health", "value": "a note"}),
    ("POST", "/api/v1/families/{id}/consent/revoke", {"agency": "physio"}),
]


@pytest.mark.parametrize(("method", "path", "body"), FAMILY_ROUTES)
def test_an_invisible_family_takes_the_same_path_as_an_absent_one(
        app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch, method: str, path: str,
        body: Any) -> None:
    """The 404 for a family that exists but is not visible and the one for a
    family that does not exist run the same statements and the same key
    work, so that neither the answer nor its timing tells them apart."""
    with_form = api.new_family("nurse1", members=[{"name": "A", "relation": "child"}])
    api.write(with_form, "health", "a note")
    api.sign(with_form, {"physio": ["involvement", "health"]})  # nothing for ecec
    without_form = api.new_family("nurse1")
    # ecec coordinates for nothing here; its coordinator may use every route.
    from coordination import accounts
    from tests.conftest import T0

    with app.extensions["onestory"].sessions() as session:
        accounts.add_staff(session, "ececcoord", "ecec", "coordinator", None, T0)
        api.tokens["ececcoord"] = accounts.create_token(
            session, "ececcoord", __import__("datetime").timedelta(days=1), T0)

    def walk(family_id: str) -> list[str]:
        with work_done(app, monkeypatch) as done:
            response = api.call(method, path.format(id=family_id), "ececcoord", json=body)
        assert response.status_code == 404, response.get_json()
        return done

    absent = walk(ABSENT)
    walk(ABSENT)  # the first request of a kind may warm caches: compare warm ones
    absent = walk(ABSENT)
    assert walk(with_form) == absent
    assert walk(without_form) == absent
