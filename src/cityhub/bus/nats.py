"""NATS JetStream bus: several hub processes, one stream, at-least-once delivery.

Layout on the server:
- one stream (``CITYHUB`` by default) holding subjects ``<stream lower-case>.<event_type>``;
- one durable pull consumer per (subscription, event type). A shared subscription's consumer is
  named after the subscription, so every process pulls from the same consumer and each event is
  handled once in the cluster; a broadcast subscription's consumer is named after the subscription
  and the process (``instance_name``), so every process sees every event.

Events are published with ``Nats-Msg-Id`` set to the event id: the stream's duplicate window drops
a second copy when the outbox re-sends after a crash. Handlers ack after they succeed; a failure
is nak'ed with a growing delay and redelivered, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from cityhub.bus.base import Bus, BusUnavailable, Subscription
from cityhub.bus.events import Event, UnknownEventType, decode_event

log = logging.getLogger(__name__)

EVENT_TYPE_HEADER = "CityHub-Event-Type"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _token(text: str) -> str:
    return _UNSAFE.sub("_", text)


class NatsBus(Bus):
    backend = "nats"

    def __init__(
        self,
        url: str,
        *,
        stream: str = "CITYHUB",
        instance_name: str = "hub",
        max_age_days: float = 7.0,
        duplicate_window: float = 120.0,
        fetch_batch: int = 32,
        publish_timeout: float = 2.0,
        broadcast_inactive_threshold: float = 3600.0,
    ) -> None:
        super().__init__()
        self.url = url
        self.stream = stream
        self.subject_prefix = stream.lower()
        self.instance_name = _token(instance_name)
        self.max_age_days = max_age_days
        self.duplicate_window = duplicate_window
        self.fetch_batch = fetch_batch
        self.publish_timeout = publish_timeout
        self.broadcast_inactive_threshold = broadcast_inactive_threshold
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()

    def subject(self, event_type: str) -> str:
        return f"{self.subject_prefix}.{event_type}"

    def consumer_name(self, subscription: Subscription, event_type: str) -> str:
        base = subscription.name if subscription.shared else f"{subscription.name}-{self.instance_name}"
        return _token(f"{base}__{event_type}")

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and start consuming. If NATS is down the hub still starts: connecting goes on
        in the background, publishing raises :class:`BusUnavailable` meanwhile and the outbox keeps
        the events until NATS is back."""
        self._stopping.clear()
        self._tasks.append(asyncio.create_task(self._run(), name="nats-bus"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._ready.wait()), timeout=5)

    async def _connect(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                self._nc = await nats.connect(
                    self.url,
                    name=f"cityhub-{self.instance_name}",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    connect_timeout=2,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
                self._js = self._nc.jetstream(timeout=self.publish_timeout)
                await self._ensure_stream()
                return
            except (OSError, NoServersError, NatsTimeout, TimeoutError) as error:
                log.warning("NATS at %s unreachable (%s); retrying in %.1fs", self.url, error, delay)
                if self._nc is not None:
                    with contextlib.suppress(Exception):
                        await self._nc.close()
                    self._nc = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _ensure_stream(self) -> None:
        assert self._js is not None
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.subject_prefix}.>"],
            storage=StorageType.FILE,
            max_age=self.max_age_days * 86400,
            duplicate_window=self.duplicate_window,
        )
        try:
            await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(config)
        else:
            await self._js.update_stream(config)

    async def _run(self) -> None:
        await self._connect()
        if self._stopping.is_set():
            return
        bound: list[asyncio.Event] = []
        for subscription in self.subscriptions:
            for event_class in subscription.event_types:
                bound.append(asyncio.Event())
                self._tasks.append(
                    asyncio.create_task(
                        self._consume(subscription, event_class.event_type, bound[-1]),
                        name=f"nats-consumer-{subscription.name}-{event_class.event_type}",
                    )
                )
        # Ready only once every durable consumer exists: a new one starts at DeliverPolicy.NEW, so
        # an event published before it is created (e.g. by the outbox relay) would never reach it.
        await asyncio.gather(*(event.wait() for event in bound))
        self._ready.set()
        log.info(
            "NATS bus connected to %s (stream %s, %d consumers)",
            self.url,
            self.stream,
            len(self._tasks) - 1,
        )

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._ready.clear()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None
            self._js = None

    # -- publishing ----------------------------------------------------------------------------
    async def publish(self, event: Event) -> None:
        if self._js is None or self._nc is None or not self._nc.is_connected:
            raise BusUnavailable(f"not connected to NATS at {self.url}")
        if not self._ready.is_set():
            # Consumers are created with DeliverPolicy.NEW: publishing before they exist would
            # leave the event in the stream but unseen by them. The outbox keeps it meanwhile.
            raise BusUnavailable("NATS consumers are still being set up")
        try:
            await self._js.publish(
                self.subject(event.event_type),
                event.to_json(),
                stream=self.stream,
                timeout=self.publish_timeout,
                headers={"Nats-Msg-Id": str(event.id), EVENT_TYPE_HEADER: event.event_type},
            )
        except Exception as error:
            raise BusUnavailable(f"NATS did not acknowledge event {event.id}: {error!r}") from error
        self.stats.published += 1

    async def ping(self) -> None:
        if self._nc is None or not self._nc.is_connected:
            raise BusUnavailable(f"not connected to NATS at {self.url}")
        if not self._ready.is_set():
            raise BusUnavailable("NATS consumers are still being set up")
        try:
            await self._nc.flush(timeout=2)
        except Exception as error:
            raise BusUnavailable(f"NATS at {self.url} does not answer: {error!r}") from error

    # -- consuming ----------------------------------------------------------------------------
    async def _consume(self, subscription: Subscription, event_type: str, bound: asyncio.Event) -> None:
        name = self.consumer_name(subscription, event_type)
        config = ConsumerConfig(
            durable_name=name,
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30,
            max_deliver=-1,
            filter_subject=self.subject(event_type),
            inactive_threshold=None if subscription.shared else self.broadcast_inactive_threshold,
        )
        pull = None
        while not self._stopping.is_set():
            try:
                if pull is None:
                    assert self._js is not None
                    pull = await self._bind(name, config)
                    bound.set()
                messages = await pull.fetch(self.fetch_batch, timeout=1)
            except (NatsTimeout, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("consumer %s: %r; retrying", name, error)
                pull = None
                await asyncio.sleep(1)
                continue
            for message in messages:
                await self._handle(subscription, name, message)

    async def _bind(self, name: str, config: ConsumerConfig) -> Any:
        assert self._js is not None
        try:
            await self._js.consumer_info(self.stream, name)
        except NotFoundError:
            try:
                await self._js.add_consumer(self.stream, config)
            except BadRequestError:
                # another process created it between our look-up and our add: bind to theirs
                await self._js.consumer_info(self.stream, name)
        return await self._js.pull_subscribe_bind(name, stream=self.stream)

    async def _handle(self, subscription: Subscription, consumer: str, message: Any) -> None:
        headers = message.headers or {}
        event_type = headers.get(EVENT_TYPE_HEADER) or message.subject.removeprefix(self.subject_prefix + ".")
        try:
            event = decode_event(event_type, message.data)
        except (UnknownEventType, ValueError) as error:
            # Kept in the stream (nothing is deleted), but this consumer can never read it.
            log.error("consumer %s cannot decode %s message: %s", consumer, event_type, error)
            await message.term()
            self.stats.failed += 1
            return
        try:
            await subscription.handler(event)
        except Exception:
            delivered = message.metadata.num_delivered if message.metadata else 1
            delay = min(0.5 * 2 ** (delivered - 1), 60.0)
            log.exception(
                "consumer %s failed on event %s (delivery %d); redelivering in %.1fs",
                consumer,
                event.id,
                delivered,
                delay,
                extra={"consumer": consumer, "event_id": str(event.id)},
            )
            self.stats.failed += 1
            with contextlib.suppress(Exception):
                await message.nak(delay=delay)
            return
        await message.ack()
        self.stats.delivered += 1

    # -- connection callbacks -------------------------------------------------------------------
    async def _on_error(self, error: Exception) -> None:
        log.debug("NATS client error: %r", error)

    async def _on_disconnected(self) -> None:
        if not self._stopping.is_set():
            log.warning("disconnected from NATS at %s; events wait in the outbox", self.url)

    async def _on_reconnected(self) -> None:
        log.info("reconnected to NATS at %s", self.url)
        # A server that came back with an empty store has lost the stream: make it again.
        with contextlib.suppress(Exception):
            await self._ensure_stream()
