"""The entity facade applications use: writes take the broker's path, reads answer its form."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from cityhub.hub.broker import service as broker
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.errors import BadRequestData
from cityhub.kit.time import utcnow
from cityhub.plugins import entities

TENANT = "410100"
STATION = "urn:ngsi-ld:AirQualityObserved:410105-001"


def _reading(pm25: float, at: str) -> dict[str, object]:
    return {
        "id": STATION,
        "type": "AirQualityObserved",
        "pm25": {"type": "Property", "value": pm25, "observedAt": at, "unitCode": "GQ"},
    }


async def test_write_merges_and_the_api_sees_it(app: FastAPI, client: httpx.AsyncClient) -> None:
    located = {
        **_reading(35, "2026-11-21T08:00:00Z"),
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [113.66, 34.78]}},
    }
    async with app.state.hub.sessions() as session, session.begin():
        await entities.write_entities(session, TENANT, [located])
    async with app.state.hub.sessions() as session, session.begin():
        await entities.write_entities(session, TENANT, [_reading(80, "2026-11-21T09:00:00Z")])

    answer = await client.get(f"/ngsi-ld/v1/entities/{STATION}", headers={"NGSILD-Tenant": TENANT})
    assert answer.status_code == 200
    body = answer.json()
    assert body["pm25"]["value"] == 80  # merged: the new value replaced the old one
    assert body["location"]["value"]["coordinates"] == [113.66, 34.78]  # kept from the first write

    async with app.state.hub.sessions() as session:
        read = await entities.read_entity(session, TENANT, STATION)
        near = await entities.find_entities(
            session,
            TENANT,
            type="AirQualityObserved",
            q="pm25>50",
            georel="near;maxDistance==1000",
            geometry="Point",
            coordinates="[113.661,34.781]",
        )
        far = await entities.find_entities(
            session,
            TENANT,
            type="AirQualityObserved",
            georel="near;maxDistance==10",
            geometry="Point",
            coordinates="[113.70,34.80]",
        )
        history = await entities.read_history(
            session, TENANT, STATION, ["pm25"], utcnow() - timedelta(days=3650), utcnow() + timedelta(days=1)
        )
        missing = await entities.read_entity(session, "410102", STATION)  # another tenant's broker
    assert read is not None
    assert read["pm25"]["value"] == 80
    assert read["type"] == "AirQualityObserved"
    assert [e["id"] for e in near] == [STATION]
    assert far == []
    assert [value for _, value in history["pm25"]] == [35, 80]
    assert missing is None


async def test_histories_of_many_entities_in_chunks(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """``read_histories`` answers what ``read_history`` answers for each entity, however many
    statements it takes (chunks of 2 here), with an empty history for an entity without one."""
    monkeypatch.setattr("cityhub.hub.broker.local.HISTORY_CHUNK", 2)
    ids = [f"urn:ngsi-ld:AirQualityObserved:410105-{n:03}" for n in range(5)]
    async with app.state.hub.sessions() as session, session.begin():
        for hour in (8, 9):
            await entities.write_entities(
                session,
                TENANT,
                [
                    {
                        "id": entity_id,
                        "type": "AirQualityObserved",
                        "pm25": {
                            "type": "Property",
                            "value": n * 10 + hour,
                            "observedAt": f"2026-11-21T0{hour}:00:00Z",
                        },
                        "no2": {"type": "Property", "value": n, "observedAt": f"2026-11-21T0{hour}:00:00Z"},
                    }
                    for n, entity_id in enumerate(ids[:4])
                ],
            )
    start, end = utcnow() - timedelta(days=3650), utcnow() + timedelta(days=1)
    async with app.state.hub.sessions() as session:
        many = await entities.read_histories(session, TENANT, ids, ["pm25", "no2"], start, end)
        one = {
            entity_id: await entities.read_history(session, TENANT, entity_id, ["pm25", "no2"], start, end)
            for entity_id in ids
        }
    assert many == one
    assert [value for _, value in many[ids[3]]["pm25"]] == [38, 39]
    assert many[ids[4]] == {"pm25": [], "no2": []}


async def test_replace_drops_attributes_and_delete_removes(app: FastAPI) -> None:
    async with app.state.hub.sessions() as session, session.begin():
        await entities.write_entities(session, TENANT, [{**_reading(35, "2026-11-21T08:00:00Z"), "no2": 12}])
        await entities.write_entities(session, TENANT, [_reading(40, "2026-11-21T09:00:00Z")], replace=True)
    async with app.state.hub.sessions() as session:
        replaced = await entities.read_entity(session, TENANT, STATION)
    assert replaced is not None
    assert "no2" not in replaced
    assert replaced["pm25"]["value"] == 40

    async with app.state.hub.sessions() as session, session.begin():
        await entities.delete_entities(session, TENANT, [STATION, "urn:ngsi-ld:AirQualityObserved:none"])
    async with app.state.hub.sessions() as session:
        assert await entities.read_entity(session, TENANT, STATION) is None


async def test_invalid_entity_writes_nothing(app: FastAPI) -> None:
    async with app.state.hub.sessions() as session, session.begin():
        with pytest.raises(BadRequestData):
            bad = [_reading(1, "2026-11-21T08:00:00Z"), {"id": "not a uri", "type": "T"}]
            await entities.write_entities(session, TENANT, bad)
        assert await entities.read_entity(session, TENANT, STATION) is None


async def test_compact_entity_renders_the_stored_form(app: FastAPI) -> None:
    async with app.state.hub.sessions() as session, session.begin():
        await entities.write_entities(session, TENANT, [_reading(55, "2026-11-21T10:00:00Z")])
    async with app.state.hub.sessions() as session:
        scope_to_tenant(session, TENANT)
        stored = (await broker.stored_entities(session, [STATION]))[STATION]
        read = await entities.read_entity(session, TENANT, STATION)
    assert stored["type"] == [entities.expand("AirQualityObserved")]
    assert (
        entities.expand("AirQualityObserved")
        == "https://uri.etsi.org/ngsi-ld/default-context/AirQualityObserved"
    )
    assert entities.compact_entity(stored) == read
    assert read is not None
    assert read["pm25"]["observedAt"] == "2026-11-21T10:00:00Z"
