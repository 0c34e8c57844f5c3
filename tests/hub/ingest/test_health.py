"""Sensing-network health: online/offline from the expected interval, counts by type and district,
battery and signal, and the event and Device state when a device goes silent."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from cityhub.bus.outbox import OutboxMessage
from cityhub.hub.ingest.models import IngestDevice
from cityhub.kit.db import ALL_TENANTS, scope_to_tenant
from cityhub.kit.time import utcnow
from tests.hub.ingest.support import SERVICE, entity, provision


async def test_devices_online_offline_and_silence(client: httpx.AsyncClient, app: FastAPI) -> None:
    await provision(
        client,
        devices=[
            {"device_id": "air-001", "expected_interval": 2},
            {"device_id": "air-002", "expected_interval": 2},
            {"device_id": "air-003"},
        ],
    )
    await provision(
        client,
        apikey="k-park",
        entity_type="ParkingSpot",
        devices=[{"device_id": "spot-1", "expected_interval": 600}],
        headers={"fiware-service": "smartcity", "fiware-servicepath": "/zhongyuan"},
    )
    for device in ("air-001", "air-002", "spot-1"):
        response = await client.post(
            "/iot/d",
            params={"k": "k-park" if device == "spot-1" else "k-air", "i": device},
            content="batteryLevel|0.1|rssi|-70",
        )
        assert response.status_code == 200, response.text
    monitor = app.state.hub.health
    assert await monitor.check() == 3  # three devices judged online for the first time
    assert (await entity(client, "urn:ngsi-ld:Device:air-001"))["deviceState"]["value"] == "online"
    await asyncio.sleep(4.2)  # two expected intervals of air-001 and air-002 pass without a report
    await client.post("/iot/d", params={"k": "k-air", "i": "air-002"}, content="t|20")
    assert await monitor.check() == 1
    device = await entity(client, "urn:ngsi-ld:Device:air-001")
    assert device["deviceState"]["value"] == "offline"
    assert "dateLastValueReported" in device
    health = (await client.get("/api/v1/ingest/health", headers={"fiware-service": "smartcity"})).json()
    assert health["overall"] == {"total": 4, "online": 2, "offline": 1, "unknown": 1, "onlineRatio": 0.6667}
    by_type = {item["name"]: item for item in health["byType"]}
    assert by_type["AirQualityObserved"]["offline"] == 1
    assert by_type["ParkingSpot"]["online"] == 1
    by_path = {item["name"]: item for item in health["byServicePath"]}
    assert set(by_path) == {"/jinshui", "/zhongyuan"}
    assert by_path["/zhongyuan"]["onlineRatio"] == 1.0
    # "smartcity" is no district of the tenant registry and keeps no boundaries: no device is placed
    assert health["byDistrict"] == []
    assert health["outsideDistricts"]["total"] == 4
    assert health["lowBattery"] == ["air-001", "air-002", "spot-1"]
    listed = (await client.get("/iot/devices/air-001", headers=SERVICE)).json()
    assert listed["state"] == "offline"
    assert listed["battery_level"] == 0.1
    assert listed["rssi"] == -70
    async with app.state.hub.sessions() as session:
        silent = list(
            await session.scalars(
                select(OutboxMessage).where(OutboxMessage.event_type == "ingest.device_silent")
            )
        )
    assert [(m.tenant_code, m.payload["device_id"]) for m in silent] == [("smartcity", "air-001")]
    # back again
    await client.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content="t|21")
    assert await monitor.check() == 1
    assert (await entity(client, "urn:ngsi-ld:Device:air-001"))["deviceState"]["value"] == "online"


async def test_a_check_judges_each_change_again_on_the_locked_rows(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Between a check's read and its write a device may report, and another hub process's check
    may record the same change: the write judges again on the rows as they are then."""
    await provision(client, devices=[{"device_id": "air-009", "expected_interval": 1}])
    await client.post("/iot/d", params={"k": "k-air", "i": "air-009"}, content="t|20")
    monitor = app.state.hub.health
    sessions = app.state.hub.sessions
    assert await monitor.check() == 1  # online
    await asyncio.sleep(2.3)  # two intervals without a report: silent

    async def record(now: datetime) -> int:
        async with sessions() as session, session.begin():
            scope_to_tenant(session, "smartcity")
            recorded: int = await monitor._record(session, ["air-009"], now)
            return recorded

    async def silent_events() -> int:
        async with sessions() as session:
            found = await session.scalars(
                select(OutboxMessage).where(OutboxMessage.event_type == "ingest.device_silent")
            )
            return sum(1 for m in found if m.payload["device_id"] == "air-009")

    read_at = utcnow()  # a check reads the device as silent now ...
    async with sessions() as session:
        device = await session.scalar(
            select(IngestDevice)
            .where(IngestDevice.device_id == "air-009")
            .execution_options(**{ALL_TENANTS: True})
        )
    assert device is not None
    assert device.online is True
    await client.post("/iot/d", params={"k": "k-air", "i": "air-009"}, content="t|21")
    assert await record(read_at) == 0  # ... and the device reported before it wrote: still online
    assert (await entity(client, "urn:ngsi-ld:Device:air-009"))["deviceState"]["value"] == "online"
    assert await silent_events() == 0

    await asyncio.sleep(2.3)
    now = utcnow()
    assert [await record(now), await record(now)] == [1, 0]  # two checks, one change recorded
    assert await silent_events() == 1
    assert (await entity(client, "urn:ngsi-ld:Device:air-009"))["deviceState"]["value"] == "offline"


