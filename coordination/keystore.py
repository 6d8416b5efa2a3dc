"""The key store: wrapped per-family data keys, in a database of their own.

Kept apart from the data database (its own URL; by default its own SQLite
file) so that a copy of the data, or of its backups, holds no key; erasing a
family deletes its row here, after which no copy of the data can be read.
Its schema, like the data schema, is made only by Alembic
(`migrations/keystore/`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    event,
    or_,
    select,
    update,
)
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


@dataclass(frozen=True)
class WrappedKey:
    family_id: str
    key_version: int
    master_version: int
    wrapped: bytes


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
        table = DataKey.__table__
        query = select(table.c.family_id, table.c.key_version, table.c.master_version,
                       table.c.wrapped).where(table.c.family_id.in_(list(family_ids)))
        with self.engine.connect() as conn:
            return {row.family_id: WrappedKey(row.family_id, row.key_version,
                                              row.master_version, bytes(row.wrapped))
                    for row in conn.execute(query)}

    def add(self, key: WrappedKey, now: datetime) -> None:
        """Store a new family's wrapped key, committed at once: the data
        transaction that uses it comes after, so a key never goes missing."""
        with self.sessions() as session:
            session.add(DataKey(family_id=key.family_id, key_version=key.key_version,
                                master_version=key.master_version, wrapped=key.wrapped,
                                created_at=now))
            session.commit()

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
        changed meanwhile (by another rotation) is left alone."""
        table = cast(Table, DataKey.__table__)
        statement = (
            update(table)
            .where(table.c.family_id == bindparam("fid"),
                   table.c.master_version == bindparam("old_version"))
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
        from sqlalchemy import func

        with self.sessions() as session:
            rows = session.execute(
                select(DataKey.master_version, func.count()).group_by(DataKey.master_version)
            ).all()
            return {int(version): int(count) for version, count in rows}


def _plain(row: DataKey) -> WrappedKey:
    return WrappedKey(row.family_id, row.key_version, row.master_version, row.wrapped)
