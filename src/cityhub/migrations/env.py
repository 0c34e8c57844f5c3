"""Alembic environment. Run through ``cityhub.migrate`` (``cityhub db upgrade``), which hands a live
connection in ``config.attributes['connection']``; SQLite gets batch mode so ALTERs work."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from cityhub.migrate import target_metadata

config = context.config


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `cityhub db upgrade`, not the alembic command")
run(connection)