def _area(code: str, west: float, south: float, name: str) -> dict[str, object]:
    ring = [[west, south], [west + 0.1, south], [west + 0.1, south + 0.1], [west, south + 0.1], [west, south]]
    return {
        "id": f"urn:ngsi-ld:AdministrativeArea:{code}",
        "type": "AdministrativeArea",
        "name": {"type": "Property", "value": name},
        "location": {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": [ring]}},
    }


async def test_health_by_district_places_city_devices_by_their_position(client: httpx.AsyncClient) -> None:
    for code in ("410102", "410105"):  # the city (the default tenant) is there already
        response = await client.post("/api/v1/tenants", json={"code": code})
        assert response.status_code == 201, response.text
    city = {"fiware-service": "410100", "fiware-servicepath": "/"}
    await provision(
        client,
        apikey="k-city",
        headers=city,
        devices=[
            {  # a static position in Zhongyuan (FIWARE's geo:point is "latitude, longitude")
                "device_id": "air-zy",
                "expected_interval": 600,
                "static_attributes": [{"name": "location", "type": "geo:point", "value": "34.75, 113.55"}],
            },
            {  # reports its position: in Jinshui
                "device_id": "air-js",
                "attributes": [{"object_id": "l", "name": "location", "type": "geo:point"}],
            },
            {"device_id": "air-none"},  # no position at all
            {  # a position outside every boundary
                "device_id": "air-far",
                "static_attributes": [{"name": "location", "type": "geo:point", "value": "30.0, 120.0"}],
            },
        ],
    )
    # the boundaries the city keeps; one more that is no polygon is not a boundary
    areas = [
        _area("410102", 113.5, 34.7, "Zhongyuan"),
        _area("410105", 113.6, 34.7, "Jinshui"),
        {
            "id": "urn:ngsi-ld:AdministrativeArea:seat",
            "type": "AdministrativeArea",
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [113.65, 34.75]}},
        },
    ]
    response = await client.post(
        "/ngsi-ld/v1/entityOperations/create", json=areas, headers={"NGSILD-Tenant": "410100"}
    )
    assert response.status_code == 201, response.text
    for device, body in (("air-zy", "t|20"), ("air-js", "t|21|l|34.72, 113.68")):
        response = await client.post("/iot/d", params={"k": "k-city", "i": device}, content=body)
        assert response.status_code == 200, response.text
    # a device of the district's own tenant, without any position
    await provision(
        client,
        apikey="k-jinshui",
        headers={"fiware-service": "410105", "fiware-servicepath": "/"},
        devices=[{"device_id": "noise-js", "expected_interval": 600}],
    )
    response = await client.post("/iot/d", params={"k": "k-jinshui", "i": "noise-js"}, content="t|19")
    assert response.status_code == 200, response.text

    health = (await client.get("/api/v1/ingest/health", headers=city)).json()
    assert health["overall"]["total"] == 4
    by_district = {item["name"]: item for item in health["byDistrict"]}
    assert set(by_district) == {"410102", "410105"}
    assert by_district["410102"]["total"] == 1
    assert by_district["410102"]["online"] == 1
    assert by_district["410102"]["title"] == "中原区"  # the tenant registry's name
    assert by_district["410105"]["total"] == 1
    assert by_district["410105"]["unknown"] == 1  # air-js has no expected interval
    assert health["outsideDistricts"]["total"] == 2
    assert [item["name"] for item in health["byServicePath"]] == ["/"]

    # the city and the tenants below it: the district's own device counts for its district
    whole = (await client.get("/api/v1/ingest/health", params={"subtree": "true"}, headers=city)).json()
    assert whole["overall"]["total"] == 5
    by_district = {item["name"]: item for item in whole["byDistrict"]}
    assert by_district["410105"]["total"] == 2
    assert by_district["410105"]["online"] == 1
    assert by_district["410102"]["total"] == 1

    district = (await client.get("/api/v1/ingest/health", headers={"fiware-service": "410105"})).json()
    assert district["overall"]["total"] == 1
    assert district["byDistrict"] == [
        {
            "name": "410105",
            "title": "金水区",
            "total": 1,
            "online": 1,
            "offline": 0,
            "unknown": 0,
            "onlineRatio": 1.0,
        }
    ]
    assert district["outsideDistricts"]["total"] == 0
