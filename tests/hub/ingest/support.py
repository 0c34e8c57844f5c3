"""Provisioning helpers for the ingest tests."""

from __future__ import annotations

from typing import Any

import httpx

BASE = "/ngsi-ld/v1"
DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"
SERVICE = {"fiware-service": "smartcity", "fiware-servicepath": "/jinshui"}


async def provision(
    client: httpx.AsyncClient,
    *,
    apikey: str = "k-air",
    entity_type: str = "AirQualityObserved",
    devices: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **group: Any,
) -> None:
    headers = headers or SERVICE
    body = {
        "services": [
            {
                "apikey": apikey,
                "cbroker": "http://orion:1026",  # FIWARE clients send it; ignored
                "entity_type": entity_type,
                "resource": "/iot/d",
                "attributes": [
                    {"object_id": "t", "name": "temperature", "type": "Number", "unitCode": "CEL"},
                    {"object_id": "h", "name": "relativeHumidity", "type": "Number"},
                    {
                        "object_id": "p",
                        "name": "pm25",
                        "type": "Number",
                        "metadata": {"unitCode": {"type": "Text", "value": "GQ"}},
                    },
                ],
                **group,
            }
        ]
    }
    response = await client.post("/iot/services", json=body, headers=headers)
    assert response.status_code == 201, response.text
    devices = (
        devices if devices is not None else [{"device_id": "air-001", "protocol": "PDI-IoTA-UltraLight"}]
    )
    if devices:
        response = await client.post("/iot/devices", json={"devices": devices}, headers=headers)
        assert response.status_code == 201, response.text


async def entity(client: httpx.AsyncClient, entity_id: str, tenant: str = "smartcity") -> dict[str, Any]:
    response = await client.get(f"{BASE}/entities/{entity_id}", headers={"NGSILD-Tenant": tenant})
    assert response.status_code == 200, response.text
    return response.json()


async def dead_letters(
    client: httpx.AsyncClient, tenant: str = "smartcity", **params: str
) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/v1/ingest/dead-letters", params=params, headers={"fiware-service": tenant}
    )
    assert response.status_code == 200, response.text
    return response.json()["deadLetters"]
