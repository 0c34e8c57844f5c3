"""Sensing-network health: online/offline from the expected interval, counts by type and district,
battery and signal, and the event and Device state when a device goes silent."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from cityhub.bus.outbox import OutboxMessage
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
    by_district = {item["name"]: item for item in health["byDistrict"]}
    assert set(by_district) == {"/jinshui", "/zhongyuan"}
    assert by_district["/zhongyuan"]["onlineRatio"] == 1.0
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
