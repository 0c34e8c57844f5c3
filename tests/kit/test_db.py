"""Column types and tenant scoping on the database under test (SQLite or PostgreSQL).

The scoping tests use a table of their own, made here: they test the kit's mechanism, which every
tenant-owned table of the hub relies on, not the hub's schema (that comes from the migrations)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import MetaData, String, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cityhub.kit import db
from cityhub.kit.db import (
    ALL_TENANTS,
    NAMING_CONVENTION,
    CrossTenantRead,
    CrossTenantWrite,
    JSONType,
    TenantOwned,
    UTCDateTime,
    bulk_insert,
    create_engine,
    current_tenant,
    note_written,
    ping,
    scope_to_tenant,
    session_factory,
    tenant_bound,
    tenant_params,
)


class _Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Sensor(TenantOwned, _Base):
    __tablename__ = "kit_test_sensor"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reading: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class Sample(_Base):
    __tablename__ = "kit_test_sample"

    sample_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    note: Mapped[str] = mapped_column(String(20))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(_Base.metadata.create_all)
    yield engine
    await engine.dispose()


async def test_ping(engine: AsyncEngine) -> None:
    await ping(engine)


async def test_a_connection_the_server_closed_is_replaced_at_checkout(engine: AsyncEngine) -> None:
    """PostgreSQL: a pooled connection whose server end went away (a restart, a terminated
    backend) is not handed out; the caller gets a new one and its query succeeds."""
    if engine.dialect.name != "postgresql":
        pytest.skip("an embedded SQLite database has no server to lose")
    async with engine.connect() as connection:
        pid = await connection.scalar(text("SELECT pg_backend_pid()"))
    # back in the pool; ended from elsewhere, as a restart of the server would end it
    admin = create_engine(engine.url.render_as_string(hide_password=False))
    try:
        async with admin.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            for _ in range(500):  # until the backend has exited, so its socket is closed
                gone = text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :pid")
                if await other.scalar(gone, {"pid": pid}):
                    break
                await asyncio.sleep(0.01)
    finally:
        await admin.dispose()
    await asyncio.sleep(0.05)  # let the event loop read the end of the closed socket
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT pg_backend_pid()")) != pid


async def test_datetimes_come_back_aware_utc(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    beijing = timezone(timedelta(hours=8))
    async with sessions() as session, session.begin():
        session.add(Sensor(id="s1", tenant_code="410102", seen_at=datetime(2026, 5, 1, 8, tzinfo=beijing)))
    async with sessions() as session:
        row = await session.get(Sensor, "s1")
        assert row is not None
        assert row.seen_at == datetime(2026, 5, 1, 0, tzinfo=UTC)
        assert row.seen_at.tzinfo is not None


async def test_naive_datetimes_are_refused(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    with pytest.raises(Exception, match="naive datetime"):
        async with sessions() as session, session.begin():
            session.add(Sensor(id="s2", tenant_code="410102", seen_at=datetime(2026, 5, 1)))  # noqa: DTZ001


async def test_json_round_trip(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    reading = {"pm25": 35.5, "station": "郑州市监测站", "tags": ["a", "b"], "ok": True}
    async with sessions() as session, session.begin():
        session.add(Sensor(id="s3", tenant_code="410102", reading=reading))
    async with sessions() as session:
        row = await session.get(Sensor, "s3")
        assert row is not None
        assert row.reading == reading
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            kind = await connection.scalar(
                select(_column_type()).select_from(Sensor).where(Sensor.id == "s3")
            )
            assert kind == "jsonb"


def _column_type() -> Any:
    from sqlalchemy import func

    return func.pg_typeof(Sensor.reading)


async def _seed(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        session.add_all(
            [
                Sensor(id="zy-1", tenant_code="410102"),
                Sensor(id="zy-2", tenant_code="410102"),
                Sensor(id="js-1", tenant_code="410105"),
            ]
        )


async def test_scoped_session_sees_only_its_tenant(engine: AsyncEngine) -> None:
    await _seed(engine)
    async with session_factory(engine)() as session:
        scope_to_tenant(session, "410105")
        assert current_tenant(session) == "410105"
        assert list(await session.scalars(select(Sensor.id))) == ["js-1"]
        assert await session.get(Sensor, "zy-1") is None  # primary-key look-ups are scoped too
        everything = await session.scalars(
            select(Sensor.id).order_by(Sensor.id).execution_options(**{ALL_TENANTS: True})
        )
        assert list(everything) == ["js-1", "zy-1", "zy-2"]


async def test_a_tenant_bound_statement_reads_its_sessions_tenant_only(engine: AsyncEngine) -> None:
    """A statement built once with its own tenant condition: the session's scope still decides."""
    await _seed(engine)
    by_id = tenant_bound(select(Sensor.id).where(Sensor.id == bindparam("sensor")), Sensor)
    async with session_factory(engine)() as session:
        scope_to_tenant(session, "410102")
        assert await session.scalar(by_id, tenant_params(session, sensor="zy-1")) == "zy-1"
        assert await session.scalar(by_id, tenant_params(session, sensor="js-1")) is None
        with pytest.raises(CrossTenantRead, match="410105"):
            await session.scalar(by_id, {"cityhub_tenant": "410105", "sensor": "js-1"})
        with pytest.raises(CrossTenantRead):
            await session.scalar(by_id, {"sensor": "zy-1"})


async def test_scoped_bulk_update_touches_only_its_tenant(engine: AsyncEngine) -> None:
    await _seed(engine)
    async with session_factory(engine)() as session, session.begin():
        scope_to_tenant(session, "410102")
        await session.execute(update(Sensor).values(reading={"cleared": True}))
    async with session_factory(engine)() as session:
        rows = {s.id: s.reading for s in await session.scalars(select(Sensor))}
    assert rows == {"zy-1": {"cleared": True}, "zy-2": {"cleared": True}, "js-1": None}


