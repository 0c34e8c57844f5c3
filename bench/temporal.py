"""Temporal aggregation: hourly averages over 1-minute history, through the broker and in raw SQL.

    .venv/bin/python bench/temporal.py [--entities 100] [--days 7]
                                       [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

The entities (TrafficFlowObserved) are created through the broker; their history, one instance of
``averageVehicleSpeed`` per minute over ``--days`` days, is loaded with the raw driver (COPY on
PostgreSQL), as a long-running hub would have accumulated it. Timed, 5 times each:

- ``GET /ngsi-ld/v1/temporal/entities?type=…&attrs=averageVehicleSpeed&timerel=between…
  &options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=PT1H`` through the hub's ASGI app;
- baseline, same run: the same averages computed by the database from the same rows
  (``GROUP BY`` entity and hour), fetched with the raw driver.

The broker issue asks for a month of 1-minute data for 1,000 entities (43 million instances); the
defaults are a smaller slice of it, recorded as such.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from broker import DEFAULT, _pg_connect, _pg_database, _pg_drop, flow

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.kit.db import create_engine
from cityhub.kit.ids import new_ids

ATTRIBUTE = DEFAULT + "averageVehicleSpeed"
START = datetime(2026, 10, 1, tzinfo=UTC)


def history(entity_ids: list[str], tenant: str, days: int) -> list[tuple[Any, ...]]:
    rows = []
    minutes = days * 24 * 60
    for number, entity_id in enumerate(entity_ids):
        ids = new_ids(minutes)
        for minute in range(minutes):
            at = START + timedelta(minutes=minute)
            text = at.isoformat().replace("+00:00", "Z")
            value = 20.0 + (number + minute) % 40
            data = json.dumps({"type": "Property", "value": value, "observedAt": text})
            rows.append((ids[minute], tenant, entity_id, ATTRIBUTE, None, at, at, None, data))
    return rows


def raw_sqlite_average(path: str, end: datetime) -> Callable[[], Awaitable[int]]:
    async def query() -> int:
        connection = sqlite3.connect(path, timeout=60)  # the hub may be writing (outbox relay)
        rows = connection.execute(
            "SELECT entity_id, strftime('%Y-%m-%d %H', observed_at), avg(json_extract(data, '$.value')) "
            "FROM broker_attribute_instance WHERE attribute = ? AND observed_at >= ? AND observed_at < ? "
            "GROUP BY 1, 2",
            (ATTRIBUTE, START.replace(tzinfo=None).isoformat(" "), end.replace(tzinfo=None).isoformat(" ")),
        ).fetchall()
        connection.close()
        return len(rows)

    return query


def raw_postgres_average(dsn: str, end: datetime) -> Callable[[], Awaitable[int]]:
    async def query() -> int:
        connection = await _pg_connect(dsn)
        rows = await connection.fetch(
            "SELECT entity_id, date_trunc('hour', observed_at), avg((data->>'value')::float8) "
            "FROM broker_attribute_instance WHERE attribute = $1 AND observed_at >= $2 AND observed_at < $3 "
            "GROUP BY 1, 2",
            ATTRIBUTE,
            START,
            end,
        )
        await connection.close()
        return len(rows)

    return query


def load_sqlite(path: str, rows: list[tuple[Any, ...]]) -> None:
    connection = sqlite3.connect(path, timeout=60)  # the hub may be writing (outbox relay)
    with connection:
        connection.executemany(
            "INSERT INTO broker_attribute_instance VALUES (?,?,?,?,?,?,?,?,?)",
            [(r[0].hex, *r[1:5], r[5].replace(tzinfo=None), r[6].replace(tzinfo=None), *r[7:]) for r in rows],
        )
    connection.close()


async def load_postgres(dsn: str, rows: list[tuple[Any, ...]]) -> None:
    connection = await _pg_connect(dsn)
    await connection.copy_records_to_table("broker_attribute_instance", records=rows)
    await connection.execute("ANALYZE broker_attribute_instance")
    await connection.close()


async def timed(call: Callable[[], Awaitable[Any]], times: int = 5) -> list[float]:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - started)
    return seconds


async def run(
    label: str,
    database_url: str,
    load: Callable[[list[tuple[Any, ...]]], Awaitable[None]],
    baseline: Callable[[datetime], Callable[[], Awaitable[int]]],
    args: argparse.Namespace,
) -> None:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    await engine.dispose()
    end = START + timedelta(days=args.days)
    app = create_app(Settings(database_url=database_url, log_level="WARNING"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=3600) as http:
            entities = [flow(i, 0) for i in range(args.entities)]
            for entity in entities:
                del entity["intensity"]  # the only attribute with an observedAt of its own
            created = await http.post(
                "/ngsi-ld/v1/entityOperations/upsert",
                content=orjson.dumps(entities),
                headers={"content-type": "application/json"},
            )
            assert created.status_code == 201, created.text[:300]
            engine = create_engine(database_url)
            async with engine.connect() as connection:
                tenant = (
                    await connection.exec_driver_sql("SELECT tenant_code FROM broker_entity LIMIT 1")
                ).scalar_one()
            await engine.dispose()
            rows = history([e["id"] for e in entities], tenant, args.days)
            started = time.perf_counter()
            await load(rows)
            print(
                f"{label:9} loaded {len(rows):,} instances in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            params = {
                "type": "TrafficFlowObserved",
                "attrs": "averageVehicleSpeed",
                "timerel": "between",
                "timeAt": START.isoformat().replace("+00:00", "Z"),
                "endTimeAt": end.isoformat().replace("+00:00", "Z"),
                "options": "aggregatedValues",
                "aggrMethods": "avg",
                "aggrPeriodDuration": "PT1H",
                "limit": str(args.entities),
            }

            async def through_broker() -> None:
                response = await http.get("/ngsi-ld/v1/temporal/entities", params=params)
                assert response.status_code == 200, response.text[:300]
                answer = response.json()
                assert len(answer) == args.entities
                assert len(answer[0]["averageVehicleSpeed"]["avg"]) == args.days * 24

            broker = await timed(through_broker)
    raw_query = baseline(end)
    assert await raw_query() == args.entities * args.days * 24
    raw = await timed(raw_query)
    ours, theirs = statistics.median(broker), statistics.median(raw)
    print(f"{label:9} broker avg per hour: median {ours * 1000:.0f} ms (min {min(broker) * 1000:.0f} ms)")
    print(f"{label:9} baseline SQL GROUP BY: median {theirs * 1000:.0f} ms   ratio {theirs / ours:.3f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--postgres", help="admin DSN, e.g. postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    instances = args.entities * args.days * 24 * 60
    print(
        f"machine: {platform.node()} · {platform.machine()} · {args.entities} entities × {args.days} days "
        f"of 1-minute data = {instances:,} instances"
    )
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            path = f"{folder}/temporal.db"

            async def load(rows: list[tuple[Any, ...]]) -> None:
                # a thread: the hub's own SQLite connection needs this event loop meanwhile
                await asyncio.to_thread(load_sqlite, path, rows)

            await run(
                "sqlite", f"sqlite+aiosqlite:///{path}", load, lambda end: raw_sqlite_average(path, end), args
            )
    if args.postgres:
        name, url, dsn = await _pg_database(args.postgres)
        try:

            async def load_pg(rows: list[tuple[Any, ...]]) -> None:
                await load_postgres(dsn, rows)

            await run("postgres", url, load_pg, lambda end: raw_postgres_average(dsn, end), args)
        finally:
            await _pg_drop(args.postgres, name)


if __name__ == "__main__":
    asyncio.run(main())
