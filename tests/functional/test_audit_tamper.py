"""Tampering with the audit log directly in the database, on both databases.

Activity through the API fills the log; the tests then edit, delete, forge,
reorder, rewrite and truncate rows with plain SQL, as someone with write
access to the database (but not the signing key) could. Each time both
`GET /api/v1/audit/verify` and `onestory audit verify` must refuse the log and
name the first bad entry.

The command line is checked first: the API records its own verification in the
log, which appends to the (tampered) chain.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from sqlalchemy import Engine, event, text

from audit import services as audit_services
from audit.chain import GENESIS, HASHED, entry_hash, sign_checkpoint
from coordination import cli
from coordination.app import create_app
from coordination.config import Settings
from coordination.db import make_engine
from tests.conftest import AUDIT_KEY, INDEX_KEY, Api, Clock

COLUMNS = (*HASHED, "prev_hash", "hash")
FIRST_BAD = re.compile(r"first bad entry (\d+)\b")
LOCK_WAIT_MS = 1000
SELECT_LOG = f"SELECT {', '.join(COLUMNS)} FROM audit_log ORDER BY seq"  # noqa: S608


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Log:
    """The arranged log and the means to tamper with it and check it."""

    api: Api
    engine: Engine
    capsys: pytest.CaptureFixture[str]
    tmp_path: Path
    families: list[str] = field(default_factory=list)
    # Checkpoint files an auditor kept, and the entry each vouches for.
    checkpoint_files: list[Path] = field(default_factory=list)
    checkpoint_seqs: list[int] = field(default_factory=list)

    # --- reading --------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            result = conn.execute(text(SELECT_LOG))
            return [dict(r._mapping) for r in result]

    def row(self, seq: int) -> dict[str, Any]:
        found = [r for r in self.rows() if r["seq"] == seq]
        assert len(found) == 1, seq
        return found[0]

    def last(self) -> int:
        return int(self.rows()[-1]["seq"])

    def head(self) -> tuple[int, str]:
        with self.engine.connect() as conn:
            seq, digest = conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
        return int(seq), str(digest)

    # --- checking -------------------------------------------------------------

    def cli(self, *args: str) -> Result:
        self.capsys.readouterr()
        code = cli.main(list(args))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def cli_verify(self, *checkpoints: Path) -> Result:
        args = ["audit", "verify"]
        for path in checkpoints:
            args += ["--checkpoint", str(path)]
        return self.cli(*args)

    def api_verify(self) -> dict[str, Any]:
        response = self.api.get("/api/v1/audit/verify", "auditor1")
        assert response.status_code == 200, response.get_json()
        body: dict[str, Any] = response.get_json()
        assert set(body) == {"ok", "entries", "head", "first_bad", "problem"}
        return body

    def assert_intact(self, *checkpoints: Path) -> None:
        result = self.cli_verify(*checkpoints)
        assert result.code == 0, result
        assert result.err == ""
        assert "intact" in result.out
        body = self.api_verify()
        assert body["ok"] is True, body
        assert body["first_bad"] is None and body["problem"] is None

    def assert_caught(self, first_bad: int, *checkpoints: Path, api: bool = True) -> str:
        """The command line exits 1 with one line naming `first_bad`; then
        (unless `api` is false, when the API cannot know) the API agrees."""
        result = self.cli_verify(*checkpoints)
        assert result.code == 1, result
        message = result.err.strip()
        assert message and "\n" not in message, f"not one line: {result.err!r}"
        assert "Traceback" not in result.err + result.out
        assert "intact" not in result.out
        found = FIRST_BAD.search(message)
        assert found is not None, message
        assert int(found.group(1)) == first_bad, message
        if api:
            body = self.api_verify()
            assert body["ok"] is False, body
            assert body["first_bad"] == first_bad, body
            assert body["problem"], body
        return message

    # --- tampering --------------------------------------------------------------

    def sql(self, statement: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(statement), params)

    def update(self, seq: int, **values: Any) -> None:
        sets = ", ".join(f"{name} = :{name}" for name in values)
        self.sql(f"UPDATE audit_log SET {sets} WHERE seq = :seq_", seq_=seq, **values)  # noqa: S608

    def insert(self, row: dict[str, Any]) -> None:
        names = ", ".join(COLUMNS)
        params = ", ".join(f":{c}" for c in COLUMNS)
        self.sql(f"INSERT INTO audit_log ({names}) VALUES ({params})",  # noqa: S608
                 **{c: row[c] for c in COLUMNS})

    def set_head(self, seq: int, digest: str) -> None:
        self.sql("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1",
                 seq=seq, hash=digest)

    def rewrite_from(self, seq: int, **changes: Any) -> None:
        """Change entry `seq` and recompute every hash after it and the head:
        a chain that is consistent in itself."""
        rows = self.rows()
        prev = rows[seq - 2]["hash"] if seq > 1 else GENESIS
        with self.engine.begin() as conn:
            for row in rows[seq - 1:]:
                if row["seq"] == seq:
                    row.update(changes)
                row["prev_hash"] = prev
                row["hash"] = prev = entry_hash(prev, [row[c] for c in HASHED])
                sets = ", ".join(f"{c} = :{c}" for c in COLUMNS if c != "seq")
                conn.execute(text(f"UPDATE audit_log SET {sets} WHERE seq = :seq"),  # noqa: S608
                             row)
            conn.execute(text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1"),
                         {"seq": rows[-1]["seq"], "hash": prev})


# --- arranging ---------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path) -> None:
    for name in ("ONESTORY_ENV", "ONESTORY_SECRET_KEY", "ONESTORY_SECRET_KEY_FILE",
                 "ONESTORY_AUDIT_SIGNING_KEY_FILE", "ONESTORY_INDEX_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONESTORY_INSTANCE", str(tmp_path))
    monkeypatch.setenv("ONESTORY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ONESTORY_KEYSTORE_URL", settings.keystore_url)
    monkeypatch.setenv("ONESTORY_KEYRING_FILE", str(settings.keyring_file))
    monkeypatch.setenv("ONESTORY_INDEX_KEY", INDEX_KEY)
    monkeypatch.setenv("ONESTORY_AUDIT_SIGNING_KEY", AUDIT_KEY)


@pytest.fixture
def app(settings: Settings, clock: Clock) -> Iterator[Flask]:
    """The shared `app`, but on SQLite its connections wait at most a few
    seconds for a lock (the product waits 30): these tests run one request at
    a time, so any wait is a request waiting for itself, and should fail fast."""
    application = create_app(settings, clock=clock)
    engine = application.extensions["onestory"].engine
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _short_wait(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")

        engine.dispose()  # connections opened so far get it too
    yield application
    application.extensions["onestory"].dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.get_json())
    return response.get_json()


def activity(api: Api, clock: Clock, name: str) -> str:
    """A family's first weeks: created, written to, consented, read, searched,
    referred, and one refused look. About ten entries."""
    family = api.new_family("nurse1", display_name=name)
    clock.advance(minutes=1)
    api.write(family, "health", "check-up fine")
    api.write(family, "story", "moved here in spring")
    api.sign(family, {"physio": ["health", "story", "involvement"]})
    clock.advance(minutes=1)
    ok(api.get(f"/api/v1/families/{family}", "physio1"))
    ok(api.get(f"/api/v1/families/{family}", "nurse1"))
    ok(api.get(f"/api/v1/families/{family}/consent", "coord1"))
    ok(api.get("/api/v1/families", "nurse1", query_string={"name": name}))
    ok(api.post(f"/api/v1/families/{family}/involvements", "coord1",
                json={"agency": "physio"}), 201)
    assert api.get(f"/api/v1/families/{family}", "ecec1").status_code in (403, 404)
    ok(api.get(f"/api/v1/families/{family}/consent/history", "coord1"))
    clock.advance(minutes=1)
    return family


def take_checkpoint(log: Log, name: str) -> None:
    result = log.cli("audit", "checkpoint")
    assert result.code == 0, result
    signed = json.loads(result.out)
    path = log.tmp_path / f"{name}.json"
    path.write_text(result.out)
    log.checkpoint_files.append(path)
    log.checkpoint_seqs.append(int(signed["seq"]))


@pytest.fixture
def log(api: Api, clock: Clock, engine: Engine, cli_env: None,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Log:
    """About 40 entries, with two signed checkpoints kept by the auditor (and
    stored): the first after the first family, the second after the second."""
    arranged = Log(api, engine, capsys, tmp_path)
    arranged.families.append(activity(api, clock, "Aylin Demir"))
    take_checkpoint(arranged, "first")
    arranged.families.append(activity(api, clock, "Jonas Berg"))
    take_checkpoint(arranged, "second")
    arranged.families.append(activity(api, clock, "Mia Haugen"))
    s1, s2 = arranged.checkpoint_seqs
    assert 10 < s1 < s2 < arranged.last() - 5, (s1, s2, arranged.last())
    return arranged


# --- the untouched log ----------------------------------------------------------------


def test_the_untouched_log_is_intact(log: Log) -> None:
    rows = log.rows()
    assert len(rows) >= 30
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    actions = {r["action"] for r in rows}
    assert {"token.create", "family.create", "entry.write", "consent.sign", "record.read",
            "consent.read", "family.search", "request.denied", "audit.checkpoint"} <= actions
    assert log.head() == (rows[-1]["seq"], rows[-1]["hash"])
    log.assert_intact()
    log.assert_intact(*log.checkpoint_files)
    # The API's verification is itself on record, and the log is still intact after it.
    assert log.rows()[-1]["action"] == "audit.verify"
    result = log.cli_verify(*log.checkpoint_files)
    assert result.code == 0, result
    assert f"{len(rows) + 2} entries" in result.out  # two API verifications since


def test_the_api_verifies_without_waiting_for_its_own_lock(app: Flask, api: Api) -> None:
    """Verification reads on a connection of its own while the request's
    transaction is open; neither may then wait for the other. A request that
    waits for itself waits out the busy timeout (SQLite) and gets a refused
    statement, which the view's retries would hide: so no statement of the
    request may fail at all."""
    failed: list[str] = []
    engine = app.extensions["onestory"].engine

    def seen(context: Any) -> None:
        failed.append(f"{type(context.original_exception).__name__}: {context.statement}")

    event.listen(engine, "handle_error", seen)
    try:
        response = api.get("/api/v1/audit/verify", "auditor1")
    finally:
        event.remove(engine, "handle_error", seen)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["ok"] is True
    assert failed == []


def test_only_auditors_verify(log: Log) -> None:
    for who in ("nurse1", "coord1", "admin1"):
        assert log.api.get("/api/v1/audit/verify", who).status_code == 403
    assert log.api.get("/api/v1/audit/verify").status_code == 401


# --- an edited entry ----------------------------------------------------------------


def _changed(column: str, old: Any, log: Log) -> Any:
    if column == "at":
        return "2026-01-01T00:00:00.000000Z" if old != "2026-01-01T00:00:00.000000Z" else \
            "2026-01-02T00:00:00.000000Z"
    if column == "family_id":
        others = [f for f in log.families if f != old]
        return others[0]
    if column == "outcome":
        return "denied" if old == "ok" else "ok"
    if column == "action":
        return "record.read" if old != "record.read" else "family.search"
    if column == "detail":
        return '{"forged":true}'
    return "mallory" if old is None else f"{old},x"


@pytest.mark.parametrize("column", ["actor", "shown", "family_id", "at", "action", "outcome",
                                    "role", "agency_id", "reason", "withheld", "detail",
                                    "request_id"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_an_edited_column_is_caught_at_its_entry(log: Log, column: str, where: str) -> None:
    rows = log.rows()
    if where == "first":
        seq = 1
    elif where == "last":
        seq = rows[-1]["seq"]
    else:  # a read of the second family: it has an actor, fields shown and a family
        seq = next(r["seq"] for r in rows if r["action"] == "record.read"
                   and r["family_id"] == log.families[1])
    log.update(seq, **{column: _changed(column, rows[seq - 1][column], log)})
    message = log.assert_caught(seq)
    assert "altered" in message


@pytest.mark.parametrize("column", ["actor", "shown", "family_id", "withheld"])
def test_emptying_or_nulling_a_value_is_caught(log: Log, column: str) -> None:
    rows = log.rows()
    seq = next(r["seq"] for r in rows if r["action"] == "record.read" and r[column] is not None)
    log.update(seq, **{column: None})
    log.assert_caught(seq)


def test_a_null_made_empty_is_caught(log: Log) -> None:
    seq = next(r["seq"] for r in log.rows() if r["reason"] is None and r["seq"] > 5)
    log.update(seq, reason="")
    log.assert_caught(seq)


def test_an_edited_hash_is_caught(log: Log) -> None:
    seq = 7
    log.update(seq, hash="f" * 64)
    log.assert_caught(seq)


@pytest.mark.parametrize("seq", [1, 2, 20])
def test_a_changed_prev_hash_is_caught(log: Log, seq: int) -> None:
    log.update(seq, prev_hash="e" * 64)
    message = log.assert_caught(seq)
    assert "does not follow" in message


# --- a deleted entry ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["first", "second", "middle", "last-but-one"])
def test_a_deleted_entry_is_caught_at_its_number(log: Log, where: str) -> None:
    last = log.last()
    seq = {"first": 1, "second": 2, "middle": last // 2, "last-but-one": last - 1}[where]
    log.sql("DELETE FROM audit_log WHERE seq = :seq", seq=seq)
    message = log.assert_caught(seq)
    assert "missing" in message


def test_deleted_entries_relinked_are_still_caught(log: Log) -> None:
    """Several entries deleted and the rest re-hashed to close the gap in the
    hashes: the gap in the numbering still shows."""
    seq = 12
    log.sql("DELETE FROM audit_log WHERE seq IN (12, 13, 14)")
    rows = log.rows()
    prev = rows[10]["hash"]
    for row in rows[11:]:
        row["prev_hash"] = prev
        prev = entry_hash(prev, [row[c] for c in HASHED])
        log.update(row["seq"], prev_hash=row["prev_hash"], hash=prev)
    log.set_head(rows[-1]["seq"], prev)
    log.assert_caught(seq)


# --- a forged entry -------------------------------------------------------------------


def forged_after(log: Log, seq: int) -> dict[str, Any]:
    """A self-consistent forged entry numbered `seq`, hashed from entry seq - 1."""
    row = dict(log.row(seq))
    row.update(actor="mallory", family_id=log.families[2], action="record.read",
               shown="health,story", withheld=None, outcome="ok")
    row["prev_hash"] = log.row(seq - 1)["hash"] if seq > 1 else GENESIS
    row["hash"] = entry_hash(row["prev_hash"], [row[c] for c in HASHED])
    return row


@pytest.mark.parametrize("seq", [1, 9, 25])
def test_an_entry_replaced_by_a_forgery_is_caught_at_the_next(log: Log, seq: int) -> None:
    """Entry k deleted and a forged entry k put in its place, hashed from k-1:
    k is consistent with its past, but k+1 does not follow it."""
    forged = forged_after(log, seq)
    log.sql("DELETE FROM audit_log WHERE seq = :seq", seq=seq)
    log.insert(forged)
    message = log.assert_caught(seq + 1)
    assert "does not follow" in message


@pytest.mark.parametrize("seq", [1, 9, 25])
def test_an_entry_inserted_with_renumbering_is_caught_at_the_next(log: Log, seq: int) -> None:
    """A forged entry slipped in at k, the genuine entries from k on moved up
    by one (one row at a time, from the end, as the primary key requires), and
    the head moved too."""
    forged = forged_after(log, seq)
    last = log.last()
    for number in range(last, seq - 1, -1):
        log.sql("UPDATE audit_log SET seq = :new WHERE seq = :old", new=number + 1, old=number)
    log.insert(forged)
    log.set_head(last + 1, log.row(last + 1)["hash"])
    log.assert_caught(seq + 1)


def test_a_forged_entry_appended_behind_the_heads_back_is_caught(log: Log) -> None:
    """A consistent entry appended after the last one without moving the head:
    the head row no longer matches, and the forged entry is the first bad one."""
    last = log.last()
    tail = log.row(last)
    row = dict(tail)
    row.update(seq=last + 1, actor="mallory", prev_hash=tail["hash"])
    row["hash"] = entry_hash(tail["hash"], [row[c] for c in HASHED])
    log.insert(row)
    log.assert_caught(last + 1, api=False)
    # The API's own record of the verification cannot take the place of the forged
    # entry: it answers the verification, or says the log is unavailable (fail
    # closed), but neither vouches for the log nor fails as an internal error.
    response = log.api.get("/api/v1/audit/verify", "auditor1")
    if response.status_code == 200:
        body = response.get_json()
        assert body["ok"] is False and body["first_bad"] == last + 1, body
    else:
        assert response.status_code == 503, (response.status_code, response.get_json())


def test_the_heads_prev_hash_decides_nothing(log: Log) -> None:
    """The head's `prev_hash` (where the append's statement reads the old
    hash back from on PostgreSQL) is written by each append from the head's
    hash, never read to chain: edited, the next append still follows the
    head's hash, and the log stays intact."""
    last, digest = log.head()
    log.sql("UPDATE audit_head SET prev_hash = :forged WHERE id = 1", forged="f" * 64)
    log.assert_intact()  # the API's verification appends an entry of its own
    assert log.row(last + 1)["prev_hash"] == digest
    with log.engine.connect() as conn:
        assert conn.execute(text("SELECT prev_hash FROM audit_head")).scalar_one() != "f" * 64


