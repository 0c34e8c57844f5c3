"""Overdue detection: every so often each tenant's cases past their stage's due time are marked,
recorded in their history and escalated (flag and bus event), once per stage."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.hub.dispatch import overdue
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.periodic import Periodic
from cityhub.kit.time import utcnow

log = logging.getLogger(__name__)


async def mark_all_overdue(sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None) -> int:
    """Mark every tenant's overdue cases, each tenant in a transaction of its own; how many."""
    now = now or utcnow()
    async with sessions() as session:
        tenants = await overdue.overdue_tenants(session, now)
    marked = 0
    for tenant in tenants:
        async with sessions() as session, session.begin():
            scope_to_tenant(session, tenant)
            marked += len(await overdue.mark_overdue(session, now=now))
    return marked


class OverdueTask:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float) -> None:
        self.sessions = sessions
        self._periodic = Periodic("marking overdue cases", interval, self.run)

    async def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def run(self) -> None:
        marked = await mark_all_overdue(self.sessions)
        if marked:
            log.info("%d case(s) became overdue and were escalated", marked)
