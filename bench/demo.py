"""The demo city's streams into a hub on the embedded default (SQLite), as ``./dev up`` runs it.

    .venv/bin/python bench/demo.py [--hours 2] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

The script starts a hub as a real process (``cityhub serve``) on a new database (a SQLite file in
a temporary folder, or a new PostgreSQL database), seeds the demo city into it over HTTP (timed),
then streams ``--hours`` of simulated time of all 310 sensors as fast as the hub takes them
(``--speed 0``), twice:

- baseline: one HTTP message per reading, as a naive simulator (or a device per reading) sends;
- the simulator: one message per sensor per send, carrying its readings since the last one (at
  ``--speed 0`` a simulated hour of them), as ``cityhub demo`` does.

It prints readings per second for both and their ratio, and what the default demo (``--speed 60``)
needs in readings per second, against what the hub took one reading a message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from broker import _pg_database, _pg_drop

from cityhub import migrate
from cityhub.kit.db import create_engine
from cityhub.sim.city import KINDS, build_city
from cityhub.sim.runner import HttpSender, Message, Simulator, Tally
from cityhub.sim.seed import seed
from cityhub.sim.streams import Conditions


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OneByOne:
    """The baseline: every reading its own message."""

    def __init__(self, inner: HttpSender) -> None:
        self.inner = inner

    async def send(self, messages: Sequence[Message], tally: Tally) -> None:
        single = [Message(m.apikey, m.device_id, (r,)) for m in messages for r in m.readings]
        await self.inner.send(single, tally)


async def migrated(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def stream(
    client: httpx.AsyncClient, sender: object, start: datetime, hours: float
) -> tuple[int, float]:
    city = build_city(42)
    simulator = Simulator(city, sender, seed=42, start=start, speed=0, conditions=Conditions(0, 0))  # type: ignore[arg-type]
    began = time.perf_counter()
    tally = await simulator.run(timedelta(hours=hours))
    elapsed = time.perf_counter() - began
    if tally.refused or tally.failed:
        raise SystemExit(f"refused {tally.refused}, failed {tally.failed}: {tally.refusals}")
    return tally.readings, elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cityhub-bench-demo-"))
    if args.postgres:
        name, url, _ = await _pg_database(args.postgres)
    else:
        url, name = f"sqlite+aiosqlite:///{workdir / 'hub.db'}", None
    await migrated(url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHUB_")}
    env |= {"CITYHUB_DATABASE_URL": url, "CITYHUB_LOG_LEVEL": "WARNING"}
    log = (workdir / "hub.log").open("wb")
    hub = subprocess.Popen(  # noqa: ASYNC220 (started once, before anything runs)
        [sys.executable, "-m", "cityhub", "serve", "--port", str(port), "--no-migrate"],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for _ in range(300):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            city = build_city(42)
            began = time.perf_counter()
            report = await seed(client, city)
            seeding = time.perf_counter() - began
            sender = HttpSender(client)
            base_n, base_s = await stream(
                client, OneByOne(sender), datetime(2026, 11, 23, tzinfo=UTC), args.hours
            )
            sim_n, sim_s = await stream(client, sender, datetime(2026, 11, 24, tzinfo=UTC), args.hours)
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=30)
        if name is not None:
            await _pg_drop(args.postgres, name)
    needed = sum(60 / KINDS[s.kind][1] for s in city.sensors)
    base_rate, sim_rate = base_n / base_s, sim_n / sim_s
    database = "PostgreSQL" if args.postgres else "SQLite"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"database: {database}")
    print(
        f"seeding: {report.tenants} tenants, {report.groups} groups, {report.devices} devices, "
        f"{report.entities} entities in {seeding:.2f} s"
    )
    print(
        f"baseline, one reading a message: {base_n} readings in {base_s:.2f} s = {base_rate:,.0f} readings/s"
    )
    print(f"simulator, batched per sensor:   {sim_n} readings in {sim_s:.2f} s = {sim_rate:,.0f} readings/s")
    print(f"ratio (simulator / baseline): {sim_rate / base_rate:.2f}")
    print(
        f"the default demo (--speed 60) needs {needed:.1f} readings/s: "
        f"{base_rate / needed:.1f}× headroom one reading a message"
    )


if __name__ == "__main__":
    asyncio.run(main())
