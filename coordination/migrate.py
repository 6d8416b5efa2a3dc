"""Schema changes through Alembic, from code (used by `onestory init` and tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData

import migrations
from coordination.db import make_engine


def alembic_config(keystore: bool = False) -> Config:
    folder = Path(migrations.__file__).parent
    config = Config()
    config.set_main_option("script_location", str(folder / "keystore" if keystore else folder))
    return config


def upgrade(engine: Engine, revision: str = "head", *, keystore: bool = False) -> None:
    """Create or upgrade the data schema (or the key store's); idempotent."""
    config = alembic_config(keystore)
    # Not begun here: Alembic runs each migration in a transaction of its own
    # (see `run_environment`), which a migration may commit early to run
    # what cannot run in one (SQLite's VACUUM, PostgreSQL's VACUUM FULL).
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def is_current(engine: Engine, *, keystore: bool = False) -> bool:
    """Is the database's schema at the newest revision?"""
    heads = set(ScriptDirectory.from_config(alembic_config(keystore)).get_heads())
    opts = {"version_table": "keystore_version"} if keystore else {}
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection, opts=opts).get_current_heads())
    return current == heads


def run_environment(context: Any, metadata: MetaData, default_url: Callable[[], str],
                    version_table: str = "alembic_version") -> None:
    """The body of an Alembic env.py: on the connection `upgrade` passes in,
    or else on `-x url=...` or the configured URL. Online only."""
    if context.is_offline_mode():
        raise SystemExit("offline migrations are not supported; run `onestory init`")

    def run(connection: Connection) -> None:
        # One transaction per migration: a migration's `autocommit_block()`
        # commits only its own work before running outside a transaction.
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite",
                          compare_type=True, version_table=version_table,
                          transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()

    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    engine = make_engine(context.get_x_argument(as_dictionary=True).get("url") or default_url())
    with engine.connect() as conn:
        run(conn)
    engine.dispose()
