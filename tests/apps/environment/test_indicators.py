"""The good-air-days indicator with past days' station inputs kept: the same figure as the uncached
computation, kept days read back, and history written, changed or deleted after the fact (by this
hub process or another on the same database) followed at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from cityhub.app import create_app
from cityhub.apps.environment import service
from cityhub.apps.environment.aqi import DEFAULT_STANDARD
from cityhub.apps.environment.models import AqiDayKept, StationDay
from cityhub.config import Settings
from cityhub.plugins import entities, utcnow

TZ = ZoneInfo("Asia/Shanghai")  # the app's default time zone
TENANT, OTHER = "410100", "410000"
CLEAN, DIRTY = "urn:ngsi-ld:AirQualityObserved:clean", "urn:ngsi-ld:AirQualityObserved:dirty"
SITE = "urn:ngsi-ld:AirQualityObserved:site"
BASE = "/ngsi-ld/v1"


def _days_ago(n: int) -> date:
    return utcnow().astimezone(TZ).date() - timedelta(days=n)


def _local_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TZ).astimezone(UTC)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _reading(entity_id: str, at: datetime, pm25: float, site: bool = False) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": entity_id, "type": "AirQualityObserved"}
    if site:
        entity["stationType"] = {"type": "Property", "value": "constructionSite"}
    values = {"so2": 10, "no2": 30, "co": 0.6, "o3": 50, "pm10": 40, "pm25": pm25}
    for name, value in values.items():
        unit = "GP" if name == "co" else "GQ"
        entity[name] = {"type": "Property", "value": value, "observedAt": _stamp(at), "unitCode": unit}
    return entity


async def _fill(app: FastAPI, tenant: str, days: dict[int, dict[str, float]]) -> None:
    """Hourly readings of every hour of each past day (days ago -> station -> PM2.5), written as
    live readings are (through the broker's entity writes)."""
    async with app.state.hub.sessions() as session, session.begin():
        for ago, stations in sorted(days.items(), reverse=True):
            start = _local_start(_days_ago(ago))
            for h in range(24):
                at = start + timedelta(hours=h)
                batch = [_reading(e, at, pm25, site=e == SITE) for e, pm25 in stations.items()]
                await entities.write_entities(session, tenant, batch)
    await _settle(app)


async def _settle(app: FastAPI) -> None:
    """Let the app's write-back of hourly AQI (itself history of those past days) finish."""
    for _ in range(100):
        if not await app.state.hub.relay.drain():
            return
        await asyncio.sleep(0.05)


async def _indicator(client: httpx.AsyncClient, tenant: str) -> float:
    r = await client.get("/api/v1/indicators", headers={"NGSILD-Tenant": tenant})
    assert r.status_code == 200
    (line,) = [i for i in r.json()["indicators"] if i["indicator"] == "smart_eco_environment"]
    value = line["value"]
    assert isinstance(value, float)
    return value


async def _uncached(app: FastAPI, tenant: str) -> float:
    last = _days_ago(1)
    async with app.state.hub.sessions() as session:
        _, city = await service.city_daily(
            session, tenant, last - timedelta(days=29), last, DEFAULT_STANDARD, TZ
        )
    _, _, ratio = service.good_day_ratio(city)
    return round((ratio or 0.0) * 100, 2)


async def _kept_days(app: FastAPI, tenant: str) -> int:
    async with app.state.hub.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(AqiDayKept).where(AqiDayKept.tenant_code == tenant)
        )
    return int(count or 0)


async def _late_instance(
    client: httpx.AsyncClient, tenant: str, entity_id: str, at: datetime, pm25: float
) -> None:
    r = await client.post(
        f"{BASE}/temporal/entities/{entity_id}/attrs",
        json={"pm25": [{"type": "Property", "value": pm25, "observedAt": _stamp(at), "unitCode": "GQ"}]},
        headers={"NGSILD-Tenant": tenant},
    )
    assert r.status_code == 204, r.text


# three past days: 4 days ago clean, 3 days ago polluted (PM2.5 100 at both ambient stations), 2
# days ago clean; the construction site is always polluted and never counts
DAYS = {
    4: {CLEAN: 20.0, DIRTY: 30.0, SITE: 300.0},
    3: {CLEAN: 100.0, DIRTY: 100.0, SITE: 300.0},
    2: {CLEAN: 20.0, DIRTY: 25.0, SITE: 300.0},
}


