"""The cockpit's KPI cards: ``GET /api/v1/indicators`` for a tenant of many air-quality stations.

    .venv/bin/python bench/indicators.py [--stations 2000] [--days 1] [--warm 5]
                                         [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Fills a scratch database (SQLite, or a database made for the run on PostgreSQL) with ``--stations``
AirQualityObserved stations and ``--days`` settled past local days of hourly readings of the six
pollutants each (through the broker's entity writes, as live readings are written), then starts a
hub on it and calls the endpoint through its ASGI app: cold (nothing kept yet: every settled day is
computed from history and kept), warm (``--warm`` calls, median), and after one late reading for a
past day (that day computed again). The baseline in the same run is the uncached computation,
``service.city_daily`` over the same 30 days in the hub's session, whose figure must be the
endpoint's. Wall time and the process's CPU time of each; ratios to the baseline.

The fill's change events are dropped from the outbox before the hub starts, so that the
environment application's write-back of hourly AQI (which would score every reading of the fill)
does not run beside the timings.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
from scratch import scratch_database
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from cityhub import migrate
from cityhub.app import create_app
from cityhub.apps.environment import service
from cityhub.apps.environment.aqi import DEFAULT_STANDARD
from cityhub.config import Settings
from cityhub.kit.db import create_engine
from cityhub.kit.time import utcnow
from cityhub.plugins import entities

TENANT = "410100"
TZ = ZoneInfo("Asia/Shanghai")  # the environment application's default time zone
BATCH = 500
T = TypeVar("T")


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _reading(k: int, at: datetime) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:AirQualityObserved:bench-{k:05d}",
        "type": "AirQualityObserved",
    }
    wave = (k * 7 + at.hour * 13) % 40
    values = {"so2": 8 + wave / 4, "no2": 25 + wave, "co": 0.5 + wave / 100, "o3": 40 + wave,
              "pm10": 45 + wave, "pm25": 20 + wave * 1.5}  # fmt: skip
    for name, value in values.items():
        unit = "GP" if name == "co" else "GQ"
        entity[name] = {
            "type": "Property",
            "value": round(value, 2),
            "observedAt": _stamp(at),
            "unitCode": unit,
        }
    return entity


def _local_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TZ).astimezone(UTC)


async def fill(url: str, stations: int, days: int) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        today = utcnow().astimezone(TZ).date()
        started = time.perf_counter()
        for ago in range(days + 1, 1, -1):  # settled days: the day before yesterday and earlier
            start = _local_start(today - timedelta(days=ago))
            for hour in range(24):
                at = start + timedelta(hours=hour)
                for first in range(0, stations, BATCH):
                    batch = [_reading(k, at) for k in range(first, min(stations, first + BATCH))]
                    async with sessions() as session, session.begin():
                        await entities.write_entities(session, TENANT, batch)
        async with sessions() as session, session.begin():
            await session.execute(text("DELETE FROM outbox"))
        print(
            f"filled {stations} stations x {days} day(s) x 24 h x 6 pollutants "
            f"({stations * days * 24 * 6:,} instances) in {time.perf_counter() - started:.1f} s"
        )
    finally:
        await engine.dispose()


async def timed(call: Callable[[], Awaitable[T]]) -> tuple[T, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = await call()
    return result, time.perf_counter() - wall, time.process_time() - cpu


async def run(url: str, stations: int, days: int, warm: int) -> None:
    await fill(url, stations, days)
    settings = Settings(
        env="test", database_url=url, bus_url="memory://", instance_name="bench", log_level="WARNING"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:

            async def indicator() -> float:
                r = await client.get("/api/v1/indicators", headers={"NGSILD-Tenant": TENANT})
                r.raise_for_status()
                (line,) = [i for i in r.json()["indicators"] if i["indicator"] == "smart_eco_environment"]
                return float(line["value"])

            async def uncached() -> float:
                last = utcnow().astimezone(TZ).date() - timedelta(days=1)
                async with app.state.hub.sessions() as session:
                    _, city = await service.city_daily(
                        session, TENANT, last - timedelta(days=29), last, DEFAULT_STANDARD, TZ
                    )
                _, _, ratio = service.good_day_ratio(city)
                return round((ratio or 0.0) * 100, 2)

            base, base_wall, base_cpu = await timed(uncached)
            cold, cold_wall, cold_cpu = await timed(indicator)
            warm_runs = [await timed(indicator) for _ in range(warm)]
            assert all(value == cold for value, _, _ in warm_runs)
            # one late reading for a settled day: that day is computed again
            late_day = utcnow().astimezone(TZ).date() - timedelta(days=2)
            async with app.state.hub.sessions() as session, session.begin():
                await entities.write_entities(
                    session, TENANT, [_reading(0, _local_start(late_day) + timedelta(minutes=30))]
                )
            late, late_wall, late_cpu = await timed(indicator)
            base_after, _, _ = await timed(uncached)
            if (base, base_after) != (cold, late):
                raise SystemExit(f"figures differ: uncached {base}/{base_after}, endpoint {cold}/{late}")

    warm_wall = statistics.median(w for _, w, _ in warm_runs)
    warm_cpu = statistics.median(c for _, _, c in warm_runs)
    print(
        f"figure (good-air days, %): {cold} (uncached: {base}); after the late reading {late} ({base_after})"
    )
    print(f"{'call':<44}{'wall s':>9}{'cpu s':>9}{'wall/base':>11}")
    rows = [
        ("baseline: service.city_daily, uncached", base_wall, base_cpu),
        ("GET /api/v1/indicators, cold (keeps days)", cold_wall, cold_cpu),
        (f"GET /api/v1/indicators, warm (median of {warm})", warm_wall, warm_cpu),
        ("GET /api/v1/indicators, after a late reading", late_wall, late_cpu),
    ]
    for label, wall, cpu in rows:
        print(f"{label:<44}{wall:>9.3f}{cpu:>9.3f}{wall / base_wall:>11.3f}")


async def write_cost(url: str, stations: int, rounds: int) -> None:
    """What the history revision triggers cost live writes: every station's reading of now (six
    instances each, batches of 500, through the broker's entity writes), rounds taking turns with
    the triggers there and dropped (SQLite) or disabled (PostgreSQL), per instance written."""
    engine = create_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    postgres = engine.dialect.name == "postgresql"
    async with engine.begin() as connection:
        found = (
            await connection.execute(
                text(
                    "SELECT name, sql FROM sqlite_master"
                    " WHERE type = 'trigger' AND tbl_name = 'broker_attribute_instance'"
                )
            )
            if not postgres
            else None
        )
        triggers = [(name, sql) for name, sql in found] if found is not None else []

    async def triggers_on(on: bool) -> None:
        async with engine.begin() as connection:
            if postgres:
                verb = "ENABLE" if on else "DISABLE"
                await connection.execute(text(f"ALTER TABLE broker_attribute_instance {verb} TRIGGER USER"))
                return
            for name, sql in triggers:
                await connection.execute(text(sql if on else f"DROP TRIGGER {name}"))

    times: dict[bool, list[float]] = {True: [], False: []}
    try:
        for r in range(rounds):
            for on in (True, False) if r % 2 == 0 else (False, True):
                if not on:
                    await triggers_on(False)
                at = utcnow()
                wall = time.perf_counter()
                for first in range(0, stations, BATCH):
                    batch = [_reading(k, at) for k in range(first, min(stations, first + BATCH))]
                    async with sessions() as session, session.begin():
                        await entities.write_entities(session, TENANT, batch)
                times[on].append(time.perf_counter() - wall)
                if not on:
                    await triggers_on(True)
    finally:
        await engine.dispose()
    instances = stations * 6
    with_triggers = statistics.median(times[True]) / instances * 1e6
    without = statistics.median(times[False]) / instances * 1e6
    print(
        f"live writes, median of {rounds} rounds of {instances:,} instances: "
        f"{with_triggers:.1f} us per instance with the revision triggers, {without:.1f} without "
        f"(ratio {with_triggers / without:.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stations", type=int, default=2000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument(
        "--write-rounds",
        type=int,
        default=6,
        help="rounds of live writes with the revision triggers on and off",
    )
    parser.add_argument("--postgres", help="admin DSN; a database is created for the run and dropped")
    args = parser.parse_args()
    backend = "postgresql" if args.postgres else "sqlite"
    print(f"python {platform.python_version()} on {platform.machine()}, database {backend}")

    async def go() -> None:
        async with scratch_database(args.postgres, "indicators") as url:
            await run(url, args.stations, args.days, args.warm)
            await write_cost(url, args.stations, args.write_rounds)

    asyncio.run(go())


if __name__ == "__main__":
    main()
