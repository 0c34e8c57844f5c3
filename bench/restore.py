"""The restore drill, timed: how long a backup and a restore take for a hub of a given size.

    .venv/bin/python bench/restore.py [--entities 20000]
                                      [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Fills a new database through the broker (``--entities`` AirQualityObserved entities, each upserted
twice so every entity has history), then times ``backup.backup`` (what ``cityhub backup`` runs),
drops every table, times ``backup.restore`` (what ``cityhub restore`` runs), and compares row counts
and checksums of every table before and after. The baseline is the time to read every row of every
table (the fingerprints), so the ratio says how a backup compares with one full read of the data.
These figures are the recovery time objective's restore part; the recovery point objective is the
interval of the backup timer.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.kit.db import create_engine
from cityhub.systems.security import backup


async def fill(url: str, entities: int) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    app = create_app(Settings(env="test", database_url=url, instance_name="bench", log_level="WARNING"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            for step in range(2):
                for start in range(0, entities, 1000):
                    batch = [
                        {
                            "id": f"urn:ngsi-ld:AirQualityObserved:{index}",
                            "type": "AirQualityObserved",
                            "no2": {"type": "Property", "value": (index + step) % 90},
                            "pm25": {"type": "Property", "value": 12.5 + step},
                            "location": {
                                "type": "GeoProperty",
                                "value": {"type": "Point", "coordinates": [113.6, 34.7]},
                            },
                        }
                        for index in range(start, min(start + 1000, entities))
                    ]
                    response = await http.post("/ngsi-ld/v1/entityOperations/upsert", json=batch)
                    assert response.status_code in (201, 204), response.text


async def drill(url: str, entities: int, folder: Path) -> None:
    await fill(url, entities)
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        before = await backup.fingerprints(engine)
        read_all = time.perf_counter() - started
    finally:
        await engine.dispose()
    started = time.perf_counter()
    file = await asyncio.to_thread(backup.backup, url, folder / "backups")
    took_backup = time.perf_counter() - started
    engine = create_engine(url)
    try:
        await backup.wipe(engine)
    finally:
        await engine.dispose()
    started = time.perf_counter()
    await asyncio.to_thread(backup.restore, url, file)
    took_restore = time.perf_counter() - started
    engine = create_engine(url)
    try:
        after = await backup.fingerprints(engine)
    finally:
        await engine.dispose()
    rows = sum(item.rows for item in before.values())
    size = file.stat().st_size / 1e6
    print(f"{entities} entities, {rows} rows in {len(before)} tables, backup file {size:.1f} MB")
    print(f"baseline: read and checksum every row   {read_all:8.2f} s")
    print(
        f"backup                                  {took_backup:8.2f} s   ratio {took_backup / read_all:.2f}"
    )
    print(
        f"restore                                 {took_restore:8.2f} s   ratio {took_restore / read_all:.2f}"
    )
    print(f"every table identical after restore: {after == before}")
    assert after == before


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--postgres", help="admin DSN; a database is created for the run and dropped")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if not args.postgres:
            print("database sqlite")
            await drill(f"sqlite+aiosqlite:///{folder / 'hub.db'}", args.entities, folder)
            return
        print("database postgresql")
        name = f"cityhub_bench_restore_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(args.postgres)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
            await drill(f"{base}/{name}", args.entities, folder)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