# --- reordered entries ----------------------------------------------------------------


@pytest.mark.parametrize(("i", "j"), [(1, 2), (5, 17), (20, 21), ("last-1", "last")])
def test_two_entries_swapped_are_caught_at_the_earlier(log: Log, i: Any, j: Any) -> None:
    """The whole content of two rows, hashes included, exchanged (each keeps
    its number, the primary key)."""
    last = log.last()
    i = last - 1 if i == "last-1" else i
    j = last if j == "last" else j
    a, b = log.row(i), log.row(j)
    log.update(i, **{c: b[c] for c in COLUMNS if c != "seq"})
    log.update(j, **{c: a[c] for c in COLUMNS if c != "seq"})
    log.assert_caught(i)


# --- a consistent rewrite: only a signed checkpoint tells ---------------------------------


@pytest.mark.parametrize("where", ["first-entry", "before-first-checkpoint",
                                   "at-first-checkpoint", "after-first-checkpoint",
                                   "at-second-checkpoint"])
def test_a_consistent_rewrite_is_caught_by_a_stored_checkpoint(log: Log, where: str) -> None:
    """Entry k changed and every hash from k on, and the head, recomputed: the
    chain is consistent, but differs from the first signed checkpoint at or
    after k."""
    s1, s2 = log.checkpoint_seqs
    seq, caught = {"first-entry": (1, s1), "before-first-checkpoint": (s1 - 3, s1),
                   "at-first-checkpoint": (s1, s1), "after-first-checkpoint": (s1 + 2, s2),
                   "at-second-checkpoint": (s2, s2)}[where]
    log.rewrite_from(seq, actor="mallory")
    rows = log.rows()
    assert log.head() == (rows[-1]["seq"], rows[-1]["hash"])  # the head agrees
    message = log.assert_caught(caught)
    assert "checkpoint" in message
    # The auditor's own copies say the same.
    log.sql("DELETE FROM audit_checkpoints")
    log.assert_caught(caught, *log.checkpoint_files, api=False)


