"""Schema migrations: Alembic, driven from our own code so the same path serves the CLI, ``serve``
and the tests (which run the real migrations, never ``create_all``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cityhub.kit.db import Base

MIGRATIONS = Path(__file__).parent / "migrations"


def target_metadata() -> MetaData:
    # Importing the model modules registers their tables on Base.metadata.
    import cityhub.apps.environment.models
    import cityhub.apps.system.models
    import cityhub.bus.inbox
    import cityhub.bus.outbox
    import cityhub.hub.broker.models
    import cityhub.hub.catalog.models
    import cityhub.hub.dispatch.models
    import cityhub.hub.dispatch.open311_models
    import cityhub.hub.ingest.models
    import cityhub.hub.retention.models
    import cityhub.hub.rules.models
    import cityhub.hub.tenancy.models
    import cityhub.systems.security.models  # noqa: F401

    return Base.metadata


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(MIGRATIONS / "versions"))
    config.attributes["connection"] = connection
    return config


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def revisions() -> list[str]:
    """Revision ids from base to head."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def upgrade(engine: AsyncEngine, target: str = "head") -> None:
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), target))


async def downgrade(engine: AsyncEngine, target: str) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), target))


async def current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


def make_revision(url_engine_connection: Connection, message: str, autogenerate: bool) -> None:
    command.revision(alembic_config(url_engine_connection), message=message, autogenerate=autogenerate)
