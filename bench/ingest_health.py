"""Device health by district: what placing each device in the city's district boundaries costs.

    .venv/bin/python bench/ingest_health.py [--devices 2000] [--districts 12] [--rounds 20]
                                            [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

One started hub on a scratch database (a temporary SQLite file, or a new PostgreSQL database).
Two tenants get the same ``--devices`` devices (one service group, a static ``location`` each,
spread over a grid of ``--districts`` square districts around Zhengzhou):

- hub: the city tenant, which keeps the districts as ``AdministrativeArea`` entities: its health
  summary reads every device's entity and places its position in a boundary;
- baseline: a tenant with the same devices and no boundaries: the summary counts by type and
  service path only (what the health endpoint did before districts were geographic).

``GET /api/v1/ingest/health`` is asked of each in turn, ``--rounds`` times. Prints the median and
worst time of each, the ratio hub / baseline of the medians, and checks that every device was
placed in the district it was put in.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time

import httpx
from scratch import scratch_database

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.kit.db import create_engine

CITY = "410100"
BASELINE = "nobounds"
WEST, SOUTH, SIDE = 113.3, 34.5, 0.1  # degrees: a district is a square of about 9 × 11 km


def district_squares(count: int) -> list[tuple[str, float, float]]:
    columns = max(1, round(count**0.5))
    return [(f"D{n:02d}", WEST + (n % columns) * SIDE, SOUTH + (n // columns) * SIDE) for n in range(count)]


async def provision(client: httpx.AsyncClient, tenant: str, devices: int, squares: list) -> None:
    headers = {"fiware-service": tenant, "fiware-servicepath": "/"}
    group = {
        "apikey": f"k-{tenant}",
        "entity_type": "AirQualityObserved",
        "expected_interval": 600,
        "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}],
    }
    response = await client.post("/iot/services", json={"services": [group]}, headers=headers)
    assert response.status_code == 201, response.text
    batch = []
    for n in range(devices):
        _, west, south = squares[n % len(squares)]
        offset = (n // len(squares)) % 97 / 100 * SIDE
        lat, lon = south + 0.005 + offset * 0.9, west + 0.005 + (n % 89) / 100 * SIDE * 0.9
        static = [{"name": "location", "type": "geo:point", "value": f"{lat:.6f}, {lon:.6f}"}]
        batch.append({"device_id": f"air-{n:06d}", "static_attributes": static})
        if len(batch) == 500 or n == devices - 1:
            response = await client.post("/iot/devices", json={"devices": batch}, headers=headers)
            assert response.status_code == 201, response.text
            batch = []


async def run(url: str, devices: int, districts: int, rounds: int) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    settings = Settings(env="test", database_url=url, bus_url="memory://", instance_name="bench")
    application = create_app(settings)
    squares = district_squares(districts)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=120) as client:
            started = time.perf_counter()
            for tenant in (CITY, BASELINE):
                await provision(client, tenant, devices, squares)
            areas = [
                {
                    "id": f"urn:ngsi-ld:AdministrativeArea:{code}",
                    "type": "AdministrativeArea",
                    "location": {
                        "type": "GeoProperty",
                        "value": {
                            "type": "Polygon",
                            "coordinates": [
                                [
                                    [west, south],
                                    [west + SIDE, south],
                                    [west + SIDE, south + SIDE],
                                    [west, south + SIDE],
                                    [west, south],
                                ]
                            ],
                        },
                    },
                }
                for code, west, south in squares
            ]
            response = await client.post(
                "/ngsi-ld/v1/entityOperations/create", json=areas, headers={"NGSILD-Tenant": CITY}
            )
            assert response.status_code == 201, response.text
            prepared = time.perf_counter() - started
            hub: list[float] = []
            base: list[float] = []
            for _ in range(rounds):
                for tenant, times in ((CITY, hub), (BASELINE, base)):
                    began = time.perf_counter()
                    response = await client.get("/api/v1/ingest/health", headers={"fiware-service": tenant})
                    times.append(time.perf_counter() - began)
                    assert response.status_code == 200, response.text
                    found = response.json()
                    assert found["overall"]["total"] == devices
                    if tenant == CITY:
                        placed = {item["name"]: item["total"] for item in found["byDistrict"]}
                        expected = {
                            code: len(range(n, devices, len(squares)))
                            for n, (code, _, _) in enumerate(squares)
                        }
                        assert placed == {c: t for c, t in expected.items() if t}, placed
                        assert found["outsideDistricts"]["total"] == 0
    print(f"machine: {platform.machine()}, {platform.processor() or platform.platform()}")
    database = url.split(":", 1)[0]
    print(f"database: {database}; {devices} devices × 2 tenants, {districts} districts ({prepared:.1f} s)")
    for label, times in (("hub (placed by district):     ", hub), ("baseline (type, service path):", base)):
        print(f"{label} median {statistics.median(times) * 1e3:.1f} ms, worst {max(times) * 1e3:.1f} ms")
    print(f"ratio hub / baseline (median): {statistics.median(hub) / statistics.median(base):.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--districts", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--postgres", help="an admin DSN; a new database is made and dropped")
    args = parser.parse_args()
    async with scratch_database(args.postgres, "ingest_health") as url:
        await run(url, args.devices, args.districts, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
