"""Encryption at rest through the API, on SQLite and PostgreSQL: a value that
does not open fails closed (503, nothing shown); start-up refuses to run
without keys; no identifying value reaches the databases, their dumps, the
logs or a problem body; search still works through the keyed index."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from coordination.app import create_app
from coordination.config import ConfigError, Settings
from coordination.crypto import (
    EnvelopeVault,
    KeyringError,
    PlaintextVault,
    new_keyring_document,
    normalise,
    write_secret_file,
)
from coordination.runtime import Runtime
from tests.conftest import Api
from tests.pg import _bin_dir

PROBLEM_KEYS = {"type", "title", "status", "detail", "errors"}

NAME = "Marker-Name-7F3A Quokkason"
BIRTH = "2019-07-23"
ADDRESS = "Markergata 7F3A, 0555 Oslo"
NATIONAL_ID = "NATID-7F3A-5521"
MEMBERS = ["Memberone-7F3A Quokkason", "Membertwo-7F3A Quokkason"]
MEMBER_BIRTH = "2021-02-17"
HEALTH = "ENTRY-HEALTH-7F3A asthma since spring"
STORY = "ENTRY-STORY-7F3A moved here in August"
SIGNED_BY = "SIGNER-7F3A Guardian Quokkason"
PURPOSE = "PURPOSE-7F3A coordinated support for the Quokkasons"
MARKERS = [NAME, BIRTH, ADDRESS, NATIONAL_ID, *MEMBERS, MEMBER_BIRTH, HEALTH, STORY,
           SIGNED_BY, PURPOSE]


def rt(app: Flask) -> Runtime:
    runtime: Runtime = app.extensions["onestory"]
    return runtime


def forms_of(marker: str) -> set[str]:
    """The marker as stored if it were stored: as given, case-folded, normalised."""
    return {marker, marker.casefold(), marker.lower(), marker.upper(), normalise(marker)}


def leaks(data: bytes) -> list[str]:
    """Markers found in raw bytes: as UTF-8, and as the hex PostgreSQL's dump
    writes bytea columns in."""
    found = []
    lowered = data.lower()
    for marker in MARKERS:
        for form in forms_of(marker):
            raw = form.encode()
            if raw in data or raw.hex().encode() in lowered:
                found.append(form)
    return sorted(set(found))


def text_leaks(body: str) -> list[str]:
    return sorted({f for m in MARKERS for f in forms_of(m) if f in body})


def arrange(api: Api) -> str:
    """A family holding every marker: attributes, members, entries, consent."""
    family = api.new_family(
        "nurse1", display_name=NAME, birth_date=BIRTH, address=ADDRESS,
        national_id=NATIONAL_ID, languages=["tr"],
        members=[{"name": MEMBERS[0], "relation": "parent"},
                 {"name": MEMBERS[1], "relation": "child", "birth_date": MEMBER_BIRTH}])
    api.write(family, "health", HEALTH)
    api.write(family, "story", STORY)
    api.sign(family, {"physio": ["involvement", "health", "household"]},
             signed_by=SIGNED_BY, purpose=PURPOSE)
    return family


def read(api: Api, family: str, who: str = "nurse1") -> Any:
    return api.get(f"/api/v1/families/{family}", who)


def assert_fails_closed(response: Any) -> None:
    """503 problem+json, saying nothing about the record."""
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert set(body) == PROBLEM_KEYS  # no partial record: no id, no fields, no name
    assert body["status"] == 503
    assert body["type"] == "urn:onestory:problem:data-unavailable"
    assert text_leaks(response.get_data(as_text=True)) == []


# --- fail closed ------------------------------------------------------------------------


def flip(engine: Engine, table: str, column: str, key: str, row_id: str) -> None:
    with engine.begin() as conn:
        blob = conn.execute(text(f"SELECT {column} FROM {table} WHERE {key} = :id"),  # noqa: S608
                            {"id": row_id}).scalar_one()
        damaged = bytearray(blob)
        damaged[len(damaged) // 2] ^= 0x01
        conn.execute(text(f"UPDATE {table} SET {column} = :v WHERE {key} = :id"),  # noqa: S608
                     {"v": bytes(damaged), "id": row_id})


def entry_ids(engine: Engine, family: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id FROM entries WHERE family_id = :f ORDER BY id"),
                            {"f": family})
        return [r.id for r in rows]


def entry_of(engine: Engine, family: str, field: str) -> str:
    with engine.connect() as conn:
        entry: str = conn.execute(
            text("SELECT id FROM entries WHERE family_id = :f AND field_id = :field"),
            {"f": family, "field": field}).scalar_one()
        return entry


def flip_entry(app: Flask, family: str, keyring_file: Path) -> None:
    """The health entry: shown to the nurse (author) and to physio (granted)."""
    flip(rt(app).engine, "entries", "value", "id", entry_of(rt(app).engine, family, "health"))


def flip_name(app: Flask, family: str, keyring_file: Path) -> None:
    flip(rt(app).engine, "families", "display_name", "id", family)


def flip_member(app: Flask, family: str, keyring_file: Path) -> None:
    with rt(app).engine.connect() as conn:
        member = conn.execute(text("SELECT id FROM family_members WHERE family_id = :f "
                                   "ORDER BY position DESC"), {"f": family}).scalars().first()
    flip(rt(app).engine, "family_members", "name", "id", str(member))


def swap_entries(app: Flask, family: str, keyring_file: Path) -> None:
    """The copy-paste attack: two valid ciphertexts of the family, exchanged."""
    first, second = entry_ids(rt(app).engine, family)
    with rt(app).engine.begin() as conn:
        values = {r.id: r.value for r in conn.execute(
            text("SELECT id, value FROM entries WHERE family_id = :f"), {"f": family})}
        for target, source in ((first, second), (second, first)):
            conn.execute(text("UPDATE entries SET value = :v WHERE id = :id"),
                         {"v": values[source], "id": target})


def move_name_to_address(app: Flask, family: str, keyring_file: Path) -> None:
    """A valid ciphertext of the same row, moved to another column."""
    with rt(app).engine.begin() as conn:
        conn.execute(text("UPDATE families SET display_name = address WHERE id = :id"),
                     {"id": family})


def delete_data_key(app: Flask, family: str, keyring_file: Path) -> None:
    with rt(app).keystore.engine.begin() as conn:
        gone = conn.execute(text("DELETE FROM data_keys WHERE family_id = :f"), {"f": family})
        assert gone.rowcount == 1


def other_familys_data_key(app: Flask, family: str, keyring_file: Path) -> None:
    with rt(app).keystore.engine.begin() as conn:
        other = conn.execute(text("SELECT wrapped FROM data_keys WHERE family_id <> :f"),
                             {"f": family}).scalars().first()
        conn.execute(text("UPDATE data_keys SET wrapped = :w WHERE family_id = :f"),
                     {"w": other, "f": family})


def retire_master_version(app: Flask, family: str, keyring_file: Path) -> None:
    """The key file now holds only a new version: version 1 was removed
    without the family's key being re-wrapped."""
    write_secret_file(keyring_file, json.dumps(new_keyring_document(version=2)), replace=True)
    touch_later(keyring_file)


