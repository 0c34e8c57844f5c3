"""Background work of the catalog: approvals whose time is up are marked expired, each with its
audit record. Access ends at an approval's ``expires_at`` whether or not this has run (the rules
compare the time); the task keeps the requests' states and the audit chain true to it."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.hub.catalog import service
from cityhub.kit.periodic import Periodic

log = logging.getLogger(__name__)

#: Seconds between runs: an expiry is recorded within this long of happening.
INTERVAL = 300.0


class ExpiryTask:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float = INTERVAL) -> None:
        self.sessions = sessions
        self._periodic = Periodic("expiring sharing approvals", interval, self.run)

    async def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def run(self) -> int:
        async with self.sessions() as session, session.begin():
            expired = await service.expire_due(session)
        if expired:
            log.info("%d sharing approvals expired", expired)
        return expired
