"""Notification latency: write → HTTP receiver, with many subscriptions while writing steadily.

    .venv/bin/python bench/notifications.py [--rate 5000] [--seconds 10] [--subscriptions 100]
                                            [--batch 100] [--writers 1] [--entities 10000]
                                            [--writes-only] [--postgres DSN]

A hub runs in this process (its ASGI app, no socket for the writes; the notifications go over real
HTTP to a receiver on 127.0.0.1 in this process). ``--subscriptions`` subscriptions each watch one
slice of the entities (``idPattern``), so every update notifies exactly one of them.

An *update* is one entity of a batch upsert (``/entityOperations/upsert``) that changes two
attributes of an existing entity: ``intensity`` (watched) and ``sentAt`` (the time its write
started, the one attribute notified). ``--entities`` entities are created before the subscriptions
and updated in turn (with ``--entities 0`` every update creates a new entity instead). ``--writers``
concurrent writers send batches of ``--batch`` entities, together ``--rate`` updates per second,
for ``--seconds``. The receiver records, per notified entity, the time from the start of its write
request to the notification's arrival. Reported: the write rate reached, entities notified and in
how many notifications (requests), latency p50/p99, CPU time of the process per update, and how
long the queue took to drain after the writers stopped. Baseline in the same run: the round trip
of an empty POST to the same receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import statistics
import tempfile
import time
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy import func, select

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.hub.broker.models import BrokerNotification
from cityhub.kit.db import create_engine


class Receiver:
    """A minimal HTTP/1.1 server that records, per notified entity, the latency it carries."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.items = 0
        self.requests = 0
        self.port = 0
        self.expected = -1
        self.all_in = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}/notify"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                arrived = time.perf_counter()
                if body:
                    self.requests += 1
                    for entity in orjson.loads(body).get("data", []):
                        self.items += 1
                        self.latencies.append((arrived - entity["sentAt"]) * 1000)
                    if self.items >= self.expected >= 0:
                        self.all_in.set()
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def entity(slice_: int, index: int, sent_at: float, intensity: int = 0) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:s{slice_:03d}-{index}",
        "type": "TrafficFlowObserved",
        "intensity": {"type": "Property", "value": intensity},
        "sentAt": {"type": "Property", "value": sent_at},
    }


async def run(database_url: str, args: argparse.Namespace) -> dict[str, float]:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    await engine.dispose()
    receiver = Receiver()
    url = await receiver.start()
    app = create_app(Settings(database_url=database_url, log_level="WARNING"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub", timeout=600) as http,
    ):
        async with httpx.AsyncClient() as direct:
            baseline = []
            for _ in range(200):
                started = time.perf_counter()
                await direct.post(url, content=b"")
                baseline.append((time.perf_counter() - started) * 1000)
        per_slice = max(1, args.batch // args.subscriptions)
        pool = max(1, args.entities // args.subscriptions)  # entities per slice (0: a new one each time)
        if args.entities:
            # created before the subscriptions and the clock, so that every timed write is an update
            everything = [entity(k, j, 0.0) for k in range(args.subscriptions) for j in range(pool)]
            for first in range(0, len(everything), 1000):
                response = await http.post(
                    "/ngsi-ld/v1/entityOperations/upsert", json=everything[first : first + 1000]
                )
                assert response.status_code in (201, 204), response.text[:300]
        for k in range(0 if args.writes_only else args.subscriptions):
            body = {
                "type": "Subscription",
                "entities": [{"type": "TrafficFlowObserved", "idPattern": f":s{k:03d}-"}],
                "watchedAttributes": ["intensity"],
                "notification": {"format": "keyValues", "attributes": ["sentAt"], "endpoint": {"uri": url}},
            }
            response = await http.post("/ngsi-ld/v1/subscriptions", json=body)
            assert response.status_code == 201, response.text
        interval = args.batch * args.writers / args.rate  # seconds per batch and writer
        sent = 0
        started = time.perf_counter()
        cpu = time.process_time()

        async def writer(number: int) -> None:
            nonlocal sent
            batch_no = 0
            while time.perf_counter() - started < args.seconds:
                due = started + (batch_no + number / args.writers) * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = time.perf_counter()
                index = (batch_no * args.writers + number) * per_slice
                body = [
                    entity(k, (index + j) % pool if args.entities else index + j, now, index + j + 1)
                    for k in range(args.subscriptions)
                    for j in range(per_slice)
                ][: args.batch]
                response = await http.post(
                    "/ngsi-ld/v1/entityOperations/upsert",
                    content=orjson.dumps(body),
                    headers={"Content-Type": "application/json"},
                )
                assert response.status_code in (201, 204), response.text[:300]
                sent += len(body)
                batch_no += 1

        await asyncio.gather(*(writer(n) for n in range(args.writers)))
        writing = time.perf_counter() - started
        stopped = time.perf_counter()
        events_behind = await app.state.hub.relay.pending()
        async with app.state.hub.sessions() as session:
            owed = await session.scalar(select(func.count()).select_from(BrokerNotification)) or 0
        receiver.expected = 0 if args.writes_only else sent
        if receiver.items < receiver.expected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receiver.all_in.wait(), timeout=120)
        drained = time.perf_counter() - stopped
        cpu = time.process_time() - cpu
    await receiver.stop()
    latencies = sorted(receiver.latencies)
    return {
        "rate": sent / writing,
        "sent": sent,
        "received": receiver.items,
        "requests": receiver.requests,
        "cpu_ms": cpu * 1000 / max(sent, 1),
        "events_behind": events_behind,
        "owed": owed,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
        "drain": drained,
        "baseline_p50": statistics.median(baseline),
    }


def report(label: str, figures: dict[str, float], args: argparse.Namespace) -> None:
    print(
        f"\n{label}: {args.subscriptions} subscriptions, asked {args.rate} updates/s for {args.seconds} s "
        f"({args.writers} writer(s), batches of {args.batch}, "
        + (f"{args.entities} entities updated in turn)" if args.entities else "a new entity per update)")
    )
    print(f"  writes reached      {figures['rate']:10.0f} updates/s ({figures['sent']:.0f} sent)")
    print(f"  notified entities   {figures['received']:10.0f} in {figures['requests']:.0f} notifications")
    print(f"  latency p50 / p99   {figures['p50']:10.1f} / {figures['p99']:.1f} ms (write start → receiver)")
    print(f"  CPU of this process {figures['cpu_ms']:10.3f} ms per update (writing and draining)")
    print(
        f"  when writing stopped {figures['events_behind']:9.0f} change events not yet matched, "
        f"{figures['owed']:.0f} notifications queued"
    )
    print(f"  queue drained in    {figures['drain']:10.2f} s after the writer stopped")
    print(f"  baseline            {figures['baseline_p50']:10.2f} ms p50 (empty POST to the same receiver)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--subscriptions", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--writes-only", action="store_true", help="the same writes without subscriptions (their cost alone)"
    )
    parser.add_argument("--writers", type=int, default=1, help="concurrent writers sharing the rate")
    parser.add_argument(
        "--entities", type=int, default=10000, help="entities updated in turn (0: each update creates one)"
    )
    parser.add_argument("--postgres", help="admin DSN, e.g. postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    with tempfile.TemporaryDirectory() as folder:
        report("SQLite", await run(f"sqlite+aiosqlite:///{folder}/bench.db", args), args)
    if args.postgres:
        name = f"cityhub_bench_{int(time.time())}"
        admin = await asyncpg.connect(args.postgres)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            report("PostgreSQL", await run(f"{base}/{name}", args), args)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
