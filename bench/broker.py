"""Context broker: batch upsert throughput with history on, GET by id and type+q+geo query latency.

    .venv/bin/python bench/broker.py [--entities 100000] [--batch 1000] [--clients 1] [--million]
                                     [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

1. ``POST /ngsi-ld/v1/entityOperations/upsert`` through the hub's ASGI app in this process (no
   socket), batches of ``--batch`` TrafficFlowObserved entities (6 attributes), creating every
   entity, then updating every entity. History is on, change events go through the outbox to the
   subscription matcher, as in production. The client builds and encodes every body before the
   clock starts; each pass is timed from the first request to the last answer, with ``--clients``
   requests in flight at a time.
2. Baseline, same run, same machine: the raw driver writing the rows the broker writes for each
   batch, in one transaction per batch: the entity rows (``INSERT … ON CONFLICT DO UPDATE``), their
   type rows, six history rows per entity (``COPY`` on PostgreSQL, ``executemany`` on SQLite) and one
   outbox row per 100 entities carrying the changed entities. On PostgreSQL it uses ``--clients``
   connections at a time, as the broker's clients do. The ratio divides the broker's update rate
   by the driver's.
3. ``GET /entities/{id}`` p50/p99 at ``--entities``, twice: right after the update pass, while
   the hub still handles the change events the writes left in its outbox (relay, subscription
   matcher, rule engine: the same event loop), and again once those are handled (the time that
   took is printed), and on PostgreSQL a third time after ``VACUUM (ANALYZE)`` of the entity
   table (what autovacuum does after such a pass); with ``--million``, rows are added with the raw
   driver up to 1,000,000 entities and GET is timed again, then
   ``GET /entities?type=…&q=averageVehicleSpeed<30&georel=near;maxDistance==500&geometry=Point…``.

On a shared machine the rates follow the load. Two figures cut through it: the hub's CPU time per
update batch (this process's, least and median of the batches; with ``--clients`` above 1 the
pass's CPU over its batches), and the least wall time of one update batch, broker and baseline,
whose quotient is the "best-batch ratio".
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.kit.db import create_engine
from cityhub.kit.ids import new_ids

DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
TYPE = DEFAULT + "TrafficFlowObserved"
ATTRIBUTES = 6
MILLION = 1_000_000
TENANT = "urn:ngsi-ld:default"  # filled in from the broker's own rows before the raw load


def position(index: int) -> tuple[float, float]:
    """A 1,000 × 1,000 grid of points 0.0005° apart (about 50 m) over Zhengzhou."""
    return 113.4 + (index % 1000) * 0.0005, 34.5 + (index // 1000 % 1000) * 0.0005


def flow(index: int, step: int) -> dict[str, Any]:
    lon, lat = position(index)
    return {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:bench-{index}",
        "type": "TrafficFlowObserved",
        "intensity": {"type": "Property", "value": 100 + step, "observedAt": "2026-11-21T08:00:00Z"},
        "occupancy": {"type": "Property", "value": 0.3},
        "averageVehicleSpeed": {"type": "Property", "value": 20.0 + (index + step) % 40},
        "congested": {"type": "Property", "value": False},
        "refRoadSegment": {"type": "Relationship", "object": f"urn:ngsi-ld:RoadSegment:{index}"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
    }


def stored(index: int, step: int, now: str) -> dict[str, Any]:
    """The entity as the broker stores it (expanded names, timestamps on every instance)."""
    body = flow(index, step)
    attrs: dict[str, Any] = {}
    for name, instance in body.items():
        if name in ("id", "type"):
            continue
        iri = LOCATION if name == "location" else DEFAULT + name
        attrs[iri] = [instance | {"createdAt": now, "modifiedAt": now}]
    return {"id": body["id"], "type": [TYPE], "createdAt": now, "modifiedAt": now, "attrs": attrs}


def quantiles(latencies: list[float]) -> str:
    cuts = statistics.quantiles(latencies, n=100)
    return f"p50 {cuts[49]:.2f} ms  p99 {cuts[98]:.2f} ms"


# -- through the broker -----------------------------------------------------------------------------


@dataclass
class Batches:
    """Per-batch figures of the update pass: CPU seconds of this process, wall seconds."""

    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    def cpu_text(self) -> str:
        return f"least {min(self.cpu) * 1000:.0f} ms, median {statistics.median(self.cpu) * 1000:.0f} ms"


async def upserts(
    http: httpx.AsyncClient, entities: int, batch: int, clients: int
) -> tuple[float, float, Batches]:
    """Create, then update every entity; ``clients`` requests in flight at a time, each sending its
    own share of the batches in turn. The rate of each pass is its entities over its wall time,
    from the first request sent to the last answered; bodies are built before the clock starts."""
    rates = []
    figures = Batches()
    for step in (0, 1):  # create, then update every entity
        bodies = [orjson.dumps([flow(i, step) for i in indexes]) for indexes in _batches(entities, batch)]

        async def client(share: list[bytes], measured: bool) -> None:
            for body in share:
                cpu, wall = time.process_time(), time.perf_counter()
                response = await http.post(
                    "/ngsi-ld/v1/entityOperations/upsert",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                assert response.status_code in (201, 204), response.text[:500]
                if measured:
                    figures.wall.append(time.perf_counter() - wall)
                    if clients == 1:  # requests in flight together share the process's CPU
                        figures.cpu.append(time.process_time() - cpu)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(bodies[k::clients], step == 1) for k in range(clients)))
        rates.append(entities / (time.perf_counter() - started))
        if step == 1 and clients > 1:
            figures.cpu = [(time.process_time() - cpu) / len(bodies)]
    return rates[0], rates[1], figures


async def timed(samples: int, call: Callable[[], Awaitable[httpx.Response]]) -> list[float]:
    latencies = []
    for _ in range(samples):
        started = time.perf_counter()
        response = await call()
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:300]
    return latencies


class Collections:
    """The garbage collector's pauses while it is attached (``gc.callbacks``): a GET's tail may be
    a collection that ran inside it, not the broker."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, int, int]] = []  # (ms, generation, objects collected)
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            pause = (time.perf_counter() - self._started) * 1000
            self.pauses.append((pause, info["generation"], info["collected"]))

    def text(self) -> str:
        if not self.pauses:
            return "no collection"
        pause, generation, collected = max(self.pauses)
        slow = sum(1 for figures in self.pauses if figures[0] >= 1)
        return (
            f"{len(self.pauses)} collections, {slow} of 1 ms or more, the longest {pause:.1f} ms "
            f"(generation {generation}, {collected:,} objects freed)"
        )


