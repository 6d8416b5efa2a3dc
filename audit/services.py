"""Writing to and reading from the audit log.

`record` appends one entry inside the caller's transaction, so the entry
and the act it describes commit together or not at all. It locks only the
chain's head row (on SQLite: takes the database's write lock), from the
append to that commit (appends come last in a use case), never across a
whole request. On PostgreSQL the append is one statement, in which the
database locks the head, computes the entry's hash (`audit.chain.entry_hash`'s,
byte for byte), moves the head and writes the entry; on SQLite the hash is
computed here between the lock and the write. Everything else here is a query.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Engine,
    LargeBinary,
    Table,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from audit.chain import (
    HASHED,
    Verification,
    audit_time,
    canonical,
    checkpoint_is_signed,
    detail_text,
    entry_hash,
    sign_checkpoint,
    verify_rows,
)
from audit.model import (
    Action,
    AuditCheckpoint,
    AuditEntry,
    AuditHead,
    HiddenFromFamily,
    Outcome,
)
from coordination.db import READS_ONLY


class AuditUnavailable(Exception):
    """The log cannot be appended to; the act it would record must fail."""


@dataclass(frozen=True)
class Event:
    action: Action
    outcome: Outcome = Outcome.OK
    actor: str | None = None
    agency_id: str | None = None
    role: str | None = None
    family_id: str | None = None
    reason: str | None = None
    shown: Sequence[str] | None = None
    withheld: Sequence[str] | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None


def _joined(names: Sequence[str] | None) -> str | None:
    return None if names is None else ",".join(names)


def _head_table() -> Table:
    return cast(Table, AuditHead.__table__)


def _locked_head(session: Session, lock: Executable) -> tuple[int, str] | None:
    """The chain's head (seq, hash), read fresh and locked until the commit."""
    row = session.execute(lock).first()
    return None if row is None else (row.seq, row.hash)


@dataclass(frozen=True)
class _Statements:
    # PostgreSQL: None, and `append` is one statement that locks the head,
    # hashes the entry, moves the head and writes the entry (RETURNING it).
    lock_head: Executable | None
    append: tuple[Executable, ...]  # the entry written and the head moved


def _append_in_one(head: Table, log: Table) -> Executable:
    """PostgreSQL: the whole append as one statement.

    The UPDATE of the head takes its row lock and computes the new hash from
    the old head, `entry_hash`'s message byte for byte: the old hash, 0x1e,
    '+' and the new seq, 0x1f (the first value of `canonical(values)`), then
    the bytes the caller bound as `rest` (`canonical` of every value after
    the seq). Under READ COMMITTED an UPDATE that waited for the lock is
    evaluated again on the head as the committed transaction left it, so
    every append follows the one committed before it. The INSERT writes the
    entry from the head's new seq, old hash (`prev_hash`) and new hash; with
    no head row nothing is written and nothing returned."""
    seq = head.c.seq + literal_column("1")
    prefix = func.convert_to(
        func.concat(head.c.hash, func.chr(literal_column("30")), literal_column("'+'"), seq,
                    func.chr(literal_column("31"))),
        literal_column("'UTF8'"), type_=LargeBinary)
    message = prefix.op("||", return_type=LargeBinary)(bindparam("rest", type_=LargeBinary))
    digest = func.encode(func.sha256(message, type_=LargeBinary), literal_column("'hex'"),
                         type_=head.c.hash.type)
    moved = (update(head).where(head.c.id == literal_column("1"))
             .values(seq=seq, prev_hash=head.c.hash, hash=digest)
             .returning(head.c.seq, head.c.prev_hash, head.c.hash).cte("moved"))
    rest = [bindparam(name, type_=log.c[name].type) for name in HASHED[1:]]
    columns = [log.c[name] for name in (*HASHED, "prev_hash", "hash")]
    return (insert(log)
            .from_select([log.c.seq, *(log.c[name] for name in HASHED[1:]), log.c.prev_hash,
                          log.c.hash],
                         select(moved.c.seq, *rest, moved.c.prev_hash, moved.c.hash))
            .returning(*columns).add_cte(moved))


