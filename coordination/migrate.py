"""Schema changes through Alembic, from code (used by `onestory init` and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import migrations


def alembic_config(keystore: bool = False) -> Config:
    folder = Path(migrations.__file__).parent
    config = Config()
    config.set_main_option("script_location", str(folder / "keystore" if keystore else folder))
    return config


def upgrade(engine: Engine, revision: str = "head", *, keystore: bool = False) -> None:
    """Create or upgrade the data schema (or the key store's); idempotent."""
    config = alembic_config(keystore)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def is_current(engine: Engine, *, keystore: bool = False) -> bool:
    """Is the database's schema at the newest revision?"""
    heads = set(ScriptDirectory.from_config(alembic_config(keystore)).get_heads())
    opts = {"version_table": "keystore_version"} if keystore else {}
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection, opts=opts).get_current_heads())
    return current == heads
