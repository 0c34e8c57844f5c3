"""Database plumbing shared by every domain: the declarative base, column types, engines, sessions.

SQLite (embedded default, WAL mode) and PostgreSQL 15 are both first-class: the same models, the same
migrations. Types here hide their differences: ``JSONType`` is JSONB on PostgreSQL, ``UTCDateTime``
hands back timezone-aware UTC datetimes on both.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import orjson
from sqlalchemy import JSON, DateTime, MetaData, String, Table, bindparam, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_only

from cityhub.kit.ids import new_id_texts, new_ids
from cityhub.kit.time import ensure_utc, utcnow

log = logging.getLogger(__name__)

#: Constraint names are deterministic so migrations can drop and alter them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored with its zone on PostgreSQL and as UTC on SQLite; always read back aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use cityhub.kit.time.utcnow()")
        aware = ensure_utc(value)
        return aware.replace(tzinfo=None) if dialect.name == "sqlite" else aware

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else ensure_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )


class TenantOwned:
    """Mixin for rows that belong to a tenant. Queries on a scoped session see only that tenant's rows
    (see :func:`scope_to_tenant`), and new rows are stamped with it."""

    tenant_code: Mapped[str] = mapped_column(String(6), index=True, nullable=False)


TENANT_KEY = "cityhub.tenant"
ALL_TENANTS = "cityhub.all_tenants"


#: The bound parameter through which a :func:`tenant_bound` statement names its tenant.
TENANT_PARAM = "cityhub_tenant"
_TENANT_BOUND = "cityhub.tenant_bound"


class CrossTenantWrite(Exception):
    """A row of one tenant was written through a session scoped to another."""


class CrossTenantRead(Exception):
    """A :func:`tenant_bound` statement was run for another tenant than its session's."""


def scope_to_tenant(session: AsyncSession | Session, tenant_code: str | None) -> None:
    """Scope every later ORM query of ``session`` to ``tenant_code`` (None lifts the scope).

    This is the one place tenant isolation is enforced: endpoints and services never filter by
    tenant by hand. A query that must see every tenant (platform maintenance) passes
    ``execution_options(**{ALL_TENANTS: True})``; a hot read built once may bind its tenant
    itself (:func:`tenant_bound`), checked here against the scope.
    """
    session.info[TENANT_KEY] = tenant_code


def current_tenant(session: AsyncSession | Session) -> str | None:
    value = session.info.get(TENANT_KEY)
    return value if isinstance(value, str) else None


@contextmanager
def in_tenant(session: AsyncSession | Session, tenant_code: str) -> Iterator[None]:
    """Scope ``session`` to ``tenant_code`` for a block, then put back the scope it had: for code
    that acts in a tenant it is told, on a session its caller keeps using."""
    previous = current_tenant(session)
    scope_to_tenant(session, tenant_code)
    try:
        yield
    finally:
        scope_to_tenant(session, previous)


def tenant_bound(statement: Any, model: Any) -> Any:
    """``statement`` limited to one tenant's rows of ``model`` by a condition of its own, the
    tenant given at execution by :func:`tenant_params`: for a hot read built once (an entity by
    id). Any other query of a scoped session gets that condition as loader criteria, which the ORM
    works through again at every execution: a tenth of the CPU of a GET of one entity. The
    session's scope still decides: running it for another tenant raises :class:`CrossTenantRead`."""
    condition = model.tenant_code == bindparam(TENANT_PARAM)
    return statement.where(condition).execution_options(**{_TENANT_BOUND: True})


def tenant_params(session: AsyncSession | Session, **params: Any) -> dict[str, Any]:
    """The parameters of a :func:`tenant_bound` statement: the session's tenant and ``params``."""
    return {TENANT_PARAM: current_tenant(session), **params}


