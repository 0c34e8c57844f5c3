from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from cityhub.apps.system.schemas import AppLine, PlatformLine, SystemStatus
from cityhub.plugins import DbSession, Platform, RequestTenant, utcnow


def build_router(platform: Platform) -> APIRouter:
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

    return router
