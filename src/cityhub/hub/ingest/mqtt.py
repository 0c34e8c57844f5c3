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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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


def _bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


#: Most packets taken from the socket in one turn of the event loop.
READ_BURST = 256


class _Client(aiomqtt.Client):
    """aiomqtt reads one MQTT packet per turn of the event loop; a gateway taking thousands of
    small messages a second reads what has arrived, up to :data:`READ_BURST` packets, at once."""

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        super()._on_socket_open(client, userdata, sock)

        def read() -> None:
            try:
                for _ in range(READ_BURST):
                    if client._sock is None:
                        return
                    rc = client._packet_read()
                    if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                        return
                    if rc > 0:
                        client._loop_rc_handle(rc)
                        return
            except Exception as error:  # a broken connection: as aiomqtt does, disconnect
                if not self._disconnected.done():
                    self._disconnected.set_exception(error)

        def replace_reader() -> None:  # runs after aiomqtt's own add_reader, on the loop
            self._loop.remove_reader(sock.fileno())
            self._loop.add_reader(sock.fileno(), read)

        self._loop.call_soon_threadsafe(replace_reader)


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
        self._client: aiomqtt.Client | None = None
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
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(topic, payload, qos=1)
        except aiomqtt.MqttError as error:
            log.warning("MQTT publish to %s failed: %s", topic, error)
            return False
        return True

    def _new_client(self) -> aiomqtt.Client:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.session_expiry
        properties.ReceiveMaximum = self.receive_maximum
        client = _Client(
            self.host,
            self.port,
            identifier=self.client_id,
            username=self.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
            tls_params=aiomqtt.TLSParameters() if self.tls else None,
            timeout=10,
        )
        # aiomqtt has no switch for it: paho's manual acknowledgement, so that PUBACK waits for
        # the write (see _handle)
        client._client.manual_ack_set(True)
        return client

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                client = self._new_client()
                async with client:
                    for topic in SUBSCRIPTIONS:
                        await client.subscribe(topic, qos=1)
                    self._client = client
                    self.connections += 1
                    self.connected.set()
                    log.info("MQTT gateway connected to %s:%d as %s", self.host, self.port, self.client_id)
                    delay = 0.5
                    async for message in client.messages:
                        await self._handle(client, message)
            except Exception as error:  # never let the gateway die: a lost connection, a database
                # that failed while a message was in hand (it was not acknowledged and comes again)
                log.warning(
                    "MQTT connection to %s:%d lost: %s; again in %.1fs", self.host, self.port, error, delay
                )
            finally:
                self._client = None
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = _bytes(message.payload)
        topic = parse_topic(message.topic.value)
        if topic is None:  # not one of ours (the subscriptions only match ours): nothing to keep
            self._ack(client, message)
            return
        try:
            if topic.kind == "cmdexe":
                await self.on_command_result(
                    topic.apikey, topic.device_id, payload, topic.fmt, message.topic.value
                )
                self._ack(client, message)
                return
            outcome = await self.gateway.receive(
                "mqtt",
                topic.apikey,
                topic.device_id,
                payload,
                fmt=topic.fmt,
                object_id=topic.object_id,
                source=message.topic.value,
            )
        except Exception as error:
            log.exception(
                "MQTT message on %s not taken; reconnecting so that it comes again", message.topic.value
            )
            raise aiomqtt.MqttError(f"message not taken: {error}") from error
        outcome.add_done_callback(lambda done: self._acked(client, message, done))

    def _acked(
        self, client: aiomqtt.Client, message: aiomqtt.Message, done: asyncio.Future[Letter | None]
    ) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # not stored: the MQTT broker sends it again after the next reconnect
        self._ack(client, message)

    @staticmethod
    def _ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        if message.qos > 0 and client is not None:
            client._client.ack(message.mid, message.qos)
