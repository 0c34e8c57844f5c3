"""The event bus: typed events, an outbox, and two interchangeable backends."""

from __future__ import annotations

from cityhub.bus.base import Bus, BusUnavailable, Handler, Subscription
from cityhub.bus.events import Event, decode_event, event_class
from cityhub.bus.inbox import InboxReceipt, first_delivery
from cityhub.bus.memory import InProcessBus
from cityhub.bus.outbox import OutboxMessage, OutboxRelay, enqueue

__all__ = [
    "Bus",
    "BusUnavailable",
    "Event",
    "Handler",
    "InProcessBus",
    "InboxReceipt",
    "OutboxMessage",
    "OutboxRelay",
    "Subscription",
    "create_bus",
    "decode_event",
    "enqueue",
    "event_class",
    "first_delivery",
]


def create_bus(url: str, *, stream: str = "CITYHUB", instance_name: str = "hub") -> Bus:
    """``memory://`` gives the in-process bus, ``nats://…`` the JetStream one."""
    if url.startswith("memory://"):
        return InProcessBus()
    from cityhub.bus.nats import NatsBus

    return NatsBus(url, stream=stream, instance_name=instance_name)
