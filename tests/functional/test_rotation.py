"""Master key rotation with `onestory keys ...`, called in-process, on both databases.

A rotation adds a master key version and re-wraps every family's data key
under it, in batches, in the key store only: the data database is not
touched, every family reads exactly as before (through a fresh server and
through one that was already running), an interrupted rotation is finished
by `keys rewrap`, and an old version can be retired once no key uses it.
"""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from coordination.app import create_app
from coordination.config import Settings, load_settings
from coordination.crypto import EnvelopeVault, Keyring, VaultError
from coordination.db import Base, make_engine
from coordination.keystore import KeyStore, WrappedKey
from coordination.model import Family
from tests.cli import assert_ok, assert_one_line_failure, run
from tests.conftest import CLI_ENV, INDEX_KEY, T0, Api, Clock

# --- running the command line -------------------------------------------------------


def status_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """`keys status`'s line per master version (it also names the nodes seen)."""
    result = run(capsys, "keys", "status")
    assert_ok(result)
    return [line for line in result.out.splitlines() if line.startswith("version ")]


# --- arranging and observing ----------------------------------------------------------


def populate(api: Api, count: int, first: int = 0) -> list[str]:
    """`count` families with attributes, members, entries by two agencies and a form."""
    families = []
    for n in range(first, first + count):
        family = api.new_family(
            "nurse1", display_name=f"Family Number {n}", birth_date="2020-01-0" + str(n % 9 + 1),
            address=f"Storgata {n}", national_id=f"0101200{n:04d}", languages=["tr", "nb"],
            members=[{"name": f"Child {n}", "relation": "child", "birth_date": "2021-05-05"}])
        api.write(family, "health", f"health note {n}", who="nurse1")
        api.sign(family, {"physio": ["involvement", "health", "story", "household"]})
        response = api.post(f"/api/v1/families/{family}/involvements", "coord1",
                            json={"agency": "physio"})
        assert response.status_code == 201, response.get_json()
        api.write(family, "story", f"story from the physio {n}", who="physio1")
        families.append(family)
    return families


def read_all(api: Api, families: list[str]) -> dict[str, Any]:
    """Everything two agencies and a coordinator can read of each family."""
    seen: dict[str, Any] = {}
    for family in families:
        for who, path in (("nurse1", ""), ("physio1", ""), ("coord1", "/consent")):
            response = api.get(f"/api/v1/families/{family}{path}", who)
            assert response.status_code == 200, (family, who, path, response.get_json())
            seen[f"{family} {who}{path}"] = response.get_json()
        found = api.get("/api/v1/families", "nurse1",
                        query_string={"name": seen[f"{family} nurse1"]["display_name"]})
        assert found.status_code == 200, found.get_json()
        seen[f"{family} search"] = found.get_json()
    return seen


