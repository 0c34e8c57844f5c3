"""The MQTT gateway: subscribes to the topics FIWARE's IoT Agents use on a real MQTT broker.

Topics (``<apikey>`` and ``<device_id>`` as provisioned)::

    /<apikey>/<device_id>/attrs                measures (JSON or UltraLight: the device's protocol,
    /<apikey>/<device_id>/attrs/<object_id>    else told apart by the first character); one measure
    /<apikey>/<device_id>/cmdexe               a command's result
    /ul/<apikey>/<device_id>/...               the same, UltraLight whatever the provisioning says
    /json/<apikey>/<device_id>/...             the same, JSON
    /<apikey>/<device_id>/cmd                  commands to the device (published by the hub)

Messages are taken with QoS 1 and acknowledged (PUBACK) only once written to the broker's store,
or kept as dead letters: a message the hub has not acknowledged is sent again by the MQTT broker
after a reconnect. The hub connects with MQTT 5, a stable client id and a persistent session
(clean start off, kept ``CITYHUB_MQTT_SESSION_EXPIRY`` seconds), so the broker also keeps what
devices publish while the hub is away. When the connection drops, the gateway reconnects with
back-off (0.5 s doubling to 30 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cityhub.hub.ingest import wire
from cityhub.hub.ingest.gateway import Gateway
from cityhub.hub.ingest.tasks import Letter

log = logging.getLogger(__name__)

SUBSCRIPTIONS = [
    f"{prefix}/+/+/{leaf}" for prefix in ("", "/ul", "/json") for leaf in ("attrs", "attrs/+", "cmdexe")
]

CommandResult = Callable[[str, str, bytes, str | None, str], Awaitable[Letter | None]]


@dataclass(frozen=True)
class Topic:
    fmt: str | None
    apikey: str
    device_id: str
    kind: str  # attrs or cmdexe
    object_id: str | None = None


def parse_topic(topic: str) -> Topic | None:
    levels = topic.split("/")
    if len(levels) < 4 or levels[0] != "":
        return None
    fmt = None
    if levels[1] in ("ul", "json") and len(levels) >= 5 and levels[4] in ("attrs", "cmdexe"):
        fmt = levels[1].upper()
        levels = levels[1:]
    _, apikey, device_id, kind, *rest = levels
    if kind == "attrs" and len(rest) <= 1:
        return Topic(fmt, apikey, device_id, kind, rest[0] if rest else None)
    if kind == "cmdexe" and not rest:
        return Topic(fmt, apikey, device_id, kind)
    return None


class _Inbox:
    """What a connection parsed, in arrival order: (topic, payload, packet id). Its length is
    bounded by the receive maximum the gateway announces (QoS 1 messages unacknowledged)."""

    def __init__(self) -> None:
        self.items: deque[tuple[str, bytes, int]] = deque()
        self.arrived = asyncio.Event()

    def put(self, topic: str, payload: bytes, packet_id: int) -> None:
        self.items.append((topic, payload, packet_id))
        self.arrived.set()


class MqttGateway:
    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        receive_maximum: int,
        session_expiry: int,
        gateway: Gateway,
        on_command_result: CommandResult,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.tls = parts.scheme == "mqtts"
        self.username = parts.username
        self.password = parts.password
        self.client_id = client_id
        self.receive_maximum = receive_maximum
        self.session_expiry = session_expiry
        self.gateway = gateway
        self.on_command_result = on_command_result
        self.connected = asyncio.Event()
        self.connections = 0
        self._connection: wire.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, wait: float = 5.0) -> None:
        """Connect in the background; wait up to ``wait`` seconds for the first connection (the
        hub starts anyway without it, and keeps trying)."""
        self._task = asyncio.create_task(self._run(), name="ingest-mqtt")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout=wait)
        if not self.connected.is_set():
            log.warning(
                "MQTT broker %s:%d not reachable yet; retrying in the background", self.host, self.port
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def publish(self, topic: str, payload: bytes) -> bool:
        """Publish with QoS 1; True once the MQTT broker has acknowledged it."""
        connection = self._connection
        if connection is None:
            return False
        try:
            await connection.publish(topic, payload)
        except (wire.MqttProtocolError, ConnectionError, TimeoutError) as error:
            log.warning("MQTT publish to %s failed: %s", topic, error)
            return False
        return True

    def _options(self) -> wire.Options:
        return wire.Options(
            host=self.host,
            port=self.port,
            client_id=self.client_id,
            username=self.username,
            password=self.password,
            tls=self.tls,
            session_expiry=self.session_expiry,
            receive_maximum=self.receive_maximum,
            clean_start=False,
        )

    async def _run(self) -> None:
        delay = 0.5
        while True:
            connection: wire.Connection | None = None
            inbox = _Inbox()
            try:
                connection = await wire.connect(self._options(), inbox.put)
                await connection.subscribe(SUBSCRIPTIONS, qos=1)
                self._connection = connection
                self.connections += 1
                self.connected.set()
                log.info("MQTT gateway connected to %s:%d as %s", self.host, self.port, self.client_id)
                delay = 0.5
                consumer = asyncio.create_task(self._consume(connection, inbox))
                try:
                    await asyncio.wait({consumer, connection.closed}, return_when=asyncio.FIRST_COMPLETED)
                    if consumer.done():
                        consumer.result()
                    connection.closed.result()
                    raise ConnectionResetError("the MQTT broker closed the connection")
                finally:
                    consumer.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await consumer
            except Exception as error:  # never let the gateway die: a lost connection, a database
                # that failed while a message was in hand (it was not acknowledged and comes again)
                log.warning(
                    "MQTT connection to %s:%d lost: %s; again in %.1fs", self.host, self.port, error, delay
                )
            finally:
                self._connection = None
                self.connected.clear()
                if connection is not None:
                    connection.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _consume(self, connection: wire.Connection, inbox: _Inbox) -> None:
        items = inbox.items
        while True:
            await inbox.arrived.wait()
            inbox.arrived.clear()
            while items:
                topic, payload, packet_id = items.popleft()
                await self._handle(connection, topic, payload, packet_id)

    async def _handle(self, connection: wire.Connection, name: str, payload: bytes, packet_id: int) -> None:
        topic = parse_topic(name)
        if topic is None:  # not one of ours (the subscriptions only match ours): nothing to keep
            connection.ack(packet_id)
            return
        try:
            if topic.kind == "cmdexe":
                await self.on_command_result(topic.apikey, topic.device_id, payload, topic.fmt, name)
                connection.ack(packet_id)
                return
            outcome = await self.gateway.receive(
                "mqtt",
                topic.apikey,
                topic.device_id,
                payload,
                fmt=topic.fmt,
                object_id=topic.object_id,
                source=name,
            )
        except Exception as error:
            log.exception("MQTT message on %s not taken; reconnecting so that it comes again", name)
            raise wire.MqttProtocolError(f"message not taken: {error}") from error
        if packet_id:
            outcome.add_done_callback(lambda done: _acked(connection, packet_id, done))


def _acked(connection: wire.Connection, packet_id: int, done: asyncio.Future[Letter | None]) -> None:
    if done.cancelled() or done.exception() is not None:
        return  # not stored: the MQTT broker sends it again after the next reconnect
    connection.ack(packet_id)
