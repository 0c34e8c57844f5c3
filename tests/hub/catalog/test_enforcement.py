"""The catalog's rules where they were not enforced before: notifications judged by the
subscriber department's access at each change, field-level approvals, and who may register an
entity type that no dataset holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from cityhub.hub.broker import sharing
from cityhub.hub.catalog.access import department_access
from cityhub.hub.catalog.models import SharingRequest
from cityhub.kit.db import in_tenant as in_tenant_scope
from cityhub.kit.time import isoformat, utcnow
from cityhub.plugins import entities as plugin_entities
from cityhub.systems.security.models import AuditRecord
from tests.hub.broker.receiver import Receiver
from tests.hub.catalog.conftest import in_tenant
from tests.hub.catalog.test_catalog import CITY, NGSI, City, entity

DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"
SPOT = "urn:ngsi-ld:ParkingSpot:1"


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    async with Receiver() as first, Receiver() as second:
        yield first, second


async def _city(app: FastAPI, client: httpx.AsyncClient) -> City:
    city = City(app, client)
    await city.setup()
    return city


async def _approve(city: City, fields: list[str] | None = None) -> str:
    """Ecology applies for traffic's parking dataset (``fields``: only those) and traffic approves."""
    client = city.client
    asked: dict[str, Any] = {
        "dataset_id": city.datasets["parking"]["id"],
        "purpose": "停车诱导",
        "ends_at": isoformat(utcnow() + timedelta(days=30)),
        "fields": fields or [],
    }
    made = await client.post(
        "/api/v1/catalog/sharing-requests", json=asked, headers=in_tenant(city.other, CITY)
    )
    assert made.status_code == 201, made.text
    request_id: str = made.json()["id"]
    approved = await client.post(
        f"/api/v1/catalog/sharing-requests/{request_id}/decision",
        json={"decision": "approve"},
        headers=in_tenant(city.owner, CITY),
    )
    assert approved.status_code == 200, approved.text
    return request_id


async def _subscribe(client: httpx.AsyncClient, headers: dict[str, str], url: str, **extra: Any) -> str:
    body = {
        "type": "Subscription",
        "entities": [{"type": "ParkingSpot"}],
        "notification": {"endpoint": {"uri": url}},
    } | extra
    made = await client.post(
        f"{NGSI}/subscriptions", json=body, headers=in_tenant(headers, CITY, content_type="application/json")
    )
    assert made.status_code == 201, made.text
    return str(made.headers["location"])


async def _set(city: City, entity_id: str, **attrs: Any) -> None:
    body = {name: {"type": "Property", "value": value} for name, value in attrs.items()}
    answer = await city.client.post(
        f"{NGSI}/entities/{entity_id}/attrs",
        json=body,
        headers=in_tenant(city.owner, CITY, content_type="application/json"),
    )
    assert answer.status_code == 204, answer.text


async def test_notifications_stop_when_the_approval_is_revoked(
    secure_app: FastAPI, sclient: httpx.AsyncClient, receivers: tuple[Receiver, Receiver]
) -> None:
    city = await _city(secure_app, sclient)
    theirs, owners = receivers
    request_id = await _approve(city)
    await _subscribe(sclient, city.other, theirs.url)
    await _subscribe(sclient, city.owner, owners.url)
    await _set(city, SPOT, status="occupied")
    assert (await theirs.next()).body["data"][0]["status"]["value"] == "occupied"
    assert (await owners.next()).body["data"][0]["status"]["value"] == "occupied"

    url = f"/api/v1/catalog/sharing-requests/{request_id}/revocation"
    assert (await sclient.post(url, json={}, headers=in_tenant(city.other, CITY))).status_code == 403
    revoked = await sclient.post(url, json={"note": "用途已结束"}, headers=in_tenant(city.owner, CITY))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert (await sclient.post(url, json={}, headers=in_tenant(city.owner, CITY))).status_code == 409
    assert (
        await sclient.get(f"{NGSI}/entities/{SPOT}", headers=in_tenant(city.other, CITY))
    ).status_code == 403
    await _set(city, SPOT, status="free")
    # the owner's subscription is told of the change; the one the approval opened is not
    assert (await owners.next()).body["data"][0]["status"]["value"] == "free"
    assert await theirs.nothing(1.0)
    async with secure_app.state.hub.sessions() as session:
        actions = list(
            await session.scalars(select(AuditRecord.action).where(AuditRecord.action.like("catalog.%")))
        )
    assert actions == ["catalog.sharing.approved", "catalog.sharing.revoked"]