async def gets(http: httpx.AsyncClient, entities: int) -> tuple[list[float], Collections]:
    async def one() -> httpx.Response:
        index = random.randrange(entities)
        return await http.get(f"/ngsi-ld/v1/entities/urn:ngsi-ld:TrafficFlowObserved:bench-{index}")

    collections = Collections()
    gc.callbacks.append(collections)
    try:
        return await timed(1000, one), collections
    finally:
        gc.callbacks.remove(collections)


async def get_figures(http: httpx.AsyncClient, entities: int) -> str:
    latencies, collections = await gets(http, entities)
    return f"{quantiles(latencies)}  (garbage collector: {collections.text()})"


async def settled(app: Any, limit: float = 600) -> float:
    """Wait until the hub's outbox holds no unpublished change event (the bus being in-process,
    publishing one returns once its consumers have handled it); returns the seconds waited."""
    started = time.perf_counter()
    for _ in range(int(limit / 0.2)):  # polled: the relay tells no one when it is done
        if not await app.state.hub.relay.pending():
            break
        await asyncio.sleep(0.2)
    return time.perf_counter() - started


async def vacuumed(database_url: str) -> bool:
    """On PostgreSQL, ``VACUUM (ANALYZE)`` the broker's entity table, as autovacuum would have by
    now after the update pass left a dead version of every row (the servers this runs on may
    have autovacuum off; the hub warns of it). False on SQLite, which has nothing to do here."""
    if not database_url.startswith("postgresql"):
        return False
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM (ANALYZE) broker_entity")
    finally:
        await engine.dispose()
    return True


