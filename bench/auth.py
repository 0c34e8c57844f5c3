"""What authentication and authorization cost the broker's GET by id.

    .venv/bin/python bench/auth.py [--entities 2000] [--requests 5000]
                                   [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

One database (a temporary SQLite file, or a new PostgreSQL database), three hubs on it in this
process, each called through its ASGI app (no socket):

- baseline: ``CITYHUB_AUTH_MODE=off``;
- auth: ``on``, a bearer token of an operator of the tenant (signature, expiry, the caller's state
  from the per-process cache, the role check), rate limiting off;
- auth + rate limit: the same with the in-memory rate limiter counting every request.

``GET /ngsi-ld/v1/entities/{id}`` of random entities, the three hubs taking turns request by
request so that drift of the machine hits all alike. Prints p50 and p99 of each and the ratios of
the p50s to the baseline's; the goal is auth / baseline ≤ 1.10.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

import httpx
from scratch import run_on_scratch

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.hub.tenancy.service import ensure_tenant_with_ancestors
from cityhub.kit.db import create_engine
from cityhub.systems.security import service
from cityhub.systems.security.schemas import UserCreate

TENANT = "410102"
PASSWORD = "Bench-Password-2026"
KEY = "bench-signing-key-" + "b" * 32


def settings(url: str, **extra: Any) -> Settings:
    return Settings(
        env="test",
        database_url=url,
        instance_name="bench",
        secret_key=KEY,
        log_level="WARNING",
        **extra,
    )


async def prepare(url: str, entities: int) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    app = create_app(settings(url))
    async with app.router.lifespan_context(app):
        async with app.state.hub.sessions() as session, session.begin():
            await ensure_tenant_with_ancestors(session, TENANT)
            user = await service.create_user(
                session,
                UserCreate(username="bench-operator", password=PASSWORD, roles=["operator"]),
                tenant=TENANT,
                actor="bench",
                min_length=12,
            )
            assert user is not None
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            for start in range(0, entities, 500):
                batch = [
                    {
                        "id": f"urn:ngsi-ld:AirQualityObserved:{index}",
                        "type": "AirQualityObserved",
                        "no2": {"type": "Property", "value": index % 90},
                        "pm25": {"type": "Property", "value": 12.5},
                        "location": {
                            "type": "GeoProperty",
                            "value": {"type": "Point", "coordinates": [113.6, 34.7]},
                        },
                    }
                    for index in range(start, min(start + 500, entities))
                ]
                response = await http.post(
                    "/ngsi-ld/v1/entityOperations/upsert", json=batch, headers={"NGSILD-Tenant": TENANT}
                )
                assert response.status_code in (201, 204), response.text


async def run(url: str, entities: int, requests: int) -> None:
    await prepare(url, entities)
    variants = {
        "baseline (auth off)": settings(url),
        "auth": settings(url, auth_mode="on", rate_limit_per_minute=0),
        "auth + rate limit": settings(url, auth_mode="on", rate_limit_per_minute=1_000_000_000),
    }
    apps = {name: create_app(s) for name, s in variants.items()}
    clients: dict[str, httpx.AsyncClient] = {}
    headers: dict[str, dict[str, str]] = {}
    contexts = [app.router.lifespan_context(app) for app in apps.values()]
    for context in contexts:
        await context.__aenter__()
    try:
        for name, app in apps.items():
            clients[name] = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")
            headers[name] = {"NGSILD-Tenant": TENANT}
            if variants[name].auth_mode == "on":
                token = await clients[name].post(
                    "/api/v1/auth/token",
                    data={"grant_type": "password", "username": "bench-operator", "password": PASSWORD},
                )
                assert token.status_code == 200, token.text
                headers[name]["Authorization"] = f"Bearer {token.json()['access_token']}"
        rng = random.Random(7)
        timings: dict[str, list[float]] = {name: [] for name in apps}
        for round_number in range(requests + 200):
            entity_id = f"urn:ngsi-ld:AirQualityObserved:{rng.randrange(entities)}"
            order = list(apps)
            rng.shuffle(order)
            for name in order:
                started = time.perf_counter()
                response = await clients[name].get(f"/ngsi-ld/v1/entities/{entity_id}", headers=headers[name])
                elapsed = time.perf_counter() - started
                assert response.status_code == 200, (name, response.text)
                if round_number >= 200:  # the first rounds warm caches up
                    timings[name].append(elapsed * 1000)
        base = statistics.median(timings["baseline (auth off)"])
        print(f"GET /ngsi-ld/v1/entities/{{id}}, {entities} entities, {requests} requests per variant")
        print(f"{'variant':<22}{'p50 ms':>10}{'p99 ms':>10}{'p50 ratio':>12}")
        for name, values in timings.items():
            p50 = statistics.median(values)
            p99 = statistics.quantiles(values, n=100)[98]
            print(f"{name:<22}{p50:>10.3f}{p99:>10.3f}{p50 / base:>12.3f}")
    finally:
        for client in clients.values():
            await client.aclose()
        for context in reversed(contexts):
            await context.__aexit__(None, None, None)


if __name__ == "__main__":
    run_on_scratch(__doc__, "auth", run, entities=2000, requests=5000)
