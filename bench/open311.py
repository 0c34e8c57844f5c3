"""What Open311's request list and the urban app's monthly report cost next to the hub's own APIs.

    .venv/bin/python bench/open311.py [--cases 500] [--rounds 30]
                                      [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

One hub in this process on a new database (a temporary SQLite file, or a new PostgreSQL database),
called through its ASGI app (no socket). A 10 × 10 grid of cells in one district, routed to one
department; ``--cases`` citizens' reports posted through ``POST /open311/v2/requests.json`` at random
points and of random event categories (some land within 50 m of an open report of their category
and are linked as duplicates); half are dispatched and a third of those closed with a note.

Two pairs, the members of each taking turns round by round so that drift of the machine hits both
alike:

- ``GET /open311/v2/requests.json`` (the newest 1000: joins for the linked case and the report, the
  latest public note and the department's name of each) against the baseline
  ``GET /api/v1/cases?limit=1000`` (the hub's own case list);
- ``GET /api/v1/urban/reports/{month}`` (HTML: evaluation, grid statistics, categories) against the
  baseline ``GET /api/v1/dispatch/evaluation?period={month}`` (the evaluation alone).

Prints p50 and p99 of each and the ratios of the p50s.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
from scratch import scratch_database

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.hub.tenancy.service import ensure_tenant_with_ancestors
from cityhub.kit.db import create_engine
from cityhub.systems.security.models import Department

TENANT = "410102"
WEST, SOUTH, STEP = 113.60, 34.70, 0.01
EVENTS = ("E0101", "E0102", "E0103", "E0201", "E0202", "E0301", "E0302", "E0401", "E0402", "E0501")


def grid() -> dict[str, object]:
    features = []
    for row in range(10):
        for column in range(10):
            lon, lat = WEST + column * STEP, SOUTH + row * STEP
            ring = [[lon, lat], [lon + STEP, lat], [lon + STEP, lat + STEP], [lon, lat + STEP], [lon, lat]]
            features.append(
                {
                    "type": "Feature",
                    "properties": {"code": f"{TENANT}{row:03d}{column:03d}", "district": TENANT},
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            )
    return {"type": "FeatureCollection", "features": features}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def seed(app: object, client: httpx.AsyncClient, cases: int) -> int:
    async with app.state.sessions() as session, session.begin():  # type: ignore[attr-defined]
        await ensure_tenant_with_ancestors(session, TENANT)
        session.add(Department(tenant_code=TENANT, code="urban", name="金水区城市管理局"))
    headers = {"NGSILD-Tenant": TENANT}
    assert (await client.post("/api/v1/dispatch/grid-cells", json=grid(), headers=headers)).status_code == 200
    route = {"district": TENANT, "department": "urban", "department_tenant": TENANT}
    assert (await client.post("/api/v1/dispatch/routes", json=route, headers=headers)).status_code == 201
    rng = random.Random(11)
    opened = []
    for index in range(cases):
        body = {
            "jurisdiction_id": TENANT,
            "service_code": rng.choice(EVENTS),
            "lat": str(SOUTH + rng.uniform(0.0001, 10 * STEP - 0.0001)),
            "long": str(WEST + rng.uniform(0.0001, 10 * STEP - 0.0001)),
            "description": f"市民上报 {index}",
            "email": f"citizen{index}@example.cn",
        }
        answer = await client.post("/open311/v2/requests.json", data=body)
        assert answer.status_code == 201, answer.text
        if answer.json()[0]["service_notice"] is None:
            opened.append(answer.json()[0]["service_request_id"])
    for number, case_id in enumerate(opened[: len(opened) // 2]):
        steps = [("file", None), ("dispatch", None), ("accept", None)]
        if number % 3 == 0:
            steps += [("feedback", None), ("verify", "已处理完毕")]
        for action, note in steps:
            response = await client.post(
                f"/api/v1/cases/{case_id}/transitions", json={"action": action, "note": note}, headers=headers
            )
            assert response.status_code == 200, response.text
    return len(opened)


async def run(url: str, cases: int, rounds: int) -> None:
    engine = create_engine(url)
    await migrate.upgrade(engine)
    await engine.dispose()
    settings = Settings(
        env="test",
        database_url=url,
        bus_url="memory://",
        instance_name="bench",
        log_level="WARNING",
        open311_posts_per_minute=0,
    )
    app = create_app(settings)
    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=120) as client:
            started = time.perf_counter()
            own = await seed(app, client, cases)
            seeded = time.perf_counter() - started
            headers = {"NGSILD-Tenant": TENANT}
            pairs = {
                "open311": (
                    f"/open311/v2/requests.json?jurisdiction_id={TENANT}",
                    "/api/v1/cases?limit=1000",
                ),
                "report": (f"/api/v1/urban/reports/{month}", f"/api/v1/dispatch/evaluation?period={month}"),
            }
            timings: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in pairs}
            for _ in range(rounds):
                for name, (measured, baseline) in pairs.items():
                    for path, into in ((measured, timings[name][0]), (baseline, timings[name][1])):
                        started = time.perf_counter()
                        response = await client.get(path, headers=headers)
                        into.append(time.perf_counter() - started)
                        assert response.status_code == 200, response.text
    print(f"machine: {platform.machine()}, {platform.processor() or platform.platform()}")
    print(f"database: {url.split(':')[0]}; {cases} reports posted ({own} cases, the rest linked)")
    print(f"seeding took {seeded:.1f} s")
    labels = {
        "open311": ("GET /open311/v2/requests.json", "GET /api/v1/cases?limit=1000"),
        "report": ("GET /api/v1/urban/reports/{month} (HTML)", "GET /api/v1/dispatch/evaluation"),
    }
    for name, (measured, baseline) in timings.items():
        first, second = labels[name]
        print(
            f"{first}: p50 {statistics.median(measured) * 1e3:.1f} ms, "
            f"p99 {percentile(measured, 0.99) * 1e3:.1f} ms"
        )
        print(
            f"  baseline {second}: p50 {statistics.median(baseline) * 1e3:.1f} ms, "
            f"p99 {percentile(baseline, 0.99) * 1e3:.1f} ms"
        )
        print(f"  ratio (p50): {statistics.median(measured) / statistics.median(baseline):.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--postgres", help="an admin DSN; a new database is made and dropped")
    args = parser.parse_args()
    async with scratch_database(args.postgres, "open311") as url:
        await run(url, args.cases, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
