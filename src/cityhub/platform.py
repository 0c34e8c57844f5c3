"""The hub's side of :class:`cityhub.plugins.Platform`: what applications may ask about the hub.

It lives beside app.py, above both `hub` and `plugins`, because it joins the two."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cityhub import __version__
from cityhub.bus import Bus, OutboxMessage
from cityhub.hub.tenancy import service as tenants
from cityhub.kit.db import ping
from cityhub.kit.time import utcnow
from cityhub.plugins import AppStatus, EventCounts, TenantInfo


class HubPlatform:
    version = __version__

    def __init__(self, engine: AsyncEngine, bus: Bus, instance_name: str) -> None:
        self.engine = engine
        self.bus = bus
        self.instance_name = instance_name
        self.started_at: datetime = utcnow()
        self.statuses: list[AppStatus] = []

    @property
    def database_backend(self) -> str:
        return self.engine.dialect.name

    @property
    def bus_backend(self) -> str:
        return self.bus.backend

    async def readiness(self) -> dict[str, str]:
        """``ok`` or the error, for the database and the bus, checked concurrently."""

        async def check(probe: Awaitable[None]) -> str:
            try:
                await probe
            except Exception as error:
                return f"unavailable: {error!r}"[:300]
            return "ok"

        database, bus = await asyncio.gather(check(ping(self.engine)), check(self.bus.ping()))
        return {"database": database, "bus": bus}

    async def tenant(self, session: AsyncSession, code: str) -> TenantInfo:
        tenant = await tenants.get_tenant(session, code)
        return TenantInfo(
            code=tenant.code,
            name=tenant.name,
            name_en=tenant.name_en,
            level=tenant.level,
            parent_code=tenant.parent_code,
            children=tuple(await tenants.children(session, code)),
        )

    async def tenant_subtree(self, session: AsyncSession, code: str) -> list[str]:
        return await tenants.subtree(session, code)

    async def event_counts(self, session: AsyncSession, tenant: str) -> EventCounts:
        # One statement, so an event published between two counts is not counted twice.
        published = OutboxMessage.published_at
        row = (
            await session.execute(
                select(
                    func.count().filter(published.is_(None)),
                    func.count().filter(published >= utcnow() - timedelta(hours=24)),
                ).where(OutboxMessage.tenant_code == tenant)
            )
        ).one()
        return EventCounts(pending=int(row[0]), published_last_24h=int(row[1]))

    def apps(self) -> list[AppStatus]:
        return list(self.statuses)
