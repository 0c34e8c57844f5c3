"""A small city for the case workflow: two districts of Zhengzhou (金水区 410102, 二七区 410103),
a grid cell in each, their urban management bureaus, and routes."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from cityhub.hub.tenancy import service as tenancy
from cityhub.systems.security.models import Department

CASES = "/api/v1/cases"
DISPATCH = "/api/v1/dispatch"
JINSHUI, ERQI = "410102", "410103"
#: A point inside each cell, and one outside both.
IN_JINSHUI = {"type": "Point", "coordinates": [113.655, 34.775]}
IN_ERQI = {"type": "Point", "coordinates": [113.645, 34.725]}
OUTSIDE = {"type": "Point", "coordinates": [114.5, 35.5]}


def square(lon: float, lat: float, size: float) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def cell(code: str, district: str, lon: float, lat: float, size: float = 0.01) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"code": code, "district": district, "name": code},
        "geometry": square(lon, lat, size),
    }


GRID = {
    "type": "FeatureCollection",
    "features": [cell("410102001001", JINSHUI, 113.65, 34.77), cell("410103001001", ERQI, 113.64, 34.72)],
}


async def add_departments(app: FastAPI, *rows: tuple[str, str, str]) -> None:
    """Departments (tenant, code, name), their tenants made where missing."""
    async with app.state.sessions() as session, session.begin():
        for tenant, _, _ in rows:
            await tenancy.ensure_tenant_with_ancestors(session, tenant)
        for tenant, code, name in rows:
            session.add(Department(tenant_code=tenant, code=code, name=name))


async def city(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Grid cells, each district's urban management bureau as its own department (属地), and the
    city's municipal engineering department for manhole covers everywhere."""
    await add_departments(
        app,
        (JINSHUI, "urban", "金水区城市管理局"),
        (ERQI, "urban", "二七区城市管理局"),
        ("410100", "municipal-works", "郑州市市政工程管理处"),
    )
    response = await client.post(f"{DISPATCH}/grid-cells", json=GRID)
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 2, "updated": 0}
    for body in (
        {"district": JINSHUI, "department": "urban", "department_tenant": JINSHUI},
        {"district": ERQI, "department": "urban", "department_tenant": ERQI},
        {"category": "C0101", "department": "municipal-works"},
    ):
        response = await client.post(f"{DISPATCH}/routes", json=body)
        assert response.status_code == 201, response.text


async def open_case(client: httpx.AsyncClient, **given: Any) -> dict[str, Any]:
    body = {"category": "E0101", "title": "暴露垃圾", "location": IN_JINSHUI} | given
    response = await client.post(CASES, json=body)
    assert response.status_code == 201, response.text
    case: dict[str, Any] = response.json()
    return case


async def act(client: httpx.AsyncClient, case_id: str, action: str, **given: Any) -> httpx.Response:
    return await client.post(f"{CASES}/{case_id}/transitions", json={"action": action, **given})
