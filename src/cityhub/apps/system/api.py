from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from cityhub.apps.system.schemas import (
    AppLine,
    EventFeed,
    FeedLine,
    PlatformLine,
    SystemStatus,
    TallyLine,
)
from cityhub.apps.system.service import RecentEvents, tally_for
from cityhub.plugins import DbSession, Platform, RequestTenant, utcnow


def build_router(platform: Platform, recent: RecentEvents) -> APIRouter:
    router = APIRouter(tags=["system"])

    @router.get(
        "/status",
        response_model=SystemStatus,
        summary="Platform status as seen by the request's tenant (NGSILD-Tenant header)",
    )
    async def status(session: DbSession, tenant: RequestTenant) -> SystemStatus:
        info = await platform.tenant(session, tenant)
        counts = await platform.event_counts(session, tenant)
        checks = await platform.readiness()
        return SystemStatus(
            tenant=asdict(info),
            platform=PlatformLine(
                version=platform.version,
                instance=platform.instance_name,
                database=platform.database_backend,
                bus=platform.bus_backend,
                started_at=platform.started_at,
                uptime_seconds=(utcnow() - platform.started_at).total_seconds(),
                checks=checks,
            ),
            events=asdict(counts),
            activity=[TallyLine.model_validate(row) for row in await tally_for(session)],
            apps=[
                AppLine(
                    name=app.manifest.name,
                    version=app.manifest.version,
                    title_zh=app.manifest.title_zh,
                    title_en=app.manifest.title_en,
                    state=app.state,
                )
                for app in platform.apps()
            ],
        )

    @router.get(
        "/events",
        response_model=EventFeed,
        summary="Recent platform events of the request's tenant, as this hub process saw them",
    )
    async def events(
        tenant: RequestTenant,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        since: Annotated[datetime | None, Query(description="Only events after this time")] = None,
    ) -> EventFeed:
        return EventFeed(
            instance=platform.instance_name,
            tenant=tenant,
            events=[
                FeedLine(id=str(e.id), event_type=e.event_type, occurred_at=e.occurred_at)
                for e in recent.for_tenant(tenant, limit, since)
            ],
        )

    return router
