"""The simulator: walks simulated time, asks :mod:`cityhub.sim.streams` what each sensor reads,
and sends it like a device would, through the hub's real ingestion path.

Time: simulated time starts at ``start`` and runs ``speed`` times faster than the wall clock
(``speed=60``: a simulated hour each real minute); ``speed=0`` runs as fast as the hub takes the
messages (backfilling, tests). Each sensor reports every :data:`KINDS` interval, at a phase of its
own, stamped with the simulated time (``TimeInstant``).

Batching: every ``flush`` real seconds each sensor with something to say sends one message, a JSON
array of its readings since the last one (usually one; several when the simulation runs fast).
An impossible value (a fault) goes alone, so that only it ends as a dead letter. Silent sensors
send nothing while silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from cityhub.sim import streams
from cityhub.sim.city import KINDS, City, Sensor
from cityhub.sim.seed import apikey

log = logging.getLogger("cityhub.sim")

#: Simulated seconds between two steps of the clock.
STEP = 60


@dataclass(frozen=True)
class Message:
    """What one device sends at once: one or more measure groups, each with its ``TimeInstant``."""

    apikey: str
    device_id: str
    readings: tuple[dict[str, Any], ...]

    def payload(self) -> bytes:
        body: Any = self.readings[0] if len(self.readings) == 1 else list(self.readings)
        return orjson.dumps(body)


@dataclass
class Tally:
    messages: int = 0
    readings: int = 0
    refused: int = 0
    failed: int = 0
    faults: int = 0
    silences: int = 0
    refusals: dict[str, int] = field(default_factory=dict)


class Sender(Protocol):
    async def send(self, messages: Sequence[Message], tally: Tally) -> None: ...


class HttpSender:
    """``POST /iot/json?k=…&i=…``, several at once. A refusal (4xx, a dead letter in the hub) is
    counted; an unreachable hub is logged and the messages are dropped (devices do not queue)."""

    def __init__(self, client: httpx.AsyncClient, concurrency: int = 64) -> None:
        self.client = client
        self.concurrency = concurrency

    async def send(self, messages: Sequence[Message], tally: Tally) -> None:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(message: Message) -> None:
            async with gate:
                try:
                    response = await self.client.post(
                        "/iot/json",
                        params={"k": message.apikey, "i": message.device_id},
                        content=message.payload(),
                        headers={"Content-Type": "application/json"},
                    )
                except httpx.HTTPError as error:
                    tally.failed += 1
                    unsent.append(f"{type(error).__name__}: {error}")
                    return
            if response.status_code >= 500:
                tally.failed += 1
                log.warning("demo: %s answered %s", message.device_id, response.status_code)
            elif response.status_code >= 400:
                tally.refused += 1
                reason = _reason(response)
                tally.refusals[reason] = tally.refusals.get(reason, 0) + 1

        unsent: list[str] = []
        await asyncio.gather(*(one(m) for m in messages))
        if unsent:
            log.warning("demo: %d of %d messages not sent (%s)", len(unsent), len(messages), unsent[0])


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json().get("reason", response.status_code))
    except ValueError:
        return str(response.status_code)


class MqttSender:
    """Publishes on ``/json/<apikey>/<device_id>/attrs`` with QoS 1 (use as an async context)."""

    def __init__(self, url: str) -> None:
        import aiomqtt

        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"{url!r}: an MQTT URL reads mqtt://host:port or mqtts://host:port")
        self._client = aiomqtt.Client(
            parts.hostname or "127.0.0.1",
            parts.port or (8883 if parts.scheme == "mqtts" else 1883),
            username=parts.username,
            password=parts.password,
            tls_params=aiomqtt.TLSParameters() if parts.scheme == "mqtts" else None,
            identifier=f"cityhub-demo-{int(time.time())}",
        )

    async def __aenter__(self) -> MqttSender:
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.__aexit__(None, None, None)

    async def send(self, messages: Sequence[Message], tally: Tally) -> None:
        for message in messages:
            topic = f"/json/{message.apikey}/{message.device_id}/attrs"
            await self._client.publish(topic, message.payload(), qos=1)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Simulator:
    """Generates the city's streams from ``start`` on; :meth:`run` sends them with ``sender``."""

    def __init__(
        self,
        city: City,
        sender: Sender,
        *,
        seed: int = 42,
        start: datetime | None = None,
        speed: float = 60.0,
        flush: float = 2.0,
        conditions: streams.Conditions | None = None,
        kinds: Sequence[str] | None = None,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be 0 (as fast as possible) or more")
        self.city = city
        self.sender = sender
        self.seed = seed
        moment = start or datetime.now(UTC)
        self.start = moment.replace(second=0, microsecond=0)
        self.speed = speed
        self.flush = flush
        self.conditions = conditions or streams.Conditions()
        self.sensors = [s for s in city.sensors if kinds is None or s.kind in kinds]
        self.tally = Tally()
        self.clock = self.start
        self._silent: set[str] = set()

    def _phase(self, sensor: Sensor) -> int:
        interval = KINDS[sensor.kind][1]
        return int(streams.uniform("phase", self.seed, sensor.device_id) * interval) // STEP * STEP

    def due(self, sensor: Sensor, after: datetime, until: datetime) -> list[datetime]:
        """The sensor's report times in (``after``, ``until``]."""
        interval = KINDS[sensor.kind][1]
        phase = self._phase(sensor)
        base = streams.EPOCH + timedelta(seconds=phase)
        first = math.floor((after - base).total_seconds() / interval) + 1
        found = []
        k = first
        while (at := base + timedelta(seconds=k * interval)) <= until:
            found.append(at)
            k += 1
        return found

    def messages(self, after: datetime, until: datetime) -> list[Message]:
        """What the sensors send for the simulated interval (``after``, ``until``]."""
        out: list[Message] = []
        for sensor in self.sensors:
            interval = KINDS[sensor.kind][1]
            key = apikey(sensor.kind, sensor.district)
            batch: list[dict[str, Any]] = []
            for at in self.due(sensor, after, until):
                if streams.silent(self.seed, sensor, at, self.conditions):
                    if sensor.device_id not in self._silent:
                        self._silent.add(sensor.device_id)
                        self.tally.silences += 1
                    continue
                self._silent.discard(sensor.device_id)
                if streams.faulty(self.seed, sensor, at, self.conditions):
                    fault = {"TimeInstant": _stamp(at), **streams.FAULTS[sensor.kind]}
                    out.append(Message(key, sensor.device_id, (fault,)))
                    self.tally.faults += 1
                    continue
                values = streams.reading(self.city, self.seed, sensor, at, interval)
                batch.append({"TimeInstant": _stamp(at), **values})
            if batch:
                out.append(Message(key, sensor.device_id, tuple(batch)))
        return out

    async def run(
        self,
        duration: timedelta | None = None,
        *,
        stop: asyncio.Event | None = None,
        on_flush: Callable[[datetime, Tally], None] | None = None,
    ) -> Tally:
        """Run until ``duration`` of simulated time has passed, or ``stop`` is set (or forever)."""
        end = self.start + duration if duration is not None else None
        began = time.monotonic()
        sent_until = self.start - timedelta(seconds=1)
        while end is None or sent_until < end:
            if stop is not None and stop.is_set():
                break
            if self.speed == 0:
                target = sent_until + timedelta(hours=1)
            else:
                await self._pause(stop)
                elapsed = time.monotonic() - began
                target = self.start + timedelta(seconds=elapsed * self.speed)
            if end is not None:
                target = min(target, end)
            if target <= sent_until:
                continue
            batch = self.messages(sent_until, target)
            sent_until = target
            self.clock = target
            if batch:
                await self.sender.send(batch, self.tally)
                self.tally.messages += len(batch)
                self.tally.readings += sum(len(m.readings) for m in batch)
            if on_flush is not None:
                on_flush(target, self.tally)
        return self.tally

    async def _pause(self, stop: asyncio.Event | None) -> None:
        if stop is None:
            await asyncio.sleep(self.flush)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.flush)
