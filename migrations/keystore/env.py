"""Alembic environment of the key store (a database of its own)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from coordination.config import load_settings
from coordination.db import make_engine
from coordination.keystore import KeyBase

target_metadata = KeyBase.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        version_table="keystore_version",
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or load_settings().keystore_url
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `onestory init`")
run()
