"""Temporal aggregation: hourly averages over 1-minute history, through the broker and in raw SQL.

    .venv/bin/python bench/temporal.py [--entities 100] [--days 7] [--repeat 5] [--skip-sqlite]
                                       [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
                                       [--sqlite-dir DIR] [--sqlite-entities-per-transaction 100]

The entities (TrafficFlowObserved) are created through the broker; their history, one instance of
``averageVehicleSpeed`` per minute over ``--days`` days, is loaded with the raw driver (COPY on
PostgreSQL, ``executemany`` in transactions of ``--sqlite-entities-per-transaction`` entities on
SQLite), entity by entity so that any size fits in memory, as a long-running hub would have
accumulated it; PostgreSQL then gets the ``VACUUM ANALYZE`` autovacuum would have run. Timed,
``--repeat`` times each (default 5):

- ``GET /ngsi-ld/v1/temporal/entities?type=…&attrs=averageVehicleSpeed&timerel=between…
  &options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=PT1H`` through the hub's ASGI app;
- baseline, same run: the same averages computed by the database from the same rows
  (``GROUP BY`` entity and hour), fetched with the raw driver.

The broker issue asks for a month of 1-minute data for 1,000 entities (43.2 million instances):
``--entities 1000 --days 30``. The defaults are a smaller slice of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from broker import DEFAULT, _pg_connect, _pg_database, _pg_drop, flow

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.kit.db import create_engine

ATTRIBUTE = DEFAULT + "averageVehicleSpeed"
START = datetime(2026, 10, 1, tzinfo=UTC)


def _minutes(days: int) -> list[tuple[str, str]]:
    """Per minute: the time as COPY's text format and SQLite's stored format write it."""
    moments = [START + timedelta(minutes=m) for m in range(days * 24 * 60)]
    return [(f"{at:%Y-%m-%d %H:%M:%S}+00", f"{at:%Y-%m-%d %H:%M:%S}.000000") for at in moments]


def _json(value: float, at: datetime) -> str:
    return json.dumps(
        {"type": "Property", "value": value, "observedAt": at.isoformat().replace("+00:00", "Z")}
    )


class History:
    """One ``averageVehicleSpeed`` instance per minute for each entity, made entity by entity so
    that tens of millions of rows never sit in memory at once. Ids are time-ordered (a random
    prefix and a counter), as the hub's own version-7 ids are."""

    def __init__(self, entity_ids: list[str], tenant: str, days: int) -> None:
        self.entity_ids, self.tenant, self.days = entity_ids, tenant, days
        self.minutes = _minutes(days)
        self.prefix = os.urandom(6).hex()
        self.count = 0
        # 40 distinct values: the JSON of each (value, minute) is built from two cached halves
        self.stamps = [
            _json(0.0, START + timedelta(minutes=m)).split(", ", 2)[2] for m in range(len(self.minutes))
        ]

    def _ids(self) -> list[str]:
        first = self.count
        self.count += len(self.minutes)
        return [f"{self.prefix}{n:020x}" for n in range(first + 1, self.count + 1)]

    def _data(self, number: int) -> list[str]:
        return [
            f'{{"type": "Property", "value": {20.0 + (number + minute) % 40}, {stamp}'
            for minute, stamp in enumerate(self.stamps)
        ]

    def copy_text(self, number: int) -> bytes:
        """One entity's history in COPY text format."""
        head = f"\t{self.tenant}\t{self.entity_ids[number]}\t{ATTRIBUTE}\t\\N\t"
        lines = [
            f"{id_}{head}{pg}\t{pg}\t\\N\t{data}\n"
            for id_, (pg, _), data in zip(self._ids(), self.minutes, self._data(number), strict=True)
        ]
        return "".join(lines).encode()

    def sqlite_rows(self, number: int) -> list[tuple[Any, ...]]:
        entity_id, tenant = self.entity_ids[number], self.tenant
        return [
            (id_, tenant, entity_id, ATTRIBUTE, None, lite, lite, None, data)
            for id_, (_, lite), data in zip(self._ids(), self.minutes, self._data(number), strict=True)
        ]


