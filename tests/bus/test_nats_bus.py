"""NatsBus against the real JetStream server: delivery, redelivery, de-duplication, durability."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from nats.js import JetStreamContext

from cityhub.bus import Event
from cityhub.bus.nats import NatsBus
from tests.bus.support import recorder, wait_until

pytestmark = pytest.mark.nats


class ReadingTaken(Event):
    event_type = "test.nats_bus.reading_taken"

    sensor: str
    value: float
    tags: tuple[str, ...] = ()


class MeterReset(Event):
    event_type = "test.nats_bus.meter_reset"

    meter: str


async def test_publish_and_consume(make_bus: Callable[..., NatsBus]) -> None:
    """A published event reaches the subscriber as an equal event (same class, id and fields), and
    only the subscriber of its type gets it."""
    bus = make_bus()
    readings, on_reading = recorder()
    resets, on_reset = recorder()
    bus.subscribe("readings", [ReadingTaken], on_reading)
    bus.subscribe("resets", [MeterReset], on_reset)
    await bus.start()
    await bus.ping()

    sent = ReadingTaken(sensor="air-7", value=21.5, tags=("pm10", "east"), tenant="C00001")
    await bus.publish(sent)

    await wait_until(lambda: readings, what="the reading")
    assert readings == [sent]
    assert type(readings[0]) is ReadingTaken
    assert readings[0].id == sent.id
    assert resets == []
    assert bus.stats.published == 1


async def test_failed_handler_gets_the_event_again_then_acks(
    make_bus: Callable[..., NatsBus], jetstream: JetStreamContext, stream: str
) -> None:
    """At least once: a handler that raises on the first delivery gets the same event again, and
    once it succeeds the message is acked: not delivered a third time."""
    bus = make_bus()
    calls: list[Event] = []

    async def flaky(event: Event) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("first delivery fails")

    subscription = bus.subscribe("flaky", [ReadingTaken], flaky)
    await bus.start()
    sent = ReadingTaken(sensor="air-8", value=3.0)
    await bus.publish(sent)

    await wait_until(lambda: len(calls) >= 2, what="the redelivery")
    assert calls == [sent, sent]
    consumer = bus.consumer_name(subscription, ReadingTaken.event_type)

    async def acked() -> bool:
        info = await jetstream.consumer_info(stream, consumer)
        return info.num_ack_pending == 0 and info.ack_floor.stream_seq == 1

    await wait_until(acked, what="the ack")
    await asyncio.sleep(1.5)  # longer than the next nak delay (1 s): a third delivery would show
    assert len(calls) == 2
    assert (bus.stats.failed, bus.stats.delivered) == (1, 1)


async def test_same_event_published_twice_is_delivered_once(
    make_bus: Callable[..., NatsBus], jetstream: JetStreamContext, stream: str
) -> None:
    """The stream drops a second copy with the same id (Nats-Msg-Id), as after an outbox re-send."""
    bus = make_bus()
    received, handle = recorder()
    bus.subscribe("dedup", [ReadingTaken], handle)
    await bus.start()
    twice = ReadingTaken(sensor="air-9", value=1.0)
    fence = ReadingTaken(sensor="air-9", value=2.0)
    await bus.publish(twice)
    await bus.publish(twice)
    await bus.publish(fence)

    # One consumer gets the stream in order: once the fence is in, a duplicate would be too.
    await wait_until(lambda: fence in received, what="the fence event")
    assert received == [twice, fence]
    assert (await jetstream.stream_info(stream)).state.messages == 2


async def test_durable_consumer_gets_what_was_published_while_down(make_bus: Callable[..., NatsBus]) -> None:
    """A shared consumer is durable: events published while no process runs it are delivered to
    the next process that subscribes with the same name; what was acked before is not."""
    first = make_bus("first")
    before, handle_before = recorder()
    first.subscribe("archiver", [ReadingTaken], handle_before)
    await first.start()
    early = ReadingTaken(sensor="air-1", value=1.0)
    await first.publish(early)
    await wait_until(lambda: before, what="the first event")
    await first.stop()

    publisher = make_bus("publisher")
    await publisher.start()
    missed = [ReadingTaken(sensor="air-1", value=float(n)) for n in range(2, 5)]
    for event in missed:
        await publisher.publish(event)

    second = make_bus("second")
    after, handle_after = recorder()
    second.subscribe("archiver", [ReadingTaken], handle_after)
    await second.start()
    await wait_until(lambda: len(after) >= len(missed), what="the events published while down")
    assert before == [early]
    assert after == missed