def touch_later(path: Path) -> None:
    """Move the mtime on by a second: independent of timestamp granularity."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


TAMPERING: dict[str, Callable[[Flask, str, Path], None]] = {
    "entry-byte-flipped": flip_entry,
    "name-byte-flipped": flip_name,
    "member-byte-flipped": flip_member,
    "entries-swapped": swap_entries,
    "column-moved": move_name_to_address,
    "data-key-deleted": delete_data_key,
    "data-key-of-another-family": other_familys_data_key,
    "master-version-removed": retire_master_version,
}


@pytest.mark.parametrize("tamper", TAMPERING.values(), ids=TAMPERING.keys())
def test_what_does_not_open_fails_closed(api: Api, app: Flask, keyring_file: Path,
                                         tamper: Callable[[Flask, str, Path], None],
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    family = arrange(api)
    bystander = api.new_family("nurse1", display_name="Unrelated Family")
    api.write(bystander, "health", "unrelated note")
    before = read(api, family)
    assert before.status_code == 200
    assert before.get_json()["display_name"] == NAME  # the markers are really there
    tamper(app, family, keyring_file)
    for who in ("nurse1", "physio1"):
        assert_fails_closed(read(api, family, who))
    assert text_leaks(caplog.text) == []
    if tamper is not retire_master_version:
        # Only that family is affected.
        assert read(api, bystander).get_json()["fields"]["health"][0]["value"] == \
            "unrelated note"


@pytest.mark.parametrize("tamper", [flip_name, delete_data_key, retire_master_version],
                         ids=["name-byte-flipped", "data-key-deleted", "master-version-removed"])
def test_search_fails_closed(api: Api, app: Flask, keyring_file: Path,
                             tamper: Callable[[Flask, str, Path], None]) -> None:
    family = arrange(api)
    found = api.get("/api/v1/families", "nurse1", query_string={"name": NAME})
    assert [f["id"] for f in found.get_json()] == [family]
    tamper(app, family, keyring_file)
    assert_fails_closed(api.get("/api/v1/families", "nurse1", query_string={"name": NAME}))


def test_a_withheld_value_is_never_opened(api: Api, app: Flask) -> None:
    """Physio is not granted `story`: a damaged story entry is not opened for
    physio, whose record stays readable, while the nurse (its author) gets 503."""
    family = arrange(api)
    flip(rt(app).engine, "entries", "value", "id", entry_of(rt(app).engine, family, "story"))
    body = read(api, family, "physio1").get_json()
    assert "story" in body["withheld"]
    assert STORY not in json.dumps(body)
    assert_fails_closed(read(api, family, "nurse1"))


def test_consent_fails_closed(api: Api, app: Flask) -> None:
    family = arrange(api)
    assert api.get(f"/api/v1/families/{family}/consent", "coord1").status_code == 200
    with rt(app).engine.connect() as conn:
        form = conn.execute(text("SELECT id FROM consent_forms WHERE family_id = :f"),
                            {"f": family}).scalar_one()
    flip(rt(app).engine, "consent_forms", "signed_by", "id", str(form))
    assert_fails_closed(api.get(f"/api/v1/families/{family}/consent", "coord1"))
    assert_fails_closed(api.get(f"/api/v1/families/{family}/consent/history", "coord1"))


def test_restoring_the_key_file_makes_the_record_readable_again(
    api: Api, app: Flask, keyring_file: Path
) -> None:
    family = arrange(api)
    original = keyring_file.read_text()
    retire_master_version(app, family, keyring_file)
    assert_fails_closed(read(api, family))
    write_secret_file(keyring_file, original, replace=True)
    touch_later(keyring_file)
    assert read(api, family).get_json()["display_name"] == NAME


# --- start-up ---------------------------------------------------------------------------


def test_production_refuses_to_start_without_a_keyring(settings: Settings) -> None:
    bare = dataclasses.replace(settings, keyring_file=None, keyring_json=None)
    with pytest.raises(ConfigError, match="ONESTORY_KEYRING"):
        create_app(bare)


def test_production_refuses_to_start_without_an_index_key(settings: Settings) -> None:
    bare = dataclasses.replace(settings, index_key_text=None)
    with pytest.raises(ConfigError, match="ONESTORY_INDEX_KEY"):
        create_app(bare)


@pytest.mark.parametrize("content", ["", "{not json", '{"active": 1, "keys": {"1": "c2hvcnQ="}}'],
                         ids=["empty", "not-json", "short-key"])
def test_production_refuses_a_broken_key_file(settings: Settings, tmp_path: Path,
                                              content: str) -> None:
    broken = tmp_path / "broken-keyring.json"
    broken.write_text(content)
    with pytest.raises(KeyringError) as failure:
        create_app(dataclasses.replace(settings, keyring_file=broken))
    assert str(broken) in str(failure.value)
    with pytest.raises(KeyringError, match="cannot be read"):
        create_app(dataclasses.replace(settings, keyring_file=tmp_path / "absent.json"))


def test_production_refuses_a_bad_index_key(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="ONESTORY_INDEX_KEY"):
        create_app(dataclasses.replace(settings, index_key_text="c2hvcnQ="))


def test_development_generates_keys_in_the_instance_folder(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    instance = tmp_path / "instance"
    dev = dataclasses.replace(settings, env="development", instance=instance,
                              keyring_file=None, keyring_json=None, index_key_text=None,
                              secret_key=None)
    first = create_app(dev)
    try:
        assert isinstance(rt(first).vault, EnvelopeVault)
    finally:
        rt(first).dispose()
    keyring, index_key = instance / "keyring.json", instance / "index_key"
    for path in (keyring, index_key):
        assert path.exists()
        assert path.stat().st_mode & 0o777 == 0o600, path
    err = capsys.readouterr().err
    assert str(keyring) in err and "0600" in err and "development" in err
    assert json.loads(keyring.read_text())["active"] == 1
    # A second start uses the same keys, silently.
    saved = keyring.read_text(), index_key.read_text()
    second = create_app(dataclasses.replace(dev, secret_key=None))
    rt(second).dispose()
    assert (keyring.read_text(), index_key.read_text()) == saved
    assert "generated" not in capsys.readouterr().err


def test_a_running_server_never_uses_the_plaintext_store(app: Flask) -> None:
    assert isinstance(rt(app).vault, EnvelopeVault)
    assert not isinstance(rt(app).vault, PlaintextVault)


# --- nothing leaks ----------------------------------------------------------------------


def sqlite_bytes(url: str) -> bytes:
    path = Path(url.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    assert path.exists()
    # Read by another process: closing a descriptor of a database file in
    # this process would drop SQLite's own POSIX locks on it.
    return b"".join(subprocess.run(["cat", str(f)], capture_output=True, check=True,  # noqa: S607
                                   timeout=60).stdout for f in files if f.exists())


def pg_dump(url: str) -> bytes:
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    result = subprocess.run([str(_bin_dir() / "pg_dump"), "--no-owner", "--dbname", libpq],
                            capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def stored_bytes(url: str) -> bytes:
    return sqlite_bytes(url) if url.startswith("sqlite") else pg_dump(url)


def test_no_marker_reaches_the_databases_or_the_logs(
    api: Api, app: Flask, db_url: str, keystore_url: str, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    family = arrange(api)
    body = read(api, family).get_json()  # everything was stored and opens
    assert body["display_name"] == NAME and body["national_id"] == NATIONAL_ID
    assert [m["name"] for m in body["members"]] == MEMBERS
    assert api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()["purpose"] == \
        PURPOSE
    # Failures that carry markers in their input answer without echoing them.
    problems = [
        api.post("/api/v1/families", "nurse1", json={
            "display_name": NAME, "birth_date": "2999-01-01", "address": ADDRESS * 30,
            "national_id": NATIONAL_ID, "members": [{"name": MEMBERS[0]}]}),
        api.post("/api/v1/families", "ngo1", json={"display_name": NAME, "address": ADDRESS}),
        api.post(f"/api/v1/families/{family}/entries", "nurse1",
                 json={"field": "no-such-field", "value": HEALTH}),
        api.post(f"/api/v1/families/{family}/entries", "physio1",
                 json={"field": "health", "value": HEALTH}),
        api.get("/api/v1/families", "nurse1", query_string={"name": NAME, "birth_date": BIRTH,
                                                            "extra": STORY}),
    ]
    flip_entry(app, family, Path())
    problems.append(read(api, family))
    assert [p.status_code for p in problems] == [422, 422, 422, 403, 422, 503]
    for response in problems:
        assert response.mimetype == "application/problem+json"
        assert text_leaks(response.get_data(as_text=True)) == [], response.get_json()

    for url in (db_url, keystore_url):
        data = stored_bytes(url)
        assert family.encode() in data  # the scan sees the rows (their ids are clear)
        assert leaks(data) == [], f"{url}: {leaks(data)}"
    assert text_leaks(caplog.text) == []
    captured = capsys.readouterr()
    assert text_leaks(captured.out + captured.err) == []

    # The scan itself finds a value stored in the clear, in a binary column.
    canary = PlaintextVault().for_family(family).seal("families", "national_id", family,
                                                      NATIONAL_ID)
    with rt(app).engine.begin() as conn:
        conn.execute(text("UPDATE families SET national_id = :v WHERE id = :id"),
                     {"v": canary, "id": family})
    assert NATIONAL_ID in leaks(stored_bytes(db_url))


# --- search through the keyed index -----------------------------------------------------


def test_search_by_exact_name_and_birth_date(api: Api, app: Flask) -> None:
    family = arrange(api)
    twin = api.new_family("nurse1", display_name=NAME, birth_date="2018-01-01")

    def search(**args: str) -> list[dict[str, str]]:
        response = api.get("/api/v1/families", "nurse1", query_string=args)
        assert response.status_code == 200, response.get_json()
        found: list[dict[str, str]] = response.get_json()
        return found

    assert search(name=NAME, birth_date=BIRTH) == [{"id": family, "display_name": NAME}]
    assert {f["id"] for f in search(name=NAME)} == {family, twin}
    assert {f["id"] for f in search(name=f"  {NAME.upper()} ")} == {family, twin}
    assert search(name=NAME, birth_date="2019-07-24") == []
    assert search(name=NAME[:-1]) == []  # exact, not a prefix
    # A member's name is searched too, word by word.
    assert search(name="Memberone-7F3A Quokkason") == [{"id": family, "display_name": NAME}]

    with rt(app).engine.connect() as conn:
        row = conn.execute(text("SELECT name_index, birth_date_index FROM families "
                                "WHERE id = :id"), {"id": family}).one()
    vault = rt(app).vault
    assert row.name_index == vault.blind_index("name", NAME)
    assert row.birth_date_index == vault.blind_index("birth_date", BIRTH)
    plain_digests = {
        hashlib.sha256(normalise(NAME).encode()).hexdigest(),
        hashlib.sha256(NAME.encode()).hexdigest(),
        PlaintextVault().blind_index("name", NAME),
    }
    assert row.name_index not in plain_digests
    assert row.birth_date_index not in {hashlib.sha256(BIRTH.encode()).hexdigest(),
                                        PlaintextVault().blind_index("birth_date", BIRTH)}
    assert normalise(NAME) not in row.name_index
