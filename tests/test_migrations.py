"""The real migrations, on the database under test: up from nothing, down to nothing, up again,
and the models agree with what the migrations build."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from cityhub import migrate
from cityhub.hub.tenancy.service import ensure_tenant_with_ancestors
from cityhub.kit.db import create_engine, session_factory


async def _tables(engine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        assert await migrate.current(engine) is None
        await migrate.upgrade(engine)
        assert await migrate.current(engine) == migrate.head()
        tables = {
            "tenant",
            "outbox",
            "bus_inbox",
            "system_event_tally",
            "broker_entity",
            "broker_entity_type",
        }
        assert tables | {"alembic_version"} <= await _tables(engine)
        async with session_factory(engine)() as session, session.begin():
            await ensure_tenant_with_ancestors(session, "410105")  # a tree of rows to take down
        await migrate.downgrade(engine, "base")
        assert await migrate.current(engine) is None
        assert not (tables & await _tables(engine))
        await migrate.upgrade(engine)
        assert await migrate.current(engine) == migrate.head()
    finally:
        await engine.dispose()


async def test_models_match_migrations(database_url: str) -> None:
    """No drift: autogenerate finds nothing to add, drop or alter."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}),
                    migrate.target_metadata(),
                )
            )
        ignorable = {"spatial_ref_sys"}  # PostGIS's own table
        diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name in ignorable)]
        # SQLite's R*Tree (0012): a virtual table, its shadow tables and the box ids, no models
        diff = [
            d for d in diff if not (d[0] == "remove_table" and d[1].name.startswith("broker_entity_rtree"))
        ]
        diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == "broker_entity_box")]
        # PostgreSQL-only expression indexes are made by migrations alone (0007's GiST on boxes)
        expression_only = {"ix_broker_entity_box"}
        diff = [d for d in diff if not (d[0] == "remove_index" and d[1].name in expression_only)]
        assert diff == []
    finally:
        await engine.dispose()


def test_revision_chain_is_linear() -> None:
    chain = migrate.revisions()
    assert chain[0] == "0001"
    assert chain[-1] == migrate.head()
    assert len(chain) == len(set(chain))
