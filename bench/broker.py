"""Context broker throughput: batch upsert of TrafficFlowObserved entities, and GET by id latency.

    .venv/bin/python bench/broker.py [--entities 20000] [--batch 1000] [--postgres DSN]

Measured: ``POST /ngsi-ld/v1/entityOperations/upsert`` through the hub's ASGI app in this process
(no socket), batches of ``--batch`` entities with 6 attributes each, creating then updating every
entity; then ``GET /entities/{id}`` for random ids. Baseline, in the same run: the raw driver
(sqlite3 / asyncpg ``executemany``) inserting the same rows into the same tables. Figures: entities/s,
attribute updates/s, the ratio to the baseline, and GET p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.kit.db import create_engine

DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"
ATTRIBUTES = 6


def flow(index: int, step: int) -> dict[str, Any]:
    lon, lat = 113.55 + (index % 300) * 0.001, 34.70 + (index // 300 % 300) * 0.001
    return {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:bench-{index}",
        "type": "TrafficFlowObserved",
        "intensity": {"type": "Property", "value": 100 + step, "observedAt": "2026-11-21T08:00:00Z"},
        "occupancy": {"type": "Property", "value": 0.3},
        "averageVehicleSpeed": {"type": "Property", "value": 40.0 + step},
        "congested": {"type": "Property", "value": False},
        "refRoadSegment": {"type": "Relationship", "object": f"urn:ngsi-ld:RoadSegment:{index}"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
    }


async def through_broker(database_url: str, entities: int, batch: int) -> tuple[float, float, list[float]]:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    await engine.dispose()
    app = create_app(Settings(database_url=database_url, log_level="WARNING"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=600) as http:
            timings = []
            for step in (0, 1):  # create, then update every entity
                started = time.perf_counter()
                for first in range(0, entities, batch):
                    body = [flow(i, step) for i in range(first, min(first + batch, entities))]
                    response = await http.post("/ngsi-ld/v1/entityOperations/upsert", json=body)
                    assert response.status_code in (201, 204), response.text[:500]
                timings.append(time.perf_counter() - started)
            latencies = []
            for _ in range(500):
                index = random.randrange(entities)
                started = time.perf_counter()
                response = await http.get(
                    f"/ngsi-ld/v1/entities/urn:ngsi-ld:TrafficFlowObserved:bench-{index}"
                )
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
    return entities / timings[0], entities / timings[1], latencies


def _rows(entities: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    now = datetime.now(UTC)
    rows, types = [], []
    for index in range(entities):
        entity = flow(index, 0)
        rows.append(("410100", entity["id"], now, now, json.dumps(entity), 113.6, 34.7, 113.6, 34.7))
        types.append(("410100", entity["id"], DEFAULT + "TrafficFlowObserved"))
    return rows, types


async def raw_sqlite(path: str, entities: int) -> float:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate.upgrade(engine)
    await engine.dispose()
    rows, types = _rows(entities)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    started = time.perf_counter()
    connection.executemany("INSERT INTO broker_entity VALUES (?,?,?,?,?,?,?,?,?)", rows)
    connection.executemany("INSERT INTO broker_entity_type VALUES (?,?,?)", types)
    connection.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return entities / elapsed


async def raw_postgres(dsn: str, entities: int) -> float:
    rows, types = _rows(entities)
    connection = await asyncpg.connect(dsn)
    started = time.perf_counter()
    async with connection.transaction():
        await connection.executemany(
            "INSERT INTO broker_entity VALUES ($1,$2,$3,$4,$5::jsonb,$6,$7,$8,$9)", rows
        )
        await connection.executemany("INSERT INTO broker_entity_type VALUES ($1,$2,$3)", types)
    elapsed = time.perf_counter() - started
    await connection.close()
    return entities / elapsed


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


def report(label: str, created: float, updated: float, baseline: float, latencies: list[float]) -> None:
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"{label:9} upsert create {created:8.0f} entities/s {created * ATTRIBUTES:9.0f} attribute updates/s"
    )
    print(
        f"{label:9} upsert update {updated:8.0f} entities/s {updated * ATTRIBUTES:9.0f} attribute updates/s"
    )
    print(f"{label:9} baseline raw driver insert {baseline:8.0f} entities/s   ratio {updated / baseline:.3f}")
    print(f"{label:9} GET by id p50 {cuts[49]:.2f} ms  p99 {cuts[98]:.2f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--postgres", help="admin DSN, e.g. postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    machine = f"{platform.node()} · {platform.machine()}"
    print(f"machine: {machine} · {args.entities} entities, batches of {args.batch}")
    with tempfile.TemporaryDirectory() as folder:
        created, updated, latencies = await through_broker(
            f"sqlite+aiosqlite:///{folder}/broker.db", args.entities, args.batch
        )
        baseline = await raw_sqlite(f"{folder}/raw.db", args.entities)
    report("sqlite", created, updated, baseline, latencies)
    if args.postgres:
        name, url, _ = await _pg_database(args.postgres)
        raw_name, _, raw_dsn = await _pg_database(args.postgres)
        try:
            created, updated, latencies = await through_broker(url, args.entities, args.batch)
            raw_engine = create_engine(raw_dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
            await migrate.upgrade(raw_engine)
            await raw_engine.dispose()
            baseline = await raw_postgres(raw_dsn, args.entities)
        finally:
            await _pg_drop(args.postgres, name)
            await _pg_drop(args.postgres, raw_name)
        report("postgres", created, updated, baseline, latencies)


if __name__ == "__main__":
    asyncio.run(main())
