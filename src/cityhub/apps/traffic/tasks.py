"""Background work: the periodic write-back of segment states and indices, and the periodic
refresh of the router from live times (its customisation and its ALT bounds)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.apps.traffic.service import LiveTraffic


class Publisher:
    """Every ``interval`` seconds, for each tenant whose network this process holds, write the
    changed segment states and the indices (one transaction per tenant). Several hub processes
    each write the same values: the writes are merges, so the result is the same."""

    def __init__(
        self,
        traffic: LiveTraffic,
        sessions: async_sessionmaker[AsyncSession],
        interval: float,
        log: logging.Logger,
        refresh_interval: float = 0.0,
    ) -> None:
        self.traffic = traffic
        self.sessions = sessions
        self.interval = interval
        self.refresh_interval = refresh_interval
        self.log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and (self.interval > 0 or self.refresh_interval > 0):
            self._task = asyncio.create_task(self._run(), name="traffic-publisher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def publish_all(self) -> None:
        for tenant in self.traffic.tenants():
            try:
                async with self.sessions() as session, session.begin():
                    await self.traffic.publish(session, tenant)
            except Exception:
                self.log.exception("traffic: publishing the state of tenant %s failed", tenant)

    async def refresh_all(self) -> None:
        for tenant in self.traffic.tenants():
            try:
                await self.traffic.refresh_bounds(tenant)
            except Exception:
                self.log.exception("traffic: refreshing the routing bounds of tenant %s failed", tenant)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_publish = loop.time() + self.interval if self.interval > 0 else float("inf")
        next_refresh = loop.time() + self.refresh_interval if self.refresh_interval > 0 else float("inf")
        while True:
            await asyncio.sleep(max(0.0, min(next_publish, next_refresh) - loop.time()))
            if loop.time() >= next_publish:
                await self.publish_all()
                next_publish = loop.time() + self.interval
            if loop.time() >= next_refresh:
                await self.refresh_all()
                next_refresh = loop.time() + self.refresh_interval
