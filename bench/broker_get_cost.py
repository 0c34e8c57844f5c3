"""The CPU cost of one GET of an entity by id, counted in instructions rather than timed.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/broker_get_cost.py --gets 50 DATABASE_URL
    (the same with --gets 250)

Starts a hub in process on DATABASE_URL (migrated first; e.g. a scratch PostgreSQL database),
upserts 100 TrafficFlowObserved entities, waits until their change events are handled, then runs
``--gets`` GETs of one entity by id one after another through the ASGI app. Run under valgrind
twice with two values of ``--gets``: the difference of the two "Collected" totals over the
difference of the counts is the instructions one GET costs, start-up cancelled out. On a shared
machine whose speed comes and goes, that count repeats where wall and CPU times do not (seen:
CPU time per GET from 3.1 to 4.6 ms across runs of one build).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
import orjson
from broker import flow, settled, timed

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.kit.db import create_engine

PATH = "/ngsi-ld/v1/entities/urn:ngsi-ld:TrafficFlowObserved:bench-5"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url", help="e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--gets", type=int, default=250)
    args = parser.parse_args()
    engine = create_engine(args.database_url)
    await migrate.upgrade(engine)
    await engine.dispose()
    app = create_app(Settings(database_url=args.database_url, log_level="ERROR"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            body = orjson.dumps([flow(i, 0) for i in range(100)])
            headers = {"content-type": "application/json"}
            response = await http.post("/ngsi-ld/v1/entityOperations/upsert", content=body, headers=headers)
            assert response.status_code in (201, 204), response.text[:300]
            await settled(app)
            await timed(20, lambda: http.get(PATH))  # caches and compiled statements warm
            started = time.process_time()
            await timed(args.gets, lambda: http.get(PATH))
            print(f"{args.gets} GETs: {(time.process_time() - started) / args.gets * 1000:.3f} ms CPU each")


if __name__ == "__main__":
    asyncio.run(main())