@functools.cache
def _statements_for(dialect: str) -> _Statements:
    """The append's statements for a dialect, built once."""
    head, log = _head_table(), cast(Table, AuditEntry.__table__)
    if dialect == "postgresql":
        return _Statements(None, (_append_in_one(head, log),))
    lock: Executable
    if dialect == "sqlite":
        # SQLite has one write lock for the whole database. Taking it with a
        # write (a no-op, which also reads the head) rather than a read means:
        # a transaction that has read nothing yet waits for it (busy
        # timeout); one whose earlier reads went stale meanwhile is refused
        # at once (SQLITE_BUSY_SNAPSHOT), and the caller runs its use case
        # again (`coordination.db.retry_on_conflict`).
        lock = (update(head).where(head.c.id == 1).values(seq=head.c.seq)
                .returning(head.c.seq, head.c.hash))
    else:
        lock = select(head.c.seq, head.c.hash).where(head.c.id == 1).with_for_update()
    write = insert(log).values({name: bindparam(name, type_=log.c[name].type)
                                for name in (*HASHED, "prev_hash", "hash")})
    move = (update(head).where(head.c.id == 1)
            .values(seq=bindparam("head_seq", type_=head.c.seq.type),
                    prev_hash=bindparam("prev_hash", type_=head.c.prev_hash.type),
                    hash=bindparam("head_hash", type_=head.c.hash.type)))
    return _Statements(lock, (write, move))


def _statements(session: Session) -> _Statements:
    return _statements_for(session.get_bind().dialect.name)


def record(session: Session, event: Event, now: datetime) -> AuditEntry:
    """Append `event` to the chain in the caller's transaction (not committed).

    Returns the entry as written. Raises `AuditUnavailable` (and writes
    nothing) when the chain has no head. On PostgreSQL the append is one
    statement, the entry's hash computed by the database (`_append_in_one`):
    the head is locked from that statement to the commit, with no other round
    trip and no hashing in Python while it is held. On SQLite this is where the use case takes
    the database's write lock; it raises a write conflict
    (`coordination.db.is_write_conflict`) when the transaction's earlier reads
    are stale by then, or the lock stays taken."""
    after_seq = (audit_time(now), event.action.value, event.outcome.value, event.actor,
                 event.agency_id, event.role, event.family_id, event.reason,
                 _joined(event.shown), _joined(event.withheld), detail_text(event.detail),
                 event.request_id)
    statements = _statements(session)
    if statements.lock_head is None:
        params = {**dict(zip(HASHED[1:], after_seq, strict=True)),
                  "rest": canonical(after_seq)}
        written = session.execute(statements.append[0], params).first()
        if written is None:
            raise AuditUnavailable("the audit log has no head; run `onestory init`")
        return AuditEntry(**written._asdict())  # as written; not added to the session
    locked = _locked_head(session, statements.lock_head)
    if locked is None:
        raise AuditUnavailable("the audit log has no head; run `onestory init`")
    prev_seq, prev_hash = locked
    seq = prev_seq + 1
    values = (seq, *after_seq)
    digest = entry_hash(prev_hash, values)
    row = {**dict(zip(HASHED, values, strict=True)), "prev_hash": prev_hash, "hash": digest}
    # Core statements, not the ORM's unit of work: the entry is written now,
    # not at the next flush, and the head moves with it.
    for statement in statements.append:
        session.execute(statement, {**row, "head_seq": seq, "head_hash": digest})
    return AuditEntry(**row)  # as written; not added to the session


# --- queries ----------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    family: str | None = None
    agency: str | None = None
    user: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: str | None = None  # audit_time text, inclusive
    until: str | None = None  # audit_time text, exclusive


def entries(session: Session, filters: Filters, limit: int, before: int | None
            ) -> tuple[list[AuditEntry], int | None]:
    """Newest first, `limit` at a time; returns the page and the next cursor."""
    query = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit + 1)
    for column, value in ((AuditEntry.family_id, filters.family),
                          (AuditEntry.agency_id, filters.agency),
                          (AuditEntry.actor, filters.user),
                          (AuditEntry.action, filters.action),
                          (AuditEntry.outcome, filters.outcome)):
        if value is not None:
            query = query.where(column == value)
    if filters.since:
        query = query.where(AuditEntry.at >= filters.since)
    if filters.until:
        query = query.where(AuditEntry.at < filters.until)
    if before is not None:
        query = query.where(AuditEntry.seq < before)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].seq if more and rows else None)


def hidden_seqs(session: Session, seqs: Sequence[int]) -> set[int]:
    if not seqs:
        return set()
    return set(session.scalars(select(HiddenFromFamily.seq)
                               .where(HiddenFromFamily.seq.in_(list(seqs)))))


def family_entries(session: Session, family_id: str, actions: Sequence[str],
                   limit: int = 500) -> list[AuditEntry]:
    return list(session.scalars(
        select(AuditEntry).where(AuditEntry.family_id == family_id,
                                 AuditEntry.action.in_(list(actions)))
        .order_by(AuditEntry.seq.desc()).limit(limit)))


def hide_from_family(session: Session, seq: int, by: str, mark_seq: int, now: datetime) -> None:
    session.add(HiddenFromFamily(seq=seq, hidden_by=by, hidden_at=now, mark_seq=mark_seq))