def data_rows(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the data database, in primary-key order
    (but the audit log's, which the reads in between append to)."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return {
                table.name: [tuple(row) for row in conn.execute(
                    select(table).order_by(*table.primary_key.columns))]
                for table in Base.metadata.sorted_tables
                if not table.name.startswith("audit_")
            }
    finally:
        engine.dispose()


def stored_keys(settings: Settings, families: list[str]) -> dict[str, WrappedKey]:
    store = KeyStore.from_url(settings.keystore_url)
    try:
        return store.get_many(families)
    finally:
        store.engine.dispose()


def counts(settings: Settings) -> dict[int, int]:
    store = KeyStore.from_url(settings.keystore_url)
    try:
        return store.count_under()
    finally:
        store.engine.dispose()


@pytest.fixture
def start_server(settings: Settings, clock: Clock, api: Api) -> Iterator[Callable[[], Api]]:
    """Start another server from the same settings, reading the keyring as it is now."""
    apps: list[Flask] = []

    def start() -> Api:
        fresh = create_app(settings, clock=clock)
        apps.append(fresh)
        return Api(fresh.test_client(), api.tokens)

    yield start
    for started in apps:
        started.extensions["onestory"].dispose()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- rotate, status, retire -------------------------------------------------------------


def test_rotation_rewraps_every_key_and_every_family_reads_as_before(
        api: Api, start_server: Callable[[], Api], settings: Settings, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], keyring_file: Path) -> None:
    families = populate(api, 3)
    before = read_all(api, families)
    rows_before = data_rows(settings)
    keys_before = stored_keys(settings, families)
    old_keyring_text = keyring_file.read_text()
    assert len(rows_before["families"]) == 3 and len(rows_before["entries"]) == 6
    assert {k.master_version for k in keys_before.values()} == {1}
    assert status_lines(capsys) == ["version 1 (active): 3 data keys"]

    rotated = run(capsys, "keys", "rotate")
    assert_ok(rotated)
    assert "version 2" in rotated.out

    # The keyring file holds both versions, version 2 active, still owner-only.
    keyring = Keyring.from_file(keyring_file)
    assert keyring.active == 2 and sorted(keyring.keys) == [1, 2]
    assert mode(keyring_file) == 0o600
    # Every data key is now wrapped under version 2: same data key, new wrapping.
    assert counts(settings) == {2: 3}
    assert status_lines(capsys) == ["version 1: 0 data keys", "version 2 (active): 3 data keys"]
    keys_after = stored_keys(settings, families)
    assert set(keys_after) == set(families)
    for family in families:
        old, new = keys_before[family], keys_after[family]
        assert (new.master_version, new.key_version) == (2, old.key_version)
        assert new.wrapped != old.wrapped

    retired = run(capsys, "keys", "retire", "1")
    assert_ok(retired)
    keyring = Keyring.from_file(keyring_file)
    assert keyring.active == 2 and sorted(keyring.keys) == [2]
    assert mode(keyring_file) == 0o600
    assert status_lines(capsys) == ["version 2 (active): 3 data keys"]

    # No data was re-encrypted: the data database is byte-for-byte as before.
    assert data_rows(settings) == rows_before

    # The already-running server re-reads the key file; a new one reads it fresh.
    assert read_all(api, families) == before
    assert read_all(start_server(), families) == before

    # The old master key alone no longer opens anything: the keys really moved.
    store = KeyStore.from_url(settings.keystore_url)
    try:
        old_vault = EnvelopeVault(Keyring.from_json(old_keyring_text), store,
                                  base64.b64decode(INDEX_KEY))
        engine = make_engine(settings.database_url)
        try:
            with engine.connect() as conn:
                row = conn.execute(select(Family.id, Family.display_name)
                                   .where(Family.id == families[0])).one()
        finally:
            engine.dispose()
        with pytest.raises(VaultError):
            old_vault.for_family(row.id).open("families", "display_name", row.id,
                                              row.display_name)
    finally:
        store.engine.dispose()

    # The running server wraps a new family's key under the new version.
    [newcomer] = populate(api, 1, first=3)
    assert counts(settings) == {2: 4}
    assert read_all(start_server(), [newcomer]) == read_all(api, [newcomer])


def test_retire_refuses_while_keys_remain_under_that_version(
        api: Api, settings: Settings, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], keyring_file: Path) -> None:
    families = populate(api, 2)
    before = read_all(api, families)
    # An activation whose re-wrap never ran: version 2 is active, both keys under 1.
    keyring = Keyring.from_file(keyring_file)
    keyring.add_version()
    keyring.activate(2)
    keyring.save()
    store = KeyStore.from_url(settings.keystore_url)
    try:
        store.set_active(2, T0)
    finally:
        store.engine.dispose()
    document = keyring_file.read_text()

    message = assert_one_line_failure(run(capsys, "keys", "retire", "1"))
    assert "2" in message and "rewrap" in message
    # The active version and an unknown one are refused too.
    assert_one_line_failure(run(capsys, "keys", "retire", "2"))
    assert_one_line_failure(run(capsys, "keys", "retire", "7"))
    # Nothing changed: the keyring still holds version 1, and everything reads.
    assert keyring_file.read_text() == document
    assert counts(settings) == {1: 2}
    assert status_lines(capsys) == ["version 1: 2 data keys", "version 2 (active): 0 data keys"]
    assert read_all(api, families) == before

    assert_ok(run(capsys, "keys", "rewrap"))
    assert_ok(run(capsys, "keys", "retire", "1"))
    assert read_all(api, families) == before


