"""Security events, the rules over them, the overview, rate limits and blocked addresses."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from cityhub.app import create_app
from tests.systems.security.conftest import add_user, bearer, client_for, event_count, secure_settings

REDIS_URL = "redis://127.0.0.1:6379/0"


def _source() -> str:
    """An address of this test alone (other test runs may share the Redis server)."""
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2] or 1}"


async def _fail_login(client: httpx.AsyncClient, username: str) -> None:
    response = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": username, "password": "Bad-Guess-000"},
    )
    assert response.status_code == 401


async def test_brute_force_from_one_address(secure_app: FastAPI) -> None:
    account = await add_user(secure_app, "410100", [("410100", "viewer")])
    async with client_for(secure_app, _source()) as attacker:
        for _ in range(9):
            await _fail_login(attacker, account.username)
        assert await event_count(secure_app, "brute_force") == 0
        await _fail_login(attacker, account.username)
        assert await event_count(secure_app, "brute_force") == 1
        await _fail_login(attacker, account.username)
        assert await event_count(secure_app, "brute_force") == 1, "raised once per window"
    assert await event_count(secure_app, "login_failed") == 11
    assert await event_count(secure_app, "credential_stuffing") == 0


async def test_credential_stuffing_across_user_names(secure_app: FastAPI) -> None:
    async with client_for(secure_app, _source()) as attacker:
        for number in range(5):
            await _fail_login(attacker, f"victim{number}")
    assert await event_count(secure_app, "credential_stuffing") == 1


async def test_denial_burst_and_the_overview(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    nosy = await bearer(sclient, await add_user(secure_app, "410102", [("410102", "viewer")]))
    for _ in range(20):
        response = await sclient.get("/ngsi-ld/v1/types", headers=nosy | {"NGSILD-Tenant": "410105"})
        assert response.status_code == 403
    assert await event_count(secure_app, "access_denied") == 20
    assert await event_count(secure_app, "denial_burst") == 1
    officer = await bearer(sclient, await add_user(secure_app, "410100", platform_admin=True, totp=True))
    overview = await sclient.get("/api/v1/security/overview", headers=officer)
    assert overview.status_code == 200, overview.text
    body = overview.json()
    assert body["events"]["access_denied"] == 20
    assert body["events"]["denial_burst"] == 1
    assert body["by_severity"]["medium"] >= 1
    assert body["top_sources"][0] == {"source": "127.0.0.1", "events": 21}
    events = await sclient.get("/api/v1/security/events", params={"kind": "denial_burst"}, headers=officer)
    assert [e["kind"] for e in events.json()] == ["denial_burst"]
    metrics = await sclient.get("/metrics", headers=officer)
    assert 'cityhub_security_events_total{kind="access_denied"} 20.0' in metrics.text


async def test_a_county_security_officer_sees_its_own_events_only(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    nosy = await bearer(sclient, await add_user(secure_app, "410102", [("410102", "viewer")]))
    await sclient.get("/ngsi-ld/v1/types", headers=nosy | {"NGSILD-Tenant": "410105"})
    officer = await add_user(secure_app, "410122", [("410122", "security_officer")], totp=True)
    headers = await bearer(sclient, officer) | {"NGSILD-Tenant": "410122"}
    overview = await sclient.get("/api/v1/security/overview", headers=headers)
    assert overview.status_code == 200
    assert overview.json()["events"] == {}


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_rate_limit_per_source_and_per_client(database_url: str, backend: str) -> None:
    overrides: dict[str, Any] = {"rate_limit_per_minute": 5}
    if backend == "redis":
        overrides["redis_url"] = REDIS_URL
    app = create_app(secure_settings(database_url, **overrides))
    async with app.router.lifespan_context(app):
        assert app.state.security.limiter.backend == backend
        # the limits count in one-minute windows: start well inside one
        if time.time() % 60 > 45:
            await asyncio.sleep(61 - time.time() % 60)
        source = _source()
        async with client_for(app, source) as http:
            statuses = [(await http.get("/healthz")).status_code for _ in range(6)]
            assert statuses == [200] * 5 + [429]
            refused = await http.get("/healthz")
            assert refused.json()["type"] == "urn:cityhub:problem:too-many-requests"
        if backend == "redis":
            store = aioredis.from_url(REDIS_URL)
            try:
                keys = [key async for key in store.scan_iter(match=f"cityhub:rl:*:src:{source}")]
                assert len(keys) == 1
                assert int(await store.get(keys[0])) == 7
            finally:
                await store.aclose()
        # every refusal counted, the first one stored
        assert await event_count(app, "rate_limited") == 1
        metrics = app.state.hub.metrics.registry.get_sample_value(
            "cityhub_security_events_total", {"kind": "rate_limited"}
        )
        assert metrics == 2
        # a flood of refusals from one address is abnormal volume, stored once
        async with client_for(app, source) as http:
            for _ in range(60):
                assert (await http.get("/healthz")).status_code == 429
        assert await event_count(app, "abnormal_volume") == 1
        assert await event_count(app, "rate_limited") == 1


async def test_blocking_a_source_address(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    admin = await bearer(sclient, await add_user(secure_app, "410100", platform_admin=True, totp=True))
    source = _source()
    blocked = await sclient.post(
        "/api/v1/security/blocked-sources", data={"address": source, "reason": "brute force"}, headers=admin
    )
    assert blocked.status_code == 201, blocked.text
    async with client_for(secure_app, source) as attacker:
        for _ in range(3):
            refused = await attacker.get("/healthz")
            assert refused.status_code == 403
    assert await event_count(secure_app, "blocked_source") == 1, "stored once a minute per address"
    counted = secure_app.state.hub.metrics.registry.get_sample_value(
        "cityhub_security_events_total", {"kind": "blocked_source"}
    )
    assert counted == 3
    assert (
        await sclient.post(
            "/api/v1/security/blocked-sources", data={"address": "not-an-ip", "reason": "x"}, headers=admin
        )
    ).status_code == 400
    county_officer = await add_user(secure_app, "410102", [("410102", "security_officer")], totp=True)
    refused = await sclient.post(
        "/api/v1/security/blocked-sources",
        data={"address": "10.0.0.9", "reason": "x"},
        headers=await bearer(sclient, county_officer) | {"NGSILD-Tenant": "410102"},
    )
    assert refused.status_code == 403, "blocking for the whole hub is for platform administrators"
    unblocked = await sclient.delete(f"/api/v1/security/blocked-sources/{source}", headers=admin)
    assert unblocked.status_code == 204
    async with client_for(secure_app, source) as former:
        assert (await former.get("/healthz")).status_code == 200
