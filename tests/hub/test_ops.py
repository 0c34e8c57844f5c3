"""Liveness, readiness and metrics of a started hub."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from cityhub.app import create_app
from cityhub.config import Settings
from tests.conftest import BACKEND, _pg_admin


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_all_is_well(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "bus": "ok"}}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def hub_without_nats(settings: Settings) -> AsyncIterator[FastAPI]:
    """A hub whose NATS server is not there: it starts, and says it is not ready."""
    app = create_app(settings.model_copy(update={"bus_url": f"nats://127.0.0.1:{_closed_port()}"}))
    async with app.router.lifespan_context(app):
        yield app


async def test_readyz_names_an_unreachable_bus(hub_without_nats: FastAPI) -> None:
    transport = httpx.ASGITransport(app=hub_without_nats)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        response = await http.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["detail"] == "not ready: bus unavailable"
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["bus"].startswith("unavailable")
        # the hub still answers and keeps events in its outbox meanwhile
        created = await http.post("/api/v1/tenants", json={"code": "410102"})
        assert created.status_code == 201
        assert await hub_without_nats.state.hub.relay.pending() == 3


@pytest.mark.skipif(BACKEND != "postgresql", reason="an embedded SQLite file cannot go away under the hub")
async def test_readyz_names_an_unreachable_database(app: FastAPI, client: httpx.AsyncClient) -> None:
    name = app.state.hub.settings.database_url.rsplit("/", 1)[1]
    await app.state.hub.engine.dispose()
    await _pg_admin(f'DROP DATABASE "{name}" WITH (FORCE)')
    try:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["database"].startswith("unavailable")
        assert (await client.get("/healthz")).status_code == 200
    finally:
        await _pg_admin(f'CREATE DATABASE "{name}"')


async def test_metrics_in_prometheus_format(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/tenants")
    await client.get("/api/v1/tenants/410199")
    await client.get("/api/v1/system/status")
    await client.get("/openapi.json")
    await client.get("/wp-login.php")
    await asyncio.sleep(0)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'cityhub_http_requests_total{method="GET",route="/api/v1/tenants",status="200"} 1.0' in text
    assert 'cityhub_http_requests_total{method="GET",route="/api/v1/tenants/{code}",status="404"} 1.0' in text
    assert 'route="/api/v1/system/status",status="200"} 1.0' in text  # app router, mounted prefix kept
    assert 'route="/openapi.json",status="200"} 1.0' in text
    assert 'route="unmatched",status="404"} 1.0' in text  # unknown paths never become labels
    assert "cityhub_http_request_duration_seconds_bucket" in text
    assert 'cityhub_app_up{app="system"} 1.0' in text
    assert "cityhub_outbox_pending " in text
    assert 'cityhub_notifications{outcome="sent"}' in text
    assert 'cityhub_info{bus="memory"' in text


async def test_hubs_starting_together_share_the_first_start(settings: Settings) -> None:
    """Several workers on a new database all try to create the default tenant; all come up."""
    apps = [create_app(settings) for _ in range(3)]
    contexts = [app.router.lifespan_context(app) for app in apps]
    results = await asyncio.gather(*(context.__aenter__() for context in contexts), return_exceptions=True)
    started = [c for c, r in zip(contexts, results, strict=True) if not isinstance(r, BaseException)]
    try:
        assert len(started) == 3, [r for r in results if isinstance(r, BaseException)]
        transport = httpx.ASGITransport(app=apps[0])
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            tenants = (await http.get("/api/v1/tenants")).json()
        assert [t["code"] for t in tenants["items"]] == ["410000", "410100"]
    finally:
        for context in started:
            await context.__aexit__(None, None, None)
