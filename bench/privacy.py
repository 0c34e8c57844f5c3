"""What personal-information protection costs the broker: masking and decryption on reads,
encryption on writes.

    .venv/bin/python bench/privacy.py [--entities 3000] [--requests 2000]
                                      [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

One hub with ``CITYHUB_AUTH_MODE=on`` and a data key, called through its ASGI app by a viewer (no
clearance: every classified value is decrypted and masked). Two entity types with the same
attributes: ``Resident`` (classified: ID-card number and phone sensitive, hence encrypted; name and
address personal) and ``Household`` (no classification), the baseline. Reads alternate between
the two request by request so that drift of the machine hits both alike: ``GET /entities/{id}``
and ``GET /entities?type=…&limit=100``. Writes: batch upserts of 100 entities of each type in
turn, entities per second. Then a data officer (clearance: values decrypted, each read of a
``Resident`` written into the audit chain as ``personal.read``, a ``Household`` read not) reads
``GET /entities/{id}`` of both types in turn: the time until the answer starts (its status line),
until it ends (the audit middleware done), and the process's CPU time per request. Prints p50s and
ratios (classified / baseline).
"""

from __future__ import annotations

import base64
import random
import statistics
import time
from typing import Any

import httpx
from scratch import run_on_scratch

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.kit.db import create_engine
from cityhub.systems.security import service
from cityhub.systems.security.schemas import UserCreate

TENANT = "410100"
PASSWORD = "Bench-Password-2026"
KEY = "bench-signing-key-" + "b" * 32
DATA_KEY = "bench:" + base64.b64encode(b"d" * 32).decode()
TYPES = ("Resident", "Household")


def settings(url: str) -> Settings:
    return Settings(
        env="test",
        database_url=url,
        instance_name="bench",
        secret_key=KEY,
        log_level="WARNING",
        auth_mode="on",
        rate_limit_per_minute=0,
        data_keys=DATA_KEY,
    )


