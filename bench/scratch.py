"""A database of its own for one benchmark run: a file in a temporary folder (SQLite), or a database
made on a PostgreSQL server for the run and dropped after it, whatever happens in between."""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg


@asynccontextmanager
async def scratch_database(postgres: str | None, label: str) -> AsyncIterator[str]:
    """The SQLAlchemy URL (async driver) of an empty database. ``postgres``: an admin DSN
    (``postgresql://user@host:port/db``) to make the database with; None: SQLite."""
    if postgres is None:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        return
    name = f"cityhub_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
            yield f"{base}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def run_on_scratch(
    doc: str | None,
    label: str,
    run: Callable[[str, int, int], Awaitable[None]],
    *,
    entities: int,
    requests: int,
) -> None:
    """The command line of a benchmark that fills a scratch database with ``--entities`` and sends
    ``--requests``: parse it, say where it runs, and ``run(url, entities, requests)``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=entities)
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--postgres", help="admin DSN; a database is created for the run and dropped")
    args = parser.parse_args()
    backend = "postgresql" if args.postgres else "sqlite"
    print(f"python {platform.python_version()} on {platform.machine()}, database {backend}")

    async def main() -> None:
        async with scratch_database(args.postgres, label) as url:
            await run(url, args.entities, args.requests)

    asyncio.run(main())