async def test_new_rows_are_stamped_and_cross_tenant_writes_refused(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        scope_to_tenant(session, "410103")
        session.add(Sensor(id="eq-1"))
    async with session_factory(engine)() as session:
        row = await session.get(Sensor, "eq-1")
        assert row is not None
        assert row.tenant_code == "410103"
    with pytest.raises(CrossTenantWrite, match="410105"):
        async with session_factory(engine)() as session, session.begin():
            scope_to_tenant(session, "410103")
            session.add(Sensor(id="eq-2", tenant_code="410105"))
    with pytest.raises(CrossTenantWrite, match="needs a tenant"):
        async with session_factory(engine)() as session, session.begin():
            session.add(Sensor(id="eq-3"))


async def test_bulk_insert_in_the_sessions_transaction(engine: AsyncEngine) -> None:
    """COPY on PostgreSQL, executemany on SQLite: the same rows come back, and a rollback takes
    them away with the rest of the transaction."""
    sessions = session_factory(engine)
    seen = datetime(2026, 5, 1, 8, tzinfo=UTC)
    rows = [
        {"id": f"b{i}", "tenant_code": "410102", "seen_at": seen, "reading": {"pm25": i, "名": "站"}}
        for i in range(50)
    ]
    table = Sensor.__table__
    async with sessions() as session, session.begin():
        session.add(Sensor(id="first", tenant_code="410102"))
        await session.flush()  # the transaction is under way, as in the broker's commit hook
        await session.run_sync(bulk_insert, table, rows)
    async with sessions() as session:
        found = {row.id: row for row in await session.scalars(select(Sensor).where(Sensor.id.like("b%")))}
        assert len(found) == 50
        assert found["b7"].reading == {"pm25": 7, "名": "站"}
        assert found["b7"].seen_at == seen
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            session.add(Sensor(id="second", tenant_code="410102"))
            await session.flush()
            await session.run_sync(bulk_insert, table, [rows[0] | {"id": "gone"}])
            raise RuntimeError("roll back")
    async with sessions() as session:
        assert await session.get(Sensor, "gone") is None
        await session.run_sync(bulk_insert, table, [])  # nothing to do: no statement at all


async def test_bulk_insert_gives_new_ids(engine: AsyncEngine) -> None:
    """``new_id``: each row gets a new time-ordered UUID, whichever way the rows go in."""
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        await session.execute(text("SELECT 1"))  # in a transaction: COPY on PostgreSQL
        rows = [{"sample_id": None, "note": f"n{i}"} for i in range(40)]
        await session.run_sync(lambda sync: bulk_insert(sync, Sample.__table__, rows, new_id="sample_id"))
    async with sessions() as session:
        found = list(await session.scalars(select(Sample).order_by(Sample.sample_id)))
    assert [sample.note for sample in found] == [f"n{i}" for i in range(40)]  # ids in row order
    assert all(isinstance(s.sample_id, uuid.UUID) and s.sample_id.version == 7 for s in found)
    assert len({sample.sample_id for sample in found}) == 40


async def test_upsert_many_inserts_and_updates_in_the_transaction(engine: AsyncEngine) -> None:
    """The driver's executemany on PostgreSQL, SQLAlchemy's upsert on SQLite: new rows go in,
    existing ones get the changed columns only, and a rollback takes it all back."""
    sessions = session_factory(engine)
    first = datetime(2026, 5, 1, 8, tzinfo=UTC)
    later = datetime(2026, 5, 2, 8, tzinfo=timezone(timedelta(hours=8)))
    table = Sensor.__table__
    async with sessions() as session, session.begin():
        session.add(Sensor(id="u0", tenant_code="410102", seen_at=first, reading={"pm25": 0}))
        await session.flush()  # the transaction is under way, as in the broker's batch writes
        rows = [
            {"id": f"u{i}", "tenant_code": "410102", "seen_at": later, "reading": {"pm25": i, "名": "站"}}
            for i in range(3)
        ]
        await db.upsert_many(session, table, rows, keys=("id",), changed=("reading",))
    async with sessions() as session:
        found = {row.id: row for row in await session.scalars(select(Sensor).where(Sensor.id.like("u%")))}
    assert sorted(found) == ["u0", "u1", "u2"]
    assert found["u0"].reading == {"pm25": 0, "名": "站"}
    assert found["u0"].seen_at == first  # not among the changed columns
    assert found["u2"].seen_at == later
    assert found["u2"].reading == {"pm25": 2, "名": "站"}
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            await session.execute(select(Sensor.id).limit(1))
            gone = [{"id": "u9", "tenant_code": "410102", "seen_at": later, "reading": None}]
            await db.upsert_many(session, table, gone, keys=("id",), changed=("reading",))
            raise RuntimeError("roll back")
    async with sessions() as session:
        assert await session.get(Sensor, "u9") is None


async def test_bulk_writes_refresh_planner_statistics(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: after enough rows, the table is analyzed in the background, autovacuum or not."""
    if engine.dialect.name != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's")
    monkeypatch.setattr(db, "ANALYZE_EVERY", 30)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        session.add_all(Sensor(id=f"s{i}", tenant_code="410102") for i in range(40))
        await session.flush()
        note_written(session, ("kit_test_sensor",), 20)
        assert not db._ANALYZING  # below the threshold: nothing yet
        note_written(session, ("kit_test_sensor",), 20)
    await asyncio.gather(*db._ANALYZING)
    async with engine.connect() as connection:
        analyzed = await connection.scalar(
            text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'kit_test_sensor'")
        )
    assert analyzed is not None
