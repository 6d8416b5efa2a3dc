"""Alembic environment: the only way OneStory's schema is made.

The connection comes from `config.attributes["connection"]` (set by
`coordination.migrate.upgrade`), or else from `-x url=` / ONESTORY_DATABASE_URL.
"""

from alembic import context

import audit.model  # noqa: F401  (registers the audit tables)
import consent.tables  # noqa: F401  (registers the consent tables)
import coordination.model  # noqa: F401  (registers the application tables)
from coordination.config import load_settings
from coordination.db import Base
from coordination.migrate import run_environment

target_metadata = Base.metadata
run_environment(context, target_metadata, lambda: load_settings().database_url)
