"""Several hub processes on one stream, a NATS outage with the outbox, and a crash after commit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.bus import Bus, Event, InProcessBus, OutboxMessage, OutboxRelay, enqueue
from cityhub.bus.nats import NatsBus
from cityhub.bus.outbox import WAKE_KEY
from cityhub.config import Settings
from cityhub.kit.db import create_engine, session_factory
from tests.bus.support import delete_stream, jetstream_client, recorder, unique_stream, wait_until
from tests.bus.worker import ClusterPing
from tests.conftest import NATS_URL

REPO_ROOT = Path(__file__).resolve().parents[2]
NATS_SERVER = "/usr/sbin/nats-server"


class OutageNoted(Event):
    event_type = "test.nats_cluster.outage_noted"

    n: int


class CrashSurvived(Event):
    event_type = "test.nats_cluster.crash_survived"

    n: int


# -- two hub processes --------------------------------------------------------------------------


class Worker:
    """A ``tests.bus.worker`` subprocess and the JSON lines it has printed so far."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log
        self.lines: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, stream: str, instance: str, log: Path) -> Worker:
        with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.bus.worker",
                *("--url", NATS_URL, "--stream", stream, "--instance", instance, "--seconds", "120"),
                cwd=REPO_ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        return cls(process, log)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(json.loads(line))

    @property
    def ready(self) -> bool:
        return any(line.get("ready") for line in self.lines)

    def handled(self, consumer: str) -> list[str]:
        return [line["event_id"] for line in self.lines if line.get("consumer") == consumer]


@pytest.mark.nats
@pytest.mark.slow
async def test_two_processes_share_and_broadcast(
    make_bus: Callable[..., NatsBus], stream: str, tmp_path: Path
) -> None:
    """Across two hub processes a shared consumer handles each event exactly once, and a broadcast
    consumer handles every event in each process."""
    workers: list[Worker] = []
    try:
        for name in ("alpha", "beta"):
            workers.append(await Worker.start(stream, name, tmp_path / f"{name}.log"))
        await wait_until(
            lambda: all(w.ready or w.process.returncode is not None for w in workers),
            what="both workers to be ready",
        )
        for worker in workers:
            assert worker.ready, worker.log.read_text()

        publisher = make_bus("publisher")
        await publisher.start()
        events = [ClusterPing(n=n) for n in range(20)]
        for event in events:
            await publisher.publish(event)
        ids = sorted(str(event.id) for event in events)

        def all_handled() -> bool:
            shared = {i for w in workers for i in w.handled("shared")}
            return shared == set(ids) and all(set(w.handled("broadcast")) == set(ids) for w in workers)

        await wait_until(all_handled, what="every event in both consumers")
        for worker in workers:  # stop them and read everything they printed, late duplicates included
            worker.process.terminate()
            assert await asyncio.wait_for(worker.process.wait(), 15) == 0, worker.log.read_text()
            await asyncio.wait_for(worker.reader, 15)

        assert sorted(i for w in workers for i in w.handled("shared")) == ids
        for worker in workers:
            assert sorted(worker.handled("broadcast")) == ids
    finally:
        for worker in workers:
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()
            worker.reader.cancel()


# -- the outbox: NATS outage, crash after commit ------------------------------------------------


@contextlib.asynccontextmanager
async def hub_outbox(
    database_url: str, bus: Bus
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], OutboxRelay]]:
    """Sessions, relay and bus wired as cityhub.app.Hub does (commits wake the relay), torn down after."""
    engine = create_engine(database_url)
    sessions = session_factory(engine, **{WAKE_KEY: lambda: relay.wake()})
    relay = OutboxRelay(sessions, bus, poll_interval=0.05, max_backoff=0.5)
    try:
        yield sessions, relay
    finally:
        await relay.stop()
        await bus.stop()
        await engine.dispose()


class NatsServer:
    """A private nats-server with JetStream, which the test can stop and start again."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory = directory
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            NATS_SERVER,
            *("-js", "-sd", str(self.directory / "store"), "-a", "127.0.0.1", "-p", str(self.port)),
            *("-l", str(self.directory / "nats.log")),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await wait_until(self._accepts, what=f"nats-server on port {self.port}")

    async def _accepts(self) -> bool:
        assert self.running, f"nats-server exited: {(self.directory / 'nats.log').read_text()}"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    async def stop(self) -> None:
        if self.process is not None and self.running:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 15)


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(tmp_path)
    await server.start()
    yield server
    await server.stop()


async def max_attempts(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.max(OutboxMessage.attempts))) or 0)


@pytest.mark.nats
@pytest.mark.slow
async def test_outbox_keeps_events_through_a_nats_outage(settings: Settings, nats_server: NatsServer) -> None:
    """With NATS down, commits still succeed and their events wait in the outbox; once the server
    is back (same port, same store) they are all delivered and the outbox drains. An event whose
    transaction rolled back is never published."""
    stream = unique_stream()
    bus = NatsBus(nats_server.url, stream=stream, instance_name="hub")
    received, handle = recorder()
    bus.subscribe("outage_audit", [OutageNoted], handle)
    try:
        async with hub_outbox(settings.database_url, bus) as (sessions, relay):
            await bus.start()
            await relay.start()
            before = OutageNoted(n=0)
            async with sessions() as session, session.begin():
                enqueue(session, before)
            await wait_until(lambda: before in received, what="the event sent before the outage")

            await nats_server.stop()
            rolled_back = OutageNoted(n=-1)
            async with sessions() as session:
                enqueue(session, rolled_back)
                await session.flush()
                await session.rollback()
            during = [OutageNoted(n=n) for n in range(1, 6)]
            for event in during:
                async with sessions() as session, session.begin():
                    enqueue(session, event)
            await wait_until(lambda: max_attempts(sessions), what="the relay to try while NATS is down")
            assert await relay.pending() == len(during)
            assert relay.bus_down_since is not None
            assert received == [before]

            await nats_server.start()

            async def drained() -> bool:
                return await relay.pending() == 0

            await wait_until(drained, timeout=30, what="the outbox to drain")
            expected = {e.id for e in [before, *during]}
            await wait_until(lambda: {e.id for e in received} == expected, what="every event")
            assert rolled_back not in received
            async with sessions() as session:
                assert await session.get(OutboxMessage, rolled_back.id) is None
            async with jetstream_client(nats_server.url) as js:
                assert (await js.stream_info(stream)).state.messages == len(expected)
    finally:
        if nats_server.running:
            await delete_stream(nats_server.url, stream)


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
def any_bus(request: pytest.FixtureRequest) -> Bus:
    if request.param == "memory":
        return InProcessBus()
    return request.getfixturevalue("make_bus")()


async def test_events_committed_before_a_crash_are_sent_after_restart(
    settings: Settings, any_bus: Bus
) -> None:
    """A process that died after commit but before publishing leaves its events in the outbox; the
    next process's relay delivers them, in order."""
    events = [CrashSurvived(n=n) for n in range(5)]
    engine = create_engine(settings.database_url)  # the process that dies: commits, never relays
    try:
        async with session_factory(engine)() as session, session.begin():
            enqueue(session, *events)
    finally:
        await engine.dispose()

    received, handle = recorder()
    any_bus.subscribe("crash_audit", [CrashSurvived], handle)
    async with hub_outbox(settings.database_url, any_bus) as (_, relay):
        assert await relay.pending() == len(events)
        await any_bus.start()
        await relay.start()

        async def drained() -> bool:
            return await relay.pending() == 0

        await wait_until(drained, what="the outbox to drain")
        await wait_until(lambda: len(received) >= len(events), what="every event")
        assert received == events