def raw_sqlite_average(path: str, end: datetime) -> Callable[[], Awaitable[int]]:
    async def query() -> int:
        connection = sqlite3.connect(path, timeout=60)  # the hub may be writing (outbox relay)
        rows = connection.execute(
            "SELECT entity_id, strftime('%Y-%m-%d %H', observed_at), avg(json_extract(data, '$.value')) "
            "FROM broker_attribute_instance WHERE attribute = ? AND observed_at >= ? AND observed_at < ? "
            "GROUP BY 1, 2",
            (
                ATTRIBUTE,
                START.replace(tzinfo=None).isoformat(" ", "microseconds"),
                end.replace(tzinfo=None).isoformat(" ", "microseconds"),
            ),
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


INSERT = "INSERT INTO broker_attribute_instance VALUES (?,?,?,?,?,?,?,?,?)"


def load_sqlite(path: str, rows: History, per_transaction: int) -> None:
    connection = sqlite3.connect(path, timeout=60)  # the hub may be writing (outbox relay)
    total = len(rows.entity_ids)
    for first in range(0, total, per_transaction):
        with connection:
            for number in range(first, min(first + per_transaction, total)):
                connection.executemany(
                    "INSERT INTO broker_attribute_instance VALUES (?,?,?,?,?,?,?,?,?)",
                    rows.sqlite_rows(number),
                )
        _progress("sqlite", rows.count)
    connection.execute("ANALYZE broker_attribute_instance")
    connection.close()


async def load_postgres(dsn: str, rows: History) -> None:
    connection = await _pg_connect(dsn)

    async def chunks() -> AsyncIterator[bytes]:
        for number in range(len(rows.entity_ids)):
            yield rows.copy_text(number)
            if (number + 1) % 50 == 0:
                _progress("postgres", rows.count)

    await connection.copy_to_table("broker_attribute_instance", source=chunks(), format="text")
    # what autovacuum would have done on a hub that had been running: hint bits, statistics
    await connection.execute("VACUUM ANALYZE broker_attribute_instance")
    await connection.close()


def _progress(label: str, count: int) -> None:
    print(f"{label:9} … {count:,} instances loaded", flush=True)


async def timed(call: Callable[[], Awaitable[Any]], times: int) -> list[float]:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - started)
    return seconds


async def run(
    label: str,
    database_url: str,
    load: Callable[[History], Awaitable[None]],
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
            rows = History([e["id"] for e in entities], tenant, args.days)
            started = time.perf_counter()
            await load(rows)
            print(
                f"{label:9} loaded {rows.count:,} instances in {time.perf_counter() - started:.0f} s",
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
                "limit": str(args.entities),  # at most 1,000 (the broker's page limit)
            }

            async def through_broker() -> None:
                response = await http.get("/ngsi-ld/v1/temporal/entities", params=params)
                assert response.status_code == 200, response.text[:300]
                answer = response.json()
                assert len(answer) == args.entities
                assert len(answer[0]["averageVehicleSpeed"]["avg"]) == args.days * 24

            broker = await timed(through_broker, args.repeat)
    raw_query = baseline(end)
    assert await raw_query() == args.entities * args.days * 24
    raw = await timed(raw_query, args.repeat)
    ours, theirs = statistics.median(broker), statistics.median(raw)
    print(
        f"{label:9} broker avg per hour: median {ours * 1000:,.0f} ms (min {min(broker) * 1000:,.0f} ms, "
        f"max {max(broker) * 1000:,.0f} ms)"
    )
    print(
        f"{label:9} baseline SQL GROUP BY: median {theirs * 1000:,.0f} ms (min {min(raw) * 1000:,.0f} ms, "
        f"max {max(raw) * 1000:,.0f} ms)   ratio {theirs / ours:.3f}",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--postgres", help="admin DSN, e.g. postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each (the median is shown)")
    parser.add_argument(
        "--sqlite-entities-per-transaction",
        type=int,
        default=100,
        help="entities' history per INSERT transaction",
    )
    parser.add_argument("--sqlite-dir", help="folder for the SQLite file (default: a temporary folder)")
    args = parser.parse_args()
    instances = args.entities * args.days * 24 * 60
    print(
        f"machine: {platform.node()} · {platform.machine()} · {args.entities} entities × {args.days} days "
        f"of 1-minute data = {instances:,} instances"
    )
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(dir=args.sqlite_dir) as folder:
            path = f"{folder}/temporal.db"

            async def load(rows: History) -> None:
                # a thread: the hub's own SQLite connection needs this event loop meanwhile
                await asyncio.to_thread(load_sqlite, path, rows, args.sqlite_entities_per_transaction)

            await run(
                "sqlite", f"sqlite+aiosqlite:///{path}", load, lambda end: raw_sqlite_average(path, end), args
            )
    if args.postgres:
        name, url, dsn = await _pg_database(args.postgres)
        try:

            async def load_pg(rows: History) -> None:
                await load_postgres(dsn, rows)

            await run("postgres", url, load_pg, lambda end: raw_postgres_average(dsn, end), args)
        finally:
            await _pg_drop(args.postgres, name)


if __name__ == "__main__":
    asyncio.run(main())
