"""Erasing a family by destroying its key (crypto-shredding), on both databases.

`DELETE /api/v1/families/{id}` (admin only) and `onestory erase`: the
erasure is recorded, the family's data key is destroyed in the key store,
then its rows are deleted. Afterwards the family does not exist for anyone,
and - the point of crypto-shredding - a copy of the data database taken
before the erasure can no longer be read with the live key store and
keyring. An interrupted erasure fails closed and is finished by running it
again.
"""

from __future__ import annotations

import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select

from consent.tables import ConsentCellRow, ConsentFormRow, ConsentReceipt
from coordination import erasure
from coordination.app import create_app
from coordination.config import Settings
from coordination.crypto import VaultError
from coordination.db import Base
from coordination.model import ApiToken, Entry, Erasure, Family, Involvement, Member
from coordination.runtime import Runtime
from tests.cli import assert_one_line_failure, run
from tests.conftest import Api, Clock

REASON = "the family asked to be forgotten (ticket 4711)"
NAME = "Aylin Demir"
SECRETS = (NAME, "Storgata 12", "14032412345", "Emir", "asthma, inhaler twice a day",
           "walks with a limp since the fall", "Guardian Name")
CASEWORKERS = ("nurse1", "coord1", "physio1", "physiocoord", "ecec1", "cps1", "ngo1",
               "ngocoord")


# --- the command line ---------------------------------------------------------------


# --- arranging a case ---------------------------------------------------------------


@dataclass
class Case:
    family: str
    other: str
    form_ids: list[int]
    family_token: str


def arrange(api: Api) -> Case:
    """A family with a row in every table that can hold one of its rows, and
    a bystander family that must survive its erasure untouched."""
    family = api.new_family(
        "nurse1", display_name=NAME, birth_date="2024-03-14", address="Storgata 12",
        national_id="14032412345", languages=["tr"],
        members=[{"name": "Emir", "relation": "child", "birth_date": "2024-03-14"}])
    api.write(family, "health", "asthma, inhaler twice a day")
    receipt = api.sign(family, {"physio": ["involvement", "health", "story"],
                                "ecec": ["household"]})["receipt"]
    api.sign(family, {"physio": ["involvement", "health", "story"], "ecec": ["household"],
                      "cps": ["contact"]})
    response = api.post(f"/api/v1/families/{family}/involvements", "coord1",
                        json={"agency": "physio"})
    assert response.status_code == 201, response.get_json()
    api.write(family, "story", "walks with a limp since the fall", who="physio1")
    session = api.post("/api/v1/family/session",
                       json={"receipt_code": receipt["code"], "pin": receipt["pin"]})
    assert session.status_code == 201, session.get_json()

    other = api.new_family("nurse1", display_name="Other Family", address="Elsewhere 1",
                           members=[{"name": "Sara", "relation": "parent"}])
    api.write(other, "health", "the other family's note")
    api.sign(other, {"physio": ["involvement", "health"]})

    rt = runtime_of(api)
    with rt.sessions() as db:
        form_ids = list(db.scalars(select(ConsentFormRow.id)
                                   .where(ConsentFormRow.family_id == family)))
    return Case(family, other, form_ids, session.get_json()["token"])


def runtime_of(api: Api) -> Runtime:
    app: Flask = api.client.application
    rt: Runtime = app.extensions["onestory"]
    return rt


def erase(api: Api, family: str, who: str | None = "admin1", body: Any = None) -> Any:
    return api.call("DELETE", f"/api/v1/families/{family}", who,
                    json={"reason": REASON} if body is None else body)


def family_rows(rt: Runtime, case: Case) -> dict[str, int]:
    """How many rows of the family each table of the data database holds."""
    per_family: list[tuple[str, Any]] = [
        ("families", select(func.count()).select_from(Family).where(Family.id == case.family)),
    ]
    for name, table in (("entries", Entry), ("family_members", Member),
                        ("involvements", Involvement), ("consent_forms", ConsentFormRow),
                        ("consent_receipts", ConsentReceipt), ("api_tokens", ApiToken)):
        per_family.append((name, select(func.count()).select_from(table)
                           .where(table.family_id == case.family)))
    per_family.append(("consent_cells", select(func.count()).select_from(ConsentCellRow)
                       .where(ConsentCellRow.form_id.in_(case.form_ids))))
    with rt.sessions() as db:
        return {name: int(db.scalar(query) or 0) for name, query in per_family}


