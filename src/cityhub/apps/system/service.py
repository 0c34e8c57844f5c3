"""The system app's consumers: a cluster-wide tally of platform events per tenant (shared consumer,
each event counted once however many hub processes run) and a per-process feed of recent events
(broadcast consumer, so every process can show them)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.apps.system.models import EventTally
from cityhub.plugins import Event, first_delivery

TALLY_CONSUMER = "system-tally"


async def record_in_tally(sessions: async_sessionmaker[AsyncSession], event: Event) -> None:
    if event.tenant is None:
        return
    async with sessions() as session, session.begin():
        if not await first_delivery(session, TALLY_CONSUMER, event):
            return
        row = await session.get(EventTally, (event.tenant, event.event_type))
        if row is None:
            session.add(
                EventTally(
                    tenant_code=event.tenant,
                    event_type=event.event_type,
                    count=1,
                    last_event_at=event.occurred_at,
                )
            )
        else:
            # count = count + 1 in SQL: two processes may update the same row concurrently
            row.count = EventTally.count + 1
            row.last_event_at = max(row.last_event_at, event.occurred_at)


async def tally_for(session: AsyncSession) -> Sequence[EventTally]:
    """The tally of the session's tenant (the session is scoped by the request)."""
    return (await session.scalars(select(EventTally).order_by(EventTally.event_type))).all()


class RecentEvents:
    """The last ``size`` events this process has seen, newest first."""

    def __init__(self, size: int = 500) -> None:
        self._events: deque[Event] = deque(maxlen=size)

    async def record(self, event: Event) -> None:
        self._events.appendleft(event)

    def for_tenant(self, tenant: str, limit: int, since: datetime | None = None) -> list[Event]:
        found = []
        for event in self._events:
            if since is not None and event.occurred_at <= since:
                break
            if event.tenant == tenant:
                found.append(event)
                if len(found) == limit:
                    break
        return found
