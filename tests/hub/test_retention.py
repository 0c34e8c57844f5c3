"""Standing retention policies: the API, applying them (task and command), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from cityhub import cli
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.hub.retention import service
from cityhub.hub.retention.schemas import PolicyCreate
from cityhub.hub.retention.tasks import apply_all
from cityhub.kit.db import create_engine, scope_to_tenant, session_factory
from cityhub.kit.time import isoformat, utcnow

POLICIES = "/api/v1/broker/retention-policies"
BASE = "/ngsi-ld/v1"
VEHICLE = "urn:ngsi-ld:Vehicle:zz-retention"
SENSOR = "urn:ngsi-ld:Sensor:zz-retention"
DOWNSAMPLED = "https://uri.etsi.org/ngsi-ld/default-context/downsampled"


def reading(value: Any, at: str) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": at}


async def seed(client: httpx.AsyncClient, recent: str) -> None:
    """A vehicle with an old hour of speeds (10, 20, 30, 40), one old reading alone in its hour and
    a recent one; a sensor with two old readings in one hour."""
    old = [reading(v, f"2026-08-01T12:{m:02d}:00Z") for m, v in ((0, 10), (15, 20), (30, 30), (45, 40))]
    vehicle = {
        "id": VEHICLE,
        "type": "Vehicle",
        "speed": [*old, reading(50, "2026-08-01T13:10:00Z"), reading(99, recent)],
        "status": [reading("moving", "2026-08-01T12:01:00Z"), reading("parked", "2026-08-01T12:50:00Z")],
    }
    sensor = {
        "id": SENSOR,
        "type": "Sensor",
        "level": [reading(1, "2026-08-01T12:00:00Z"), reading(3, "2026-08-01T12:30:00Z"), reading(7, recent)],
    }
    for entity in (vehicle, sensor):
        response = await client.post(f"{BASE}/temporal/entities", json=entity)
        assert response.status_code == 201, response.text


async def history(client: httpx.AsyncClient, entity_id: str) -> dict[str, Any]:
    response = await client.get(f"{BASE}/temporal/entities/{entity_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_policies_are_kept_per_tenant(client: httpx.AsyncClient) -> None:
    created = await client.post(
        POLICIES,
        json={"entity_type": "Vehicle", "keep_raw": "P7D", "period": "PT1H", "methods": ["avg", "max"]},
    )
    assert created.status_code == 201, created.text
    policy = created.json()
    assert policy["entity_type"] == "https://uri.etsi.org/ngsi-ld/default-context/Vehicle"
    assert policy["tenant"] == "410100"
    assert created.headers["location"] == f"{POLICIES}/{policy['id']}"
    every = await client.post(POLICIES, json={"keep_raw": "P30D", "drop_after": "P365D"})
    assert every.status_code == 201, every.text
    assert every.json()["methods"] == ["avg"]
    assert every.json()["period"] == "PT1H"
    listed = (await client.get(POLICIES)).json()
    assert listed["total"] == 2
    assert [p["entity_type"] for p in listed["items"]] == [None, policy["entity_type"]]
    got = await client.get(f"{POLICIES}/{policy['id']}")
    assert got.json() == policy
    url = f"{POLICIES}/{policy['id']}"
    changed = await client.patch(url, json={"keep_raw": "P14D", "drop_after": "P90D"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["keep_raw"], changed.json()["drop_after"]) == ("P14D", "P90D")
    assert (await client.patch(f"{POLICIES}/{policy['id']}", json={"drop_after": None})).json()[
        "drop_after"
    ] is None
    # another tenant sees none of them, and its own only
    other = {"NGSILD-Tenant": "zz-retention-other"}
    assert (await client.get(POLICIES, headers=other)).status_code == 404  # no such broker tenant yet
    mine = await client.post(POLICIES, json={"keep_raw": "P1D"}, headers=other)
    assert mine.status_code == 201, mine.text
    assert mine.json()["tenant"] == "zz-retention-other"
    theirs = (await client.get(POLICIES, headers=other)).json()["items"]
    assert [p["id"] for p in theirs] == [mine.json()["id"]]
    assert (await client.get(f"{POLICIES}/{policy['id']}", headers=other)).status_code == 404
    assert (await client.delete(f"{POLICIES}/{policy['id']}")).status_code == 204
    missing = await client.get(f"{POLICIES}/{policy['id']}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert (await client.delete(f"{POLICIES}/{policy['id']}")).status_code == 404
    assert (await client.get(f"{POLICIES}/not-an-id")).status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"keep_raw": "a week"}, 400),
        ({"keep_raw": "P0D"}, 400),
        ({"keep_raw": "P99999999999999D"}, 400),
        ({"keep_raw": "P7D", "period": "P1001Y"}, 400),
        ({"keep_raw": "P7D", "period": "hourly"}, 400),
        ({"keep_raw": "P7D", "methods": ["median"]}, 400),
        ({"keep_raw": "P7D", "methods": []}, 400),
        ({"keep_raw": "P30D", "drop_after": "P7D"}, 400),
        ({"period": "PT1H"}, 400),
        ({"keep_raw": "P7D", "colour": "red"}, 400),
    ],
)
async def test_bad_policies_are_refused(client: httpx.AsyncClient, body: dict[str, Any], status: int) -> None:
    response = await client.post(POLICIES, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]


async def test_one_policy_per_type(client: httpx.AsyncClient) -> None:
    first = await client.post(POLICIES, json={"entity_type": "Vehicle", "keep_raw": "P7D"})
    assert first.status_code == 201
    again = await client.post(POLICIES, json={"entity_type": "Vehicle", "keep_raw": "P1D"})
    assert again.status_code == 409
    assert first.json()["id"] in again.json()["detail"]
    url = f"{POLICIES}/{first.json()['id']}"
    assert (await client.patch(url, json={"keep_raw": None})).status_code == 400
    bad = await client.patch(url, json={"drop_after": "P1D"})
    assert bad.status_code == 400


async def test_applying_policies(app: FastAPI, client: httpx.AsyncClient) -> None:
    recent = isoformat(utcnow() - timedelta(hours=1))
    await seed(client, recent)
    vehicles = {
        "entity_type": "Vehicle",
        "keep_raw": "P1D",
        "period": "PT1H",
        "methods": ["max", "avg", "totalCount", "distinctCount"],
    }
    assert (await client.post(POLICIES, json=vehicles)).status_code == 201
    # every other type: old raw history is dropped after 30 days (all of the sensor's old readings)
    every = await client.post(POLICIES, json={"keep_raw": "P1D", "period": "PT1H", "drop_after": "P30D"})
    assert every.status_code == 201
    applied = {item.entity_type: item.outcome for item in await apply_all(app.state.hub.sessions)}
    vehicle_outcome = applied["https://uri.etsi.org/ngsi-ld/default-context/Vehicle"]
    assert vehicle_outcome is not None
    assert (vehicle_outcome.entities, vehicle_outcome.read, vehicle_outcome.kept) == (1, 7, 3)
    every_outcome = applied[None]
    assert every_outcome is not None
    assert (every_outcome.entities, every_outcome.read, every_outcome.dropped) == (1, 2, 1)
    vehicle = await history(client, VEHICLE)
    first, alone, new = vehicle["speed"]
    assert (first["value"], first["observedAt"]) == (40.0, "2026-08-01T12:00:00Z")  # max, the first method
    assert first["downsampled"] == {
        "type": "JsonProperty",
        "json": {
            "max": 40.0,
            "avg": 25.0,
            "totalCount": 4,
            "distinctCount": 4,
            "period": "PT1H",
            "instances": 4,
        },
    }
    assert (alone["value"], alone["observedAt"]) == (50, "2026-08-01T13:10:00Z")  # alone: as it was
    assert "downsampled" not in alone
    assert (new["value"], new["observedAt"]) == (99, recent)
    status = vehicle["status"]  # not numbers: the last value stays, with the counts
    status = status if isinstance(status, list) else [status]
    assert [(s["value"], s["downsampled"]["json"]["totalCount"]) for s in status] == [("parked", 2)]
    assert [i["value"] for i in _listed((await history(client, SENSOR))["level"])] == [7]
    # applying again changes nothing
    again = {item.entity_type: item.outcome for item in await apply_all(app.state.hub.sessions)}
    assert again["https://uri.etsi.org/ngsi-ld/default-context/Vehicle"] is not None
    assert again["https://uri.etsi.org/ngsi-ld/default-context/Vehicle"].read == 3
    assert again["https://uri.etsi.org/ngsi-ld/default-context/Vehicle"].kept == 3
    assert await history(client, VEHICLE) == vehicle
    shown = (await client.get(POLICIES)).json()["items"]
    assert all(p["last_applied_at"] for p in shown)
    assert {p["last_outcome"]["read"] for p in shown} == {3, 0}


def _listed(value: Any) -> list[dict[str, Any]]:
    return value if isinstance(value, list) else [value]


@pytest.fixture
async def retaining_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """A hub that applies the retention policies every 50 ms."""
    application = create_app(settings.model_copy(update={"history_retention_interval": 0.05}))
    async with application.router.lifespan_context(application):
        yield application


async def test_the_hub_applies_policies_by_itself(retaining_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=retaining_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        await seed(client, isoformat(utcnow()))
        created = await client.post(POLICIES, json={"entity_type": "Sensor", "keep_raw": "P1D"})
        assert created.status_code == 201
        for _ in range(200):  # up to 10 s on a busy machine
            shown = (await client.get(f"{POLICIES}/{created.json()['id']}")).json()
            if shown["last_applied_at"] is not None:
                break
            await asyncio.sleep(0.05)
        assert shown["last_outcome"] == {"entities": 1, "read": 2, "kept": 1, "dropped": 0}
        levels = _listed((await history(client, SENSOR))["level"])
        assert [(i["value"], i["downsampled"]["json"]["avg"]) for i in levels[:1]] == [(2.0, 2.0)]


def test_apply_retention_command(database_url: str) -> None:
    runner = CliRunner()
    env = {"CITYHUB_DATABASE_URL": database_url}
    empty = runner.invoke(cli.app, ["history", "apply-retention"], env=env)
    assert empty.exit_code == 0, empty.output
    assert "no retention policies" in empty.stdout

    async def add_policy() -> None:
        engine = create_engine(database_url)
        async with session_factory(engine)() as session, session.begin():
            scope_to_tenant(session, "zz-cli")
            await service.create_policy(session, PolicyCreate(entity_type="Vehicle", keep_raw="P1D"))
        await engine.dispose()

    asyncio.run(add_policy())
    result = runner.invoke(cli.app, ["history", "apply-retention"], env=env)
    assert result.exit_code == 0, result.output
    assert "zz-cli · https://uri.etsi.org/ngsi-ld/default-context/Vehicle: 0 entities" in result.stdout