async def test_kept_days_give_the_uncached_figure_and_follow_late_history(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _fill(app, TENANT, DAYS)
    first = await _indicator(client, TENANT)
    assert first == await _uncached(app, TENANT) == 66.67
    assert await _kept_days(app, TENANT) >= 28  # the month's settled days, kept
    assert await _indicator(client, TENANT) == 66.67

    # the kept inputs are what the next call reads: spoil a station's (no history changed) and it
    # shows
    async with app.state.hub.sessions() as session, session.begin():
        await session.execute(
            update(StationDay)
            .where(StationDay.tenant_code == TENANT, StationDay.entity_id == CLEAN)
            .where(StationDay.day == _days_ago(4))
            .values(items={"so2_24h": 10, "no2_24h": 30, "co_24h": 0.6, "pm10_24h": 40,
                           "pm25_24h": 400, "o3_8h": 50, "o3_1h": 50})
        )  # fmt: skip
    assert await _indicator(client, TENANT) == 33.33

    # a reading arriving late for that station and day: computed again from its history
    start = _local_start(_days_ago(4))
    await _late_instance(client, TENANT, CLEAN, start + timedelta(minutes=30), 20.0)
    assert await _indicator(client, TENANT) == await _uncached(app, TENANT) == 66.67

    # a late reading that changes a clean day's figure (PM2.5 hourly mean 2,510 in one hour)
    late_at = _local_start(_days_ago(2)) + timedelta(hours=5, minutes=30)
    await _late_instance(client, TENANT, CLEAN, late_at, 5000.0)
    assert await _indicator(client, TENANT) == await _uncached(app, TENANT) == 33.33

    # and deleted again
    found = await client.get(
        f"{BASE}/temporal/entities/{CLEAN}",
        params={"attrs": "pm25", "timerel": "between", "timeAt": _stamp(late_at),
                "endTimeAt": _stamp(late_at + timedelta(seconds=1))},
        headers={"NGSILD-Tenant": TENANT},
    )  # fmt: skip
    (instance,) = found.json()["pm25"] if isinstance(found.json()["pm25"], list) else [found.json()["pm25"]]
    gone = await client.delete(
        f"{BASE}/temporal/entities/{CLEAN}/attrs/pm25/{instance['instanceId']}",
        headers={"NGSILD-Tenant": TENANT},
    )
    assert gone.status_code == 204
    assert await _indicator(client, TENANT) == await _uncached(app, TENANT) == 66.67


async def test_a_station_that_starts_to_count_counts_on_kept_days(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _fill(app, TENANT, {2: {CLEAN: 20.0, SITE: 300.0}, 3: {CLEAN: 20.0, SITE: 300.0}})
    assert await _indicator(client, TENANT) == 100.0
    r = await client.post(
        f"{BASE}/entities/{SITE}/attrs",
        json={"stationType": {"type": "Property", "value": "ambient"}},
        headers={"NGSILD-Tenant": TENANT},
    )
    assert r.status_code == 204
    assert await _indicator(client, TENANT) == await _uncached(app, TENANT) == 0.0


async def test_each_tenant_keeps_its_own(app: FastAPI, client: httpx.AsyncClient) -> None:
    await _fill(app, TENANT, DAYS)
    await _fill(app, OTHER, {3: {CLEAN: 20.0}, 2: {CLEAN: 20.0}})
    assert await _indicator(client, TENANT) == 66.67
    assert await _indicator(client, OTHER) == 100.0
    # late history in one tenant leaves the other's kept days alone
    await _late_instance(client, OTHER, CLEAN, _local_start(_days_ago(3)) + timedelta(hours=2), 5000.0)
    assert await _indicator(client, OTHER) == await _uncached(app, OTHER) == 50.0
    assert await _indicator(client, TENANT) == 66.67
    async with app.state.hub.sessions() as session:
        revisions = await entities.history_revisions(session, TENANT, _days_ago(40), _days_ago(0))
        others = await entities.history_revisions(session, OTHER, _days_ago(40), _days_ago(0))
    assert set(others) == {CLEAN}
    assert set(revisions) == {CLEAN, DIRTY, SITE}  # the fill itself wrote past days' history


@pytest.fixture
async def second_hub(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another hub process on the same database (its own engine, caches and bus)."""
    other = create_app(settings.model_copy(update={"instance_name": "test-2"}))
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub-2") as http:
            yield http


async def test_late_history_written_by_another_process_is_seen(
    app: FastAPI, client: httpx.AsyncClient, second_hub: httpx.AsyncClient
) -> None:
    await _fill(app, TENANT, DAYS)
    assert await _indicator(client, TENANT) == 66.67
    assert await _indicator(second_hub, TENANT) == 66.67
    await _late_instance(second_hub, TENANT, DIRTY, _local_start(_days_ago(2)) + timedelta(hours=7), 5000.0)
    assert await _indicator(client, TENANT) == await _uncached(app, TENANT) == 33.33