def erasure_row(rt: Runtime, family: str) -> Erasure | None:
    with rt.sessions() as db:
        return db.get(Erasure, family)


def key_of(rt: Runtime, family: str) -> Any:
    return rt.keystore.get_many([family]).get(family)


def record(api: Api, family: str, who: str = "nurse1") -> Any:
    response = api.get(f"/api/v1/families/{family}", who)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def assert_untouched(api: Api, case: Case, before: dict[str, int]) -> None:
    rt = runtime_of(api)
    assert family_rows(rt, case) == before
    assert key_of(rt, case.family) is not None
    assert erasure_row(rt, case.family) is None
    assert record(api, case.family)["display_name"] == NAME


def assert_no_secret_in(response: Any) -> None:
    text = response.get_data(as_text=True)
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} was returned"


# --- DELETE /api/v1/families/{id} ------------------------------------------------------


def test_admin_erases_a_family(api: Api, clock: Clock) -> None:
    case = arrange(api)
    rt = runtime_of(api)
    assert all(count > 0 for count in family_rows(rt, case).values()), family_rows(rt, case)
    other_before = {who: record(api, case.other, who) for who in ("nurse1", "physio1")}
    keys_before = sum(rt.keystore.count_under().values())
    clock.advance(minutes=5)

    response = erase(api, case.family)
    assert response.status_code == 204, response.get_json()
    assert response.get_data() == b""

    # Gone for every agency: not found, as if it never existed.
    for who in CASEWORKERS:
        gone = api.get(f"/api/v1/families/{case.family}", who)
        assert gone.status_code == 404, (who, gone.get_json())
        assert_no_secret_in(gone)
    for path in ("/consent", "/consent/history", "/access-log"):
        gone = api.get(f"/api/v1/families/{case.family}{path}", "coord1")
        assert gone.status_code == 404, (path, gone.get_json())
    assert api.get("/api/v1/families", "nurse1", query_string={"name": NAME}).get_json() == []
    write = api.post(f"/api/v1/families/{case.family}/entries", "nurse1",
                     json={"field": "health", "value": "too late"})
    assert write.status_code == 404
    # The family's own session went with it.
    family_session = api.get(f"/api/v1/families/{case.family}/consent", case.family_token)
    assert family_session.status_code == 401

    # Every row is deleted, and the key is gone from the key store.
    assert family_rows(rt, case) == dict.fromkeys(family_rows(rt, case), 0)
    assert key_of(rt, case.family) is None
    assert sum(rt.keystore.count_under().values()) == keys_before - 1
    # Only the erasure record mentions the family, and it holds none of its values.
    row = erasure_row(rt, case.family)
    assert row is not None
    assert row.reason == REASON
    assert row.requested_by == "admin1"
    assert row.requested_at == row.key_destroyed_at == row.completed_at == clock()
    assert_nothing_left_of(rt, case.family)

    # The bystander is untouched.
    assert key_of(rt, case.other) is not None
    assert {who: record(api, case.other, who) for who in ("nurse1", "physio1")} == other_before


def assert_nothing_left_of(rt: Runtime, family: str) -> None:
    """No table but `erasures` and the (pseudonymous) audit log holds the
    family's random id, and none holds any of its values."""
    with rt.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = repr(conn.execute(select(table)).all())
            if table.name in {"erasures", "audit_log"}:
                assert family in rows
            else:
                assert family not in rows, table.name
            for secret in SECRETS:
                assert secret not in rows, (table.name, secret)


def test_erasing_twice_is_a_conflict(api: Api, capsys: pytest.CaptureFixture[str],
                                     cli_env: pytest.MonkeyPatch) -> None:
    case = arrange(api)
    assert erase(api, case.family).status_code == 204
    again = erase(api, case.family)
    assert again.status_code == 409, again.get_json()
    assert again.get_json()["status"] == 409
    assert_one_line_failure(run(capsys, "erase", case.family, "--reason", "again"))
    row = erasure_row(runtime_of(api), case.family)
    assert row is not None and row.reason == REASON


