"""Alembic environment of the key store (a database of its own)."""

from alembic import context

from coordination.config import load_settings
from coordination.keystore import KeyBase
from coordination.migrate import run_environment

target_metadata = KeyBase.metadata
run_environment(context, target_metadata, lambda: load_settings().keystore_url,
                version_table="keystore_version")