def test_a_consistent_rewrite_with_the_stored_checkpoints_removed(log: Log) -> None:
    """The forger also deletes the stored checkpoints: the database alone can
    no longer tell (nothing can), but the checkpoint the auditor kept can."""
    s1, s2 = log.checkpoint_seqs
    log.rewrite_from(s1 + 2, actor="mallory")
    log.sql("DELETE FROM audit_checkpoints")
    result = log.cli_verify()
    assert result.code == 0, result  # the known limit: keep checkpoints elsewhere
    log.assert_caught(s2, log.checkpoint_files[1], api=False)
    log.assert_caught(s2, *log.checkpoint_files, api=False)
    result = log.cli_verify(log.checkpoint_files[0])  # a checkpoint before the change
    assert result.code == 0, result


def test_a_consistent_rewrite_with_the_stored_checkpoint_re_hashed(log: Log) -> None:
    """The forger also updates the stored checkpoint's hash to the new chain:
    its signature no longer matches."""
    s1, s2 = log.checkpoint_seqs
    log.rewrite_from(s1 + 2, actor="mallory")
    log.sql("UPDATE audit_checkpoints SET hash = :hash WHERE seq = :seq",
            hash=log.row(s2)["hash"], seq=s2)
    message = log.assert_caught(s2)
    assert "signed" in message


