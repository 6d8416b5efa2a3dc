"""Alembic environment: the only way OneStory's schema is made.

The connection comes from `config.attributes["connection"]` (set by
`coordination.migrate`), or else from ONESTORY_DATABASE_URL / `-x url=`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import audit.model  # noqa: F401  (registers the audit tables)
import consent.tables  # noqa: F401  (registers the consent tables)
import coordination.model  # noqa: F401  (registers the application tables)
from coordination.config import load_settings
from coordination.db import Base, make_engine

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or load_settings().database_url
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `onestory init`")
run()