async def near_queries(http: httpx.AsyncClient) -> tuple[list[float], float]:
    found: list[int] = []

    async def one() -> httpx.Response:
        lon, lat = position(random.randrange(MILLION))
        response = await http.get(
            "/ngsi-ld/v1/entities",
            params={
                "type": "TrafficFlowObserved",
                "q": "averageVehicleSpeed<30",
                "georel": "near;maxDistance==500",
                "geometry": "Point",
                "coordinates": f"[{lon},{lat}]",
                "count": "true",
                "limit": "100",
            },
        )
        found.append(int(response.headers.get("NGSILD-Results-Count", 0)))
        return response

    return await timed(100, one), statistics.mean(found)


# -- the raw driver -----------------------------------------------------------------------------------


def _batches(entities: int, batch: int) -> Iterator[range]:
    for first in range(0, entities, batch):
        yield range(first, min(first + batch, entities))


def _raw_rows(indexes: range, step: int) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """Entity, type, history and outbox rows for one batch, as the broker writes them."""
    now_text = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    now = datetime.now(UTC)
    entities, types, history, events = [], [], [], []
    ids = iter(new_ids(len(indexes) * ATTRIBUTES))
    for index in indexes:
        entity = stored(index, step, now_text)
        lon, lat = position(index)
        entities.append((TENANT, entity["id"], now, now, orjson.dumps(entity).decode(), lon, lat, lon, lat))
        types.append((TENANT, entity["id"], TYPE))
        for name, instances in entity["attrs"].items():
            data = orjson.dumps(instances[0]).decode()
            history.append((next(ids), TENANT, entity["id"], name, None, now, now, None, data))
    for start in range(0, len(indexes), 100):
        changes = [
            {"id": f"bench-{i}", "entity": stored(i, step, now_text)} for i in indexes[start : start + 100]
        ]
        payload = orjson.dumps({"tenant": TENANT, "changes": changes}).decode()
        events.append((uuid.uuid4(), 0, "broker.entities_changed", TENANT, payload, now, None, 0, None))
    return entities, types, history, events


UPSERT = (
    "INSERT INTO broker_entity VALUES ({}) ON CONFLICT (tenant_code, entity_id) DO UPDATE SET "
    "modified_at = excluded.modified_at, data = excluded.data, min_lon = excluded.min_lon, "
    "min_lat = excluded.min_lat, max_lon = excluded.max_lon, max_lat = excluded.max_lat"
)


def _sqlite_rows(rows: list[Any]) -> list[Any]:
    """SQLite stores UUIDs as 32 hex digits and times as naive UTC text."""
    return [
        tuple(
            v.hex if isinstance(v, uuid.UUID) else v.replace(tzinfo=None) if isinstance(v, datetime) else v
            for v in row
        )
        for row in rows
    ]


async def raw_sqlite(path: str, entities: int, batch: int) -> tuple[float, float]:
    """SQLite has one writer at a time: its baseline is one connection whatever ``--clients``.
    Returns the update pass's rate and its least wall time of one batch."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    elapsed = 0.0
    for step in (0, 1):
        elapsed = 0.0
        least = float("inf")
        for indexes in _batches(entities, batch):
            rows = [_sqlite_rows(part) for part in _raw_rows(indexes, step)]
            started = time.perf_counter()
            with connection:
                connection.executemany(UPSERT.format(",".join("?" * 9)), rows[0])
                connection.executemany("INSERT OR IGNORE INTO broker_entity_type VALUES (?,?,?)", rows[1])
                connection.executemany(
                    f"INSERT INTO broker_attribute_instance VALUES ({','.join('?' * 9)})", rows[2]
                )
                connection.executemany(f"INSERT INTO outbox VALUES ({','.join('?' * 9)})", rows[3])
            least = min(least, time.perf_counter() - started)
            elapsed += time.perf_counter() - started
    connection.close()
    return entities / elapsed, least  # the update pass, as the broker's ratio uses


def _jsonb(text: str) -> bytes:
    return b"\x01" + text.encode()  # JSONB's binary format: a version byte, then the text


async def _pg_connect(dsn: str) -> asyncpg.Connection:
    """A raw connection that writes JSONB from text, as COPY's binary format needs."""
    connection = await asyncpg.connect(dsn)
    await connection.set_type_codec(
        "jsonb",
        encoder=_jsonb,
        decoder=lambda data: orjson.loads(data[1:]),
        schema="pg_catalog",
        format="binary",
    )
    return connection


