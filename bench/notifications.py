"""Notification latency: write → HTTP receiver, with many subscriptions while writing steadily.

    .venv/bin/python bench/notifications.py [--rate 5000] [--seconds 10] [--subscriptions 100]
                                            [--batch 100] [--postgres DSN]

A hub runs in this process (its ASGI app, no socket for the writes; the notifications go over real
HTTP to a receiver on 127.0.0.1 in this process). ``--subscriptions`` subscriptions each watch one
slice of the entities (``idPattern``), so every update notifies exactly one of them. A writer sends
batch upserts of ``--batch`` entities at ``--rate`` attribute updates per second for ``--seconds``;
each entity carries the time it was written, and the receiver records, per notified entity, the
time from the start of its write request to the notification's arrival. Reported: the write rate
reached, notifications received, latency p50/p99, and how long the queue took to drain after the
writer stopped. Baseline in the same run: the round trip of an empty POST to the same receiver.
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

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.kit.db import create_engine


class Receiver:
    """A minimal HTTP/1.1 server that records, per notified entity, the latency it carries."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.items = 0
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


def entity(slice_: int, index: int, sent_at: float) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:s{slice_:03d}-{index}",
        "type": "TrafficFlowObserved",
        "intensity": {"type": "Property", "value": index},
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
        for k in range(args.subscriptions):
            body = {
                "type": "Subscription",
                "entities": [{"type": "TrafficFlowObserved", "idPattern": f":s{k:03d}-"}],
                "watchedAttributes": ["intensity"],
                "notification": {"format": "keyValues", "attributes": ["sentAt"], "endpoint": {"uri": url}},
            }
            response = await http.post("/ngsi-ld/v1/subscriptions", json=body)
            assert response.status_code == 201, response.text
        per_slice = max(1, args.batch // args.subscriptions)
        interval = args.batch / args.rate  # seconds per batch, at the asked rate (1 update/entity)
        sent = 0
        started = time.perf_counter()
        batch_no = 0
        while time.perf_counter() - started < args.seconds:
            due = started + batch_no * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.perf_counter()
            body = [
                entity(k, batch_no * per_slice + j, now)
                for k in range(args.subscriptions)
                for j in range(per_slice)
            ][: args.batch]
            response = await http.post("/ngsi-ld/v1/entityOperations/upsert", json=body)
            assert response.status_code in (201, 204), response.text[:300]
            sent += len(body)
            batch_no += 1
        writing = time.perf_counter() - started
        stopped = time.perf_counter()
        receiver.expected = sent
        if receiver.items < sent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receiver.all_in.wait(), timeout=120)
        drained = time.perf_counter() - stopped
    await receiver.stop()
    latencies = sorted(receiver.latencies)
    return {
        "rate": sent / writing,
        "sent": sent,
        "received": receiver.items,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
        "drain": drained,
        "baseline_p50": statistics.median(baseline),
    }


def report(label: str, figures: dict[str, float], args: argparse.Namespace) -> None:
    print(f"\n{label}: {args.subscriptions} subscriptions, asked {args.rate} updates/s for {args.seconds} s")
    print(f"  writes reached      {figures['rate']:10.0f} updates/s ({figures['sent']:.0f} sent)")
    print(f"  notified entities   {figures['received']:10.0f}")
    print(f"  latency p50 / p99   {figures['p50']:10.1f} / {figures['p99']:.1f} ms (write start → receiver)")
    print(f"  queue drained in    {figures['drain']:10.2f} s after the writer stopped")
    print(f"  baseline            {figures['baseline_p50']:10.2f} ms p50 (empty POST to the same receiver)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--subscriptions", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
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
