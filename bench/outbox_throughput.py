"""Event throughput through the transactional outbox, against publishing straight to the bus.

    .venv/bin/python bench/outbox_throughput.py [--events 2000] [--postgres DSN] [--nats URL]

Baseline: ``bus.publish`` called directly (no durability). Measured: one committed transaction per
event (enqueue + commit), then the relay drains to the bus; the figure is events per second from
the first commit until the consumer has seen the last event. Each backend is measured in the same
run as its baseline, and the ratio is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
import uuid

import asyncpg

from cityhub import migrate
from cityhub.bus import Bus, Event, OutboxRelay, create_bus, enqueue
from cityhub.kit.db import create_engine, session_factory


class Reading(Event):
    event_type = "bench.reading"

    value: float


async def _consumer(bus: Bus, target: int) -> asyncio.Event:
    done = asyncio.Event()
    seen = 0

    async def handle(event: Event) -> None:
        nonlocal seen
        seen += 1
        if seen == target:
            done.set()

    bus.subscribe(f"bench-{uuid.uuid4().hex[:8]}", [Reading], handle)
    return done


async def direct(bus_url: str, stream: str, events: int) -> float:
    bus = create_bus(bus_url, stream=stream, instance_name="bench")
    done = await _consumer(bus, events)
    await bus.start()
    started = time.perf_counter()
    for i in range(events):
        await bus.publish(Reading(value=i))
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    await bus.stop()
    return events / elapsed


async def through_outbox(database_url: str, bus_url: str, stream: str, events: int) -> float:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    bus = create_bus(bus_url, stream=stream, instance_name="bench")
    done = await _consumer(bus, events)
    relay: OutboxRelay | None = None
    sessions = session_factory(engine, **{"cityhub.outbox.wake": lambda: relay and relay.wake()})
    relay = OutboxRelay(sessions, bus, poll_interval=0.5)
    await bus.start()
    await relay.start()
    started = time.perf_counter()
    for i in range(events):
        async with sessions() as session, session.begin():
            enqueue(session, Reading(value=i))
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    await relay.stop()
    await bus.stop()
    await engine.dispose()
    return events / elapsed


async def _pg_database(dsn: str) -> tuple[str, str]:
    name = f"cityhub_bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(dsn)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    base = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return name, f"{base}/{name}"


async def _pg_drop(dsn: str, name: str) -> None:
    connection = await asyncpg.connect(dsn)
    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--postgres", help="admin DSN, e.g. postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--nats", help="NATS URL, e.g. nats://127.0.0.1:4222")
    args = parser.parse_args()
    print(f"machine: {platform.node()} · {platform.processor() or platform.machine()} · {args.events} events")
    buses = [("memory", "memory://")] + ([("nats", args.nats)] if args.nats else [])

    def line(bus: str, label: str, rate: float, baseline: float) -> None:
        ratio = f"  ratio {rate / baseline:.3f}" if rate != baseline else ""
        print(f"{bus:6} {label:34} {rate:10.0f} events/s{ratio}")

    for bus_name, bus_url in buses:
        stream = f"BENCH{uuid.uuid4().hex[:8].upper()}"
        baseline = await direct(bus_url, stream, args.events)
        line(bus_name, "baseline: direct publish", baseline, baseline)
        with tempfile.TemporaryDirectory() as folder:
            sqlite_url = f"sqlite+aiosqlite:///{folder}/bench.db"
            rate = await through_outbox(sqlite_url, bus_url, stream, args.events)
        line(bus_name, "sqlite: commit + outbox + relay", rate, baseline)
        if args.postgres:
            name, url = await _pg_database(args.postgres)
            try:
                rate = await through_outbox(url, bus_url, stream, args.events)
            finally:
                await _pg_drop(args.postgres, name)
            line(bus_name, "postgres: commit + outbox + relay", rate, baseline)
        if bus_url.startswith("nats"):
            import nats

            client = await nats.connect(bus_url)
            await client.jetstream().delete_stream(stream)
            await client.close()


if __name__ == "__main__":
    asyncio.run(main())
