"""In-process bus: the embedded default, for a single hub process.

``publish`` returns only after every matching handler has run, so the outbox marks an event sent
only once its consumers have seen it: a crash in between means the event is delivered again after
restart, never lost. A handler that keeps failing is retried a few times, then logged and counted.
"""

from __future__ import annotations

import asyncio
import logging

from cityhub.bus.base import Bus, Subscription
from cityhub.bus.events import Event

log = logging.getLogger(__name__)


class InProcessBus(Bus):
    backend = "memory"

    def __init__(self, *, attempts: int = 5, first_delay: float = 0.05) -> None:
        super().__init__()
        self.attempts = attempts
        self.first_delay = first_delay
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False

    async def ping(self) -> None:
        return None

    async def publish(self, event: Event) -> None:
        matching = [sub for sub in self.subscriptions if sub.accepts(event)]
        self.stats.published += 1
        if matching:
            await asyncio.gather(*(self._deliver(sub, event) for sub in matching))

    async def _deliver(self, subscription: Subscription, event: Event) -> None:
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                await subscription.handler(event)
            except Exception:
                if attempt == self.attempts:
                    self.stats.failed += 1
                    log.exception(
                        "consumer %s gave up on event %s (%s) after %d attempts",
                        subscription.name,
                        event.id,
                        event.event_type,
                        attempt,
                        extra={"consumer": subscription.name, "event_id": str(event.id)},
                    )
                    return
                await asyncio.sleep(delay)
                delay *= 2
            else:
                self.stats.delivered += 1
                return