def test_an_interrupted_rotation_is_finished_by_rewrap(
        api: Api, start_server: Callable[[], Api], settings: Settings, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], keyring_file: Path) -> None:
    families = populate(api, 5)
    before = read_all(api, families)
    rows_before = data_rows(settings)

    original = KeyStore.rewrap
    batches: list[int] = []

    def crash_after_first_batch(self: KeyStore, keys: Any, now: datetime) -> int:
        if batches:
            raise RuntimeError("the key store went away")
        pairs = list(keys)
        batches.append(len(pairs))
        return original(self, pairs, now)

    cli_env.setattr(KeyStore, "rewrap", crash_after_first_batch)
    assert_one_line_failure(run(capsys, "keys", "rotate", "--batch", "2"))
    assert batches == [2]
    assert Keyring.from_file(keyring_file).active == 2
    assert counts(settings) == {1: 3, 2: 2}
    # Half-way, every family still reads: each key opens under its own version.
    assert read_all(api, families) == before
    message = assert_one_line_failure(run(capsys, "keys", "retire", "1"))
    assert "3" in message

    cli_env.setattr(KeyStore, "rewrap", original)
    finished = run(capsys, "keys", "rewrap", "--batch", "2")
    assert_ok(finished)
    assert "3" in finished.out
    assert counts(settings) == {2: 5}
    assert_ok(run(capsys, "keys", "rewrap"))  # nothing left: a no-op
    assert counts(settings) == {2: 5}

    assert_ok(run(capsys, "keys", "retire", "1"))
    assert sorted(Keyring.from_file(keyring_file).keys) == [2]
    assert data_rows(settings) == rows_before
    assert read_all(api, families) == before
    assert read_all(start_server(), families) == before


def test_rotate_needs_a_keyring_file(
        api: Api, settings: Settings, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], keyring_file: Path) -> None:
    families = populate(api, 1)
    document = keyring_file.read_text()
    cli_env.delenv("ONESTORY_KEYRING_FILE")
    cli_env.setenv("ONESTORY_KEYRING", document)

    message = assert_one_line_failure(run(capsys, "keys", "rotate"))
    assert "ONESTORY_KEYRING_FILE" in message
    assert document not in message
    # Nothing changed anywhere.
    assert keyring_file.read_text() == document
    assert counts(settings) == {1: 1}
    assert set(stored_keys(settings, families)) == set(families)
    assert status_lines(capsys) == ["version 1 (active): 1 data keys"]


# --- keys init ------------------------------------------------------------------------


def test_keys_init_writes_two_owner_only_files_and_never_overwrites(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    for name in CLI_ENV:
        monkeypatch.delenv(name, raising=False)
    keyring_path = tmp_path / "secrets" / "keyring.json"
    index_path = tmp_path / "secrets" / "index_key"
    args = ("keys", "init", "--keyring-file", str(keyring_path),
            "--index-key-file", str(index_path))

    created = run(capsys, *args)
    assert_ok(created)
    assert mode(keyring_path) == 0o600 and mode(index_path) == 0o600
    keyring = Keyring.from_file(keyring_path)
    assert keyring.active == 1 and sorted(keyring.keys) == [1]
    assert len(base64.b64decode(index_path.read_text().strip(), validate=True)) == 32
    # No key is printed.
    document = json.loads(keyring_path.read_text())
    assert document["keys"]["1"] not in created.out + created.err
    assert index_path.read_text().strip() not in created.out + created.err
    # The files are what the settings read.
    loaded = load_settings({"ONESTORY_KEYRING_FILE": str(keyring_path),
                            "ONESTORY_INDEX_KEY_FILE": str(index_path),
                            "ONESTORY_INSTANCE": str(tmp_path)})
    assert loaded.keyring().keys == keyring.keys
    assert loaded.index_key() == base64.b64decode(index_path.read_text().strip())

    keyring_text, index_text = keyring_path.read_text(), index_path.read_text()
    assert_one_line_failure(run(capsys, *args))
    assert (keyring_path.read_text(), index_path.read_text()) == (keyring_text, index_text)

    # Either file existing is enough to refuse, and the other is not written.
    keyring_path.unlink()
    assert_one_line_failure(run(capsys, *args))
    assert not keyring_path.exists()
    assert index_path.read_text() == index_text
