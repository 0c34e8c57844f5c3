"""The catalog's API and the broker's enforcement of department ownership and sharing classes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from cityhub.hub.broker.events import EntitiesChanged
from cityhub.hub.broker.sharing import TypeAccess
from cityhub.hub.catalog.models import SharingRequest
from cityhub.hub.catalog.tasks import ExpiryTask
from cityhub.kit.time import isoformat, utcnow
from cityhub.sim.city import build_city
from cityhub.sim.seed import CATALOG_DATASETS, authenticate, seed_catalog
from cityhub.systems.security.models import AuditRecord
from tests.hub.catalog.conftest import add_department, add_user, in_tenant, person
from tests.systems.security.conftest import client_for, token_for

CITY = "410100"
COUNTY = "410102"
NGSI = "/ngsi-ld/v1"


def entity(entity_id: str, entity_type: str, **attrs: Any) -> dict[str, Any]:
    return {"id": entity_id, "type": entity_type} | {
        name: {"type": "Property", "value": value} for name, value in attrs.items()
    }


class City:
    """Two departments of the city (traffic owns three datasets), one of a county, and people."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    async def setup(self) -> None:
        app, client = self.app, self.client
        self.traffic = await add_department(app, CITY, "traffic", "交通局")
        self.ecology = await add_department(app, CITY, "ecology", "生态环境局")
        self.county_dept = await add_department(app, COUNTY, "urban", "城管局")
        self.owner = await person(app, client, CITY, "operator", self.traffic)
        self.other = await person(app, client, CITY, "operator", self.ecology)
        self.loose = await person(app, client, CITY, "operator", None)
        self.admin = await person(app, client, CITY, "admin", None)
        self.county = await person(app, client, COUNTY, "operator", self.county_dept)
        self.datasets = {}
        for code, sharing, kind in (
            ("traffic-flow", "unconditional", "TrafficFlowObserved"),
            ("parking", "conditional", "ParkingSpot"),
            ("enforcement", "not_shared", "TrafficViolation"),
        ):
            body = {
                "department_id": str(self.traffic),
                "code": code,
                "title": f"{code} 数据",
                "title_en": code,
                "entity_types": [kind],
                "sharing": sharing,
                "conditions": "《道路交通安全法》第一百一十条" if sharing == "not_shared" else None,
                "update_frequency": "realtime",
                "fields": [{"name": "status", "title": "状态", "data_type": "text"}],
            }
            answer = await client.post(  # new types: registered by an administrator
                "/api/v1/catalog/datasets", json=body, headers=in_tenant(self.admin, CITY)
            )
            assert answer.status_code == 201, answer.text
            self.datasets[code] = answer.json()
            created = await client.post(
                f"{NGSI}/entities",
                json=entity(f"urn:ngsi-ld:{kind}:1", kind, status="ok"),
                headers=in_tenant(self.owner, CITY, content_type="application/json"),
            )
            assert created.status_code == 201, created.text


async def _city(secure_app: FastAPI, sclient: httpx.AsyncClient) -> City:
    city = City(secure_app, sclient)
    await city.setup()
    return city