async def raw_postgres(dsn: str, entities: int, batch: int, clients: int) -> tuple[float, float]:
    """``clients`` connections, each writing its own share of the batches in turn, as the broker's
    clients do; rows are built before the clock starts. Returns the update pass's rate and its
    least wall time of one batch."""
    connections = [await _pg_connect(dsn) for _ in range(clients)]
    rate = 0.0
    walls: list[float] = []
    for step in (0, 1):
        prepared = [_raw_rows(indexes, step) for indexes in _batches(entities, batch)]
        walls.clear()

        async def write(connection: asyncpg.Connection, share: list[Any]) -> None:
            for rows in share:
                started = time.perf_counter()
                async with connection.transaction():
                    await connection.executemany(
                        UPSERT.format(",".join(f"${i}" for i in range(1, 10))), rows[0]
                    )
                    await connection.executemany(
                        "INSERT INTO broker_entity_type VALUES ($1,$2,$3) ON CONFLICT DO NOTHING", rows[1]
                    )
                    await connection.copy_records_to_table("broker_attribute_instance", records=rows[2])
                    await connection.executemany(
                        f"INSERT INTO outbox VALUES ({','.join(f'${i}' for i in range(1, 10))})", rows[3]
                    )
                walls.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(write(c, prepared[k::clients]) for k, c in enumerate(connections)))
        rate = entities / (time.perf_counter() - started)
    for connection in connections:
        await connection.close()
    return rate, min(walls)  # the update pass, as the broker's ratio uses


def _entity_rows(start: int, end: int) -> Iterator[tuple[list[Any], list[Any]]]:
    now_text = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    now = datetime.now(UTC)
    for first in range(start, end, 10_000):
        entities, types = [], []
        for index in range(first, min(first + 10_000, end)):
            entity = stored(index, 0, now_text)
            lon, lat = position(index)
            entities.append(
                (TENANT, entity["id"], now, now, orjson.dumps(entity).decode(), lon, lat, lon, lat)
            )
            types.append((TENANT, entity["id"], TYPE))
        yield entities, types


def fill_sqlite(path: str, start: int, end: int) -> None:
    connection = sqlite3.connect(path)
    with connection:
        for entities, types in _entity_rows(start, end):
            connection.executemany(
                "INSERT INTO broker_entity VALUES (?,?,?,?,?,?,?,?,?)", _sqlite_rows(entities)
            )
            connection.executemany("INSERT INTO broker_entity_type VALUES (?,?,?)", types)
    connection.execute("ANALYZE")
    connection.close()


async def fill_postgres(dsn: str, start: int, end: int) -> None:
    connection = await _pg_connect(dsn)
    for entities, types in _entity_rows(start, end):
        await connection.copy_records_to_table("broker_entity", records=entities)
        await connection.copy_records_to_table("broker_entity_type", records=types)
    await connection.execute("ANALYZE")
    await connection.close()


# -- one database ------------------------------------------------------------------------------------


