"""The `onestory` command line, called in-process, on both databases.

Every failure is a single line on stderr, a non-zero exit, and never a traceback.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from coordination import accounts, cli
from coordination.config import Settings
from coordination.db import make_engine
from coordination.errors import NotAuthenticated
from coordination.model import Agency, ApiToken, Family, Staff
from coordination.runtime import Runtime, utc_now
from tests.conftest import AUDIT_KEY, INDEX_KEY
from tests.pg import create_database

ROLES = ["practitioner", "coordinator", "auditor", "admin"]
# The runtimes `onestory` built during the current test, newest last.
BUILT: list[Runtime] = []


@pytest.fixture(autouse=True)
def _track_runtimes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Record every Runtime the command line builds, so that
    test_main_releases_its_database_connections can check `main()` closes
    them; anything left over is closed at the end."""
    original = Runtime.build

    def build(settings: Settings, clock: Callable[[], datetime] = utc_now) -> Runtime:
        runtime = original(settings, clock)
        BUILT.append(runtime)
        return runtime

    monkeypatch.setattr(Runtime, "build", build)
    yield
    _dispose_built()


def _dispose_built() -> None:
    while BUILT:
        BUILT.pop().engine.dispose()


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    capsys.readouterr()  # start from a clean slate
    code = cli.main(list(args))
    _dispose_built()
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def assert_one_line_failure(result: Result, code: int | None = None) -> str:
    """A failure: non-zero (or exactly `code`), one line on stderr, no traceback."""
    if code is None:
        assert result.code != 0, result
    else:
        assert result.code == code, result
    message = result.err.strip()
    assert message, result
    assert "\n" not in message, f"more than one line on stderr: {result.err!r}"
    assert "Traceback" not in result.err + result.out
    return message


