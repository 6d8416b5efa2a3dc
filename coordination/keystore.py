"""The key store: wrapped per-family data keys, in a database of their own,
and what every app node agrees on about the master keyring.

Kept apart from the data database (its own URL; by default its own SQLite
file) so that a copy of the data, or of its backups, holds no key; erasing a
family deletes its row here, after which no copy of the data can be read.
Its schema, like the data schema, is made only by Alembic
(`migrations/keystore/`).

Several app nodes share one key store. The master key version new data keys
are wrapped under (the *active* version) is a row here, not each node's
keyring file: `active_version` reads it, and a new key or a re-wrap is
written only while it still names the version the key was wrapped under
(checked in the writing statement itself). Each node also records, at most
once a minute per process, that it is alive and which master versions its
keyring holds (`beat`), so that `onestory keys activate` and `keys retire`
can refuse while a node would be left without a key it needs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CheckConstraint,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    event,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from coordination.db import NAMING_CONVENTION, UTCDateTime, make_engine, make_session_factory


class KeyBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DataKey(KeyBase):
    __tablename__ = "data_keys"

    family_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_version: Mapped[int] = mapped_column(Integer)
    master_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rewrapped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MasterKeyState(KeyBase):
    """One row: the master key version every node wraps new data keys under."""

    __tablename__ = "master_key_state"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    active_version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class KeyNode(KeyBase):
    """An app node's last heartbeat: the master versions its keyring holds
    and the active version it read then."""

    __tablename__ = "key_nodes"

    node_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    versions: Mapped[str] = mapped_column(String(255))  # "1,2": sorted, comma-separated
    active_version: Mapped[int | None] = mapped_column(Integer, nullable=True)


log = logging.getLogger("onestory.keys")


class NoActiveVersion(Exception):
    """The key store has no active master version yet, and none was proposed."""


@dataclass(frozen=True)
class NodeReport:
    node_id: str
    seen_at: datetime
    versions: frozenset[int]
    active_version: int | None


@dataclass(frozen=True)
class WrappedKey:
    family_id: str
    key_version: int
    master_version: int
    wrapped: bytes


_KEYS = DataKey.__table__
_KEYS_OF = (select(_KEYS.c.family_id, _KEYS.c.key_version, _KEYS.c.master_version,
                   _KEYS.c.wrapped)
            .where(_KEYS.c.family_id.in_(bindparam("ids", expanding=True))))
# One family's (every read of a family): no list to expand into the statement
# on each execution.
_KEY_OF = (select(_KEYS.c.family_id, _KEYS.c.key_version, _KEYS.c.master_version,
                  _KEYS.c.wrapped)
           .where(_KEYS.c.family_id == bindparam("id")))


class KeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = make_session_factory(engine)

    @classmethod
    def from_url(cls, url: str) -> KeyStore:
        # Key reads do not queue behind the write lock (a rotation batch, an
        # erasure): transactions are deferred, and each key-store write is a
        # single statement anyway.
        engine = make_engine(url)
        if engine.dialect.name == "sqlite":
            # A destroyed key must not survive in free pages of the file.
            @event.listens_for(engine, "connect")
            def _secure_delete(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA secure_delete=ON")
                cursor.close()

        return cls(engine)

    def get_many(self, family_ids: Sequence[str]) -> dict[str, WrappedKey]:
        """The wrapped keys of these families, in one query."""
        if not family_ids:
            return {}
        # One statement, no transaction around it: one round trip.
        statement, params = ((_KEY_OF, {"id": family_ids[0]}) if len(family_ids) == 1
                             else (_KEYS_OF, {"ids": list(family_ids)}))
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return {row.family_id: WrappedKey(row.family_id, row.key_version,
                                              row.master_version, bytes(row.wrapped))
                    for row in conn.execute(statement, params)}

    # --- the active master version ------------------------------------------------

    def active_version(self, propose: int | None = None, now: datetime | None = None) -> int:
        """The master version every node wraps new keys under. On a key store
        that has none yet (a new installation, or one upgraded from before
        the nodes agreed through it), `propose` (the keyring file's `active`)
        becomes it; concurrent first proposals are settled by the database:
        the first one written wins, and every caller gets that one."""
        with self.engine.connect() as conn:
            found = _active(conn)
            if found is not None or propose is None:
                if found is None:
                    raise NoActiveVersion("the key store names no active master key version "
                                          "yet: run `onestory keys activate VERSION`")
                return found
            conn.execute(_upsert(conn, MasterKeyState.__table__,
                                 {"id": 1, "active_version": propose, "changed_at": now}))
            conn.commit()
            agreed = _active(conn)
        assert agreed is not None
        if agreed == propose:
            log.warning("the key store named no active master key version; version %d "
                        "(this node's keyring file) is now the active one", agreed)
        return agreed

    def set_active(self, version: int, now: datetime) -> None:
        """Make `version` the active master version for every node."""
        values = {"active_version": version, "changed_at": now}
        with self.engine.begin() as conn:
            conn.execute(_upsert(conn, MasterKeyState.__table__, {"id": 1, **values},
                                 update=values))

    def add(self, key: WrappedKey, now: datetime) -> None:
        """Store a new family's wrapped key, committed at once: the data
        transaction that uses it comes after, so a key never goes missing.

        Written only while `key.master_version` is the active version, in the
        same statement (which, on PostgreSQL, holds the active version until
        it commits, so an activation waits for it and its re-wrap sees it);
        raises `NotActive` otherwise, and nothing is stored."""
        keys = cast(Table, DataKey.__table__)
        state = MasterKeyState.__table__
        still_active = (select(literal(key.family_id), literal(key.key_version),
                               literal(key.master_version), literal(key.wrapped),
                               literal(now, UTCDateTime()))
                        .where(state.c.id == 1, state.c.active_version == key.master_version)
                        .with_for_update(read=True))
        # RETURNING, not the row count: for an INSERT ... SELECT the driver
        # may report -1 whether or not a row was written.
        statement = insert(keys).from_select(
            ["family_id", "key_version", "master_version", "wrapped", "created_at"],
            still_active).returning(keys.c.family_id)
        with self.engine.begin() as conn:
            stored = conn.execute(statement).all()
        if not stored:
            raise NotActive(f"master key version {key.master_version} is no longer the "
                            "active one")

    # --- nodes ------------------------------------------------------------------

    def beat(self, node_id: str, versions: Iterable[int], now: datetime,
             propose: int | None = None) -> int:
        """Record that `node_id` is alive and holds `versions`; returns the
        active version it read (and recorded beside them)."""
        active = self.active_version(propose, now)
        held = ",".join(str(v) for v in sorted(set(versions)))
        values = {"seen_at": now, "versions": held, "active_version": active}
        with self.engine.begin() as conn:
            conn.execute(_upsert(conn, KeyNode.__table__, {"node_id": node_id, **values},
                                 update=values))
        return active

    def nodes(self, since: datetime | None = None) -> list[NodeReport]:
        """Nodes by their last heartbeat (those seen since `since`), newest first."""
        query = select(KeyNode).order_by(KeyNode.seen_at.desc(), KeyNode.node_id)
        if since is not None:
            query = query.where(KeyNode.seen_at >= since)
        with self.sessions() as session:
            return [NodeReport(row.node_id, row.seen_at,
                               frozenset(int(v) for v in row.versions.split(",") if v),
                               row.active_version)
                    for row in session.scalars(query)]

    def destroy(self, family_id: str) -> bool:
        """Delete a family's key for good; True if there was one."""
        with self.sessions() as session:
            gone = session.execute(delete(DataKey).where(DataKey.family_id == family_id))
            session.commit()
        if self.engine.dialect.name == "sqlite":
            # ... nor in the write-ahead log: fold it into the (securely
            # overwritten) file and truncate it.
            # Outside any transaction: on the driver's own (autocommit) connection.
            raw = self.engine.raw_connection()
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
        return bool(gone.rowcount)  # type: ignore[attr-defined]

    def not_under(self, master_version: int, limit: int) -> list[WrappedKey]:
        """A batch of keys still wrapped under another master version."""
        # `<` or `>` rather than `!=`, and no ORDER BY: the index on
        # master_version finds the next batch without scanning the done ones.
        with self.sessions() as session:
            rows = session.scalars(
                select(DataKey).where(or_(DataKey.master_version < master_version,
                                          DataKey.master_version > master_version))
                .limit(limit)
            )
            return [_plain(r) for r in rows]

    def rewrap(self, keys: Iterable[tuple[WrappedKey, WrappedKey]], now: datetime) -> int:
        """Replace each old wrapping by its new one, in one transaction; a key
        changed meanwhile (by another rotation) is left alone, and so is every
        key whose new wrapping is not under the active version (an activation
        came in between: the caller reads the active version again)."""
        table = cast(Table, DataKey.__table__)
        state = MasterKeyState.__table__
        active = exists(select(state.c.id)
                        .where(state.c.id == 1, state.c.active_version == bindparam("new_version"))
                        .with_for_update(read=True))
        statement = (
            update(table)
            .where(table.c.family_id == bindparam("fid"),
                   table.c.master_version == bindparam("old_version"),
                   active)
            .values(master_version=bindparam("new_version"), wrapped=bindparam("new_wrapped"),
                    rewrapped_at=bindparam("at", type_=UTCDateTime()))
        )
        params = [{"fid": old.family_id, "old_version": old.master_version,
                   "new_version": new.master_version, "new_wrapped": new.wrapped,
                   "at": now}
                  for old, new in keys]
        if not params:
            return 0
        with self.engine.begin() as conn:
            result = conn.execute(statement, params)
            return int(result.rowcount)

    def count_under(self) -> dict[int, int]:
        with self.sessions() as session:
            rows = session.execute(
                select(DataKey.master_version, func.count()).group_by(DataKey.master_version)
            ).all()
            return {int(version): int(count) for version, count in rows}


class NotActive(Exception):
    """A key was to be written under a master version that is not (or no
    longer) the active one; nothing was written."""


def _active(conn: Connection) -> int | None:
    state = MasterKeyState.__table__
    value = conn.execute(select(state.c.active_version).where(state.c.id == 1)).scalar()
    return None if value is None else int(value)


def _upsert(conn: Connection, table: Any, values: dict[str, Any],
            update: dict[str, Any] | None = None) -> Any:
    """INSERT `values`; where the primary key exists, UPDATE `update` (or nothing)."""
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values)
    keys = [c.name for c in table.primary_key.columns]
    if update is None:
        return statement.on_conflict_do_nothing(index_elements=keys)
    return statement.on_conflict_do_update(index_elements=keys, set_=update)


def _plain(row: DataKey) -> WrappedKey:
    return WrappedKey(row.family_id, row.key_version, row.master_version, row.wrapped)