async def run(
    label: str,
    database_url: str,
    baseline: Callable[[], Awaitable[tuple[float, float]]],
    fill: Callable[[int, int], Awaitable[None]],
    args: argparse.Namespace,
) -> None:
    global TENANT

    def say(text: str) -> None:
        print(f"{label:9} {text}", flush=True)

    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    await engine.dispose()
    app = create_app(Settings(database_url=database_url, log_level="WARNING"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=600) as http:
            created, updated, figures = await upserts(http, args.entities, args.batch, args.clients)
            for phase, rate in (("create", created), ("update", updated)):
                say(f"upsert {phase} {rate:8.0f} entities/s {rate * ATTRIBUTES:9.0f} attribute updates/s")
            say(f"update batch of {args.batch}: hub CPU {figures.cpu_text()}")
            busy = await get_figures(http, args.entities)
            say(f"GET by id at {args.entities:,} entities, right after the writes: {busy}")
            waited = await settled(app)
            idle = await get_figures(http, args.entities)
            say(f"GET by id at {args.entities:,} entities, their events handled ({waited:.1f} s on): {idle}")
            if await vacuumed(database_url):
                clean = await get_figures(http, args.entities)
                say(f"GET by id at {args.entities:,} entities, after VACUUM (ANALYZE): {clean}")
            if args.million:
                engine = create_engine(database_url)
                async with engine.connect() as connection:
                    row = await connection.exec_driver_sql("SELECT tenant_code FROM broker_entity LIMIT 1")
                    TENANT = row.scalar_one()
                await engine.dispose()
                started = time.perf_counter()
                await fill(args.entities, MILLION)
                say(f"raw load up to {MILLION:,} entities: {time.perf_counter() - started:.0f} s")
                say(f"GET by id at {MILLION:,} entities: {await get_figures(http, MILLION)}")
                latencies, found = await near_queries(http)
                say(
                    f"type+q+near(500 m) at {MILLION:,}: {quantiles(latencies)}, {found:.0f} found on average"
                )
    raw, least = await baseline()
    say(f"baseline raw driver, same rows: {raw:8.0f} entities/s   ratio {updated / raw:.3f}")
    say(
        f"least wall time of one update batch: broker {min(figures.wall) * 1000:.0f} ms, "
        f"raw driver {least * 1000:.0f} ms, best-batch ratio {least / min(figures.wall):.3f}"
    )
    say("load average " + " ".join(f"{load:.2f}" for load in os.getloadavg()))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--million", action="store_true", help="also time GET and a geo query at 1,000,000 entities"
    )
    parser.add_argument("--postgres", help="admin DSN, e.g. postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--clients",
        type=int,
        default=1,
        help="upsert requests in flight at a time (and connections of the PostgreSQL baseline)",
    )
    args = parser.parse_args()
    machine = f"{platform.node()} · {platform.machine()}"
    print(f"machine: {machine} · {args.entities} entities, batches of {args.batch}, {args.clients} client(s)")
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            raw_path = f"{folder}/raw.db"
            raw_engine = create_engine(f"sqlite+aiosqlite:///{raw_path}")
            await migrate.upgrade(raw_engine)
            await raw_engine.dispose()

            async def fill(start: int, end: int) -> None:
                await asyncio.to_thread(fill_sqlite, f"{folder}/broker.db", start, end)

            await run(
                "sqlite",
                f"sqlite+aiosqlite:///{folder}/broker.db",
                lambda: raw_sqlite(raw_path, args.entities, args.batch),
                fill,
                args,
            )
    if args.postgres:
        name, url, dsn = await _pg_database(args.postgres)
        raw_name, _, raw_dsn = await _pg_database(args.postgres)
        try:
            raw_engine = create_engine(raw_dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
            await migrate.upgrade(raw_engine)
            await raw_engine.dispose()
            await run(
                "postgres",
                url,
                lambda: raw_postgres(raw_dsn, args.entities, args.batch, args.clients),
                lambda start, end: fill_postgres(dsn, start, end),
                args,
            )
        finally:
            await _pg_drop(args.postgres, name)
            await _pg_drop(args.postgres, raw_name)


async def _pg_database(admin: str) -> tuple[str, str, str]:
    name = f"cityhub_bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(admin)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    base = admin.rsplit("/", 1)[0]
    return name, f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1), f"{base}/{name}"


async def _pg_drop(admin: str, name: str) -> None:
    connection = await asyncpg.connect(admin)
    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
