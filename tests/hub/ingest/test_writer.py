"""What the ingest writer keeps between batches (SQLite or PostgreSQL): entities it wrote, checked
against the database's modified_at before they are reused, and when each device's last_seen_at
was last written."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.hub.ingest.support import BASE, SERVICE, entity, provision

AIR = "urn:ngsi-ld:AirQualityObserved:air-001"
TENANT = {"NGSILD-Tenant": "smartcity"}


async def send(client: httpx.AsyncClient, body: str) -> None:
    response = await client.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content=body)
    assert response.status_code == 200, response.text


async def test_a_kept_entity_changed_by_another_writer_is_read_again(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await provision(client)
    await send(client, "2026-11-21T08:00:00Z|t|21.5")
    writer = app.state.hub.ingest.writer
    assert ("smartcity", AIR) in writer._kept
    # the broker's HTTP API changes the entity behind the writer's back
    response = await client.post(
        f"{BASE}/entities/{AIR}/attrs",
        json={"note": {"type": "Property", "value": "calibrated"}},
        headers=TENANT,
    )
    assert response.status_code == 204, response.text
    await send(client, "2026-11-21T08:01:00Z|t|22.5")
    got = await entity(client, AIR)
    assert got["note"]["value"] == "calibrated"  # not lost to the kept copy
    assert got["temperature"]["value"] == 22.5
    # nobody else wrote since: the kept copy is used, and nothing is lost either
    await send(client, "2026-11-21T08:02:00Z|h|0.5")
    got = await entity(client, AIR)
    assert (got["note"]["value"], got["temperature"]["value"], got["relativeHumidity"]["value"]) == (
        "calibrated",
        22.5,
        0.5,
    )
    history = await client.get(
        f"{BASE}/temporal/entities/{AIR}", params={"attrs": "temperature"}, headers=TENANT
    )
    assert [i["value"] for i in history.json()["temperature"]] == [21.5, 22.5]


async def test_last_seen_is_written_once_per_resolution(client: httpx.AsyncClient, app: FastAPI) -> None:
    await provision(client)

    async def last_seen() -> str:
        response = await client.get("/iot/devices/air-001", headers=SERVICE)
        assert response.status_code == 200, response.text
        return str(response.json()["last_seen_at"])

    await send(client, "t|20")
    first = await last_seen()
    await send(client, "t|21")  # within the resolution (10 s): the device row is left as it is
    assert await last_seen() == first
    app.state.hub.ingest.writer.seen_resolution = 0.0
    await send(client, "t|22")
    assert await last_seen() > first