def assert_ok(result: Result) -> None:
    assert result.code == 0, result
    assert "Traceback" not in result.err + result.out


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean OneStory environment (production mode, no secrets) in tmp_path."""
    for name in ("ONESTORY_DATABASE_URL", "ONESTORY_ENV", "ONESTORY_SECRET_KEY",
                 "ONESTORY_SECRET_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONESTORY_INSTANCE", str(tmp_path))
    return monkeypatch


@pytest.fixture
def db_env(env: pytest.MonkeyPatch, db_url: str, keystore_url: str, keyring_file: Path) -> str:
    env.setenv("ONESTORY_DATABASE_URL", db_url)
    env.setenv("ONESTORY_KEYSTORE_URL", keystore_url)
    env.setenv("ONESTORY_KEYRING_FILE", str(keyring_file))
    env.setenv("ONESTORY_INDEX_KEY", INDEX_KEY)
    env.setenv("ONESTORY_AUDIT_SIGNING_KEY", AUDIT_KEY)
    return db_url


@pytest.fixture
def engine(db_env: str) -> Iterator[Engine]:
    eng = make_engine(db_env)
    yield eng
    eng.dispose()


def add_agency(capsys: pytest.CaptureFixture[str], slug: str = "health-centre",
               *extra: str) -> None:
    assert_ok(run(capsys, "agency", "add", slug, "--name", f"Agency {slug}",
                  "--kind", "health", *extra))


def test_main_releases_its_database_connections(db_env: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # An in-process `main()` should leave no pooled connection open behind it.
    assert cli.main(["init"]) == 0
    assert cli.main(["agency", "add", "x", "--name", "X", "--kind", "health"]) == 0
    assert len(BUILT) == 2
    for runtime in BUILT:
        pool = runtime.engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.checkedin() == 0, "main() left its engine's connections open"


# --- init -------------------------------------------------------------------


def test_init_is_idempotent(db_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, "init")
    assert_ok(first)
    second = run(capsys, "init")
    assert_ok(second)
    assert second.err == ""


def test_init_creates_a_fresh_sqlite_database(env: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # No ONESTORY_DATABASE_URL: the default SQLite file in the instance folder.
    assert_ok(run(capsys, "init"))
    assert (tmp_path / "onestory.db").exists()
    assert_ok(run(capsys, "init"))
    add_agency(capsys)


def test_init_does_not_print_the_database_password(
        env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An unreachable server: the failure is one line, and the password is not in it.
    env.setenv("ONESTORY_DATABASE_URL",
               "postgresql+psycopg://someone:hunter2secret@127.0.0.1:1/nowhere")
    result = run(capsys, "init")
    assert_one_line_failure(result)
    assert "hunter2secret" not in result.err + result.out


# --- agency add ---------------------------------------------------------------


def test_agency_add(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "agency", "add", "health-centre", "--name", "Health centre",
                 "--kind", "health")
    assert_ok(result)
    result = run(capsys, "agency", "add", "harbour", "--name", "Harbour drop-in",
                 "--kind", "ngo", "--minimal-data")
    assert_ok(result)
    with Session(engine) as session:
        agencies = {a.id: a for a in session.scalars(select(Agency))}
        assert set(agencies) == {"health-centre", "harbour"}
        assert agencies["health-centre"].name == "Health centre"
        assert agencies["health-centre"].kind == "health"
        assert agencies["health-centre"].minimal_data is False
        assert agencies["harbour"].kind == "ngo"
        assert agencies["harbour"].minimal_data is True


def test_duplicate_agency_fails_in_one_line(engine: Engine,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    add_agency(capsys, "physio")
    result = run(capsys, "agency", "add", "physio", "--name", "Other", "--kind", "x")
    message = assert_one_line_failure(result, 1)
    assert "physio" in message
    with Session(engine) as session:
        names = session.scalars(select(Agency.name)).all()
    assert names == ["Agency physio"]


@pytest.mark.parametrize("slug", ["Bad_Slug", "-leading", "trailing-", "has space", "ä"])
def test_bad_slug_fails_in_one_line(engine: Engine, capsys: pytest.CaptureFixture[str],
                                    slug: str) -> None:
    result = run(capsys, "agency", "add", slug, "--name", "Name", "--kind", "health")
    assert_one_line_failure(result)
    with Session(engine) as session:
        assert session.scalars(select(Agency)).all() == []


def test_bad_agency_name_fails_in_one_line(engine: Engine,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "agency", "add", "ok", "--name", "   ", "--kind", "health")
    assert_one_line_failure(result)


# --- user add -------------------------------------------------------------------


def test_user_add_for_each_role(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    add_agency(capsys, "health-centre")
    for role in ROLES:
        assert_ok(run(capsys, "user", "add", f"{role}1", "--agency", "health-centre",
                      "--role", role))
    with Session(engine) as session:
        staff = {s.username: s for s in session.scalars(select(Staff))}
    assert {name: str(s.role) for name, s in staff.items()} == {
        f"{role}1": role for role in ROLES}
    assert all(s.agency_id == "health-centre" for s in staff.values())
    assert all(s.active for s in staff.values())
    assert all(s.password_hash is None for s in staff.values())


@pytest.mark.parametrize("role", ROLES)
def test_user_add_with_password_stdin_stores_only_an_argon2_hash(
        engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        role: str) -> None:
    from argon2 import PasswordHasher

    password = "correct horse battery staple"
    add_agency(capsys, "oversight")
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    result = run(capsys, "user", "add", "someone", "--agency", "oversight", "--role", role,
                 "--password-stdin")
    assert_ok(result)
    assert password not in result.out + result.err
    with Session(engine) as session:
        staff = session.scalars(select(Staff).where(Staff.username == "someone")).one()
    assert str(staff.role) == role
    assert staff.password_hash is not None
    assert staff.password_hash.startswith("$argon2")
    assert password not in staff.password_hash
    assert PasswordHasher().verify(staff.password_hash, password)
    # The password appears nowhere in the staff table.
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM staff")).all()
    assert password not in repr(rows)


def test_password_stdin_empty_or_short_fails_in_one_line(
        engine: Engine, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    add_agency(capsys, "oversight")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert_one_line_failure(run(capsys, "user", "add", "u1", "--agency", "oversight",
                                "--role", "admin", "--password-stdin"))
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert_one_line_failure(run(capsys, "user", "add", "u1", "--agency", "oversight",
                                "--role", "admin", "--password-stdin"))
    with Session(engine) as session:
        assert session.scalars(select(Staff)).all() == []


def test_user_add_unknown_role_or_agency_fails_in_one_line(
        engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    add_agency(capsys, "health-centre")
    unknown_role = run(capsys, "user", "add", "u1", "--agency", "health-centre",
                       "--role", "superuser")
    message = assert_one_line_failure(unknown_role)
    assert "superuser" in message
    unknown_agency = run(capsys, "user", "add", "u1", "--agency", "nowhere",
                         "--role", "practitioner")
    message = assert_one_line_failure(unknown_agency)
    assert "nowhere" in message
    bad_name = run(capsys, "user", "add", "has space", "--agency", "health-centre",
                   "--role", "practitioner")
    assert_one_line_failure(bad_name)
    # History and the log name the family `family`: no staff member may.
    reserved = run(capsys, "user", "add", "Family", "--agency", "health-centre",
                   "--role", "coordinator")
    assert "reserved" in assert_one_line_failure(reserved)
    with Session(engine) as session:
        assert session.scalars(select(Staff)).all() == []


def test_duplicate_user_fails_in_one_line(engine: Engine,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    add_agency(capsys, "health-centre")
    assert_ok(run(capsys, "user", "add", "nurse1", "--agency", "health-centre",
                  "--role", "practitioner"))
    again = run(capsys, "user", "add", "nurse1", "--agency", "health-centre",
                "--role", "coordinator")
    message = assert_one_line_failure(again, 1)
    assert "nurse1" in message


# --- token create -----------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_token_create_prints_only_a_working_token(
        engine: Engine, capsys: pytest.CaptureFixture[str], role: str) -> None:
    add_agency(capsys, "harbour", "--minimal-data")
    assert_ok(run(capsys, "user", "add", "worker", "--agency", "harbour", "--role", role))
    result = run(capsys, "token", "create", "worker")
    assert_ok(result)
    assert result.err == ""
    lines = result.out.splitlines()
    assert len(lines) == 1, result.out
    token = lines[0]
    assert result.out == token + "\n"
    assert token.strip() == token and " " not in token and len(token) >= 32

    with Session(engine) as session:
        actor = accounts.authenticate(session, token, datetime.now(UTC))
    assert actor.username == "worker"
    assert actor.agency_id == "harbour"
    assert str(actor.role) == role
    assert actor.minimal_data is True

    # Only a hash is stored: the token appears nowhere in api_tokens.
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_tokens")).all()
    assert len(rows) == 1
    dump = repr(rows)
    assert token not in dump
    assert token[3:] not in dump  # not even without its prefix
    with Session(engine) as session:
        stored = session.scalars(select(ApiToken)).one()
    assert stored.token_hash == accounts.hash_token(token)
    assert stored.token_hash != token


def test_each_token_create_gives_a_new_token(engine: Engine,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    add_agency(capsys, "health-centre")
    assert_ok(run(capsys, "user", "add", "nurse1", "--agency", "health-centre",
                  "--role", "practitioner"))
    first = run(capsys, "token", "create", "nurse1").out.strip()
    second = run(capsys, "token", "create", "nurse1").out.strip()
    assert first and second and first != second
    with Session(engine) as session:
        for token in (first, second):
            assert accounts.authenticate(session, token, datetime.now(UTC)).username == "nurse1"
        with pytest.raises(NotAuthenticated):
            accounts.authenticate(session, first + "x", datetime.now(UTC))


def test_token_create_for_unknown_user_fails_in_one_line(
        engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "token", "create", "ghost")
    message = assert_one_line_failure(result)
    assert "ghost" in message
    assert result.out == ""
    with Session(engine) as session:
        assert session.scalars(select(ApiToken)).all() == []


# --- user deactivate, user list, token revoke ---------------------------------------


def _staff_and_case(capsys: pytest.CaptureFixture[str], engine: Engine) -> str:
    """Two agencies; nurse1 is contact worker of two families, nurse2 of none."""
    from coordination.actors import Actor
    from coordination.casework import families
    from coordination.crypto import PlaintextVault
    from coordination.roles import Role

    add_agency(capsys, "health-centre")
    add_agency(capsys, "physio")
    for username, agency, role in [("nurse1", "health-centre", "practitioner"),
                                   ("nurse2", "health-centre", "practitioner"),
                                   ("coord1", "health-centre", "coordinator"),
                                   ("physio1", "physio", "practitioner")]:
        assert_ok(run(capsys, "user", "add", username, "--agency", agency, "--role", role))
    with Session(engine) as session:
        nurse = session.scalars(select(Staff).where(Staff.username == "nurse1")).one()
        actor = Actor(username="nurse1", staff_id=nurse.id, agency_id="health-centre",
                      role=Role.PRACTITIONER)
        for name in ("A", "B"):
            families.create_family(session, PlaintextVault(), actor, {"display_name": name},
                                   datetime.now(UTC))
        nurse.password_hash = accounts.password_hasher.hash("nurse1-password")
        session.commit()
    return "nurse1"


def _contact_workers(engine: Engine) -> list[str | None]:
    from coordination.model import Involvement

    with Session(engine) as session:
        names = [i.contact_worker.username if i.contact_worker else None
                 for i in session.scalars(select(Involvement))]
    return sorted(names, key=lambda name: name or "")


def _signed_in_everywhere(engine: Engine, username: str) -> tuple[list[str], list[str]]:
    from coordination import signin

    with Session(engine) as session:
        web = [signin.with_password(session, username, f"{username}-password", "10.0.0.1",
                                    datetime.now(UTC)) for _ in range(2)]
        api = [accounts.create_token(session, username, timedelta(days=9), datetime.now(UTC))
               for _ in range(2)]
    return web, api


def _still_valid(engine: Engine, web: list[str], api: list[str]) -> list[str]:
    from coordination import signin

    valid = []
    with Session(engine) as session:
        for token, check in [*((t, signin.actor_for) for t in web),
                             *((t, accounts.authenticate) for t in api)]:
            try:
                check(session, token, datetime.now(UTC))
                valid.append(token)
            except NotAuthenticated:
                pass
    return valid


def _audit_rows(engine: Engine, action: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT * FROM audit_log WHERE action = :a ORDER BY seq"),
                                 {"a": action}))


def test_user_deactivate_ends_access_and_hands_over(
        engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    _staff_and_case(capsys, engine)
    web, api = _signed_in_everywhere(engine, "nurse1")
    assert len(_still_valid(engine, web, api)) == 4
    result = run(capsys, "user", "deactivate", "nurse1", "--hand-over-to", "nurse2")
    assert_ok(result)
    assert result.out == ("user nurse1 deactivated: 2 sessions ended, 2 API tokens revoked; "
                          "nurse2 is now contact worker for 2 families\n")
    assert _still_valid(engine, web, api) == []
    with Session(engine) as session:
        assert session.scalars(select(Staff.active).where(Staff.username == "nurse1")).one() \
            is False
        from coordination.model import WebSession

        assert all(w.ended_at is not None for w in session.scalars(select(WebSession)))
        assert all(t.revoked_at is not None for t in session.scalars(select(ApiToken)))
    assert _contact_workers(engine) == ["nurse2", "nurse2"]
    [entry] = _audit_rows(engine, "user.deactivate")
    assert entry.actor == "cli" and entry.agency_id == "health-centre"
    assert json.loads(entry.detail) == {"user": "nurse1", "hand_over_to": "nurse2",
                                        "sessions_ended": 2, "tokens_revoked": 2,
                                        "contact_worker_changes": 2}
    # Deactivated, nurse1 can no longer be named, nor handed over to.
    failed = run(capsys, "user", "deactivate", "nurse2", "--hand-over-to", "nurse1")
    assert "nurse1" in assert_one_line_failure(failed, 1)
    assert _contact_workers(engine) == ["nurse2", "nurse2"]


def test_user_deactivate_without_a_colleague_clears(
        engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    _staff_and_case(capsys, engine)
    result = run(capsys, "user", "deactivate", "nurse1")
    assert_ok(result)
    assert "no contact worker is named now for 2 families" in result.out
    assert _contact_workers(engine) == [None, None]
    assert len(_audit_rows(engine, "user.deactivate")) == 1


@pytest.mark.parametrize(("args", "named"), [
    (["ghost"], "ghost"),
    (["nurse1", "--hand-over-to", "ghost"], "ghost"),
    (["nurse1", "--hand-over-to", "physio1"], "physio1"),  # another agency
    (["nurse1", "--hand-over-to", "nurse1"], "nurse1"),
    (["nurse1", "--hand-over-to", "gone"], "gone"),  # deactivated colleague
], ids=["unknown-user", "unknown-colleague", "other-agency", "self", "inactive-colleague"])
def test_user_deactivate_refusals_change_nothing(
        engine: Engine, capsys: pytest.CaptureFixture[str], args: list[str],
        named: str) -> None:
    _staff_and_case(capsys, engine)
    assert_ok(run(capsys, "user", "add", "gone", "--agency", "health-centre",
                  "--role", "practitioner"))
    assert_ok(run(capsys, "user", "deactivate", "gone"))
    web, api = _signed_in_everywhere(engine, "nurse1")
    message = assert_one_line_failure(run(capsys, "user", "deactivate", *args), 1)
    assert named in message
    assert len(_still_valid(engine, web, api)) == 4
    assert _contact_workers(engine) == ["nurse1", "nurse1"]
    assert len(_audit_rows(engine, "user.deactivate")) == 1  # only gone's


def test_user_list(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    _staff_and_case(capsys, engine)
    assert_ok(run(capsys, "user", "deactivate", "nurse2"))
    result = run(capsys, "user", "list")
    assert_ok(result)
    assert [line.split() for line in result.out.splitlines()] == [
        ["coord1", "health-centre", "coordinator", "active"],
        ["nurse1", "health-centre", "practitioner", "active"],
        ["nurse2", "health-centre", "practitioner", "inactive"],
        ["physio1", "physio", "practitioner", "active"],
    ]
    physio = run(capsys, "user", "list", "--agency", "physio")
    assert [line.split() for line in physio.out.splitlines()] == [
        ["physio1", "physio", "practitioner", "active"]]
    assert "nowhere" in assert_one_line_failure(run(capsys, "user", "list", "--agency",
                                                    "nowhere"), 1)


def test_token_revoke(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    _staff_and_case(capsys, engine)
    web, api = _signed_in_everywhere(engine, "nurse1")
    other = [run(capsys, "token", "create", "coord1").out.strip()]
    result = run(capsys, "token", "revoke", "nurse1")
    assert_ok(result)
    assert result.out == "revoked 2 API tokens of nurse1\n"
    assert _still_valid(engine, web, api) == web  # API tokens end; web sessions stay
    assert _still_valid(engine, [], other) == other  # another user's token still works
    [entry] = _audit_rows(engine, "token.revoke")
    assert entry.actor == "cli" and json.loads(entry.detail) == {"user": "nurse1",
                                                                  "revoked": 2}
    assert_ok(run(capsys, "token", "revoke", "nurse1"))  # nothing left: says 0
    assert "ghost" in assert_one_line_failure(run(capsys, "token", "revoke", "ghost"), 1)
    assert len(_audit_rows(engine, "token.revoke")) == 2


# --- seed-demo --------------------------------------------------------------------


def test_seed_demo_loads_both_scenarios_once(engine: Engine,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "seed-demo")
    assert_ok(result)
    with Session(engine) as session:
        agencies = {a.id: a for a in session.scalars(select(Agency))}
        staff = session.scalars(select(Staff)).all()
        family_ids = set(session.scalars(select(Family.id)))
    # Norway's family centre and Belgium's minimal-data NGO.
    assert {"health-centre", "physio", "ecec", "harbour"} <= set(agencies)
    assert agencies["harbour"].minimal_data is True
    assert agencies["health-centre"].minimal_data is False
    assert {str(s.role) for s in staff} == {*ROLES, "evaluator"}
    assert all(s.password_hash and s.password_hash.startswith("$argon2") for s in staff)
    assert len(family_ids) == 3
    # The printed family ids are the stored ones.
    printed = {line.split()[0]: line.split()[1] for line in result.out.splitlines()
               if line.strip().split(" ")[0] in {"norway", "belgium", "belgium2"}}
    assert set(printed) == {"norway", "belgium", "belgium2"}
    assert set(printed.values()) == family_ids
    # Every demo login is printed.
    for s in staff:
        assert s.username in result.out

    again = run(capsys, "seed-demo")
    assert_one_line_failure(again, 1)
    with Session(engine) as session:
        assert len(session.scalars(select(Family.id)).all()) == 3
        assert len(session.scalars(select(Staff)).all()) == len(staff)


def test_seed_demo_refuses_a_database_with_agencies(
        engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    add_agency(capsys, "mine")
    assert_one_line_failure(run(capsys, "seed-demo"), 1)
    with Session(engine) as session:
        assert session.scalars(select(Agency.id)).all() == ["mine"]
        assert session.scalars(select(Family)).all() == []


# --- usage errors -----------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["frobnicate"],
    ["agency", "frobnicate"],
    ["agency", "add"],
    ["agency", "add", "x", "--name", "n"],
    ["user", "add", "u", "--agency", "a"],
    ["token", "create"],
    ["token", "create", "u", "--days", "0"],
    ["token", "revoke"],
    ["user", "deactivate"],
    ["user", "deactivate", "u", "--hand-over-to"],
    ["user", "list", "extra"],
    ["serve", "--port", "notaport"],
    ["user", "add", "u", "--agency", "a", "--role", "r", "--bogus"],
    ["search", "reindex", "--batch", "0"],
    ["search", "reindex", "--batch", "many"],
    ["search", "reindex", "extra"],
])
def test_usage_errors_exit_2_in_one_line(env: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str],
                                         args: list[str]) -> None:
    result = run(capsys, *args)
    assert_one_line_failure(result, 2)
    assert result.out == ""


@pytest.mark.parametrize("args", [[], ["agency"], ["user"], ["token"], ["search"]])
def test_missing_command_exits_2_in_one_line(env: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str],
                                             args: list[str]) -> None:
    # A missing (sub)command is a missing argument: one line, not the whole help text.
    result = run(capsys, *args)
    assert_one_line_failure(result, 2)


def test_help_exits_0(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "--help")
    assert_ok(result)
    for command in ("init", "agency", "user", "token", "seed-demo", "serve", "demo"):
        assert command in result.out


# --- configuration and schema ---------------------------------------------------------


@pytest.fixture
def unmigrated_url(db_url: str, request: pytest.FixtureRequest,
                   tmp_path: Path) -> Iterator[str]:
    """An empty database of the same backend as db_url, with no schema at all."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh' / 'empty.db'}"
        return
    admin_url: str = request.getfixturevalue("pg_admin_url")
    url = create_database(admin_url)
    yield url
    _dispose_built()
    import psycopg

    name = url.rsplit("/", 1)[1]
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("args", [
    ["agency", "add", "x", "--name", "X", "--kind", "health"],
    ["user", "add", "u1", "--agency", "x", "--role", "admin"],
    ["token", "create", "u1"],
    ["seed-demo"],
])
def test_unmigrated_database_says_run_init(env: pytest.MonkeyPatch, unmigrated_url: str,
                                           capsys: pytest.CaptureFixture[str],
                                           args: list[str]) -> None:
    env.setenv("ONESTORY_DATABASE_URL", unmigrated_url)
    result = run(capsys, *args)
    message = assert_one_line_failure(result)
    assert "onestory init" in message
    # ... and after `onestory init` the same kind of command works.
    assert_ok(run(capsys, "init"))
    add_agency(capsys, "x")


