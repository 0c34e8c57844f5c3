"""The web console's serving by the hub and its live feed of entity changes."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.systems.security.policy import console_shell, requirement
from tests.systems.security.conftest import add_user, bearer, client_for, secure_settings

AQ_TYPE = "AirQualityObserved"


def _build(root: Path) -> Path:
    """A console build as Vite lays it out: the page, hashed assets, a public file."""
    (root / "assets").mkdir(parents=True)
    page = '<!doctype html><div id="app"></div><script src="/assets/main-1a2b.js"></script>'
    (root / "index.html").write_text(page)
    (root / "assets" / "main-1a2b.js").write_text("console.log('hub')")
    (root / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    return root


def _settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "bus_url": "memory://",
        "instance_name": "test",
        "outbox_poll_interval": 0.05,
    }
    return Settings(**(values | overrides))


@pytest.fixture
async def console_app(database_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    application = create_app(_settings(database_url, console_dir=_build(tmp_path / "dist")))
    async with application.router.lifespan_context(application):
        yield application


async def test_page_assets_and_client_routes(console_app: FastAPI) -> None:
    async with client_for(console_app) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert 'id="app"' in page.text
        assert page.headers["cache-control"] == "no-cache"
        # the console's own content policy, not the API's "load nothing" one
        policies = page.headers.get_list("content-security-policy")
        assert len(policies) == 1
        assert "script-src 'self'" in policies[0]
        for route in ("/map", "/cockpit", "/login"):
            client_route = await http.get(route)
            assert client_route.status_code == 200
            assert 'id="app"' in client_route.text
        asset = await http.get("/assets/main-1a2b.js")
        assert asset.status_code == 200
        assert "hub" in asset.text
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        icon = await http.get("/favicon.svg")
        assert icon.status_code == 200
        assert icon.headers["cache-control"] == "no-cache"
        assert (await http.head("/map")).status_code == 200


async def test_api_paths_keep_priority(console_app: FastAPI) -> None:
    async with client_for(console_app) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/api/v1/tenants")).json()["total"] >= 1
        for path in ("/api/v1/no-such-thing", "/ngsi-ld/v1/nothing", "/assets/missing-0000.js"):
            missing = await http.get(path)
            assert missing.status_code == 404, path
            assert missing.headers["content-type"].startswith("application/"), path
        assert (await http.post("/map", json={})).status_code in (404, 405)
        # nothing outside the build is reachable
        escaped = await http.get("/assets/..%2F..%2Fconftest.py")
        assert escaped.status_code == 404 or 'id="app"' in escaped.text


async def test_without_a_build_the_hub_says_how_to_make_one(database_url: str, tmp_path: Path) -> None:
    application = create_app(_settings(database_url, console_dir=tmp_path / "nothing"))
    async with application.router.lifespan_context(application), client_for(application) as http:
        page = await http.get("/")
        assert page.status_code == 503
        assert "npm run build" in page.text
        assert "CITYHUB_CONSOLE_DIR" in page.text
        assert (await http.get("/healthz")).status_code == 200


async def test_with_auth_the_shell_is_public_and_the_data_is_not(database_url: str, tmp_path: Path) -> None:
    settings = secure_settings(database_url, console_dir=_build(tmp_path / "dist"))
    application = create_app(settings)
    async with application.router.lifespan_context(application), client_for(application) as http:
        assert (await http.get("/")).status_code == 200
        assert (await http.get("/map")).status_code == 200
        assert (await http.get("/assets/main-1a2b.js")).status_code == 200
        assert (await http.get("/ngsi-ld/v1/entities", params={"type": AQ_TYPE})).status_code == 401
        assert (await http.get("/api/v1/console/stream")).status_code == 401
        viewer = await add_user(application, "410100", [("410100", "viewer")])
        headers = await bearer(http, viewer)
        refused = await http.get("/api/v1/console/stream", headers=headers | {"NGSILD-Tenant": "410200"})
        assert refused.status_code == 403


def test_only_reads_outside_the_apis_are_the_shell() -> None:
    for path in ("/", "/map", "/cockpit/overview", "/assets/main-1a2b.js", "/favicon.svg"):
        assert console_shell("GET", path), path
        assert console_shell("HEAD", path), path
    assert not console_shell("POST", "/map")
    assert not console_shell("DELETE", "/")
    for path in ("/api/v1/x", "/ngsi-ld/v1/entities", "/iot/json", "/metrics", "/docs", "/openapi.json"):
        assert not console_shell("GET", path), path
    # the live feed is data: a read in the tenant, like the broker
    needed = requirement("GET", "/api/v1/console/stream")
    assert needed is not None
    assert needed.permission == "data:read"


async def test_stream_refuses_bad_types(console_app: FastAPI) -> None:
    async with client_for(console_app) as http:
        bad = await http.get("/api/v1/console/stream", params={"types": "Air Quality<"})
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/problem+json")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[str]:
    """A hub listening on a real socket: streamed answers need one."""
    port = _free_port()
    application = create_app(_settings(database_url))
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


def _station(entity_id: str, pm25: float) -> dict[str, Any]:
    return {
        "id": entity_id,
        "type": AQ_TYPE,
        "pm25": {"type": "Property", "value": pm25},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [113.66, 34.75]}},
    }


async def _next_change(lines: AsyncIterator[str]) -> dict[str, Any]:
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "change":
            return dict(json.loads(line.removeprefix("data: ")))
    raise AssertionError("the stream ended")


async def test_changes_of_the_callers_tenant_arrive_live(served: str) -> None:
    async with httpx.AsyncClient(base_url=served, timeout=10) as http:
        headers = {"NGSILD-Tenant": "410102"}
        params = {"types": f"{AQ_TYPE},RoadSegment"}
        async with http.stream("GET", "/api/v1/console/stream", params=params, headers=headers) as live:
            assert live.status_code == 200
            assert live.headers["content-type"].startswith("text/event-stream")
            lines = live.aiter_lines()
            assert await anext(lines) == "retry: 3000"
            # another tenant's change and a type not asked for come first; neither arrives
            other = await http.post(
                "/ngsi-ld/v1/entities",
                json=_station("urn:ngsi-ld:AirQualityObserved:other", 10),
                headers={"NGSILD-Tenant": "410105"},
            )
            assert other.status_code == 201
            unwanted = {
                "id": "urn:ngsi-ld:Device:d1",
                "type": "Device",
                "n": {"type": "Property", "value": 1},
            }
            device = await http.post("/ngsi-ld/v1/entities", json=unwanted, headers=headers)
            assert device.status_code == 201
            station = "urn:ngsi-ld:AirQualityObserved:410102-001"
            created = await http.post("/ngsi-ld/v1/entities", json=_station(station, 35), headers=headers)
            assert created.status_code == 201
            change = await asyncio.wait_for(_next_change(lines), 10)
            assert (change["op"], change["id"], change["type"]) == ("create", station, AQ_TYPE)
            assert change["entity"]["pm25"]["value"] == 35
            patched = await http.patch(
                f"/ngsi-ld/v1/entities/{station}/attrs",
                json={"pm25": {"type": "Property", "value": 80}},
                headers=headers,
            )
            assert patched.status_code == 204
            change = await asyncio.wait_for(_next_change(lines), 10)
            assert change["op"] == "update"
            assert change["entity"]["pm25"]["value"] == 80
            assert (await http.delete(f"/ngsi-ld/v1/entities/{station}", headers=headers)).status_code == 204
            change = await asyncio.wait_for(_next_change(lines), 10)
            assert (change["op"], change["type"], change["entity"]) == ("delete", AQ_TYPE, None)
