"""A small MQTT 5 client for the gateway's receive path, on an asyncio protocol.

The gateway takes thousands of small QoS 1 messages a second and acknowledges each only after its
write. A general-purpose client (paho under aiomqtt) builds a properties object, a message object
and a queue entry per message, and reads one packet per turn of the event loop; this one parses
every complete packet of a read at once, hands the gateway (topic, payload, packet id) and skips
a PUBLISH's properties without decoding them (the hub declares no topic aliases, so none it needs
can be there). PUBACKs are gathered and written once per turn of the loop.

What it speaks: CONNECT (MQTT 5, clean start off, session expiry, receive maximum, user name and
password), SUBSCRIBE (QoS 1), PUBLISH in (QoS 0 and 1) and out (QoS 1, for commands), PUBACK both
ways, PINGREQ, DISCONNECT. Anything else from the server closes the connection (the gateway
reconnects, and the server sends again what was not acknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

#: Size in bytes of each fixed-size property's value (MQTT 5, section 2.2.2.2); the others are
#: variable byte integers (0x0B), length-prefixed (strings, binary data) or string pairs (0x26).
_FIXED = {0x01: 1, 0x17: 1, 0x19: 1, 0x24: 1, 0x25: 1, 0x28: 1, 0x29: 1, 0x2A: 1}
_FIXED |= {0x13: 2, 0x21: 2, 0x22: 2, 0x23: 2, 0x02: 4, 0x11: 4, 0x18: 4, 0x27: 4}
_PREFIXED = {0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F}
#: Most unparsed bytes kept from the server (a packet larger than this closes the connection).
MAX_PACKET = 16 * 1024 * 1024


class MqttProtocolError(Exception):
    """The server refused something, or sent what this client does not speak."""


def varint(value: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes | bytearray | memoryview, at: int) -> tuple[int, int] | None:
    """(value, position after it), or None when ``data`` ends first."""
    value, shift = 0, 0
    for index in range(at, min(at + 4, len(data))):
        digit = data[index]
        value |= (digit & 0x7F) << shift
        if not digit & 0x80:
            return value, index + 1
        shift += 7
    if len(data) - at >= 4:
        raise MqttProtocolError("malformed variable byte integer")
    return None


def encode_string(text: str) -> bytes:
    """An MQTT UTF-8 string: its length in two bytes, then its bytes."""
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + varint(len(body)) + body


def properties(data: bytes) -> dict[int, int | bytes]:
    """Decode a properties block (without its length): identifier → integer or raw bytes (user
    properties, which may repeat, are skipped)."""
    found: dict[int, int | bytes] = {}
    at = 0
    while at < len(data):
        ident = data[at]
        at += 1
        if ident in _FIXED:
            size = _FIXED[ident]
            found[ident] = int.from_bytes(data[at : at + size], "big")
            at += size
        elif ident == 0x0B:
            parsed = read_varint(data, at)
            if parsed is None:
                raise MqttProtocolError("truncated property")
            found[ident], at = parsed
        elif ident in _PREFIXED:
            size = int.from_bytes(data[at : at + 2], "big")
            found[ident] = bytes(data[at + 2 : at + 2 + size])
            at += 2 + size
        elif ident == 0x26:
            for _ in range(2):
                at += 2 + int.from_bytes(data[at : at + 2], "big")
        else:
            raise MqttProtocolError(f"unknown property 0x{ident:02x}")
    return found


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    tls: bool = False
    keep_alive: int = 60
    session_expiry: int = 0
    receive_maximum: int = 65535
    clean_start: bool = False


#: Called with (topic, payload, packet id or 0 for QoS 0) for every message, in arrival order.
OnMessage = Callable[[str, bytes, int], None]


class Connection(asyncio.Protocol):
    """One connection to an MQTT broker; see :func:`connect`."""

    def __init__(self, options: Options, on_message: OnMessage) -> None:
        self.options = options
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._connack: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting: dict[int, asyncio.Future[bytes]] = {}  # packet id → SUBACK / PUBACK body
        self._next_id = 0
        self._acks = bytearray()
        self._flush_planned = False
        self._heard = time.monotonic()
        self._pinger: asyncio.Task[None] | None = None
        self.keep_alive = options.keep_alive
        self.session_present = False
        #: QoS 1 messages this client may have unacknowledged at the server (its receive maximum)
        self._room = asyncio.Semaphore(65535)

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have what is used here
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        error = exc or ConnectionResetError("the MQTT broker closed the connection")
        pending: list[asyncio.Future[Any]] = [self._connack, *self._waiting.values()]
        for future in pending:
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()
        if self._pinger is not None:
            self._pinger.cancel()
        if not self.closed.done():
            if exc is None:
                self.closed.set_result(None)
            else:
                self.closed.set_exception(error)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        self._heard = time.monotonic()
        at = 0
        end = len(buffer)
        try:
            while end - at >= 2:
                first = buffer[at]
                if buffer[at + 1] < 0x80:  # the common case: a packet under 128 bytes
                    size, start = buffer[at + 1], at + 2
                else:
                    parsed = read_varint(buffer, at + 1)
                    if parsed is None:
                        break
                    size, start = parsed
                    if size > MAX_PACKET:
                        raise MqttProtocolError(f"a packet of {size} bytes")
                if start + size > end:
                    break
                at = start + size
                if first >> 4 == PUBLISH:
                    self._publish(first, buffer, start, at)
                else:
                    self._control(first >> 4, bytes(buffer[start:at]))
        except Exception as error:
            self.abort(error)
            return
        del buffer[:at]

    # -- packets in ---------------------------------------------------------------------------

    def _publish(self, first: int, buffer: bytearray, start: int, end: int) -> None:
        qos = (first >> 1) & 0x03
        topic_end = start + 2 + (buffer[start] << 8 | buffer[start + 1])
        topic = buffer[start + 2 : topic_end].decode()
        at = topic_end
        packet_id = 0
        if qos:
            if qos > 1:
                raise MqttProtocolError("a QoS 2 message (the gateway subscribes with QoS 1)")
            packet_id = buffer[at] << 8 | buffer[at + 1]
            at += 2
        if buffer[at] < 0x80:
            at += 1 + buffer[at]  # properties skipped
        else:
            parsed = read_varint(buffer, at)
            assert parsed is not None  # the packet is complete
            at = parsed[1] + parsed[0]
        self.on_message(topic, bytes(buffer[at:end]), packet_id)

    def _control(self, kind: int, body: bytes) -> None:
        if kind == CONNACK:
            if len(body) < 2:
                raise MqttProtocolError("short CONNACK")
            if body[1] >= 0x80:
                raise MqttProtocolError(f"connection refused, reason code 0x{body[1]:02x}")
            self.session_present = bool(body[0] & 0x01)
            parsed = read_varint(body, 2)
            if parsed is not None:
                size, at = parsed
                found = properties(body[at : at + size])
                keep_alive, room = found.get(0x13), found.get(0x21)
                if isinstance(keep_alive, int):
                    self.keep_alive = keep_alive
                if isinstance(room, int) and room > 0:  # the server's receive maximum
                    self._room = asyncio.Semaphore(room)
            if not self._connack.done():
                self._connack.set_result(self.session_present)
        elif kind in (PUBACK, SUBACK):
            packet_id = int.from_bytes(body[:2], "big")
            future = self._waiting.pop(packet_id, None)
            if future is not None and not future.done():
                future.set_result(body[2:])
        elif kind == PINGRESP:
            pass
        elif kind == DISCONNECT:
            reason = body[0] if body else 0
            raise MqttProtocolError(f"the MQTT broker disconnected, reason code 0x{reason:02x}")
        else:
            raise MqttProtocolError(f"unexpected packet type {kind}")

    # -- packets out --------------------------------------------------------------------------

    def ack(self, packet_id: int) -> None:
        """Acknowledge a QoS 1 message (PUBACK, success); written with the others of this turn."""
        if not packet_id or self.transport is None:
            return
        self._acks += b"\x40\x02" + packet_id.to_bytes(2, "big")
        if not self._flush_planned:
            self._flush_planned = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_planned = False
        if self.transport is not None and self._acks:
            self.transport.write(bytes(self._acks))
        self._acks.clear()

    def _send(self, data: bytes) -> None:
        if self.transport is None:
            raise ConnectionResetError("not connected to the MQTT broker")
        self._flush()  # PUBACKs already due go first
        self.transport.write(data)

    def _packet_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._waiting:
                return self._next_id
        raise MqttProtocolError("no free packet identifier")

    async def _request(self, kind: int, flags: int, body: Callable[[int], bytes], timeout: float) -> bytes:
        packet_id = self._packet_id()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[packet_id] = future
        try:
            self._send(_packet(kind, flags, body(packet_id)))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(packet_id, None)

    async def handshake(self, timeout: float) -> None:
        options = self.options
        flags = 0x02 if options.clean_start else 0
        props = b""
        if options.session_expiry:
            props += b"\x11" + options.session_expiry.to_bytes(4, "big")
        if options.receive_maximum < 65535:
            props += b"\x21" + options.receive_maximum.to_bytes(2, "big")
        payload = encode_string(options.client_id)
        if options.username is not None:
            flags |= 0x80
            payload += encode_string(options.username)
        if options.password is not None:
            flags |= 0x40
            payload += encode_string(options.password)
        header = encode_string("MQTT") + bytes([5, flags]) + options.keep_alive.to_bytes(2, "big")
        self._send(_packet(CONNECT, 0, header + varint(len(props)) + props + payload))
        await asyncio.wait_for(asyncio.shield(self._connack), timeout)
        if self.keep_alive:
            self._pinger = asyncio.create_task(self._ping(), name="mqtt-ping")

    async def subscribe(self, filters: list[str], qos: int = 1, timeout: float = 10.0) -> None:
        """Subscribe to every filter in one SUBSCRIBE; raises if the server refuses one."""
        topics = b"".join(encode_string(item) + bytes([qos]) for item in filters)
        codes = await self._request(
            SUBSCRIBE, 0x02, lambda pid: pid.to_bytes(2, "big") + b"\x00" + topics, timeout
        )
        parsed = read_varint(codes, 0)
        if parsed is None:
            raise MqttProtocolError("short SUBACK")
        size, at = parsed
        refused = [item for item, code in zip(filters, codes[at + size :], strict=False) if code >= 0x80]
        if refused or len(codes) - at - size < len(filters):
            raise MqttProtocolError(f"subscription refused: {refused or filters}")

    async def publish(self, topic: str, payload: bytes, timeout: float = 10.0) -> None:
        """Publish with QoS 1; returns once the server acknowledged it (raises if it refused)."""
        name = encode_string(topic)
        async with self._room:
            reply = await self._request(
                PUBLISH, 0x02, lambda pid: name + pid.to_bytes(2, "big") + b"\x00" + payload, timeout
            )
        if reply and reply[0] >= 0x80:
            raise MqttProtocolError(f"publish to {topic} refused, reason code 0x{reply[0]:02x}")

    async def _ping(self) -> None:
        interval = max(1.0, self.keep_alive / 2)
        while self.transport is not None:
            await asyncio.sleep(interval)
            if time.monotonic() - self._heard > self.keep_alive * 1.5:
                self.abort(TimeoutError("the MQTT broker stopped answering"))
                return
            with contextlib.suppress(ConnectionError):
                self._send(b"\xc0\x00")

    def abort(self, error: Exception) -> None:
        """Close at once; whoever waits (the handshake, a subscription, a publish) gets ``error``."""
        pending: list[asyncio.Future[Any]] = [self.closed, self._connack, *self._waiting.values()]
        for future in pending:
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """DISCONNECT (normal) and close; what is unacknowledged stays in the session."""
        if self.transport is not None:
            with contextlib.suppress(ConnectionError):
                self._send(b"\xe0\x00")
            self.transport.close()
        if not self.closed.done():
            self.closed.set_result(None)


async def connect(options: Options, on_message: OnMessage, timeout: float = 10.0) -> Connection:
    """Open a connection and complete the MQTT handshake (CONNECT, CONNACK)."""
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if options.tls else None
    _, connection = await asyncio.wait_for(
        loop.create_connection(
            lambda: Connection(options, on_message), options.host, options.port, ssl=context
        ),
        timeout,
    )
    try:
        await connection.handshake(timeout)
    except BaseException:
        if connection.transport is not None:
            connection.transport.abort()
        for future in (connection.closed, connection._connack):  # the caller gets the error
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()
        raise
    return connection