class FirstByte:
    """The app, noting when each answer starts (``http.response.start``): what a client over a
    socket waits for, while the in-process transport returns once the app is done."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.at = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def noted(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.at = time.perf_counter()
            await send(message)

        await self.app(scope, receive, noted)


def person(entity_type: str, index: int) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:{entity_type}:{index}",
        "type": entity_type,
        "name": {"type": "Property", "value": "张三丰"},
        "idCardNumber": {"type": "Property", "value": f"410105199001{index % 1_000_000:06d}"},
        "phone": {"type": "Property", "value": f"138{index % 100_000_000:08d}"},
        "address": {"type": "Property", "value": "河南省郑州市金水区花园路100号"},
        "householdSize": {"type": "Property", "value": index % 6 + 1},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [113.6, 34.7]}},
    }


async def run(url: str, entities: int, requests: int) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    app = create_app(settings(url))
    async with app.router.lifespan_context(app):
        async with app.state.hub.sessions() as session, session.begin():
            for username, role in (
                ("bench-operator", "operator"),
                ("bench-viewer", "viewer"),
                ("bench-officer", "data_officer"),
            ):
                user = await service.create_user(
                    session,
                    UserCreate(username=username, password=PASSWORD),
                    tenant=TENANT,
                    actor="bench",
                    min_length=12,
                )
                await service._add_grant(session, user, role, TENANT, actor="bench")
        timed = FirstByte(app)
        transport = httpx.ASGITransport(app=timed)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            headers = {}
            for username in ("bench-operator", "bench-viewer", "bench-officer"):
                token = await http.post(
                    "/api/v1/auth/token",
                    data={"grant_type": "password", "username": username, "password": PASSWORD},
                )
                assert token.status_code == 200, token.text
                headers[username] = {"Authorization": f"Bearer {token.json()['access_token']}"}
            writes: dict[str, list[float]] = {t: [] for t in TYPES}
            for start in range(0, entities, 100):
                for entity_type in TYPES:
                    batch = [person(entity_type, i) for i in range(start, min(start + 100, entities))]
                    began = time.perf_counter()
                    response = await http.post(
                        "/ngsi-ld/v1/entityOperations/upsert", json=batch, headers=headers["bench-operator"]
                    )
                    writes[entity_type].append(len(batch) / (time.perf_counter() - began))
                    assert response.status_code in (201, 204), response.text
            rng = random.Random(7)
            reads: dict[tuple[str, str], list[float]] = {
                (kind, t): [] for kind in ("get", "query") for t in TYPES
            }
            viewer = headers["bench-viewer"]
            for round_number in range(requests + 100):
                index = rng.randrange(entities)
                order = list(TYPES)
                rng.shuffle(order)
                for entity_type in order:
                    for kind, path in (
                        ("get", f"/ngsi-ld/v1/entities/urn:ngsi-ld:{entity_type}:{index}"),
                        (
                            "query",
                            f"/ngsi-ld/v1/entities?type={entity_type}&limit=100&offset={index % 20 * 100}",
                        ),
                    ):
                        began = time.perf_counter()
                        response = await http.get(path, headers=viewer)
                        elapsed = time.perf_counter() - began
                        assert response.status_code == 200, response.text
                        if round_number >= 100:  # the first rounds warm caches up
                            reads[(kind, entity_type)].append(elapsed * 1000)
            shown = (await http.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Resident:1", headers=viewer)).json()
            assert shown["idCardNumber"]["value"].count("*") == 8, shown
            officer = headers["bench-officer"]
            cleared: dict[tuple[str, str], list[float]] = {
                (kind, t): [] for kind in ("start", "end", "cpu") for t in TYPES
            }
            for round_number in range(requests + 100):
                index = rng.randrange(entities)
                order = list(TYPES)
                rng.shuffle(order)
                for entity_type in order:
                    path = f"/ngsi-ld/v1/entities/urn:ngsi-ld:{entity_type}:{index}"
                    cpu = time.process_time()
                    began = time.perf_counter()
                    response = await http.get(path, headers=officer)
                    ended = time.perf_counter()
                    cpu = time.process_time() - cpu
                    assert response.status_code == 200, response.text
                    if round_number >= 100:
                        cleared[("start", entity_type)].append((timed.at - began) * 1000)
                        cleared[("end", entity_type)].append((ended - began) * 1000)
                        cleared[("cpu", entity_type)].append(cpu * 1000)
            assert response.json()["phone"]["value"].startswith("138")
    print(f"{entities} entities of each type, {requests} reads of each kind and type, viewer (masked)")
    print(f"{'figure':<36}{'classified':>12}{'baseline':>12}{'ratio':>8}")
    for kind, label in (("get", "GET /entities/{id} p50 ms"), ("query", "GET /entities?type (100) p50 ms")):
        classified = statistics.median(reads[(kind, "Resident")])
        base = statistics.median(reads[(kind, "Household")])
        print(f"{label:<36}{classified:>12.3f}{base:>12.3f}{classified / base:>8.3f}")
    encrypted = statistics.median(writes["Resident"])
    plain = statistics.median(writes["Household"])
    print(
        f"{'upsert batches of 100, entities/s':<36}{encrypted:>12.0f}{plain:>12.0f}{encrypted / plain:>8.3f}"
    )
    print("data officer (clearance; Resident reads audited), GET /entities/{id}")
    for kind, label in (
        ("start", "until the answer starts, p50 ms"),
        ("end", "until the request is done, p50 ms"),
        ("cpu", "process CPU per request, p50 ms"),
    ):
        classified = statistics.median(cleared[(kind, "Resident")])
        base = statistics.median(cleared[(kind, "Household")])
        print(f"{label:<36}{classified:>12.3f}{base:>12.3f}{classified / base:>8.3f}")


if __name__ == "__main__":
    run_on_scratch(__doc__, "privacy", run, entities=3000, requests=2000)
