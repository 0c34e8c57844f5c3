"""Context source registrations: CRUD and discovery (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

BASE = "/ngsi-ld/v1/csourceRegistrations"


def registration(n: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:ContextSourceRegistration:zz-{n}",
        "type": "ContextSourceRegistration",
        "information": [
            {
                "entities": [{"type": "AirQualityObserved"}],
                "propertyNames": ["pm25", "no2"],
            }
        ],
        "endpoint": "http://county-hub.example:8000",
        "location": {"type": "Point", "coordinates": [113.66, 34.75]},
        **extra,
    }


async def test_register_retrieve_update_delete(client: httpx.AsyncClient) -> None:
    created = await client.post(BASE, json=registration(dataProvider="Jinshui EPB"))
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    assert url == f"{BASE}/urn:ngsi-ld:ContextSourceRegistration:zz-1"
    got = (await client.get(url)).json()
    assert "status" not in got  # shown once it has expired
    assert got["mode"] == "inclusive"
    assert got["dataProvider"] == "Jinshui EPB"
    assert (await client.post(BASE, json=registration())).status_code == 409
    assert (await client.patch(url, json={"endpoint": "http://other.example"})).status_code == 204
    assert (await client.get(url)).json()["endpoint"] == "http://other.example"
    assert (await client.patch(url, json={"information": None})).status_code == 400
    assert (await client.delete(url)).status_code == 204
    assert (await client.get(url)).status_code == 404


async def test_discovery_by_type_attribute_and_place(client: httpx.AsyncClient) -> None:
    await client.post(BASE, json=registration(1))
    water = registration(2)
    water["information"] = [{"entities": [{"type": "WaterQualityObserved"}]}]
    await client.post(BASE, json=water)

    async def ids(**params: str) -> list[str]:
        response = await client.get(BASE, params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()]

    assert await ids(type="AirQualityObserved") == [registration(1)["id"]]
    assert await ids(type="AirQualityObserved,WaterQualityObserved") == [registration(1)["id"], water["id"]]
    assert await ids(attrs="no2") == [registration(1)["id"], water["id"]]  # water names no attributes
    assert await ids(type="AirQualityObserved", attrs="temperature") == []
    near = await ids(
        type="AirQualityObserved",
        georel="near;maxDistance==1000",
        geometry="Point",
        coordinates="[113.66,34.751]",
    )
    assert near == [registration(1)["id"]]
    counted = await client.get(BASE, params={"type": "WaterQualityObserved", "count": "true"})
    assert counted.headers["ngsild-results-count"] == "1"


@pytest.mark.parametrize(
    "change",
    [
        {"type": "Registration"},
        {"information": []},
        {"information": [{"entities": [{"id": "urn:x:1"}]}]},
        {"endpoint": "not a uri"},
        {"expiresAt": "2001-01-01T00:00:00Z"},
        {"mode": "sometimes"},
        {"observationInterval": {"startAt": "2026-02-01T00:00:00Z", "endAt": "2026-01-01T00:00:00Z"}},
        {"location": {"type": "Point", "coordinates": [500, 0]}},
        {"status": "ok"},
    ],
)
async def test_invalid_registrations(client: httpx.AsyncClient, change: dict[str, Any]) -> None:
    response = await client.post(BASE, json=registration() | change)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"


async def test_bad_queries(client: httpx.AsyncClient) -> None:
    assert (await client.get(BASE)).status_code == 400  # nothing to select by
    assert (await client.get(BASE, params={"type": "A", "q": "x>>"})).status_code == 400
    assert (await client.get(BASE, params={"type": "A", "id": "not a uri"})).status_code == 400
    assert (await client.get(BASE, params={"type": "A", "timerel": "after"})).status_code == 400
    assert (await client.get(f"{BASE}/not-a-uri")).status_code == 400


async def test_names_are_shown_in_the_readers_context(client: httpx.AsyncClient) -> None:
    body = registration() | {
        "@context": {"AirQualityObserved": "https://smartdatamodels.org/AirQualityObserved"}
    }
    created = await client.post(
        BASE, content=orjson.dumps(body), headers={"content-type": "application/ld+json"}
    )
    assert created.status_code == 201, created.text
    plain = (await client.get(created.headers["location"])).json()  # read with the core context
    assert plain["information"][0]["entities"][0]["type"] == "https://smartdatamodels.org/AirQualityObserved"
    assert plain["information"][0]["propertyNames"] == ["pm25", "no2"]