def test_a_stored_checkpoint_resigned_with_another_key_is_caught(log: Log) -> None:
    s1, s2 = log.checkpoint_seqs
    log.rewrite_from(s1 + 2, actor="mallory")
    other = Ed25519PrivateKey.generate()
    forged = sign_checkpoint(other, s2, log.row(s2)["hash"], "2026-11-22T12:00:00.000000Z")
    log.sql("UPDATE audit_checkpoints SET hash = :hash, at_text = :at, key_id = :key_id, "
            "signature = :signature WHERE seq = :seq", hash=forged["hash"], at=forged["at"],
            key_id=forged["key_id"], signature=forged["signature"], seq=s2)
    log.assert_caught(s2)


# --- a truncated tail -------------------------------------------------------------------


def truncate(log: Log, keep: int, move_head: bool) -> None:
    log.sql("DELETE FROM audit_log WHERE seq > :keep", keep=keep)
    if move_head:
        log.set_head(keep, log.row(keep)["hash"])


@pytest.mark.parametrize("before", ["first", "second"])
def test_a_cut_tail_with_the_head_moved_is_caught_by_a_kept_checkpoint(
        log: Log, before: str) -> None:
    """The last entries deleted, the head moved back to the new last entry,
    and the stored checkpoints beyond it deleted: the database is consistent,
    and only a checkpoint the auditor kept, vouching for a later entry, tells."""
    s1, s2 = log.checkpoint_seqs
    keep = (s1 if before == "first" else s2) - 2
    truncate(log, keep, move_head=True)
    log.sql("DELETE FROM audit_checkpoints WHERE seq > :keep", keep=keep)
    result = log.cli_verify()
    assert result.code == 0, result  # nothing in the database tells
    message = log.assert_caught(keep + 1, *log.checkpoint_files, api=False)
    assert "removed" in message
    log.assert_caught(keep + 1, log.checkpoint_files[-1], api=False)
    body = log.api_verify()
    assert body["ok"] is True  # the API holds the log only to what the database keeps