# --- verification -------------------------------------------------------------------


STREAM_BATCH = 5_000  # rows per fetch while verifying: memory stays flat over any length


def _columns_sql(engine: Engine) -> str:
    table = AuditEntry.__table__
    columns = [table.c[name] for name in HASHED] + [table.c.prev_hash, table.c.hash]
    return str(select(*columns).order_by(table.c.seq).compile(dialect=engine.dialect))


@contextlib.contextmanager
def _snapshot(engine: Engine) -> Iterator[Any]:
    """A driver connection in one read-only transaction: the head, the
    checkpoints and every entry are read from the same snapshot, so appends
    that commit while a long log is walked are not taken for tampering.
    The driver's own cursor, not SQLAlchemy's rows: building a Row per entry
    cost as much as the checking."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        else:  # it only reads: a server's other transactions do not wait for it
            conn = conn.execution_options(**{READS_ONLY: True})
        with conn.begin():  # SQLite: `make_engine`'s BEGIN; the snapshot starts at the first read
            raw = conn.connection.dbapi_connection
            if raw is None:  # pragma: no cover - a checked-out connection has one
                raise RuntimeError("no driver connection")
            yield raw


def _stream(raw: Any, sql: str, dialect: str) -> Generator[Sequence[Any], None, None]:
    """Every entry in seq order, STREAM_BATCH rows at a time (PostgreSQL: a
    server-side cursor; SQLite: the driver steps the statement as it goes)."""
    if dialect == "postgresql":
        cursor = raw.cursor(name="onestory_audit_verify")
        cursor.itersize = STREAM_BATCH
    else:
        cursor = raw.cursor()
    try:
        cursor.execute(sql)
        while batch := cursor.fetchmany(STREAM_BATCH):
            yield from batch
    finally:
        cursor.close()


def verify(engine: Engine, public_key: Any | None = None,
           checkpoints: Sequence[dict[str, Any]] = ()) -> Verification:
    """Walk the whole chain; then hold it to the head row and to every
    signed checkpoint (stored ones, and any given by an auditor). Every
    entry's hash is recomputed and chained; memory stays flat."""
    sql = _columns_sql(engine)
    with _snapshot(engine) as raw:
        cursor = raw.cursor()
        cursor.execute("SELECT seq, hash, at_text, signature FROM audit_checkpoints")
        stored = cursor.fetchall()
        cursor.execute("SELECT seq, hash FROM audit_head WHERE id = 1")
        head = cursor.fetchone()
        cursor.close()
        every = [*checkpoints, *({"seq": r[0], "hash": r[1], "at": r[2], "signature": r[3]}
                                 for r in stored)]
        seen: dict[int, str] = {}
        walk = _stream(raw, sql, engine.dialect.name)
        with contextlib.closing(walk):  # closes the cursor on an early stop
            result = verify_rows(walk, {int(c["seq"]) for c in every}, seen)
    if not result.ok:
        return result
    last = result.head_seq

    def bad(seq: int, problem: str) -> Verification:
        return Verification(False, result.entries, result.head, last, seq, problem)

    for cp in sorted(every, key=lambda c: int(c["seq"])):
        seq = int(cp["seq"])
        if public_key is not None and not checkpoint_is_signed(public_key, cp):
            return bad(seq, f"checkpoint at entry {seq} is not signed by the audit key")
        if seq > last:
            return bad(last + 1, f"the log ends at entry {last} but a checkpoint vouches "
                                 f"for entry {seq}: entries were removed")
        if seen.get(seq) != cp["hash"]:
            return bad(seq, f"entry {seq} differs from its signed checkpoint")
    if head is None:
        return bad(last + 1, "the chain's head row is missing")
    head_seq, head_hash = int(head[0]), head[1]
    if head_seq > last:
        return bad(last + 1, f"the head is at entry {head_seq} but the log ends at {last}: "
                             "entries were removed from the end")
    if head_seq < last:
        return bad(head_seq + 1, f"entries after {head_seq} were added behind the head")
    if head_hash != result.head:
        return bad(last, f"entry {last} does not match the chain's head")
    return result


def make_checkpoint(session: Session, key: Any, now: datetime) -> dict[str, Any]:
    """Sign the current head; store it and return it for the auditor to keep."""
    # `record` moves the head with Core statements: read it afresh.
    head = session.get(AuditHead, 1, populate_existing=True)
    if head is None:
        raise AuditUnavailable("the audit log has no head; run `onestory init`")
    signed = sign_checkpoint(key, head.seq, head.hash, audit_time(now))
    session.add(AuditCheckpoint(seq=head.seq, hash=head.hash, at_text=signed["at"],
                                key_id=signed["key_id"], signature=signed["signature"]))
    return signed
