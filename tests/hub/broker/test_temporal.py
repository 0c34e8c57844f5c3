"""The temporal API: history kept from every write, and the temporal endpoints (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from cityhub import cli
from cityhub.hub.broker import temporal
from cityhub.kit.time import isoformat, utcnow

BASE = "/ngsi-ld/v1"
VEHICLE = "urn:ngsi-ld:Vehicle:zz-temporal"


def reading(value: float, at: str, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": at, **extra}


def temporal_vehicle() -> dict[str, Any]:
    return {
        "id": VEHICLE,
        "type": "Vehicle",
        "speed": [reading(120, "2026-08-01T12:03:00Z"), reading(80, "2026-08-01T12:05:00Z")],
        "fuelLevel": [
            reading(67, "2026-08-01T12:03:00Z"),
            reading(53, "2026-08-01T13:05:00Z"),
            reading(40, "2026-08-01T14:07:00Z"),
        ],
    }


async def create(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{BASE}/temporal/entities", json=temporal_vehicle())
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{BASE}/temporal/entities/{VEHICLE}"


async def retrieve(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{BASE}/temporal/entities/{VEHICLE}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def values(instances: list[dict[str, Any]]) -> list[Any]:
    return [i["value"] for i in instances]


async def test_temporal_create_and_retrieve(client: httpx.AsyncClient) -> None:
    await create(client)
    got = await retrieve(client)
    assert values(got["speed"]) == [120, 80]
    assert values(got["fuelLevel"]) == [67, 53, 40]
    assert all(i["instanceId"].startswith("urn:ngsi-ld:Instance:") for i in got["speed"])
    # the entity's current state is its latest instances
    current = (await client.get(f"{BASE}/entities/{VEHICLE}")).json()
    assert current["speed"]["value"] == 80
    assert current["fuelLevel"]["value"] == 40


async def test_every_write_is_kept_as_history(client: httpx.AsyncClient) -> None:
    entity = {"id": VEHICLE, "type": "Vehicle", "speed": reading(10, "2026-08-01T10:00:00Z")}
    assert (await client.post(f"{BASE}/entities", json=entity)).status_code == 201
    for minute, speed in ((1, 20), (2, 30)):
        patch = {"speed": reading(speed, f"2026-08-01T10:0{minute}:00Z")}
        response = await client.patch(f"{BASE}/entities/{VEHICLE}/attrs", json=patch)
        assert response.status_code == 204
    batch = [{"id": VEHICLE, "type": "Vehicle", "speed": reading(40, "2026-08-01T10:03:00Z")}]
    assert (
        await client.post(f"{BASE}/entityOperations/upsert", json=batch, params={"options": "update"})
    ).status_code == 204
    got = await retrieve(client)
    assert values(got["speed"]) == [10, 20, 30, 40]


async def test_timerel_last_n_and_temporal_values(client: httpx.AsyncClient) -> None:
    await create(client)
    after = await retrieve(client, timerel="after", timeAt="2026-08-01T13:00:00Z")
    assert values(after["fuelLevel"]) == [53, 40]
    assert "speed" not in after
    before = await retrieve(client, timerel="before", timeAt="2026-08-01T12:04:00Z")
    assert values(before["speed"]) == [120]
    between = await retrieve(
        client, timerel="between", timeAt="2026-08-01T12:04:00Z", endTimeAt="2026-08-01T14:00:00Z"
    )
    assert values(between["fuelLevel"]) == [53]
    last = await retrieve(client, lastN=1, attrs="fuelLevel")
    assert values(last["fuelLevel"]) == [40]
    assert "speed" not in last
    simple = await retrieve(client, options="temporalValues", attrs="speed")
    assert simple["speed"] == {
        "type": "Property",
        "values": [[120, "2026-08-01T12:03:00Z"], [80, "2026-08-01T12:05:00Z"]],
    }


async def test_aggregated_values_per_period(client: httpx.AsyncClient) -> None:
    await create(client)
    got = await retrieve(
        client,
        options="aggregatedValues",
        aggrMethods="avg,max,totalCount",
        aggrPeriodDuration="PT1H",
        timerel="after",
        timeAt="2026-08-01T12:00:00Z",
    )
    assert got["speed"]["avg"] == [[100.0, "2026-08-01T12:00:00Z", "2026-08-01T13:00:00Z"]]
    assert [bucket[0] for bucket in got["fuelLevel"]["max"]] == [67.0, 53.0, 40.0]
    assert [bucket[0] for bucket in got["fuelLevel"]["totalCount"]] == [1, 1, 1]


@pytest.mark.parametrize(
    "params",
    [
        {"timerel": "during", "timeAt": "2026-08-01T12:00:00Z"},
        {"timerel": "after"},
        {"timerel": "between", "timeAt": "2026-08-01T12:00:00Z"},
        {"timerel": "after", "timeAt": "noon"},
        {"lastN": "0"},
        {"options": "aggregatedValues"},
        {"options": "aggregatedValues", "aggrMethods": "median"},
        {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "1 hour"},
        {"timeproperty": "seenAt"},
    ],
)
async def test_bad_temporal_queries(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    await create(client)
    response = await client.get(f"{BASE}/temporal/entities/{VEHICLE}", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"


async def test_query_add_modify_and_delete(client: httpx.AsyncClient) -> None:
    await create(client)
    found = await client.get(f"{BASE}/temporal/entities", params={"type": "Vehicle", "count": "true"})
    assert found.status_code == 200
    assert found.headers["ngsild-results-count"] == "1"
    assert values(found.json()[0]["speed"]) == [120, 80]
    posted = await client.post(
        f"{BASE}/temporal/entityOperations/query",
        json={"type": "Query", "entities": [{"type": "Vehicle"}], "temporalQ": {"lastN": 1}},
    )
    assert values(posted.json()[0]["speed"]) == [80]
    added = await client.post(
        f"{BASE}/temporal/entities/{VEHICLE}/attrs", json={"speed": [reading(60, "2026-08-01T12:09:00Z")]}
    )
    assert added.status_code == 204
    speeds = (await retrieve(client, attrs="speed"))["speed"]
    assert values(speeds) == [120, 80, 60]
    instance = speeds[0]["instanceId"]
    url = f"{BASE}/temporal/entities/{VEHICLE}/attrs/speed/{instance}"
    assert (await client.patch(url, json={"speed": reading(125, "2026-08-01T12:03:00Z")})).status_code == 204
    assert values((await retrieve(client, attrs="speed"))["speed"]) == [125, 80, 60]
    assert (await client.delete(url)).status_code == 204
    assert (await client.delete(url)).status_code == 404
    assert values((await retrieve(client, attrs="speed"))["speed"]) == [80, 60]
    gone = await client.delete(f"{BASE}/temporal/entities/{VEHICLE}/attrs/fuelLevel")
    assert gone.status_code == 204
    assert "fuelLevel" not in await retrieve(client)
    assert (await client.delete(f"{BASE}/temporal/entities/{VEHICLE}")).status_code == 204
    assert (await client.get(f"{BASE}/temporal/entities/{VEHICLE}")).status_code == 404


async def test_unknown_and_malformed(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{BASE}/temporal/entities/urn:ngsi-ld:Vehicle:none")).status_code == 404
    assert (await client.get(f"{BASE}/temporal/entities/not-a-uri")).status_code == 400
    assert (await client.get(f"{BASE}/temporal/entities")).status_code == 400
    assert (await client.get(f"{BASE}/temporal/entities//attrs")).status_code == 400
    bad = await client.post(
        f"{BASE}/temporal/entities", content=b"[1,", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400
    assert (await client.post(f"{BASE}/temporal/entities", json={"type": "Vehicle"})).status_code == 400


async def test_deletions_are_history_too(client: httpx.AsyncClient) -> None:
    await create(client)
    assert (await client.delete(f"{BASE}/entities/{VEHICLE}/attrs/fuelLevel")).status_code == 204
    deleted = await retrieve(client, timeproperty="deletedAt")
    assert [i["value"] for i in deleted["fuelLevel"]] == ["urn:ngsi-ld:null"]
    assert "deletedAt" in deleted["fuelLevel"][0]
    assert "speed" not in deleted
    assert values((await retrieve(client))["fuelLevel"]) == [67, 53, 40]  # observations stay


async def test_pick_and_omit(client: httpx.AsyncClient) -> None:
    await create(client)
    picked = await retrieve(client, pick="id,speed")
    assert set(picked) == {"id", "speed"}
    omitted = await retrieve(client, omit="type,speed")
    assert set(omitted) == {"id", "fuelLevel"}
    assert (
        await client.get(f"{BASE}/temporal/entities/{VEHICLE}", params={"pick": "nothing"})
    ).status_code == 404
    both = await client.get(f"{BASE}/temporal/entities/{VEHICLE}", params={"pick": "speed", "omit": "speed"})
    assert both.status_code == 400


async def test_sys_attrs_show_when_instances_were_stored(client: httpx.AsyncClient) -> None:
    await create(client)
    got = await retrieve(client, options="sysAttrs")
    assert {"createdAt", "modifiedAt", "instanceId"} <= set(got["speed"][0])
    assert "createdAt" in got


async def test_temporal_values_of_other_kinds(client: httpx.AsyncClient) -> None:
    entity = {
        "id": VEHICLE,
        "type": "Vehicle",
        "name": [
            {
                "type": "LanguageProperty",
                "languageMap": {"zh": "豫A", "en": "Henan A"},
                "observedAt": "2026-08-01T12:00:00Z",
            }
        ],
        "config": [{"type": "JsonProperty", "json": {"lanes": 3}, "observedAt": "2026-08-01T12:00:00Z"}],
    }
    assert (await client.post(f"{BASE}/temporal/entities", json=entity)).status_code == 201
    got = await retrieve(client, options="temporalValues")
    assert got["name"]["languageMaps"] == [
        [{"languageMap": {"zh": "豫A", "en": "Henan A"}}, "2026-08-01T12:00:00Z"]
    ]
    assert got["config"]["jsons"] == [[{"json": {"lanes": 3}}, "2026-08-01T12:00:00Z"]]
    assert (await client.delete(f"{BASE}/entities/{VEHICLE}/attrs/name")).status_code == 204
    deleted = await retrieve(client, timeproperty="deletedAt")
    assert deleted["name"][0]["languageMap"] == {"@none": "urn:ngsi-ld:null"}


async def test_downsampling_keeps_one_instance_per_period(app: FastAPI, client: httpx.AsyncClient) -> None:
    minutes = [reading(v, f"2026-08-01T12:{m:02d}:00Z") for m, v in ((0, 10), (15, 20), (30, 30), (45, 40))]
    recent = reading(99, isoformat(utcnow()))
    entity = {
        "id": VEHICLE,
        "type": "Vehicle",
        "speed": [*minutes, reading(50, "2026-08-01T13:10:00Z"), recent],
        "status": [
            {"type": "Property", "value": "moving", "observedAt": "2026-08-01T12:01:00Z"},
            {"type": "Property", "value": "parked", "observedAt": "2026-08-01T12:50:00Z"},
        ],
    }
    assert (await client.post(f"{BASE}/temporal/entities", json=entity)).status_code == 201
    async with app.state.hub.sessions() as session, session.begin():
        outcome = await temporal.downsample(
            session, before=utcnow() - timedelta(days=1), period=timedelta(hours=1)
        )
    assert (outcome.entities, outcome.read, outcome.kept) == (1, 7, 3)
    got = await retrieve(client)
    assert [(i["value"], i["observedAt"]) for i in got["speed"]] == [
        (25.0, "2026-08-01T12:00:00Z"),
        (50, "2026-08-01T13:10:00Z"),  # alone in its hour: kept as it was
        (99, recent["observedAt"]),  # newer than the cut: untouched
    ]
    assert [i["value"] for i in got["status"]] == ["parked"]  # not numbers: the last one stays


def test_downsample_command(database_url: str) -> None:
    result = CliRunner().invoke(
        cli.app,
        ["history", "downsample", "--older-than-days", "30", "--period", "PT1H", "--type", "Vehicle"],
        env={"CITYHUB_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    assert "0 entities" in result.stdout
    refused = CliRunner().invoke(
        cli.app,
        ["history", "downsample", "--older-than-days", "30", "--period", "hourly"],
        env={"CITYHUB_DATABASE_URL": database_url},
    )
    assert refused.exit_code == 2


async def test_a_temporal_entity_may_start_without_attributes(client: httpx.AsyncClient) -> None:
    created = await client.post(f"{BASE}/temporal/entities", json={"id": VEHICLE, "type": "Vehicle"})
    assert created.status_code == 201, created.text
    assert await retrieve(client) == {"id": VEHICLE, "type": "Vehicle"}