async def test_notifications_stop_when_the_approval_expires(
    secure_app: FastAPI, sclient: httpx.AsyncClient, receivers: tuple[Receiver, Receiver]
) -> None:
    """Access ends at ``expires_at`` whether or not the expiry task has run: so do notifications."""
    city = await _city(secure_app, sclient)
    theirs, owners = receivers
    await _approve(city)
    await _subscribe(sclient, city.other, theirs.url)
    await _subscribe(sclient, city.owner, owners.url)
    async with secure_app.state.hub.sessions() as session, session.begin():
        await session.execute(update(SharingRequest).values(expires_at=utcnow() - timedelta(seconds=1)))
    await _set(city, SPOT, status="free")
    assert (await owners.next()).body["data"][0]["status"]["value"] == "free"
    assert await theirs.nothing(1.0)


async def test_a_field_level_approval_shows_those_fields_only(
    secure_app: FastAPI, sclient: httpx.AsyncClient, receivers: tuple[Receiver, Receiver]
) -> None:
    city = await _city(secure_app, sclient)
    theirs, _ = receivers
    owner, other = in_tenant(city.owner, CITY), in_tenant(city.other, CITY)
    fields = [{"name": "status", "title": "状态"}, {"name": "plate", "title": "车牌"}]
    changed = await sclient.patch(
        f"/api/v1/catalog/datasets/{city.datasets['parking']['id']}", json={"fields": fields}, headers=owner
    )
    assert changed.status_code == 200, changed.text
    await _set(city, SPOT, plate="豫B00001")
    second = entity("urn:ngsi-ld:ParkingSpot:2", "ParkingSpot", status="ok", plate="豫A00002")
    made = await sclient.post(
        f"{NGSI}/entities", json=second, headers=owner | {"Content-Type": "application/json"}
    )
    assert made.status_code == 201, made.text
    await _approve(city, fields=["status"])

    retrieved = await sclient.get(f"{NGSI}/entities/{SPOT}", headers=other)
    assert retrieved.status_code == 200
    assert set(retrieved.json()) == {"id", "type", "status"}
    assert "plate" in (await sclient.get(f"{NGSI}/entities/{SPOT}", headers=owner)).json()

    async def ids(params: dict[str, str]) -> list[str]:
        answer = await sclient.get(f"{NGSI}/entities", params={"type": "ParkingSpot"} | params, headers=other)
        assert answer.status_code == 200, answer.text
        assert all("plate" not in item for item in answer.json())
        return [item["id"] for item in answer.json()]

    both = ["urn:ngsi-ld:ParkingSpot:1", "urn:ngsi-ld:ParkingSpot:2"]
    assert await ids({}) == both
    assert await ids({"q": 'status=="ok"'}) == both
    assert await ids({"q": 'plate=="豫B00001"'}) == []  # no probing the hidden attribute by q
    assert await ids({"q": "plate"}) == []
    assert await ids({"attrs": "plate"}) == []
    assert await ids({"orderBy": "plate"}) == await ids({"orderBy": "plate;desc"})
    # the owner's answers differ, so the ones above are not the same for everyone
    by_owner = await sclient.get(
        f"{NGSI}/entities", params={"type": "ParkingSpot", "q": 'plate=="豫B00001"'}, headers=owner
    )
    assert [e["id"] for e in by_owner.json()] == [SPOT]

    queried = await sclient.post(
        f"{NGSI}/entityOperations/query",
        json={"type": "Query", "entities": [{"type": "ParkingSpot"}], "q": 'plate=="豫B00001"'},
        headers=other | {"Content-Type": "application/json"},
    )
    assert queried.status_code == 200
    assert queried.json() == []
    batch = await sclient.post(
        f"{NGSI}/entityOperations/query",
        json={"type": "Query", "entities": [{"type": "ParkingSpot"}]},
        headers=other | {"Content-Type": "application/json"},
    )
    assert [set(item) for item in batch.json()] == [{"id", "type", "status"}] * 2

    since = {"timeproperty": "modifiedAt", "timerel": "after", "timeAt": "2000-01-01T00:00:00Z"}
    temporal = await sclient.get(f"{NGSI}/temporal/entities/{SPOT}", params=since, headers=other)
    assert temporal.status_code == 200, temporal.text
    assert set(temporal.json()) == {"id", "type", "status"}
    full = await sclient.get(f"{NGSI}/temporal/entities/{SPOT}", params=since, headers=owner)
    assert set(full.json()) == {"id", "type", "status", "plate"}
    history = await sclient.get(
        f"{NGSI}/temporal/entities", params={"type": "ParkingSpot", "attrs": "plate"} | since, headers=other
    )
    assert history.status_code == 200
    assert history.json() == []
    mine = await sclient.get(
        f"{NGSI}/temporal/entities", params={"type": "ParkingSpot", "attrs": "plate"} | since, headers=owner
    )
    assert len(mine.json()) == 2
    attributes = await sclient.get(f"{NGSI}/attributes", headers=other)
    assert "plate" not in attributes.text
    layer = await sclient.get("/api/v1/console/features", params={"type": "ParkingSpot"}, headers=other)
    assert layer.status_code == 200, layer.text
    assert [set(f["properties"]) for f in layer.json()["features"]] == [{"type", "status"}] * 2

    # notifications and the console's live feed: a change of the hidden attribute alone is none;
    # others show what is opened
    await _subscribe(sclient, city.other, theirs.url, q='status=="ok"')
    feed = secure_app.state.hub.console
    async with secure_app.state.hub.sessions() as session:
        with in_tenant_scope(session, CITY):
            listener = feed.open(CITY, [], await department_access(session, city.ecology))
    try:
        await _set(city, "urn:ngsi-ld:ParkingSpot:2", plate="豫A00003")
        await _set(city, "urn:ngsi-ld:ParkingSpot:2", status="ok", rate=5)
        notified = await theirs.next()
        assert [set(item) for item in notified.body["data"]] == [{"id", "type", "status"}]
        assert await theirs.nothing(1.0)
        assert listener.queue.qsize() == 1
        live = listener.queue.get_nowait()
        assert live["id"] == "urn:ngsi-ld:ParkingSpot:2"
        assert set(live["entity"]) == {"id", "type", "status"}
    finally:
        feed.close(listener)


