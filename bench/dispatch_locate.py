"""Finding a case's grid cell: the bounding-box index versus testing every cell.

    .venv/bin/python bench/dispatch_locate.py [--cells 10000] [--lookups 2000]
                                              [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

One migrated database (a temporary SQLite file, or a new PostgreSQL database) holding ``--cells``
square grid cells of about 100 m × 100 m (a city of 10,000 cells is about 100 km²), imported
through ``reference.import_grid_cells``. Then ``--lookups`` random points inside the grid are
located two ways, taking turns point by point so drift of the machine hits both alike:

- hub: ``reference.locate`` (the index on the cells' boxes picks the candidates, one exact
  point-in-polygon test decides), a query per point;
- baseline: every cell's polygon tested in turn, the cells already in memory as shapely
  geometries (no database work at all), as a lookup without the index would have to.

Prints the p50 and p99 of each, the ratio hub / baseline of the p50s, and checks both found the
same cell for every point.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import time
from typing import Any

import shapely
from scratch import scratch_database

from cityhub import migrate
from cityhub.hub.dispatch import reference
from cityhub.kit.db import create_engine, scope_to_tenant, session_factory

TENANT = "410100"
STEP = 0.001  # degrees, about 90 m × 110 m at Zhengzhou
WEST, SOUTH = 113.5, 34.6


def grid(cells: int) -> dict[str, Any]:
    side = int(cells**0.5)
    features = []
    for row in range(side):
        for column in range(side):
            lon, lat = WEST + column * STEP, SOUTH + row * STEP
            ring = [[lon, lat], [lon + STEP, lat], [lon + STEP, lat + STEP], [lon, lat + STEP], [lon, lat]]
            features.append(
                {
                    "type": "Feature",
                    "properties": {"code": f"C{row:04d}{column:04d}", "district": "410102"},
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            )
    return {"type": "FeatureCollection", "features": features}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run(url: str, cells: int, lookups: int) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        sessions = session_factory(engine)
        collection = grid(cells)
        async with sessions() as session, session.begin():
            scope_to_tenant(session, TENANT)
            started = time.perf_counter()
            outcome = await reference.import_grid_cells(session, collection)
            imported = time.perf_counter() - started
        side = int(cells**0.5)
        shapes = [
            (f["properties"]["code"], shapely.geometry.shape(f["geometry"])) for f in collection["features"]
        ]
        rng = random.Random(7)
        points = [
            (
                WEST + rng.uniform(0.0001, side * STEP - 0.0001),
                SOUTH + rng.uniform(0.0001, side * STEP - 0.0001),
            )
            for _ in range(lookups)
        ]
        hub: list[float] = []
        base: list[float] = []
        async with sessions() as session:
            scope_to_tenant(session, TENANT)
            for lon, lat in points:
                started = time.perf_counter()
                found = await reference.locate(session, lon, lat)
                hub.append(time.perf_counter() - started)
                started = time.perf_counter()
                point = shapely.Point(lon, lat)
                expected = next((code for code, shape in shapes if shapely.intersects(shape, point)), None)
                base.append(time.perf_counter() - started)
                assert found is not None
                assert found.code == expected, (lon, lat, found.code, expected)
        print(f"machine: {platform.machine()}, {platform.processor() or platform.platform()}")
        print(f"database: {engine.dialect.name}; {outcome.created} cells imported in {imported:.2f} s")
        print(
            f"hub (box index + one exact test): p50 {statistics.median(hub) * 1e3:.3f} ms, "
            f"p99 {percentile(hub, 0.99) * 1e3:.3f} ms"
        )
        print(
            f"baseline (every cell tested):      p50 {statistics.median(base) * 1e3:.3f} ms, "
            f"p99 {percentile(base, 0.99) * 1e3:.3f} ms"
        )
        print(f"ratio hub / baseline (p50): {statistics.median(hub) / statistics.median(base):.3f}")
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--postgres", help="an admin DSN; a new database is made and dropped")
    args = parser.parse_args()
    async with scratch_database(args.postgres, "dispatch") as url:
        await run(url, args.cells, args.lookups)


if __name__ == "__main__":
    asyncio.run(main())
