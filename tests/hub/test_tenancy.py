"""Tenants through the API, on a started hub (SQLite or PostgreSQL)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from cityhub.bus import OutboxMessage
from cityhub.hub.tenancy.events import TenantCreated
from cityhub.systems.standards import divisions


async def test_first_start_creates_the_default_tenant_and_its_province(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/tenants")
    assert response.status_code == 200
    body = response.json()
    assert [(t["code"], t["level"], t["parent_code"]) for t in body["items"]] == [
        ("410000", "province", None),
        ("410100", "city", "410000"),
    ]
    assert body["total"] == 2


async def test_add_districts_from_the_code_table(client: httpx.AsyncClient) -> None:
    for code in ("410102", "410105", "410122"):
        response = await client.post("/api/v1/tenants", json={"code": code})
        assert response.status_code == 201, response.text
    jinshui = (await client.get("/api/v1/tenants/410105")).json()
    assert (jinshui["name"], jinshui["name_en"], jinshui["level"]) == ("金水区", "Jinshui District", "county")
    children = (await client.get("/api/v1/tenants", params={"parent": "410100"})).json()
    assert [t["code"] for t in children["items"]] == ["410102", "410105", "410122"]


async def test_pagination(client: httpx.AsyncClient) -> None:
    for code in ("410102", "410103", "410104"):
        await client.post("/api/v1/tenants", json={"code": code})
    page = (await client.get("/api/v1/tenants", params={"limit": 2, "offset": 2})).json()
    assert page["total"] == 5
    assert [t["code"] for t in page["items"]] == ["410102", "410103"]
    assert (await client.get("/api/v1/tenants", params={"limit": 0})).status_code == 400


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"code": "41010"}, 400, "body.code"),
        ({"code": "410102", "colour": "red"}, 400, "body.colour"),
        ({"code": 410102}, 400, "body.code"),
        ({"code": "410100"}, 409, "already exists"),
        ({"code": "410302"}, 400, "parent tenant 410300 does not exist"),
        ({"code": "410199"}, 400, "not in the built-in code table"),
        ({"code": "410200", "parent_code": "410102"}, 400, "410102 is not above 410200"),
        ({"code": "410102", "parent_code": "410200"}, 400, "410200 is not above 410102"),
        ({"code": "410102", "parent_code": "410102"}, 400, "410102 is not above 410102"),
        ({"code": "000000"}, 400, "not a GB/T 2260 division code"),
    ],
)
async def test_bad_tenants_are_refused(
    client: httpx.AsyncClient, body: dict, status: int, fragment: str
) -> None:
    response = await client.post("/api/v1/tenants", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.json()["detail"]


async def test_unknown_tenant_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/tenants/410199")
    assert response.status_code == 404
    assert response.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant"


async def test_named_tenant_outside_the_table(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/tenants", json={"code": "410171", "name": "郑州航空港区"})
    assert response.status_code == 201
    assert response.json()["parent_code"] == "410100"


async def test_update_and_deactivate(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/tenants", json={"code": "410106"})
    response = await client.patch("/api/v1/tenants/410106", json={"name_en": "Shangjie", "active": False})
    assert response.status_code == 200
    assert response.json()["active"] is False
    assert (await client.patch("/api/v1/tenants/410106", json={"name": None})).status_code == 400
    status = await client.get("/api/v1/system/status", headers={"NGSILD-Tenant": "410106"})
    assert status.status_code == 404


async def test_creation_event_goes_through_the_outbox(app: FastAPI, client: httpx.AsyncClient) -> None:
    seen: list[TenantCreated] = []
    hub = app.state.hub

    async def record(event: TenantCreated) -> None:  # type: ignore[override]
        seen.append(event)

    hub.bus.subscribe("test-tenants", [TenantCreated], record)
    await client.post("/api/v1/tenants", json={"code": "410108"})
    await hub.relay.drain()
    mine = [(e.code, e.tenant, e.parent_code) for e in seen if e.code == "410108"]
    assert mine == [("410108", "410108", "410100")]
    async with hub.sessions() as session:
        row = (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.tenant_code == "410108"))
        ).one()
        assert row.published_at is not None


async def test_refused_request_leaves_no_event(app: FastAPI, client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/tenants", json={"code": "410302"})
    async with app.state.hub.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage.event_type))).all()
    assert rows == ["tenant.created", "tenant.created"]  # the two made at first start


def test_division_codes() -> None:
    assert divisions.level_of("410000") is divisions.DivisionLevel.PROVINCE
    assert divisions.parent_of("410105") == "410100"
    assert divisions.parent_of("419001") == "410000"
    assert divisions.lineage("410105") == ["410000", "410100", "410105"]
    assert not divisions.is_valid_code("41a100")
