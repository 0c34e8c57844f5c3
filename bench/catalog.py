"""What the data catalog's access rules cost the broker: the caller's entity-type access computed
for every request, and the condition that leaves hidden types out of queries in SQL.

    .venv/bin/python bench/catalog.py [--entities 3000] [--requests 1000]
                                      [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

One hub with ``CITYHUB_AUTH_MODE=on`` called through its ASGI app by a city viewer placed in a
department. Two counties hold the same entities (``Open`` and ``Closed`` types, ``--entities`` of
each): in 410105 they are registered in the catalog (``Open`` unconditional, ``Closed`` not shared,
owned by a county department, beside 18 more datasets of types with no entities), in 410102 they
are in no dataset, the baseline. Requests alternate between the two counties request by request so
that drift of the machine hits both alike: ``GET /entities/{id}`` of an ``Open`` entity,
``GET /entities?type=Open&limit=100`` and ``GET /entities?attrs=name&limit=100`` (which in the
catalogued county must leave every ``Closed`` entity out). Prints p50s and ratios
(catalogued / baseline).
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

import httpx
from scratch import run_on_scratch
from sqlalchemy import update

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.hub.catalog import service as catalog
from cityhub.hub.catalog.access import Caller
from cityhub.hub.catalog.schemas import DatasetCreate
from cityhub.hub.tenancy.service import ensure_tenant_with_ancestors
from cityhub.kit.db import create_engine, scope_to_tenant
from cityhub.systems.security import service
from cityhub.systems.security.models import User
from cityhub.systems.security.schemas import DepartmentCreate, UserCreate

CITY, BASELINE, CATALOGUED = "410100", "410102", "410105"
PASSWORD = "Bench-Password-2026"
KEY = "bench-signing-key-" + "c" * 32


def settings(url: str) -> Settings:
    return Settings(
        env="test",
        database_url=url,
        instance_name="bench",
        secret_key=KEY,
        log_level="WARNING",
        auth_mode="on",
        rate_limit_per_minute=0,
        access_token_ttl=4 * 3600,  # a long run on a busy machine outlives the default 15 minutes
    )


def thing(entity_type: str, index: int) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:{entity_type}:{index}",
        "type": entity_type,
        "name": {"type": "Property", "value": f"{entity_type} {index}"},
        "level": {"type": "Property", "value": index % 17},
    }


async def prepare(app: Any) -> None:
    async with app.state.hub.sessions() as session, session.begin():
        for county in (BASELINE, CATALOGUED):
            await ensure_tenant_with_ancestors(session, county)
        reader_department = await service.create_department(
            session, DepartmentCreate(code="ecology", name="生态环境局"), tenant=CITY, actor="bench"
        )
        owner = await service.create_department(
            session, DepartmentCreate(code="urban", name="城管局"), tenant=CATALOGUED, actor="bench"
        )
        for username, role in (("bench-admin", "admin"), ("bench-viewer", "viewer")):
            await service.create_user(
                session,
                UserCreate(username=username, password=PASSWORD, roles=[role]),
                tenant=CITY,
                actor="bench",
                min_length=12,
            )
        await session.execute(
            update(User).where(User.username == "bench-viewer").values(department_id=reader_department.id)
        )
        scope_to_tenant(session, CATALOGUED)
        specs = [("open", "Open", "unconditional"), ("closed", "Closed", "not_shared")]
        specs += [(f"other-{n}", f"Other{n}", ("conditional", "not_shared")[n % 2]) for n in range(18)]
        for code, entity_type, sharing in specs:
            body = DatasetCreate(
                code=code,
                title=code,
                department_id=owner.id,
                entity_types=[entity_type],
                sharing=sharing,  # type: ignore[arg-type]
                conditions="法定" if sharing != "unconditional" else None,
            )
            await catalog.create_dataset(session, body, Caller.unrestricted("bench"))


async def run(url: str, entities: int, requests: int) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    app = create_app(settings(url))
    async with app.router.lifespan_context(app):
        await prepare(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            headers = {}
            for username in ("bench-admin", "bench-viewer"):
                token = await http.post(
                    "/api/v1/auth/token",
                    data={"grant_type": "password", "username": username, "password": PASSWORD},
                )
                assert token.status_code == 200, token.text
                headers[username] = {"Authorization": f"Bearer {token.json()['access_token']}"}
            for tenant in (BASELINE, CATALOGUED):
                for start in range(0, entities, 200):
                    for entity_type in ("Open", "Closed"):
                        batch = [thing(entity_type, i) for i in range(start, min(start + 200, entities))]
                        response = await http.post(
                            "/ngsi-ld/v1/entityOperations/upsert",
                            json=batch,
                            headers=headers["bench-admin"] | {"NGSILD-Tenant": tenant},
                        )
                        assert response.status_code in (201, 204), response.text
            rng = random.Random(11)
            kinds = ("get", "type", "attrs")
            reads: dict[tuple[str, str], list[float]] = {
                (k, t): [] for k in kinds for t in (BASELINE, CATALOGUED)
            }
            for round_number in range(requests + 50):
                index = rng.randrange(entities)
                order = [BASELINE, CATALOGUED]
                rng.shuffle(order)
                for tenant in order:
                    viewer = headers["bench-viewer"] | {"NGSILD-Tenant": tenant}
                    for kind, path in (
                        ("get", f"/ngsi-ld/v1/entities/urn:ngsi-ld:Open:{index}"),
                        ("type", f"/ngsi-ld/v1/entities?type=Open&limit=100&offset={index % 20 * 100}"),
                        ("attrs", f"/ngsi-ld/v1/entities?attrs=name&limit=100&offset={index % 20 * 100}"),
                    ):
                        began = time.perf_counter()
                        response = await http.get(path, headers=viewer)
                        elapsed = time.perf_counter() - began
                        assert response.status_code == 200, response.text
                        if round_number >= 50:  # the first rounds warm caches up
                            reads[(kind, tenant)].append(elapsed * 1000)
            hidden = await http.get(
                "/ngsi-ld/v1/entities?attrs=name&limit=1000",
                headers=headers["bench-viewer"] | {"NGSILD-Tenant": CATALOGUED},
            )
            assert all(":Open:" in e["id"] for e in hidden.json()), "a Closed entity was shown"
    print(f"{entities} entities of each type per county, {requests} reads of each kind per county")
    print(f"{'figure':<40}{'catalogued':>12}{'baseline':>12}{'ratio':>8}")
    for kind, label in (
        ("get", "GET /entities/{id} p50 ms"),
        ("type", "GET /entities?type (100) p50 ms"),
        ("attrs", "GET /entities?attrs (100) p50 ms"),
    ):
        catalogued = statistics.median(reads[(kind, CATALOGUED)])
        base = statistics.median(reads[(kind, BASELINE)])
        print(f"{label:<40}{catalogued:>12.3f}{base:>12.3f}{catalogued / base:>8.3f}")


if __name__ == "__main__":
    run_on_scratch(__doc__, "catalog", run, entities=3000, requests=1000)
