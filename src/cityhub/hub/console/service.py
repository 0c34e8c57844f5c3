"""The live feed: entity changes, as the broker announces them, fanned out to open streams.

Each hub process subscribes once to :class:`EntitiesChanged` (a per-process consumer, so every
process sees every change) and hands each change to the streams open on it whose tenant and entity
types match. A stream that does not keep up loses its oldest changes, never the hub's memory: its
queue is bounded and an overflow is reported to the browser as a ``resync`` event, on which it
reloads its layers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cityhub.bus import Event
from cityhub.hub.broker.context import core_context
from cityhub.hub.broker.events import EntitiesChanged
from cityhub.hub.broker.local import compact_entity

#: Changes one stream may have waiting before it is told to reload.
QUEUE_SIZE = 1000


@dataclass(eq=False)
class Listener:
    """One open stream: a tenant, the entity types it wants (empty: all) and its waiting changes."""

    tenant: str
    types: frozenset[str]
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def offer(self, message: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True


class LiveFeed:
    """The streams open on this process and the bus handler that feeds them."""

    def __init__(self) -> None:
        self.listeners: set[Listener] = set()

    def open(self, tenant: str, types: Iterable[str]) -> Listener:
        listener = Listener(tenant, frozenset(types))
        self.listeners.add(listener)
        return listener

    def close(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    async def on_changes(self, event: Event) -> None:
        assert isinstance(event, EntitiesChanged)
        listeners = [listener for listener in self.listeners if listener.tenant == event.tenant]
        if not listeners:
            return
        for change in event.changes:
            message = message_of(change)
            for listener in listeners:
                if not listener.types or message["type"] in listener.types:
                    listener.offer(message)


def message_of(change: dict[str, Any]) -> dict[str, Any]:
    """What the browser gets for one change: the operation, the entity's id and short type, and the
    entity after it in normalized NGSI-LD with short names (None once deleted)."""
    stored = change.get("entity")
    entity = compact_entity(stored) if stored is not None else None
    short_type = core_context().compact(change["types"][0])
    return {"op": change["op"], "id": change["id"], "type": short_type, "entity": entity}