async def test_a_type_no_dataset_holds_is_registered_by_an_administrator(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    city = await _city(secure_app, sclient)
    owner, other, admin = (in_tenant(h, CITY) for h in (city.owner, city.other, city.admin))
    body = {"code": "transit", "title": "公交", "sharing": "unconditional", "entity_types": ["BusStop"]}
    refused = await sclient.post("/api/v1/catalog/datasets", json=body, headers=owner)
    assert refused.status_code == 403
    assert "administrator" in refused.json()["detail"]
    squat = body | {"code": "squat", "entity_types": ["AirQualityObserved"]}
    assert (await sclient.post("/api/v1/catalog/datasets", json=squat, headers=other)).status_code == 403
    registered = await sclient.post(
        "/api/v1/catalog/datasets",
        json=body | {"entity_types": ["BusStop", "BusLine"], "department_id": str(city.traffic)},
        headers=admin,
    )
    assert registered.status_code == 201, registered.text
    # the department splits its own dataset: the type moves
    split = {"code": "lines", "title": "线路", "sharing": "conditional", "entity_types": ["BusLine"]}
    moved = await sclient.post("/api/v1/catalog/datasets", json=split, headers=owner)
    assert moved.status_code == 201, moved.text
    transit = await sclient.get(f"/api/v1/catalog/datasets/{registered.json()['id']}", headers=owner)
    assert transit.json()["entity_types"] == [DEFAULT + "BusStop"]
    # ... but never empties one, nor takes another department's type, nor adds a type by a change
    emptied = split | {"code": "stops", "entity_types": ["BusStop"]}
    assert (await sclient.post("/api/v1/catalog/datasets", json=emptied, headers=owner)).status_code == 409
    other_set = {"code": "eco", "title": "x", "sharing": "unconditional", "entity_types": ["BusStop"]}
    assert (await sclient.post("/api/v1/catalog/datasets", json=other_set, headers=other)).status_code == 409
    grown = await sclient.patch(
        f"/api/v1/catalog/datasets/{moved.json()['id']}",
        json={"entity_types": ["BusLine", "Bicycle"]},
        headers=owner,
    )
    assert grown.status_code == 403


async def test_an_applications_entity_reads_keep_to_the_datasets(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    """The environment application's station endpoints read broker entities: they answer by
    dataset now, not by role alone."""
    city = await _city(secure_app, sclient)
    owner, other = in_tenant(city.owner, CITY), in_tenant(city.other, CITY)
    station = entity(
        "urn:ngsi-ld:AirQualityObserved:s1",
        "AirQualityObserved",
        name="市监测站",
        pm25=40,
        airQualityIndex=57,
    )
    made = await sclient.post(
        f"{NGSI}/entities", json=station, headers=owner | {"Content-Type": "application/json"}
    )
    assert made.status_code == 201, made.text
    path = "/api/v1/environment/stations"
    assert [s["id"] for s in (await sclient.get(path, headers=other)).json()] == [
        station["id"]
    ]  # no dataset yet
    body = {
        "code": "air",
        "title": "空气质量",
        "sharing": "not_shared",
        "conditions": "内部监测",
        "entity_types": ["AirQualityObserved"],
        "department_id": str(city.traffic),
    }
    registered = await sclient.post(
        "/api/v1/catalog/datasets", json=body, headers=in_tenant(city.admin, CITY)
    )
    assert registered.status_code == 201, registered.text
    refused = await sclient.get(path, headers=other)
    assert refused.status_code == 403
    assert "air" in refused.json()["detail"]
    assert (await sclient.get(f"{path}/{station['id']}/hourly", headers=other)).status_code == 403
    assert [s["id"] for s in (await sclient.get(path, headers=owner)).json()] == [station["id"]]
    assert (await sclient.get(f"{path}/{station['id']}/hourly", headers=owner)).status_code == 200
    # read in part (an approval of the name only): the pollutant's history is not read either
    conditional = await sclient.patch(
        f"/api/v1/catalog/datasets/{registered.json()['id']}",
        json={"sharing": "conditional"},
        headers=in_tenant(city.admin, CITY),
    )
    assert conditional.status_code == 200, conditional.text
    asked = {
        "dataset_id": registered.json()["id"],
        "purpose": "站点名录",
        "ends_at": isoformat(utcnow() + timedelta(days=1)),
        "fields": ["name"],
    }
    request = await sclient.post("/api/v1/catalog/sharing-requests", json=asked, headers=other)
    assert request.status_code == 201, request.text
    decided = await sclient.post(
        f"/api/v1/catalog/sharing-requests/{request.json()['id']}/decision",
        json={"decision": "approve"},
        headers=owner,
    )
    assert decided.status_code == 200, decided.text
    listed = (await sclient.get(path, headers=other)).json()
    assert [(s["id"], s["name"], s["aqi"]) for s in listed] == [(station["id"], "市监测站", None)]
    mine = (await sclient.get(path, headers=owner)).json()
    assert [(s["id"], s["aqi"]) for s in mine] == [(station["id"], 57)]
    # the history applications read keeps to the opened attributes too
    start, end = utcnow() - timedelta(hours=1), utcnow() + timedelta(hours=1)
    for department, seen in ((city.ecology, {"name"}), (city.traffic, {"name", "pm25"})):
        async with secure_app.state.hub.sessions() as session:
            with in_tenant_scope(session, CITY):
                sharing.attach(session, await department_access(session, department))
            found = await plugin_entities.read_history(
                session, CITY, station["id"], ["name", "pm25"], start, end
            )
        assert {name for name, values in found.items() if values} == seen


async def test_applications_answering_from_derived_state_keep_to_the_datasets(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    """The traffic application answers from a live network built from road segments and flow
    readings, the urban one from its component inventory: a department that may not read those
    datasets whole is refused there too, and only the owner changes the inventory."""
    city = await _city(secure_app, sclient)
    owner, other, admin = (in_tenant(h, CITY) for h in (city.owner, city.other, city.admin))
    segments = "/api/v1/traffic/segments"
    # no road network imported here: past the dataset check, the answer is the app's own 404
    assert (await sclient.get(segments, headers=other)).status_code == 404  # traffic-flow: unconditional
    closed = await sclient.patch(
        f"/api/v1/catalog/datasets/{city.datasets['traffic-flow']['id']}",
        json={"sharing": "not_shared", "conditions": "执法数据，依法不共享"},
        headers=admin,
    )
    assert closed.status_code == 200, closed.text
    refused = await sclient.get(segments, headers=other)
    assert refused.status_code == 403, refused.text
    assert "traffic-flow" in refused.json()["detail"]
    assert (await sclient.get(segments, headers=owner)).status_code == 404
    assert (await sclient.get(segments, headers=admin)).status_code == 404
    # parking is conditional and ecology holds no approval
    nearest = await sclient.get(
        "/api/v1/traffic/parking/nearest", params={"lon": 113.66, "lat": 34.75}, headers=other
    )
    assert nearest.status_code == 403

    components = "/api/v1/urban/components"
    assert (await sclient.get(components, headers=other)).status_code == 200  # no dataset yet
    body = {
        "code": "urban-components",
        "title": "城市部件",
        "sharing": "unconditional",
        "entity_types": ["UrbanComponent"],
        "department_id": str(city.traffic),
    }
    registered = await sclient.post("/api/v1/catalog/datasets", json=body, headers=admin)
    assert registered.status_code == 201, registered.text
    assert (await sclient.get(components, headers=other)).status_code == 200  # read: shared
    changed = await sclient.delete(f"{components}/NO-SUCH", headers=other)
    assert changed.status_code == 403  # written only by the owner
    assert (await sclient.delete(f"{components}/NO-SUCH", headers=owner)).status_code == 404
