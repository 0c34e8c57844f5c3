"""aggregatedValues computed by the database, against values worked out by hand (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

BASE = "/ngsi-ld/v1"
SENSOR = "urn:ngsi-ld:Sensor:zz-aggr"
ALL = "totalCount,distinctCount,sum,avg,min,max,stddev,sumsq"


def at(clock: str) -> str:
    return f"2026-08-01T{clock}Z"


def reading(value: Any, clock: str, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": at(clock), **extra}


async def post(client: httpx.AsyncClient, entity: dict[str, Any], **headers: str) -> None:
    response = await client.post(f"{BASE}/temporal/entities", json=entity, headers=headers)
    assert response.status_code in (201, 204), response.text


async def aggregated(
    client: httpx.AsyncClient, entity_id: str = SENSOR, headers: dict[str, str] | None = None, **params: Any
) -> dict[str, Any]:
    response = await client.get(
        f"{BASE}/temporal/entities/{entity_id}",
        params={"options": "aggregatedValues"} | params,
        headers=headers or {},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def column(shown: dict[str, Any], method: str) -> list[Any]:
    return [bucket[0] for bucket in shown[method]]


def periods(shown: dict[str, Any], method: str) -> list[tuple[str, str]]:
    return [(bucket[1], bucket[2]) for bucket in shown[method]]


async def test_every_method_per_hour_with_an_empty_hour_left_out(client: httpx.AsyncClient) -> None:
    await post(
        client,
        {
            "id": SENSOR,
            "type": "Sensor",
            "speed": [
                reading(10, "12:03:00"),
                reading(20, "12:20:00"),
                reading(30.5, "13:02:59.999999"),  # last microsecond of the first period
                # nothing from 13:03 to 14:03
                reading(5, "14:03:00"),  # first microsecond of the third period
                reading(5, "14:30:00"),
            ],
        },
    )
    got = (await aggregated(client, aggrMethods=ALL, aggrPeriodDuration="PT1H"))["speed"]
    assert got["type"] == "Property"
    # periods count from the first instance (no timeAt)
    expected_periods = [(at("12:03:00"), at("13:03:00")), (at("14:03:00"), at("15:03:00"))]
    for method in ALL.split(","):
        assert periods(got, method) == expected_periods, method
    assert column(got, "totalCount") == [3, 2]
    assert column(got, "distinctCount") == [3, 1]
    assert column(got, "sum") == [60.5, 10.0]
    assert column(got, "avg") == pytest.approx([60.5 / 3, 5.0])
    assert column(got, "min") == [10.0, 5.0]
    assert column(got, "max") == [30.5, 5.0]
    assert column(got, "sumsq") == pytest.approx([100 + 400 + 930.25, 50.0])
    mean = 60.5 / 3
    spread = math.sqrt(((10 - mean) ** 2 + (20 - mean) ** 2 + (30.5 - mean) ** 2) / 3)
    assert column(got, "stddev") == pytest.approx([spread, 0.0], abs=1e-9)


async def test_values_that_are_not_numbers(client: httpx.AsyncClient) -> None:
    await post(
        client,
        {
            "id": SENSOR,
            "type": "Sensor",
            "status": [
                reading("moving", "12:00:00"),
                reading("parked", "12:10:00"),
                reading("moving", "12:20:00"),
                reading(True, "12:30:00"),  # a boolean is no number
                reading("7", "12:40:00"),  # nor is a string of digits
            ],
            "mixed": [reading("n/a", "12:00:00"), reading(4, "12:10:00"), reading({"x": 1}, "12:20:00")],
            "config": [
                {"type": "JsonProperty", "json": 3, "observedAt": at("12:00:00")},
                {"type": "JsonProperty", "json": {"lanes": 3}, "observedAt": at("12:01:00")},
            ],
            "owner": [
                {"type": "Relationship", "object": "urn:ngsi-ld:Person:a", "observedAt": at("12:00:00")},
                {"type": "Relationship", "object": "urn:ngsi-ld:Person:b", "observedAt": at("12:05:00")},
                {"type": "Relationship", "object": "urn:ngsi-ld:Person:a", "observedAt": at("12:06:00")},
            ],
        },
    )
    got = await aggregated(client, aggrMethods=ALL)
    status = got["status"]
    assert column(status, "totalCount") == [5]
    assert column(status, "distinctCount") == [4]
    for method in ("sum", "avg", "min", "max", "stddev", "sumsq"):
        assert column(status, method) == [None], method
    # one period over everything: from the first instance to just after the last
    assert periods(status, "totalCount") == [(at("12:00:00"), at("12:40:00.000001"))]
    mixed = got["mixed"]
    assert column(mixed, "totalCount") == [3]
    assert column(mixed, "distinctCount") == [3]
    assert column(mixed, "sum") == [4.0]
    assert column(mixed, "avg") == [4.0]
    assert column(mixed, "stddev") == [0.0]
    config = got["config"]  # a JsonProperty's json may be a number
    assert config["type"] == "JsonProperty"
    assert column(config, "totalCount") == [2]
    assert column(config, "sum") == [3.0]
    owner = got["owner"]
    assert owner["type"] == "Relationship"
    assert column(owner, "totalCount") == [3]
    assert column(owner, "distinctCount") == [2]
    assert column(owner, "max") == [None]


async def test_datasets_are_aggregated_apart(client: httpx.AsyncClient) -> None:
    gps, radar = "urn:ngsi-ld:Dataset:gps", "urn:ngsi-ld:Dataset:radar"
    await post(
        client,
        {
            "id": SENSOR,
            "type": "Sensor",
            "speed": [
                reading(50, "12:00:00", datasetId=gps),
                reading(70, "12:30:00", datasetId=gps),
                reading(90, "13:15:00", datasetId=gps),
                reading(10, "12:45:00"),
                reading(20, "12:50:00"),
                reading(100, "12:10:00", datasetId=radar),
            ],
            "temperature": [reading(21, "12:00:00"), reading(23, "12:30:00")],
        },
    )
    got = await aggregated(client, aggrMethods="avg,totalCount", aggrPeriodDuration="PT1H")
    default, first, second = got["speed"]  # the default instances first
    assert "datasetId" not in default
    assert default["avg"] == [[15.0, at("12:45:00"), at("13:45:00")]]
    by_dataset = {first["datasetId"]: first, second["datasetId"]: second}
    assert by_dataset[gps]["avg"] == [
        [60.0, at("12:00:00"), at("13:00:00")],
        [90.0, at("13:00:00"), at("14:00:00")],
    ]
    assert by_dataset[radar]["totalCount"] == [[1, at("12:10:00"), at("13:10:00")]]
    assert got["temperature"] == {
        "type": "Property",
        "avg": [[22.0, at("12:00:00"), at("13:00:00")]],
        "totalCount": [[2, at("12:00:00"), at("13:00:00")]],
    }
    only_gps = await aggregated(client, aggrMethods="sum", datasetId=gps, attrs="speed")
    assert only_gps["speed"] == {
        "type": "Property",
        "datasetId": gps,
        "sum": [[210.0, at("12:00:00"), at("13:15:00.000001")]],
    }
    defaults = await aggregated(client, aggrMethods="sum", datasetId="@none")
    assert column(defaults["speed"], "sum") == [30.0]
    assert column(defaults["temperature"], "sum") == [44.0]


@pytest.fixture
async def hourly(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """speed: 10, 20, 30, 40 at 12:00, 12:20, 12:40, 13:00."""
    clocks = ("12:00:00", "12:20:00", "12:40:00", "13:00:00")
    await post(
        client,
        {
            "id": SENSOR,
            "type": "Sensor",
            "speed": [reading(10 * (n + 1), c) for n, c in enumerate(clocks)],
        },
    )
    return client


async def test_timerel_after_counts_periods_from_time_at(hourly: httpx.AsyncClient) -> None:
    got = await aggregated(
        hourly, aggrMethods="sum", aggrPeriodDuration="PT30M", timerel="after", timeAt=at("12:15:00")
    )
    assert got["speed"]["sum"] == [
        [50.0, at("12:15:00"), at("12:45:00")],
        [40.0, at("12:45:00"), at("13:15:00")],
    ]


async def test_timerel_between_without_a_period_is_one_period(hourly: httpx.AsyncClient) -> None:
    got = await aggregated(
        hourly, aggrMethods="avg", timerel="between", timeAt=at("12:10:00"), endTimeAt=at("13:00:00")
    )
    assert got["speed"]["avg"] == [[25.0, at("12:10:00"), at("13:00:00")]]  # 13:00 is past the end
    daily = await aggregated(
        hourly,
        aggrMethods="totalCount",
        aggrPeriodDuration="P1D",
        timerel="between",
        timeAt="2026-07-31T00:00:00Z",
        endTimeAt="2026-08-02T00:00:00Z",
    )
    assert daily["speed"]["totalCount"] == [[4, "2026-08-01T00:00:00Z", "2026-08-02T00:00:00Z"]]


async def test_timerel_before_counts_periods_from_the_first_instance(hourly: httpx.AsyncClient) -> None:
    got = await aggregated(
        hourly, aggrMethods="max,min", aggrPeriodDuration="PT25M", timerel="before", timeAt=at("12:50:00")
    )
    assert got["speed"]["max"] == [
        [20.0, at("12:00:00"), at("12:25:00")],
        [30.0, at("12:25:00"), at("12:50:00")],
    ]
    assert column(got["speed"], "min") == [10.0, 30.0]


async def test_last_n_aggregates_the_last_instances(hourly: httpx.AsyncClient) -> None:
    got = await aggregated(hourly, aggrMethods="sum,totalCount", lastN=3, aggrPeriodDuration="PT1H")
    # the last three (20, 30, 40): periods from the first of them
    assert got["speed"]["sum"] == [[90.0, at("12:20:00"), at("13:20:00")]]
    assert column(got["speed"], "totalCount") == [3]


async def test_a_method_asked_for_twice_shows_once(hourly: httpx.AsyncClient) -> None:
    got = await aggregated(hourly, aggrMethods="sum,sum,max")
    assert got["speed"] == {
        "type": "Property",
        "sum": [[100.0, at("12:00:00"), at("13:00:00.000001")]],
        "max": [[40.0, at("12:00:00"), at("13:00:00.000001")]],
    }


async def test_timeproperty_modified_at(hourly: httpx.AsyncClient) -> None:
    got = await aggregated(hourly, aggrMethods="totalCount,sum", timeproperty="modifiedAt")
    assert column(got["speed"], "totalCount") == [4]  # all stored in one request
    assert column(got["speed"], "sum") == [100.0]


async def test_a_query_pages_entities_and_each_is_aggregated(client: httpx.AsyncClient) -> None:
    for number in range(3):
        await post(
            client,
            {
                "id": f"urn:ngsi-ld:Sensor:zz-{number}",
                "type": "Sensor",
                "speed": [reading(number * 10 + m, f"12:{m:02d}:00") for m in range(5)],
            },
        )
    params = {
        "type": "Sensor",
        "options": "aggregatedValues",
        "aggrMethods": "avg,totalCount",
        "aggrPeriodDuration": "PT2M",
        "timerel": "after",
        "timeAt": at("12:00:00"),
        "count": "true",
    }
    pages = []
    for offset in range(3):
        response = await client.get(
            f"{BASE}/temporal/entities", params=params | {"limit": "1", "offset": str(offset)}
        )
        assert response.status_code == 200, response.text
        assert response.headers["ngsild-results-count"] == "3"
        pages.extend(response.json())
    assert [entity["id"] for entity in pages] == [f"urn:ngsi-ld:Sensor:zz-{n}" for n in range(3)]
    for number, entity in enumerate(pages):
        base = number * 10
        assert entity["speed"]["avg"] == [
            [base + 0.5, at("12:00:00"), at("12:02:00")],
            [base + 2.5, at("12:02:00"), at("12:04:00")],
            [base + 4.0, at("12:04:00"), at("12:06:00")],
        ]
        assert column(entity["speed"], "totalCount") == [2, 2, 1]


async def test_tenants_do_not_see_each_others_history(client: httpx.AsyncClient) -> None:
    await post(client, {"id": SENSOR, "type": "Sensor", "speed": [reading(10, "12:00:00")]})
    other = {"NGSILD-Tenant": "zz-aggr-other"}
    await post(
        client,
        {"id": SENSOR, "type": "Sensor", "speed": [reading(1000, "12:00:00"), reading(2000, "12:01:00")]},
        **other,
    )
    mine = await aggregated(client, aggrMethods="sum,totalCount")
    assert column(mine["speed"], "sum") == [10.0]
    theirs = await aggregated(client, headers=other, aggrMethods="sum,totalCount")
    assert column(theirs["speed"], "sum") == [3000.0]
    query = await client.get(
        f"{BASE}/temporal/entities",
        params={"type": "Sensor", "options": "aggregatedValues", "aggrMethods": "totalCount"},
        headers=other,
    )
    assert [column(e["speed"], "totalCount") for e in query.json()] == [[2]]
