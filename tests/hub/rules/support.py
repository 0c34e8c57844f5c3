"""Helpers for the rule engine's tests: entities through the broker's API, waiting for alerts."""

from __future__ import annotations

from typing import Any

import httpx

from tests.bus.support import wait_until

RULES = "/api/v1/rules"
ALERTS = "/api/v1/alerts"
ENTITIES = "/ngsi-ld/v1/entities"


def air(
    entity_id: str, pm25: Any, *, at: str | None = None, lon: float = 113.62, lat: float = 34.75
) -> dict[str, Any]:
    reading: dict[str, Any] = {"type": "Property", "value": pm25}
    if at:
        reading["observedAt"] = at
    return {
        "id": entity_id,
        "type": "AirQualityObserved",
        "pm25": reading,
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
    }


async def put_entity(client: httpx.AsyncClient, entity: dict[str, Any]) -> None:
    """Create the entity, or merge its attributes into the existing one."""
    response = await client.post(ENTITIES, json=entity)
    if response.status_code == 409:
        attrs = {k: v for k, v in entity.items() if k not in ("id", "type")}
        response = await client.patch(f"{ENTITIES}/{entity['id']}/attrs", json=attrs)
    assert response.status_code in (201, 204), response.text


async def add_rule(
    client: httpx.AsyncClient, definition: dict[str, Any], *, enabled: bool = True
) -> dict[str, Any]:
    response = await client.post(RULES, json={"definition": definition, "enabled": enabled})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def alerts(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(ALERTS, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def wait_alerts(
    client: httpx.AsyncClient, what: str, check: Any, **params: Any
) -> list[dict[str, Any]]:
    """Wait until the alerts listed with ``params`` satisfy ``check``; they are returned."""

    async def found() -> list[dict[str, Any]] | None:
        items = await alerts(client, **params)
        return items if check(items) else None

    result: list[dict[str, Any]] = await wait_until(found, what=what)
    return result