def test_a_cut_tail_with_the_head_moved_is_caught_by_a_stored_checkpoint(log: Log) -> None:
    s1, s2 = log.checkpoint_seqs
    keep = s2 - 3
    truncate(log, keep, move_head=True)
    log.assert_caught(keep + 1)


@pytest.mark.parametrize("cut", [1, 3, "after-second-checkpoint"])
def test_a_cut_tail_with_the_head_untouched_is_caught_by_the_head(log: Log, cut: Any) -> None:
    last = log.last()
    s2 = log.checkpoint_seqs[1]
    keep = s2 + 1 if cut == "after-second-checkpoint" else last - cut
    log.sql("DELETE FROM audit_checkpoints")  # only the head row tells
    truncate(log, keep, move_head=False)
    assert log.head()[0] == last
    message = log.assert_caught(keep + 1)
    assert "head" in message


def test_an_emptied_log_is_caught(log: Log) -> None:
    log.sql("DELETE FROM audit_log")
    log.assert_caught(1)


def test_a_rewritten_last_entry_with_the_head_untouched_names_that_entry(log: Log) -> None:
    """The last entry changed and re-hashed consistently, the head left alone:
    the head vouches for another last entry, so that entry is the bad one
    (not one after it, which does not exist)."""
    last = log.last()
    row = log.row(last)
    row["actor"] = "mallory"
    log.update(last, actor="mallory", hash=entry_hash(row["prev_hash"],
                                                       [row[c] for c in HASHED]))
    log.sql("DELETE FROM audit_checkpoints")
    log.assert_caught(last)


