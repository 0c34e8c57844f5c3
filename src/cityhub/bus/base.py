"""The bus interface both backends implement."""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from cityhub.bus.events import Event

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]


class BusUnavailable(Exception):
    """The bus could not take the event now; the outbox keeps it and tries again."""


@dataclass(frozen=True)
class Subscription:
    """A consumer of some event types.

    ``shared=True``: one durable consumer for the whole cluster; every event is handled by exactly
    one hub process (work sharing). ``shared=False``: each hub process has its own consumer and
    handles every event (broadcast, e.g. to refresh a local cache or push to its WebSocket clients).
    Delivery is at least once: a handler that raises gets the event again later, so handlers must be
    idempotent.
    """

    name: str
    event_types: tuple[type[Event], ...]
    handler: Handler
    shared: bool = True

    def accepts(self, event: Event) -> bool:
        return type(event) in self.event_types


@dataclass
class BusStats:
    published: int = 0
    delivered: int = 0
    failed: int = 0


class Bus(abc.ABC):
    backend: str = ""

    def __init__(self) -> None:
        self.subscriptions: list[Subscription] = []
        self.stats = BusStats()

    def subscribe(
        self,
        name: str,
        event_types: Sequence[type[Event]],
        handler: Handler,
        *,
        shared: bool = True,
    ) -> Subscription:
        """Register a consumer; call before :meth:`start` (the plug-in registry does)."""
        if not name.replace("-", "_").isidentifier():
            raise ValueError(f"consumer name {name!r} must be letters, digits, '-' or '_'")
        if any(sub.name == name for sub in self.subscriptions):
            raise ValueError(f"consumer {name!r} already subscribed")
        types = tuple(event_types)
        if not types or any(not t.event_type for t in types):
            raise ValueError("subscribe to concrete event classes with an event_type")
        subscription = Subscription(name, types, handler, shared)
        self.subscriptions.append(subscription)
        return subscription

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def publish(self, event: Event) -> None:
        """Hand the event over durably, or raise :class:`BusUnavailable`."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise :class:`BusUnavailable` if the bus cannot take events now."""
