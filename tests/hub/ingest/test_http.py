"""Provisioning and the HTTP transports on a started hub (SQLite or PostgreSQL): measures land in
the broker's entities and history; refused messages are dead letters with their reason."""

from __future__ import annotations

import httpx
import pytest

from cityhub.kit.geo import wgs84_to_bd09, wgs84_to_gcj02
from tests.hub.ingest.support import BASE, SERVICE, dead_letters, entity, provision

AIR = "urn:ngsi-ld:AirQualityObserved:air-001"


async def test_provisioning_in_fiware_shape(client: httpx.AsyncClient) -> None:
    await provision(
        client,
        static_attributes=[{"name": "source", "type": "Text", "value": "CityHub test"}],
        devices=[
            {
                "device_id": "air-001",
                "protocol": "PDI-IoTA-UltraLight",
                "transport": "MQTT",
                "static_attributes": [
                    {"name": "location", "type": "geo:point", "value": "34.7566, 113.6653"}
                ],
                "expected_interval": 60,
            }
        ],
    )
    listed = (await client.get("/iot/devices", headers=SERVICE)).json()
    assert listed["count"] == 1
    device = listed["devices"][0]
    assert device["entity_name"] == AIR
    assert device["protocol"] == "UL"
    assert device["apikey"] == "k-air"
    services = (await client.get("/iot/services", headers=SERVICE)).json()
    assert services["services"][0]["subservice"] == "/jinshui"
    assert services["services"][0]["service"] == "smartcity"
    # the entity exists with its static attributes and the service path as its scope
    got = await entity(client, AIR)
    assert got["type"] == "AirQualityObserved"
    assert got["scope"] == "/jinshui"
    assert got["source"]["value"] == "CityHub test"
    assert got["location"]["value"] == {"type": "Point", "coordinates": [113.6653, 34.7566]}
    described = await entity(client, "urn:ngsi-ld:Device:air-001")
    assert described["type"] == "Device"
    assert described["controlledAsset"]["object"] == AIR
    assert set(described["controlledProperty"]["value"]) == {"temperature", "relativeHumidity", "pm25"}
    # another tenant sees nothing
    other = await client.get("/iot/devices", headers={"fiware-service": "other"})
    assert other.json()["count"] == 0
    # the same apikey twice is refused
    again = await client.post(
        "/iot/services", json={"services": [{"apikey": "k-air", "entity_type": "X"}]}, headers=SERVICE
    )
    assert again.status_code == 409
    duplicate = await client.post(
        "/iot/devices", json={"devices": [{"device_id": "air-001"}]}, headers=SERVICE
    )
    assert duplicate.status_code == 409


async def test_ultralight_over_http_updates_entity_and_history(client: httpx.AsyncClient) -> None:
    await provision(client)
    body = "2026-11-21T08:00:00Z|t|21.5|h|0.4#2026-11-21T08:01:00Z|t|22.5|h|0.41|p|35"
    response = await client.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content=body)
    assert response.status_code == 200, response.text
    got = await entity(client, AIR)
    assert got["temperature"]["value"] == 22.5
    assert got["temperature"]["unitCode"] == "CEL"
    assert got["temperature"]["observedAt"] == "2026-11-21T08:01:00Z"
    assert got["pm25"]["unitCode"] == "GQ"
    history = await client.get(
        f"{BASE}/temporal/entities/{AIR}",
        params={"attrs": "temperature"},
        headers={"NGSILD-Tenant": "smartcity"},
    )
    assert history.status_code == 200, history.text
    values = [(i["value"], i["observedAt"]) for i in history.json()["temperature"]]
    assert values == [(21.5, "2026-11-21T08:00:00Z"), (22.5, "2026-11-21T08:01:00Z")]


async def test_json_over_http_with_and_without_device_time(client: httpx.AsyncClient) -> None:
    await provision(client, devices=[{"device_id": "air-001", "protocol": "IoTA-JSON"}])
    stamped = {"t": 19, "h": 0.5, "TimeInstant": "2026-11-21T07:00:00+08:00"}
    response = await client.post("/iot/json", params={"k": "k-air", "i": "air-001"}, json=stamped)
    assert response.status_code == 200, response.text
    got = await entity(client, AIR)
    assert got["temperature"]["observedAt"] == "2026-11-20T23:00:00Z"
    assert "TimeInstant" not in got
    response = await client.post(
        "/iot/json", params={"k": "k-air", "i": "air-001"}, json={"t": 20, "noise": "low"}
    )
    assert response.status_code == 200
    got = await entity(client, AIR)
    assert got["temperature"]["observedAt"] > "2026-11-21T00:00:00Z"  # the time it was received
    assert got["noise"]["value"] == "low"  # an unmapped measure keeps its own name


@pytest.mark.parametrize(("crs", "convert"), [("GCJ02", wgs84_to_gcj02), ("BD09", wgs84_to_bd09)])
async def test_positions_become_wgs84(client: httpx.AsyncClient, crs: str, convert) -> None:
    await provision(
        client,
        devices=[
            {
                "device_id": "air-001",
                "crs": crs,
                "attributes": [{"object_id": "l", "name": "location", "type": "geo:point"}],
            }
        ],
    )
    lon, lat = convert(113.6653, 34.7566)
    response = await client.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content=f"l|{lat},{lon}")
    assert response.status_code == 200, response.text
    got = (await entity(client, AIR))["location"]["value"]
    assert got["type"] == "Point"
    assert got["coordinates"] == pytest.approx([113.6653, 34.7566], abs=1e-6)


