"""The gateway's MQTT 5 client against the real Mosquitto on 127.0.0.1:1883: messages with
properties and of every size arrive whole, a message not acknowledged comes again in the
persistent session, an acknowledged one does not."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
import uvloop
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cityhub.hub.ingest import wire
from tests.processes import free_port

pytestmark = pytest.mark.mqtt


class Received:
    def __init__(self) -> None:
        self.items: list[tuple[str, bytes, int]] = []
        self.arrived = asyncio.Event()
        self.acking: wire.Connection | None = None  # acknowledges each at once when set

    def __call__(self, topic: str, payload: bytes, packet_id: int) -> None:
        self.items.append((topic, payload, packet_id))
        self.arrived.set()
        if self.acking is not None:
            self.acking.ack(packet_id)

    async def count(self, wanted: int) -> list[tuple[str, bytes, int]]:
        async with asyncio.timeout(20):
            while len(self.items) < wanted:
                self.arrived.clear()
                await self.arrived.wait()
        return self.items


def options(client_id: str) -> wire.Options:
    return wire.Options("127.0.0.1", 1883, client_id, session_expiry=60, receive_maximum=100)


async def test_messages_with_properties_and_of_any_size_arrive_whole() -> None:
    prefix = f"wire-{uuid.uuid4().hex[:8]}"
    received = Received()
    connection = await wire.connect(options(f"{prefix}-hub"), received)
    try:
        await connection.subscribe([f"/{prefix}/+/attrs"])
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.UserProperty = [("origin", "sensor"), ("batch", "7")]
        properties.ContentType = "text/plain"
        properties.MessageExpiryInterval = 600
        sizes = [0, 1, 100, 200, 20_000, 300_000]  # one- to three-byte lengths, several reads
        async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as device:
            for number, size in enumerate(sizes):
                body = bytes((number + index) % 251 for index in range(size))
                await device.publish(f"/{prefix}/d{number}/attrs", body, qos=1, properties=properties)
            await device.publish(f"/{prefix}/q0/attrs", b"t|1", qos=0)
        items = await received.count(len(sizes) + 1)
        for number, size in enumerate(sizes):
            topic, payload, packet_id = items[number]
            assert topic == f"/{prefix}/d{number}/attrs"
            assert payload == bytes((number + index) % 251 for index in range(size))
            assert packet_id > 0
            connection.ack(packet_id)
        assert items[-1] == (f"/{prefix}/q0/attrs", b"t|1", 0)
        # many at once (commands to a whole district): no more in flight than the server takes
        received.acking = connection
        await asyncio.gather(
            *(connection.publish(f"/{prefix}/out/attrs", f"c|{n}".encode()) for n in range(300))
        )
        items = await received.count(len(sizes) + 1 + 300)
        assert sorted(payload for _, payload, _ in items[len(sizes) + 1 :]) == sorted(
            f"c|{n}".encode() for n in range(300)
        )
    finally:
        connection.close()


async def test_what_is_not_acknowledged_comes_again_and_nothing_else() -> None:
    prefix = f"wire-{uuid.uuid4().hex[:8]}"
    client_id = f"{prefix}-hub"
    first = Received()
    connection = await wire.connect(options(client_id), first)
    await connection.subscribe([f"/{prefix}/+/attrs"])
    async with aiomqtt.Client("127.0.0.1", 1883) as device:
        for number in range(4):
            await device.publish(f"/{prefix}/d/attrs", f"t|{number}".encode(), qos=1)
    items = await first.count(4)
    connection.ack(items[0][2])
    connection.ack(items[1][2])
    await asyncio.sleep(0)  # the PUBACKs go out at the end of the loop's turn
    connection.close()
    await asyncio.sleep(0.5)

    again = Received()
    connection = await wire.connect(options(client_id), again)
    try:
        assert connection.session_present
        resent = await again.count(2)
        assert sorted(payload for _, payload, _ in resent) == [b"t|2", b"t|3"]
        for _, _, packet_id in resent:
            connection.ack(packet_id)
        await asyncio.sleep(1)
        assert len(again.items) == 2
    finally:
        connection.close()


def test_on_uvloop_as_the_hub_serves() -> None:
    """``cityhub serve`` runs on uvloop, whose transports are not asyncio's classes."""

    async def round_trip() -> list[tuple[str, bytes, int]]:
        prefix = f"wire-{uuid.uuid4().hex[:8]}"
        received = Received()
        connection = await wire.connect(options(f"{prefix}-hub"), received)
        try:
            await connection.subscribe([f"/{prefix}/+/attrs"])
            await connection.publish(f"/{prefix}/d/attrs", b"t|1")
            items = await received.count(1)
            connection.ack(items[0][2])
            return items
        finally:
            connection.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        items = runner.run(round_trip())
    assert items[0][0].endswith("/d/attrs")
    assert items[0][1] == b"t|1"


@pytest.fixture
def closed_broker(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto of its own that lets no anonymous client in; yields its port."""
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\nuser root\n")
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield port
    finally:
        broker.kill()
        broker.wait(timeout=10)


async def test_a_refused_connection_says_why(closed_broker: int) -> None:
    with pytest.raises(wire.MqttProtocolError, match="refused, reason code 0x87"):
        await wire.connect(wire.Options("127.0.0.1", closed_broker, "a-stranger"), Received())