# --- checkpoint files that are not ours --------------------------------------------------


def test_a_checkpoint_file_signed_by_another_key_is_rejected(log: Log) -> None:
    """A genuine statement (the right seq and hash) signed by another Ed25519 key."""
    s2 = log.checkpoint_seqs[1]
    other = Ed25519PrivateKey.generate()
    genuine = json.loads(log.checkpoint_files[1].read_text())
    forged = sign_checkpoint(other, s2, genuine["hash"], genuine["at"])
    path = log.tmp_path / "other-key.json"
    path.write_text(json.dumps(forged))
    message = log.assert_caught(s2, path, api=False)
    assert "not signed by the audit key" in message
    # Naming our key in the file changes nothing.
    ours = Ed25519PrivateKey.from_private_bytes(base64.b64decode(AUDIT_KEY))
    forged.update(key_id=genuine["key_id"], public_key=genuine["public_key"])
    assert genuine["public_key"] == sign_checkpoint(ours, 1, "0", "x")["public_key"]
    path.write_text(json.dumps(forged))
    log.assert_caught(s2, path, api=False)


def test_a_foreign_checkpoint_is_rejected_even_beside_the_genuine_one(log: Log) -> None:
    """Every checkpoint handed in is checked: a foreign one for the same entry
    as a genuine one is not silently dropped, whichever comes first."""
    s2 = log.checkpoint_seqs[1]
    genuine = json.loads(log.checkpoint_files[1].read_text())
    forged = sign_checkpoint(Ed25519PrivateKey.generate(), s2, genuine["hash"], genuine["at"])
    path = log.tmp_path / "other-key.json"
    path.write_text(json.dumps(forged))
    log.assert_caught(s2, log.checkpoint_files[1], path, api=False)
    log.assert_caught(s2, path, log.checkpoint_files[1], api=False)