async def test_owner_registers_and_sees_statistics(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    city = await _city(secure_app, sclient)
    shown = await sclient.get(
        f"/api/v1/catalog/datasets/{city.datasets['parking']['id']}", headers=in_tenant(city.owner, CITY)
    )
    assert shown.status_code == 200
    body = shown.json()
    assert body["department"] == "交通局"
    assert body["entity_types"] == ["https://uri.etsi.org/ngsi-ld/default-context/ParkingSpot"]
    assert body["statistics"]["entity_count"] == 1
    assert body["statistics"]["last_update"] is not None
    assert body["readable"]
    assert body["writable"]
    # another department registers nothing for the owner, and a type is in one dataset only
    taken = {"code": "x", "title": "x", "entity_types": ["ParkingSpot"], "sharing": "unconditional"}
    assert (
        await sclient.post("/api/v1/catalog/datasets", json=taken, headers=in_tenant(city.owner, CITY))
    ).status_code == 409
    foreign = taken | {"entity_types": ["Other"], "department_id": str(city.traffic)}
    refused = await sclient.post(
        "/api/v1/catalog/datasets", json=foreign, headers=in_tenant(city.other, CITY)
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    legal = {"code": "y", "title": "y", "entity_types": ["Y"], "sharing": "not_shared"}
    assert (
        await sclient.post("/api/v1/catalog/datasets", json=legal, headers=in_tenant(city.owner, CITY))
    ).status_code == 400


async def test_other_departments_by_sharing_class(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    city = await _city(secure_app, sclient)
    other = in_tenant(city.other, CITY)
    found = await sclient.get("/api/v1/catalog/datasets", headers=other)
    assert {d["code"] for d in found.json()["items"]} == {"traffic-flow", "parking"}
    assert [d["readable"] for d in found.json()["items"]] == [False, True]  # by code: parking, traffic-flow
    hidden = await sclient.get(
        f"/api/v1/catalog/datasets/{city.datasets['enforcement']['id']}", headers=other
    )
    assert hidden.status_code == 403
    # unconditional: read, never write
    assert (
        await sclient.get(f"{NGSI}/entities/urn:ngsi-ld:TrafficFlowObserved:1", headers=other)
    ).status_code == 200
    patch = await sclient.post(
        f"{NGSI}/entities/urn:ngsi-ld:TrafficFlowObserved:1/attrs",
        json={"note": {"type": "Property", "value": 1}},
        headers=other | {"Content-Type": "application/json"},
    )
    assert patch.status_code == 403
    assert patch.json()["type"].endswith("forbidden")
    # conditional and not shared: no reads
    for kind in ("ParkingSpot", "TrafficViolation"):
        assert (await sclient.get(f"{NGSI}/entities/urn:ngsi-ld:{kind}:1", headers=other)).status_code == 403
        assert (
            await sclient.get(f"{NGSI}/entities", params={"type": kind}, headers=other)
        ).status_code == 403
        temporal = await sclient.get(f"{NGSI}/temporal/entities/urn:ngsi-ld:{kind}:1", headers=other)
        assert temporal.status_code == 403
    mixed = await sclient.get(
        f"{NGSI}/entities", params={"type": "ParkingSpot,TrafficFlowObserved,TrafficViolation"}, headers=other
    )
    assert [e["id"] for e in mixed.json()] == ["urn:ngsi-ld:TrafficFlowObserved:1"]
    by_attribute = await sclient.get(f"{NGSI}/entities", params={"attrs": "status"}, headers=other)
    assert [e["id"] for e in by_attribute.json()] == ["urn:ngsi-ld:TrafficFlowObserved:1"]
    types = await sclient.get(f"{NGSI}/types", headers=other)
    assert "TrafficViolation" not in types.text
    assert "ParkingSpot" not in types.text
    # the owner sees everything
    everything = await sclient.get(
        f"{NGSI}/entities", params={"attrs": "status"}, headers=in_tenant(city.owner, CITY)
    )
    assert len(everything.json()) == 3
    # a batch may not create nor overwrite what the caller may not write
    batch = await sclient.post(
        f"{NGSI}/entityOperations/upsert",
        json=[entity("urn:ngsi-ld:ParkingSpot:2", "ParkingSpot", status="x")],
        headers=other | {"Content-Type": "application/json"},
    )
    assert batch.status_code == 403
    overwrite = await sclient.post(
        f"{NGSI}/entityOperations/upsert",
        json=[entity("urn:ngsi-ld:TrafficViolation:1", "Unlisted", status="x")],
        headers=other | {"Content-Type": "application/json"},
    )
    assert overwrite.status_code == 403
    # types in no dataset: as before the catalog
    free = await sclient.post(
        f"{NGSI}/entities",
        json=entity("urn:ngsi-ld:Unlisted:1", "Unlisted", status="x"),
        headers=other | {"Content-Type": "application/json"},
    )
    assert free.status_code == 201
    # subscriptions name readable types only
    subscription = {
        "type": "Subscription",
        "entities": [{"type": "TrafficViolation"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/x"}},
    }
    json_headers = other | {"Content-Type": "application/json"}
    assert (
        await sclient.post(f"{NGSI}/subscriptions", json=subscription, headers=json_headers)
    ).status_code == 403
    untyped = subscription | {"entities": None, "watchedAttributes": ["status"]}
    del untyped["entities"]
    assert (
        await sclient.post(f"{NGSI}/subscriptions", json=untyped, headers=json_headers)
    ).status_code == 403
    allowed = subscription | {"entities": [{"type": "TrafficFlowObserved"}]}
    assert (
        await sclient.post(f"{NGSI}/subscriptions", json=allowed, headers=json_headers)
    ).status_code == 201


async def test_no_department_and_administrators(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    city = await _city(secure_app, sclient)
    loose, admin = in_tenant(city.loose, CITY), in_tenant(city.admin, CITY)
    assert (
        await sclient.get(f"{NGSI}/entities/urn:ngsi-ld:TrafficFlowObserved:1", headers=loose)
    ).status_code == 200
    assert (await sclient.get(f"{NGSI}/entities/urn:ngsi-ld:ParkingSpot:1", headers=loose)).status_code == 403
    for kind in ("ParkingSpot", "TrafficViolation", "TrafficFlowObserved"):
        assert (await sclient.get(f"{NGSI}/entities/urn:ngsi-ld:{kind}:1", headers=admin)).status_code == 200
    changed = await sclient.patch(
        f"/api/v1/catalog/datasets/{city.datasets['parking']['id']}",
        json={"department_id": str(city.ecology)},
        headers=admin,
    )
    assert changed.status_code == 200
    assert changed.json()["department"] == "生态环境局"
    now_owner = in_tenant(city.other, CITY)
    assert (
        await sclient.get(f"{NGSI}/entities/urn:ngsi-ld:ParkingSpot:1", headers=now_owner)
    ).status_code == 200
    handed = await sclient.patch(
        f"/api/v1/catalog/datasets/{city.datasets['parking']['id']}",
        json={"department_id": str(city.traffic)},
        headers=now_owner,
    )
    assert handed.status_code == 403


async def test_sharing_request_lifecycle(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    city = await _city(secure_app, sclient)
    other, owner = in_tenant(city.other, CITY), in_tenant(city.owner, CITY)
    parking = city.datasets["parking"]["id"]
    ends = isoformat(utcnow() + timedelta(days=30))
    asked = {"dataset_id": parking, "purpose": "停车诱导", "fields": ["status"], "ends_at": ends}
    # unconditional and not-shared datasets take no requests
    for code in ("traffic-flow",):
        wrong = asked | {"dataset_id": city.datasets[code]["id"]}
        assert (
            await sclient.post("/api/v1/catalog/sharing-requests", json=wrong, headers=other)
        ).status_code == 409
    hidden = asked | {"dataset_id": city.datasets["enforcement"]["id"]}
    assert (
        await sclient.post("/api/v1/catalog/sharing-requests", json=hidden, headers=other)
    ).status_code == 403
    made = await sclient.post("/api/v1/catalog/sharing-requests", json=asked, headers=other)
    assert made.status_code == 201, made.text
    request_id = made.json()["id"]
    assert made.json()["status"] == "pending"
    # the applicant cannot approve its own request; the owner can
    url = f"/api/v1/catalog/sharing-requests/{request_id}/decision"
    assert (await sclient.post(url, json={"decision": "approve"}, headers=other)).status_code == 403
    assert (await sclient.get(f"{NGSI}/entities/urn:ngsi-ld:ParkingSpot:1", headers=other)).status_code == 403
    incoming = await sclient.get(
        "/api/v1/catalog/sharing-requests", params={"status": "pending"}, headers=owner
    )
    assert [r["id"] for r in incoming.json()["items"]] == [request_id]
    approved = await sclient.post(url, json={"decision": "approve", "note": "同意"}, headers=owner)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert (await sclient.post(url, json={"decision": "reject"}, headers=owner)).status_code == 409
    assert (await sclient.get(f"{NGSI}/entities/urn:ngsi-ld:ParkingSpot:1", headers=other)).status_code == 200
    # read, never write
    append = await sclient.post(
        f"{NGSI}/entities/urn:ngsi-ld:ParkingSpot:1/attrs",
        json={"note": {"type": "Property", "value": 1}},
        headers=other | {"Content-Type": "application/json"},
    )
    assert append.status_code == 403
    # the decision is in the audit chain
    async with secure_app.state.hub.sessions() as session:
        actions = list(
            await session.scalars(select(AuditRecord.action).where(AuditRecord.action.like("catalog.%")))
        )
    assert actions == ["catalog.sharing.approved"]
    # the approval ends: access ends with it, and the expiry task records it
    async with secure_app.state.hub.sessions() as session, session.begin():
        await session.execute(
            update(SharingRequest)
            .values(expires_at=utcnow() - timedelta(seconds=1))
            .where(SharingRequest.status == "approved")
        )
    assert (await sclient.get(f"{NGSI}/entities/urn:ngsi-ld:ParkingSpot:1", headers=other)).status_code == 403
    assert await ExpiryTask(secure_app.state.hub.sessions).run() == 1
    shown = await sclient.get(f"/api/v1/catalog/sharing-requests/{request_id}", headers=other)
    assert shown.json()["status"] == "expired"
    # a third department sees neither the request nor decides it
    stranger = in_tenant(city.loose, CITY)
    assert (
        await sclient.get(f"/api/v1/catalog/sharing-requests/{request_id}", headers=stranger)
    ).status_code == 403


async def test_county_dataset_and_city_department(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    city = await _city(secure_app, sclient)
    county = in_tenant(city.county, COUNTY)
    body = {
        "code": "cases",
        "title": "案件",
        "entity_types": ["UrbanCase"],
        "sharing": "conditional",
        "department_id": str(city.county_dept),
    }
    made = await sclient.post("/api/v1/catalog/datasets", json=body, headers=in_tenant(city.admin, COUNTY))
    assert made.status_code == 201, made.text
    created = await sclient.post(
        f"{NGSI}/entities",
        json=entity("urn:ngsi-ld:UrbanCase:1", "UrbanCase", status="open"),
        headers=county | {"Content-Type": "application/json"},
    )
    assert created.status_code == 201
    # a city department reaches the county (city sees counties) but not its conditional data
    from_city = in_tenant(city.other, COUNTY)
    assert (
        await sclient.get(f"{NGSI}/entities/urn:ngsi-ld:UrbanCase:1", headers=from_city)
    ).status_code == 403
    asked = {
        "dataset_id": made.json()["id"],
        "purpose": "考核",
        "ends_at": isoformat(utcnow() + timedelta(days=1)),
    }
    request = await sclient.post("/api/v1/catalog/sharing-requests", json=asked, headers=from_city)
    assert request.status_code == 201, request.text
    decided = await sclient.post(
        f"/api/v1/catalog/sharing-requests/{request.json()['id']}/decision",
        json={"decision": "approve"},
        headers=county,
    )
    assert decided.status_code == 200
    assert (
        await sclient.get(f"{NGSI}/entities/urn:ngsi-ld:UrbanCase:1", headers=from_city)
    ).status_code == 200
    # the county sees nothing of the city: its dataset ids are unknown there, and the city refuses it
    parking = city.datasets["parking"]["id"]
    assert (await sclient.get(f"/api/v1/catalog/datasets/{parking}", headers=county)).status_code == 404
    assert (
        await sclient.get(f"/api/v1/catalog/datasets/{parking}", headers=in_tenant(city.county, CITY))
    ).status_code == 403


async def test_demo_city_catalog_is_seeded_once(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    city = build_city(42)
    chief = await add_user(secure_app, city.code, platform_admin=True, totp=True)
    async with client_for(secure_app) as admin:
        await authenticate(admin, token=(await token_for(admin, chief))["access_token"])
        assert await seed_catalog(admin, city) == len(CATALOG_DATASETS)
        assert await seed_catalog(admin, city) == 0
        listed = await admin.get("/api/v1/catalog/datasets", headers={"NGSILD-Tenant": city.code})
    sharing = {d["code"]: (d["sharing"], d["department_en"]) for d in listed.json()["items"]}
    assert sharing["parking"] == ("conditional", "Transport Bureau")
    assert sharing["air-quality"] == ("unconditional", "Ecology and Environment Bureau")


async def test_the_consoles_map_layers_and_live_feed_keep_the_sharing_rules(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    """The console reads the broker's entities by other paths (one lean query for the map, the
    change feed for live updates): the same datasets stay hidden there."""
    city = await _city(secure_app, sclient)
    kinds = "TrafficFlowObserved,ParkingSpot,TrafficViolation"

    async def layer(headers: dict[str, str]) -> set[str]:
        answer = await sclient.get(
            "/api/v1/console/features", params={"type": kinds}, headers=in_tenant(headers, CITY)
        )
        assert answer.status_code == 200, answer.text
        return {feature["properties"]["type"] for feature in answer.json()["features"]}

    assert await layer(city.owner) == {"TrafficFlowObserved", "ParkingSpot", "TrafficViolation"}
    assert await layer(city.admin) == {"TrafficFlowObserved", "ParkingSpot", "TrafficViolation"}
    assert await layer(city.other) == {"TrafficFlowObserved"}  # no approval for parking; not shared
    assert await layer(city.loose) == {"TrafficFlowObserved"}

    # the live feed: a listener opened with the caller's hidden types gets no change of them
    feed = secure_app.state.hub.console
    default = "https://uri.etsi.org/ngsi-ld/default-context/"
    listener = feed.open(CITY, [], TypeAccess(hidden=frozenset([default + "TrafficViolation"])))
    try:
        changes = [
            {"op": "update", "id": f"urn:ngsi-ld:{kind}:1", "types": [default + kind], "entity": None}
            for kind in ("TrafficViolation", "TrafficFlowObserved")
        ]
        await feed.on_changes(EntitiesChanged(tenant=CITY, changes=changes))
        assert listener.queue.qsize() == 1
        assert listener.queue.get_nowait()["type"] == "TrafficFlowObserved"
    finally:
        feed.close(listener)
