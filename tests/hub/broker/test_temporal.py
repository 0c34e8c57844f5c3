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
        {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "P99999999999999D"},
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
    unknown = await client.get(f"{BASE}/temporal/entities", params={"type": "Vehicle", "colour": "red"})
    assert unknown.status_code == 400
    assert unknown.json()["type"].endswith("/InvalidRequest")
    assert "colour" in unknown.json()["detail"]
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


# -- temporal pagination: the server's limit on instances (CITYHUB_BROKER_TEMPORAL_LIMIT) ---------


def minute(m: int) -> str:
    return f"2026-08-01T12:{m:02d}:00Z"


def paged_vehicle(entity_id: str = VEHICLE, first: int = 1) -> dict[str, Any]:
    """speed at minutes first…first+4, fuelLevel two minutes later (first+2…first+6)."""
    return {
        "id": entity_id,
        "type": "Vehicle",
        "speed": [reading(10 * m, minute(m)) for m in range(first, first + 5)],
        "fuelLevel": [reading(100 - m, minute(m)) for m in range(first + 2, first + 7)],
    }


@pytest.fixture
async def limited(app: FastAPI, client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A hub whose temporal reads return at most 3 instances per attribute, with the paged vehicle."""
    app.state.hub.settings.broker_temporal_limit = 3
    response = await client.post(f"{BASE}/temporal/entities", json=paged_vehicle())
    assert response.status_code == 201, response.text
    return client


def times(instances: list[dict[str, Any]]) -> list[str]:
    return [i["observedAt"] for i in instances]


async def partial(
    client: httpx.AsyncClient, url: str = f"/temporal/entities/{VEHICLE}", **params: Any
) -> Any:
    response = await client.get(f"{BASE}{url}", params=params)
    assert response.status_code == 206, response.text
    return response.headers["content-range"], response.json()


async def test_pagination_cuts_where_the_first_attribute_is_cut(limited: httpx.AsyncClient) -> None:
    content_range, got = await partial(limited)
    assert content_range == f"date-time {minute(1)}-{minute(3)}/*"
    assert times(got["speed"]) == [minute(1), minute(2), minute(3)]
    assert times(got["fuelLevel"]) == [minute(3)]  # later ones wait for the next page
    # the next page starts at the range's end: nothing is lost
    content_range, rest = await partial(limited, timerel="after", timeAt=minute(3))
    assert content_range == f"date-time {minute(3)}-{minute(5)}/*"
    assert times(rest["speed"]) == [minute(3), minute(4), minute(5)]
    assert times(rest["fuelLevel"]) == [minute(3), minute(4), minute(5)]
    last = await limited.get(
        f"{BASE}/temporal/entities/{VEHICLE}", params={"timerel": "after", "timeAt": minute(6)}
    )
    assert last.status_code == 200
    assert "content-range" not in last.headers
    assert times(last.json()["fuelLevel"]) == [minute(6), minute(7)]
    assert "speed" not in last.json()


async def test_pagination_with_last_n_goes_back_from_the_newest(limited: httpx.AsyncClient) -> None:
    content_range, got = await partial(limited, lastN=4)
    assert content_range == f"date-time {minute(7)}-{minute(5)}/4"
    assert times(got["speed"]) == [minute(5)]
    assert times(got["fuelLevel"]) == [minute(5), minute(6), minute(7)]
    # lastN within the limit is the client's choice, not pagination
    within = await limited.get(f"{BASE}/temporal/entities/{VEHICLE}", params={"lastN": 3})
    assert within.status_code == 200
    assert "content-range" not in within.headers
    assert times(within.json()["speed"]) == [minute(3), minute(4), minute(5)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"timerel": "before", "timeAt": minute(7)}, f"date-time {minute(1)}-{minute(3)}/*"),
        ({"timerel": "after", "timeAt": minute(0)}, f"date-time {minute(0)}-{minute(3)}/*"),
        (
            {"timerel": "between", "timeAt": minute(0), "endTimeAt": minute(30)},
            f"date-time {minute(0)}-{minute(3)}/*",
        ),
        ({"timerel": "before", "timeAt": minute(30), "lastN": 10}, f"date-time {minute(30)}-{minute(5)}/10"),
        ({"timerel": "after", "timeAt": minute(0), "lastN": 10}, f"date-time {minute(7)}-{minute(5)}/10"),
        (
            {"timerel": "between", "timeAt": minute(0), "endTimeAt": minute(30), "lastN": 10},
            f"date-time {minute(30)}-{minute(5)}/10",
        ),
    ],
)
async def test_content_range_follows_timerel(
    limited: httpx.AsyncClient, params: dict[str, Any], expected: str
) -> None:
    content_range, _ = await partial(limited, **params)
    assert content_range == expected


async def test_pagination_spans_every_entity_of_a_query(limited: httpx.AsyncClient) -> None:
    later = paged_vehicle("urn:ngsi-ld:Vehicle:zz-later", first=20)
    assert (await limited.post(f"{BASE}/temporal/entities", json=later)).status_code == 201
    content_range, got = await partial(
        limited, "/temporal/entities", type="Vehicle", options="temporalValues"
    )
    assert content_range == f"date-time {minute(1)}-{minute(3)}/*"
    shown = {entity["id"]: entity for entity in got}
    assert [pair[1] for pair in shown[VEHICLE]["speed"]["values"]] == [minute(1), minute(2), minute(3)]
    # the later vehicle is past the range: its attributes show, empty
    assert shown[later["id"]]["speed"] == {"type": "Property", "values": []}
    assert shown[later["id"]]["fuelLevel"] == {"type": "Property", "values": []}
    posted = await limited.post(
        f"{BASE}/temporal/entityOperations/query",
        json={"type": "Query", "entities": [{"type": "Vehicle"}], "temporalQ": {"lastN": 5}},
    )
    assert posted.status_code == 206
    assert posted.headers["content-range"] == f"date-time {minute(26)}-{minute(24)}/5"
    newest = {entity["id"]: entity for entity in posted.json()}
    assert newest[VEHICLE]["speed"] == []
    assert times(newest[later["id"]]["fuelLevel"]) == [minute(24), minute(25), minute(26)]


async def test_under_the_limit_and_aggregations_are_not_paged(limited: httpx.AsyncClient) -> None:
    small = await limited.get(f"{BASE}/temporal/entities/{VEHICLE}", params={"attrs": "speed", "lastN": 2})
    assert small.status_code == 200
    whole = await limited.get(
        f"{BASE}/temporal/entities/{VEHICLE}",
        params={"options": "aggregatedValues", "aggrMethods": "totalCount", "attrs": "speed"},
    )
    assert whole.status_code == 200
    assert "content-range" not in whole.headers
    assert whole.json()["speed"]["totalCount"][0][0] == 5


async def test_omitted_attributes_do_not_cut_the_answer(limited: httpx.AsyncClient) -> None:
    content_range, got = await partial(limited, omit="speed")  # speed alone would cut at minute 3
    assert content_range == f"date-time {minute(3)}-{minute(5)}/*"
    assert set(got) == {"id", "type", "fuelLevel"}
    assert times(got["fuelLevel"]) == [minute(3), minute(4), minute(5)]


# -- queries, datasets, formats, paths ---------------------------------------------------------------


async def test_a_query_answers_for_entities_with_history_in_the_time_range(client: httpx.AsyncClient) -> None:
    await create(client)  # instances on 2026-08-01
    other = {
        "id": "urn:ngsi-ld:Vehicle:zz-older",
        "type": "Vehicle",
        "speed": [reading(5, "2026-07-01T00:00:00Z")],
    }
    assert (await client.post(f"{BASE}/temporal/entities", json=other)).status_code == 201
    after = await client.get(
        f"{BASE}/temporal/entities",
        params={"type": "Vehicle", "timerel": "after", "timeAt": "2026-07-15T00:00:00Z", "count": "true"},
    )
    assert [e["id"] for e in after.json()] == [VEHICLE]
    assert after.headers["ngsild-results-count"] == "1"
    before = await client.get(
        f"{BASE}/temporal/entities",
        params={"type": "Vehicle", "timerel": "before", "timeAt": "2026-07-15T00:00:00Z"},
    )
    assert [e["id"] for e in before.json()] == [other["id"]]
    # attrs narrow it too: only the entity with fuelLevel history
    fuel = await client.get(f"{BASE}/temporal/entities", params={"attrs": "fuelLevel"})
    assert [e["id"] for e in fuel.json()] == [VEHICLE]
    ids = await client.get(f"{BASE}/temporal/entities", params={"type": "Vehicle", "pick": "id"})
    assert ids.json() == [{"id": VEHICLE}, {"id": other["id"]}]


async def test_dataset_ids_select_and_group_instances(client: httpx.AsyncClient) -> None:
    entity = {
        "id": VEHICLE,
        "type": "Vehicle",
        "speed": [
            reading(120, minute(3)),
            reading(80, minute(5), datasetId="urn:ngsi-ld:Dataset:gps"),
            reading(90, minute(7), datasetId="urn:ngsi-ld:Dataset:gps"),
        ],
    }
    assert (await client.post(f"{BASE}/temporal/entities", json=entity)).status_code == 201
    grouped = await retrieve(client, options="temporalValues")
    assert grouped["speed"] == [
        {"type": "Property", "values": [[120, minute(3)]]},
        {
            "type": "Property",
            "datasetId": "urn:ngsi-ld:Dataset:gps",
            "values": [[80, minute(5)], [90, minute(7)]],
        },
    ]
    gps = await retrieve(client, options="temporalValues", datasetId="urn:ngsi-ld:Dataset:gps")
    assert gps["speed"] == {
        "type": "Property",
        "datasetId": "urn:ngsi-ld:Dataset:gps",
        "values": [[80, minute(5)], [90, minute(7)]],
    }
    default = await retrieve(client, datasetId="@none")
    assert values(default["speed"]) == [120]
    summed = await retrieve(client, options="aggregatedValues", aggrMethods="sum")
    assert [(group.get("datasetId"), group["sum"][0][0]) for group in summed["speed"]] == [
        (None, 120.0),
        ("urn:ngsi-ld:Dataset:gps", 170.0),
    ]
    none = await client.get(
        f"{BASE}/temporal/entities", params={"type": "Vehicle", "datasetId": "urn:ngsi-ld:Dataset:other"}
    )
    assert none.json() == []
    bad = await client.get(f"{BASE}/temporal/entities/{VEHICLE}", params={"datasetId": "not a uri"})
    assert bad.status_code == 400


async def test_format_wins_over_options(client: httpx.AsyncClient) -> None:
    await create(client)
    got = await retrieve(client, format="temporalValues", options="aggregatedValues", aggrMethods="sum")
    assert got["speed"]["values"] == [[120, "2026-08-01T12:03:00Z"], [80, "2026-08-01T12:05:00Z"]]
    normalized = await retrieve(client, format="normalized", options="temporalValues")
    assert values(normalized["speed"]) == [120, 80]
    bad = await client.get(f"{BASE}/temporal/entities/{VEHICLE}", params={"format": "pretty"})
    assert bad.status_code == 400
    assert bad.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"


async def test_empty_path_segments(client: httpx.AsyncClient) -> None:
    await create(client)
    instance = (await retrieve(client))["speed"][0]["instanceId"]
    fragment = {"speed": reading(1, "2026-08-01T12:03:00Z")}
    for method, path in (
        ("DELETE", "/temporal/entities/"),
        ("PATCH", f"/temporal/entities/{VEHICLE}/attrs/speed/"),
        ("PATCH", f"/temporal/entities/{VEHICLE}/attrs//{instance}"),
    ):
        response = await client.request(method, f"{BASE}{path}", json=fragment)
        assert response.status_code == 405, (method, path, response.text)
    assert (await client.get(f"{BASE}/temporal/entities//attrs")).status_code == 400
    missing_id = await client.post(f"{BASE}/temporal/entities//attrs", json=fragment)
    assert missing_id.status_code == 400  # the entity id, not the method, is what is wrong
    missing_id = await client.post(f"{BASE}/temporal/entities//attrs", json=fragment)
    assert missing_id.status_code == 400  # the entity id, not the method, is what is wrong


async def test_omitting_everything_is_not_found(client: httpx.AsyncClient) -> None:
    await create(client)
    response = await client.get(
        f"{BASE}/temporal/entities/{VEHICLE}", params={"omit": "id,type,speed,fuelLevel"}
    )
    assert response.status_code == 404
    assert response.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"


async def test_an_update_replaces_instances_observed_at_the_same_time(client: httpx.AsyncClient) -> None:
    await create(client)
    update = {
        "id": VEHICLE,
        "type": "Vehicle",
        "speed": [reading(121, "2026-08-01T12:03:00Z"), reading(100, "2026-08-01T12:07:00Z")],
    }
    assert (await client.post(f"{BASE}/temporal/entities", json=update)).status_code == 204
    assert values((await retrieve(client))["speed"]) == [121, 80, 100]
    added = {"speed": [reading(122, "2026-08-01T12:03:00Z", datasetId="urn:ngsi-ld:Dataset:gps")]}
    assert (await client.post(f"{BASE}/temporal/entities/{VEHICLE}/attrs", json=added)).status_code == 204
    speeds = values((await retrieve(client))["speed"])
    assert sorted(speeds[:2]) == [121, 122]  # another dataset at the same time: kept
    assert speeds[2:] == [80, 100]


async def test_order_by(client: httpx.AsyncClient) -> None:
    for number, (name, rank) in zip((2, 1, 3), (("B", 2), ("A", 1), ("C", 3)), strict=True):
        building = {
            "id": f"urn:ngsi-ld:Building:zz-{number}",
            "type": "Building",
            "name": {"type": "Property", "value": name, "rank": {"type": "Property", "value": rank}},
        }
        assert (await client.post(f"{BASE}/entities", json=building)).status_code == 201

    async def order(order_by: str | None) -> list[str]:
        params = {"type": "Building", "timeproperty": "createdAt"} | (
            {"orderBy": order_by} if order_by else {}
        )
        response = await client.get(f"{BASE}/temporal/entities", params=params)
        assert response.status_code == 200, response.text
        return [entity["id"].rsplit("-", 1)[1] for entity in response.json()]

    assert await order(None) == ["2", "1", "3"]  # creation order
    assert await order("name") == ["1", "2", "3"]
    assert await order("id;desc") == ["3", "2", "1"]
    assert await order("type;asc,name.rank;desc,name") == ["3", "2", "1"]
    assert await order("createdAt") == ["2", "1", "3"]
    assert await order("speed,name;desc") == ["3", "2", "1"]  # nobody has speed: the next key decides
    bad = await client.get(f"{BASE}/temporal/entities", params={"type": "Building", "orderBy": "name;up"})
    assert bad.status_code == 400


async def test_deleting_the_scope_is_history_too(client: httpx.AsyncClient) -> None:
    entity = temporal_vehicle() | {"scope": ["/Zhengzhou/Jinshui"]}
    assert (await client.post(f"{BASE}/temporal/entities", json=entity)).status_code == 201
    assert (await retrieve(client))["scope"] == "/Zhengzhou/Jinshui"
    assert (await client.delete(f"{BASE}/entities/{VEHICLE}/attrs/scope")).status_code == 204
    deleted = await retrieve(client, timeproperty="deletedAt")
    assert [(i["type"], i["value"]) for i in deleted["scope"]] == [("Property", [])]
    assert "deletedAt" in deleted["scope"][0]
    simple = await retrieve(client, timeproperty="deletedAt", options="temporalValues")
    assert simple["scope"]["values"][0][0] == []
    assert "scope" not in await retrieve(client)