def test_only_an_admin_may_erase(api: Api) -> None:
    case = arrange(api)
    before = family_rows(runtime_of(api), case)
    for who in (*CASEWORKERS, "auditor1", case.family_token):
        response = erase(api, case.family, who)
        assert response.status_code == 403, (who, response.get_json())
        assert response.get_json()["errors"] == {}
    assert erase(api, case.family, "not-a-token").status_code == 401
    assert erase(api, case.family, None).status_code == 401
    assert_untouched(api, case, before)


def test_unknown_family_is_not_found(api: Api) -> None:
    case = arrange(api)
    before = family_rows(runtime_of(api), case)
    response = erase(api, "fam_00000000000000000000")
    assert response.status_code == 404, response.get_json()
    assert response.get_json()["detail"] == "no such family"
    with runtime_of(api).sessions() as db:
        assert db.scalars(select(Erasure)).all() == []
    assert_untouched(api, case, before)


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}])
def test_unknown_family_is_not_found_before_the_body_is_checked(api: Api, body: Any) -> None:
    # The contract's order: 404 (the family does not exist) answers before 422.
    response = erase(api, "fam_00000000000000000000", body=body)
    assert response.status_code == 404, response.get_json()


@pytest.mark.parametrize(("body", "key"), [
    ({}, "reason"),
    ({"reason": ""}, "reason"),
    ({"reason": "   \t "}, "reason"),
    ({"reason": "x" * 501}, "reason"),
    ({"reason": 42}, "reason"),
    ({"reason": None}, "reason"),
    ({"reason": REASON, "also": "this"}, "also"),
])
def test_a_missing_or_empty_reason_is_refused_and_nothing_changes(
        api: Api, body: dict[str, Any], key: str) -> None:
    case = arrange(api)
    before = family_rows(runtime_of(api), case)
    response = erase(api, case.family, body=body)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert key in response.get_json()["errors"]
    assert_untouched(api, case, before)


# --- the point of it all: old copies of the data cannot be read -----------------------