@pytest.mark.parametrize("name", ["seq", "hash", "at"])
def test_an_altered_checkpoint_file_is_rejected(log: Log, name: str) -> None:
    signed = json.loads(log.checkpoint_files[1].read_text())
    s2 = log.checkpoint_seqs[1]
    if name == "seq":
        signed["seq"] = s2 - 1  # claims another (existing) entry
        expected = s2 - 1
    elif name == "hash":
        signed["hash"] = log.row(s2 - 1)["hash"]
        expected = s2
    else:
        signed["at"] = "2030-01-01T00:00:00.000000Z"
        expected = s2
    path = log.tmp_path / "altered.json"
    path.write_text(json.dumps(signed))
    log.assert_caught(expected, path, api=False)


@pytest.mark.parametrize("content", ["not json", "[]", "{}", '{"seq": "x"}', "null"])
def test_a_malformed_checkpoint_file_fails_in_one_line(log: Log, content: str) -> None:
    """Not a checkpoint: one line naming the file (not an "unexpected" error)."""
    path = log.tmp_path / "bad.json"
    path.write_text(content)
    result = log.cli_verify(path)
    assert result.code == 1, result
    message = result.err.strip()
    assert message and "\n" not in message and "Traceback" not in result.err
    assert "intact" not in result.out
    assert "bad.json" in message and "unexpected" not in message, message


def test_appends_during_a_walk_are_not_taken_for_tampering(
        log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verification reads the head, the checkpoints and every entry in one
    snapshot: a look that commits after the head was read and before the walk
    starts is simply not part of this verification (read apart, the walk would
    find an entry behind the head and call the log tampered with)."""
    before = log.last()
    public_key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(AUDIT_KEY)).public_key()
    original = audit_services._stream
    looked: list[int] = []

    def stream_after_a_look(raw: Any, sql: str, dialect: str) -> Iterator[Any]:
        ok(log.api.get(f"/api/v1/families/{log.families[0]}", "physio1"))
        looked.append(log.last())
        yield from original(raw, sql, dialect)

    monkeypatch.setattr(audit_services, "_stream", stream_after_a_look)
    result = audit_services.verify(log.engine, public_key)
    assert looked == [before + 1]
    assert result.ok, result
    assert (result.entries, result.head_seq) == (before, before)
    monkeypatch.setattr(audit_services, "_stream", original)
    again = audit_services.verify(log.engine, public_key)
    assert again.ok and again.entries == before + 1, again