async def test_refused_messages_are_dead_letters(client: httpx.AsyncClient) -> None:
    await provision(client)
    cases = [
        ({"k": "nope", "i": "air-001"}, "t|1", 404, "unknown-apikey"),
        ({"k": "k-air", "i": "ghost"}, "t|1", 404, "unknown-device"),
        ({"k": "k-air", "i": "air-001"}, "t|1|h", 400, "invalid-payload"),
        ({"k": "k-air", "i": "air-001"}, "t|hot", 400, "validation-failed"),
        ({"k": "k-air", "i": "air-001"}, "t|23|h|7.5", 400, "validation-failed"),  # humidity is 0..1
        ({"k": "k-air", "i": "air-001"}, "t|" + "9" * 70_000, 413, "too-large"),
    ]
    for params, body, status, reason in cases:
        response = await client.post("/iot/d", params=params, content=body, headers=SERVICE)
        assert response.status_code == status, (body[:20], response.text)
        problem = response.json()
        assert problem["reason"] == reason
        assert problem["deadLetter"]
    nul = await client.post(
        "/iot/json", params={"k": "k-air", "i": "air-001"}, json={"label": "a\u0000b"}, headers=SERVICE
    )
    assert nul.status_code == 400, nul.text
    assert nul.json()["reason"] == "validation-failed"
    bad_json = await client.post(
        "/iot/json", params={"k": "k-air", "i": "air-001"}, content=b"{not json", headers=SERVICE
    )
    assert bad_json.status_code == 400
    letters = await dead_letters(client)
    assert len(letters) == 8
    assert {letter["reason"] for letter in letters} == {
        "unknown-apikey",
        "unknown-device",
        "invalid-payload",
        "validation-failed",
        "too-large",
    }
    humid = next(letter for letter in letters if "7.5" in letter["payload"])
    assert "relativeHumidity" in humid["detail"]
    assert humid["device_id"] == "air-001"
    huge = next(letter for letter in letters if letter["reason"] == "too-large")
    assert huge["size"] == 70_002
    assert len(huge["payload"]) == 4096
    only = await dead_letters(client, reason="validation-failed")
    assert len(only) == 3
    counts = (await client.get("/api/v1/ingest/dead-letters/counts", headers=SERVICE)).json()
    assert counts["total"] == 8
    by_key = {(c["device_id"], c["reason"]): c["count"] for c in counts["counts"]}
    assert by_key[("air-001", "validation-failed")] == 3
    assert by_key[("air-001", "invalid-payload")] == 2
    # nothing refused reached the entity
    got = await entity(client, AIR)
    assert "temperature" not in got


async def test_a_flooding_device_is_rate_limited(client: httpx.AsyncClient, app) -> None:
    app.state.hub.ingest.rates.burst = 3.0
    app.state.hub.ingest.rates.rate = 0.001
    await provision(client)
    statuses = []
    for n in range(5):
        response = await client.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content=f"t|{n}")
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429, 429]
    letters = await dead_letters(client, reason="rate-limited")
    assert len(letters) == 2
    assert (await entity(client, AIR))["temperature"]["value"] == 2


async def test_device_update_and_removal(client: httpx.AsyncClient) -> None:
    await provision(client)
    response = await client.put(
        "/iot/devices/air-001",
        json={"attributes": [{"object_id": "x", "name": "no2", "type": "Number"}]},
        headers=SERVICE,
    )
    assert response.status_code == 204, response.text
    response = await client.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content="x|12|t|20")
    assert response.status_code == 200, response.text
    got = await entity(client, AIR)
    assert got["no2"]["value"] == 12
    assert got["temperature"]["value"] == 20
    assert (await client.delete("/iot/devices/air-001", headers=SERVICE)).status_code == 204
    gone = await client.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content="t|20")
    assert gone.status_code == 404
    device_entity = await client.get(
        f"{BASE}/entities/urn:ngsi-ld:Device:air-001", headers={"NGSILD-Tenant": "smartcity"}
    )
    assert device_entity.status_code == 404


async def test_metrics_count_messages_and_refusals(client: httpx.AsyncClient) -> None:
    await provision(client)
    await client.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content="t|20")
    await client.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content="t|1|h")
    text = (await client.get("/metrics")).text
    assert 'cityhub_ingest_messages{outcome="accepted"} 1.0' in text
    assert 'cityhub_ingest_rejected{reason="invalid-payload"} 1.0' in text
    assert "cityhub_ingest_written 1.0" in text
    assert "cityhub_ingest_batches 2.0" in text  # each answered after its own commit
    assert "cityhub_mqtt_connected 0.0" in text
    schema = (await client.get("/openapi.json")).json()
    assert "/iot/devices" in schema["paths"]
    assert "/api/v1/ingest/dead-letters" in schema["paths"]