@event.listens_for(Session, "do_orm_execute")
def _scope_tenant_rows(state: ORMExecuteState) -> None:
    tenant = state.session.info.get(TENANT_KEY)
    if tenant is None or state.execution_options.get(ALL_TENANTS):
        return
    if state.execution_options.get(_TENANT_BOUND):
        parameters = state.parameters if isinstance(state.parameters, dict) else {}
        if parameters.get(TENANT_PARAM) != tenant:
            raise CrossTenantRead(
                f"a query bound to tenant {parameters.get(TENANT_PARAM)!r} in a session of tenant {tenant}"
            )
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(TenantOwned, lambda cls: cls.tenant_code == tenant, include_aliases=True)
        )


@event.listens_for(Session, "before_flush")
def _stamp_tenant(session: Session, _context: Any, _instances: Any) -> None:
    tenant = session.info.get(TENANT_KEY)
    for obj in session.new:
        if not isinstance(obj, TenantOwned):
            continue
        if obj.tenant_code is None:
            if tenant is None:
                raise CrossTenantWrite(f"{type(obj).__name__} needs a tenant and the session has none")
            obj.tenant_code = tenant
        elif tenant is not None and obj.tenant_code != tenant:
            raise CrossTenantWrite(
                f"{type(obj).__name__} of tenant {obj.tenant_code} written in tenant {tenant}"
            )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled connection that the server has closed (a restart, a terminated backend), so
    that the pool opens a new one for the caller. The driver notices the closed socket while the
    connection waits in the pool, so this asks it without a round trip; a ping per checkout (three
    round trips on asyncpg: BEGIN, a query, ROLLBACK) cost a busy hub more than its small queries."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this connection")


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL and foreign keys, PostgreSQL a checked pool."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
        if path and not path.startswith(":memory:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, **_JSON)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=20, **_JSON)
    event.listen(engine.sync_engine, "checkout", _closed_by_server)
    return engine


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


#: JSON columns are (de)serialized with orjson: several times faster than the standard library on
#: the broker's entity, history and outbox payloads.
_JSON: dict[str, Any] = {"json_serializer": _dumps, "json_deserializer": orjson.loads}


def bulk_insert(
    session: Session, table: Table, rows: list[dict[str, Any]], *, new_id: str | None = None
) -> None:
    """Insert many rows into ``table`` in the session's transaction, from synchronous code (a
    flush or commit hook). On PostgreSQL through asyncpg this is one ``COPY``, several times faster
    than ``INSERT … VALUES`` for thousands of rows since no statement is compiled or bound per row;
    elsewhere (or outside a transaction, where COPY would commit on its own) an executemany.
    ``new_id``: a UUID column each row gets a new time-ordered id in (:mod:`cityhub.kit.ids`),
    given to COPY as text, which the driver parses for less than building UUID objects costs."""
    if not rows:
        return
    connection = session.connection()
    driver: Any = connection.connection.driver_connection
    if connection.dialect.driver != "asyncpg" or driver is None or not driver.is_in_transaction():
        if new_id is not None:
            for row, value in zip(rows, new_ids(len(rows)), strict=True):
                row[new_id] = value
        session.execute(table.insert(), rows)
        return
    if new_id is not None:
        for row, text_id in zip(rows, new_id_texts(len(rows)), strict=True):
            row[new_id] = text_id
    columns = [column.name for column in table.columns]
    values = operator.itemgetter(*columns)
    as_json = [i for i, column in enumerate(table.columns) if isinstance(column.type, JSON)]
    records = [list(values(row)) for row in rows]
    for record in records:
        for i in as_json:
            record[i] = _dumps(record[i])
    await_only(driver.copy_records_to_table(table.name, records=records, columns=columns))


async def upsert_many(
    session: AsyncSession,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    keys: Sequence[str],
    changed: Sequence[str],
) -> None:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` of many rows (each with the same members), setting
    the ``changed`` columns of those that exist. On PostgreSQL through asyncpg, in a transaction,
    the rows go to the driver's ``executemany`` as tuples (JSON columns as text): SQLAlchemy's
    handling of each row's parameters cost more than the statement for a thousand rows. Elsewhere
    the dialect's upsert through SQLAlchemy."""
    if not rows:
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if connection.dialect.driver == "asyncpg" and driver is not None and driver.is_in_transaction():
        columns = list(rows[0])
        updates = ", ".join(f"{name} = excluded.{name}" for name in changed)
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'${i}' for i in range(1, len(columns) + 1))}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
        )
        as_json = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, JSON)]
        values = operator.itemgetter(*columns)
        records = [list(values(row)) for row in rows]
        for record in records:
            for i in as_json:
                record[i] = _dumps(record[i])
        await driver.executemany(sql, records)
        return
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert(table)
    update = {name: statement.excluded[name] for name in changed}
    await session.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=update), rows)


#: Rows written since a table's last ANALYZE run by the hub, per engine and table.
_WRITTEN: dict[tuple[int, str], int] = {}
_ANALYZING: set[asyncio.Task[None]] = set()
#: How many rows written to a table make the hub refresh its planner statistics itself.
ANALYZE_EVERY = 20_000


def note_written(session: AsyncSession, tables: tuple[str, ...], rows: int) -> None:
    """Count rows a bulk write added; on PostgreSQL, every :data:`ANALYZE_EVERY` rows run ANALYZE
    on ``tables`` in the background. Autovacuum does this when it is on and has woken up; until
    then the planner knows nothing of a table that grew from empty in a minute (a bulk import) and
    picks plans that read the whole table for each batch."""
    engine = session.bind
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "postgresql":
        return
    key = (id(engine), tables[0])
    _WRITTEN[key] = _WRITTEN.get(key, 0) + rows
    if _WRITTEN[key] < ANALYZE_EVERY:
        return
    _WRITTEN[key] = 0
    task = asyncio.get_running_loop().create_task(_analyze(engine, tables))
    _ANALYZING.add(task)
    task.add_done_callback(_ANALYZING.discard)


async def _analyze(engine: AsyncEngine, tables: tuple[str, ...]) -> None:
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f"ANALYZE {', '.join(tables)}"))
            await connection.commit()
    except Exception:  # statistics are an optimisation: a failure here must not surface
        log.warning("ANALYZE %s failed", ", ".join(tables), exc_info=True)


def session_factory(engine: AsyncEngine, **info: Any) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit; ``info`` is copied into each session."""
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


async def ping(engine: AsyncEngine, timeout: float = 3.0) -> None:
    """Raise if the database does not answer ``SELECT 1`` within ``timeout`` seconds."""
    async with asyncio.timeout(timeout), engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def wait_for_database(
    engine: AsyncEngine,
    *,
    attempts: int,
    max_delay: float,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
) -> None:
    """Try the database with exponential back-off (0.5 s doubling up to ``max_delay``).

    Raises the last error after ``attempts`` failures, so a supervisor sees a clear exit instead of
    a silent crash loop.
    """
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            await ping(engine)
            return
        except Exception as error:
            if attempt == attempts:
                raise
            if on_retry is not None:
                on_retry(attempt, delay, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


async def take_write_lock(session: AsyncSession, model: Any) -> None:
    """Make the transaction a writer now, before it reads the rows it will decide on and change,
    so that two writers of one row take turns instead of each writing back, or deciding from,
    what it read (a lost update; an action taken twice from one state). SQLite: a write to
    ``model``'s table that changes nothing takes the database's write lock (reads before a
    transaction's first write are not part of it). PostgreSQL: nothing; the caller reads the rows
    ``FOR UPDATE``."""
    if session.get_bind().dialect.name == "sqlite":
        table = model.__table__
        column = next(iter(table.primary_key.columns)).name
        await session.execute(text(f"UPDATE {table.name} SET {column} = {column} WHERE 0"))


async def locked(session: AsyncSession, model: Any, statement: Any) -> Any:
    """``statement`` (a select of ``model``'s rows) made to read them locked until the commit, the
    objects refreshed from what it reads: the write lock first (:func:`take_write_lock`), then
    ``FOR UPDATE``."""
    await take_write_lock(session, model)
    return statement.with_for_update().execution_options(populate_existing=True)


def upsert_insert(session: AsyncSession) -> Callable[[Any], Any]:
    """The dialect's ``insert`` (PostgreSQL's or SQLite's), which both offer ON CONFLICT clauses."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