@pytest.fixture
def copy_data_database(settings: Settings, request: pytest.FixtureRequest,
                       _schemas: dict[str, Any]) -> Iterator[Callable[[Runtime], str]]:
    """Copy the data database as it is now (a backup); returns the copy's URL."""
    made: list[str] = []

    def copy(app_runtime: Runtime) -> str:
        url = settings.database_url
        if url.startswith("sqlite"):
            source_path = url.removeprefix("sqlite:///")
            target_path = str(Path(source_path).parent / f"copy-{uuid.uuid4().hex[:8]}.db")
            source, target = sqlite3.connect(source_path), sqlite3.connect(target_path)
            try:
                source.backup(target)
            finally:
                source.close()
                target.close()
            return f"sqlite:///{target_path}"
        import psycopg

        # CREATE DATABASE ... TEMPLATE needs the original free of connections.
        app_runtime.engine.dispose()
        for known_url, engine in _schemas.values():
            if known_url == url:
                engine.dispose()
        name = f"copy_{uuid.uuid4().hex[:12]}"
        admin = request.getfixturevalue("pg_admin_url").replace(
            "postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{url.rsplit("/", 1)[1]}"')
        made.append(name)
        return url.rsplit("/", 1)[0] + f"/{name}"

    yield copy
    if made:
        import psycopg

        admin = request.getfixturevalue("pg_admin_url").replace(
            "postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_copy_taken_before_the_erasure_cannot_be_read_after_it(
        api: Api, settings: Settings, clock: Clock,
        copy_data_database: Callable[[Runtime], str]) -> None:
    case = arrange(api)
    copy_settings = replace(settings, database_url=copy_data_database(runtime_of(api)))
    copy_app = create_app(copy_settings, clock=clock)
    backup_rt = Runtime.build(copy_settings, clock)
    try:
        backup = Api(copy_app.test_client(), api.tokens)
        # Before the erasure the copy reads like the original (the check is real).
        assert record(backup, case.family) == record(api, case.family)
        assert open_everything(backup_rt, case.family)

        assert erase(api, case.family).status_code == 204

        # The copy still holds every row, but nothing of the family opens.
        for who in ("nurse1", "physio1", "ecec1"):
            response = backup.get(f"/api/v1/families/{case.family}", who)
            assert response.status_code == 503, (who, response.get_json())
            assert_no_secret_in(response)
        consent = backup.get(f"/api/v1/families/{case.family}/consent", "coord1")
        assert consent.status_code == 503
        assert_no_secret_in(consent)
        search = backup.get("/api/v1/families", "nurse1", query_string={"name": NAME})
        assert search.status_code in (200, 503)
        assert_no_secret_in(search)
        if search.status_code == 200:
            assert case.family not in search.get_data(as_text=True)
        with pytest.raises(VaultError):
            open_everything(backup_rt, case.family)
        sealed = sealed_values(backup_rt, case.family)
        assert len(sealed) >= 8
        for_one = backup_rt.vault.for_family(case.family)
        for_many = backup_rt.vault.for_families([case.family])[case.family]
        for table, column, row_id, blob in sealed:
            for cipher in (for_one, for_many):
                with pytest.raises(VaultError):
                    cipher.open(table, column, row_id, blob)

        # The bystander in the same copy still reads: only the erased key is gone.
        assert record(backup, case.other)["display_name"] == "Other Family"
    finally:
        backup_rt.dispose()
        copy_app.extensions["onestory"].dispose()


def sealed_values(rt: Runtime, family: str) -> list[tuple[str, str, str, bytes]]:
    """Every sealed value of the family: (table, column, row id, ciphertext)."""
    found: list[tuple[str, str, str, bytes]] = []
    with rt.sessions() as db:
        row = db.get(Family, family)
        assert row is not None
        for column in ("display_name", "birth_date", "address", "national_id", "languages"):
            blob = getattr(row, column)
            if blob is not None:
                found.append(("families", column, family, blob))
        for member in db.scalars(select(Member).where(Member.family_id == family)):
            found.append(("family_members", "name", member.id, member.name))
            found.append(("family_members", "relation", member.id, member.relation))
        for entry in db.scalars(select(Entry).where(Entry.family_id == family)):
            found.append(("entries", "value", entry.id, entry.value))
        for form in db.scalars(select(ConsentFormRow)
                               .where(ConsentFormRow.family_id == family)):
            found.append(("consent_forms", "signed_by", f"v{form.version}", form.signed_by))
            found.append(("consent_forms", "purpose", f"v{form.version}", form.purpose))
    return found


def open_everything(rt: Runtime, family: str) -> list[str]:
    cipher = rt.vault.for_family(family)
    return [cipher.open(table, column, row_id, blob)
            for table, column, row_id, blob in sealed_values(rt, family)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a check of SQLite's files
def test_the_destroyed_key_leaves_no_trace_in_a_sqlite_key_store(
        api: Api, settings: Settings) -> None:
    # A copy of the key store's files taken after the erasure (a file-level
    # backup, a copied instance folder) must not hold the destroyed key either.
    case = arrange(api)
    wrapped = key_of(runtime_of(api), case.family).wrapped
    assert erase(api, case.family).status_code == 204
    path = Path(settings.keystore_url.removeprefix("sqlite:///"))
    for name in (path.name, path.name + "-wal", path.name + "-journal"):
        held = path.with_name(name)
        if held.exists():
            # Read by another process: closing a descriptor of a database file
            # in this process would drop SQLite's own POSIX locks on it.
            content = subprocess.run(["cat", str(held)], capture_output=True, check=True,
                                     timeout=60).stdout
            assert wrapped not in content, f"the erased key is still in {name}"


# --- interrupted erasure ---------------------------------------------------------------


@pytest.mark.parametrize("finish", ["cli", "api"])
def test_an_interrupted_erasure_fails_closed_and_is_finished_by_running_it_again(
        api: Api, clock: Clock, capsys: pytest.CaptureFixture[str],
        cli_env: pytest.MonkeyPatch, finish: str) -> None:
    case = arrange(api)
    rt = runtime_of(api)
    rows_before = family_rows(rt, case)
    calls: list[object] = []

    def crash_while_deleting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 3:  # some rows deleted in the transaction, then the crash
            raise RuntimeError("the database went away")
        return sql_delete(*args, **kwargs)

    cli_env.setattr(erasure, "delete", crash_while_deleting)
    crashed = erase(api, case.family)
    assert crashed.status_code == 500, crashed.get_json()
    assert_no_secret_in(crashed)
    cli_env.setattr(erasure, "delete", sql_delete)

    # The key is destroyed and recorded as such; the rows are all still there.
    row = erasure_row(rt, case.family)
    assert row is not None
    crashed_at = clock()
    assert row.key_destroyed_at == crashed_at and row.completed_at is None
    assert key_of(rt, case.family) is None
    assert family_rows(rt, case) == rows_before
    with rt.sessions() as db:
        assert erasure.unfinished(db) == [case.family]

    # Meanwhile everything about the family fails closed: an error, never data.
    for who in ("nurse1", "physio1", "ecec1", "cps1"):
        response = api.get(f"/api/v1/families/{case.family}", who)
        assert response.status_code in (404, 503), (who, response.get_json())
        assert_no_secret_in(response)
    for path in ("/consent", "/consent/history"):
        response = api.get(f"/api/v1/families/{case.family}{path}", "coord1")
        assert response.status_code in (404, 503), (path, response.get_json())
        assert_no_secret_in(response)
    response = api.get(f"/api/v1/families/{case.family}/consent", case.family_token)
    assert response.status_code in (401, 404, 503)
    assert_no_secret_in(response)
    search = api.get("/api/v1/families", "nurse1", query_string={"name": NAME})
    assert search.status_code in (200, 503)
    assert_no_secret_in(search)
    if search.status_code == 200:
        assert case.family not in search.get_data(as_text=True)
    write = api.post(f"/api/v1/families/{case.family}/entries", "nurse1",
                     json={"field": "health", "value": "written after the key went"})
    assert write.status_code in (404, 503), write.get_json()
    assert family_rows(rt, case)["entries"] == rows_before["entries"]
    # The bystander is unaffected.
    assert record(api, case.other)["display_name"] == "Other Family"

    clock.advance(minutes=10)
    if finish == "cli":
        done = run(capsys, "erase", case.family, "--reason", "finishing ticket 4711")
        assert done.code == 0, done
        assert case.family in done.out
    else:
        assert erase(api, case.family).status_code == 204

    row = erasure_row(rt, case.family)
    assert row is not None and row.completed_at is not None
    if finish == "api":  # the command line keeps its own (real) time
        assert row.completed_at == clock()
    assert row.key_destroyed_at == crashed_at < clock()
    assert family_rows(rt, case) == dict.fromkeys(rows_before, 0)
    with rt.sessions() as db:
        assert erasure.unfinished(db) == []
    assert_nothing_left_of(rt, case.family)
    for who in ("nurse1", "physio1"):
        assert api.get(f"/api/v1/families/{case.family}", who).status_code == 404
    assert erase(api, case.family).status_code == 409
    assert record(api, case.other)["display_name"] == "Other Family"


# --- onestory erase ---------------------------------------------------------------------


def test_cli_erases_a_family(api: Api, capsys: pytest.CaptureFixture[str],
                             cli_env: pytest.MonkeyPatch, clock: Clock) -> None:
    case = arrange(api)
    rt = runtime_of(api)
    done = run(capsys, "erase", case.family, "--reason", REASON)
    assert done.code == 0, done
    assert done.err == ""
    assert case.family in done.out
    assert family_rows(rt, case) == dict.fromkeys(family_rows(rt, case), 0)
    assert key_of(rt, case.family) is None
    row = erasure_row(rt, case.family)
    assert row is not None and row.reason == REASON and row.requested_by == "cli"
    assert row.key_destroyed_at is not None and row.completed_at is not None
    assert api.get(f"/api/v1/families/{case.family}", "nurse1").status_code == 404
    assert record(api, case.other)["display_name"] == "Other Family"


def test_cli_erase_of_an_unknown_family_fails_in_one_line(
        api: Api, capsys: pytest.CaptureFixture[str], cli_env: pytest.MonkeyPatch) -> None:
    case = arrange(api)
    before = family_rows(runtime_of(api), case)
    message = assert_one_line_failure(
        run(capsys, "erase", "fam_00000000000000000000", "--reason", REASON))
    assert "family" in message
    assert_one_line_failure(run(capsys, "erase", case.family, "--reason", "  "))
    assert_one_line_failure(run(capsys, "erase", case.family))  # no --reason at all
    with runtime_of(api).sessions() as db:
        assert db.scalars(select(Erasure)).all() == []
    assert_untouched(api, case, before)