def test_serve_on_unmigrated_database_says_run_init(
        env: pytest.MonkeyPatch, unmigrated_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(cli, "_gunicorn", lambda *a: started.append(a))
    env.setenv("ONESTORY_DATABASE_URL", unmigrated_url)
    env.setenv("ONESTORY_SECRET_KEY", "a-test-secret-key-of-some-length")
    message = assert_one_line_failure(run(capsys, "serve", "--port", "8765"))
    assert "onestory init" in message
    assert started == []


def test_serve_in_production_without_secret_key_fails_before_starting(
        db_env: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started: list[object] = []
    monkeypatch.setattr(cli, "_gunicorn", lambda *a: started.append(a))
    result = run(capsys, "serve", "--host", "127.0.0.1", "--port", "8765")
    message = assert_one_line_failure(result)
    assert "ONESTORY_SECRET_KEY" in message
    assert started == []
    # Production mode never generates a secret into the instance folder.
    assert not (tmp_path / "secret_key").exists()


def test_serve_with_unreadable_secret_key_file_fails_in_one_line(
        db_env: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started: list[object] = []
    monkeypatch.setattr(cli, "_gunicorn", lambda *a: started.append(a))
    monkeypatch.setenv("ONESTORY_SECRET_KEY_FILE", str(tmp_path / "missing"))
    message = assert_one_line_failure(run(capsys, "serve"))
    assert "ONESTORY_SECRET_KEY_FILE" in message
    assert started == []


def test_serve_with_secret_key_reaches_the_server(
        db_env: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[object, ...]] = []
    monkeypatch.setattr(cli, "_gunicorn", lambda *a: started.append(a))
    monkeypatch.setenv("ONESTORY_SECRET_KEY", "a-test-secret-key-of-some-length")
    assert_ok(run(capsys, "serve", "--host", "127.0.0.1", "--port", "8765"))
    assert len(started) == 1
    assert started[0][:2] == ("127.0.0.1", 8765)
    # Workers and threads: on SQLite one process of 8 (its transactions take turns).
    sqlite = db_env.startswith("sqlite")
    assert (started[0][2], started[0][4]) == ((1, 8) if sqlite else (2, 4))


def test_bad_onestory_env_fails_in_one_line(env: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("ONESTORY_ENV", "staging")
    message = assert_one_line_failure(run(capsys, "init"))
    assert "ONESTORY_ENV" in message


@pytest.mark.parametrize("url", [
    "notadriver://nowhere",
    "postgresql+psycopg://nobody@127.0.0.1:1/nothing",
])
def test_unusable_database_url_fails_in_one_line(env: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str],
                                                 url: str) -> None:
    env.setenv("ONESTORY_DATABASE_URL", url)
    for args in (["init"], ["token", "create", "u1"]):
        assert_one_line_failure(run(capsys, *args), 1)
