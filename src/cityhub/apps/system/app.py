from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.apps.system.api import build_router
from cityhub.apps.system.service import RecentEvents, record_in_tally
from cityhub.plugins import (
    AppContext,
    Event,
    HubApp,
    Indicator,
    IndicatorValue,
    Manifest,
    Platform,
    TenantCreated,
    TenantUpdated,
)

PLATFORM_EVENTS = (TenantCreated, TenantUpdated)


class SystemApp(HubApp):
    manifest = Manifest(
        name="system",
        version="1.0.0",
        title_zh="平台运行状态",
        title_en="Platform status",
        indicators=(Indicator.CITY_HUB_PLATFORM,),
    )

    async def setup(self, ctx: AppContext) -> None:
        platform = ctx.platform
        sessions = ctx.sessions
        recent = RecentEvents()

        async def tally(event: Event) -> None:
            await record_in_tally(sessions, event)

        async def connected_tenants(session: AsyncSession, tenant: str) -> IndicatorValue:
            return await _connected_tenants(platform, session, tenant)

        ctx.registry.subscribe("tally", PLATFORM_EVENTS, tally, shared=True)
        ctx.registry.subscribe("feed", PLATFORM_EVENTS, recent.record, shared=False)
        ctx.registry.add_router(build_router(platform, recent), prefix="/api/v1/system")
        ctx.registry.add_indicator_provider(Indicator.CITY_HUB_PLATFORM, connected_tenants)


async def _connected_tenants(platform: Platform, session: AsyncSession, tenant: str) -> IndicatorValue:
    """Divisions served by the hub at and below ``tenant``: the hub's reach in the division tree."""
    reach = await platform.tenant_subtree(session, tenant)
    return IndicatorValue(
        indicator=Indicator.CITY_HUB_PLATFORM,
        value=float(len(reach)),
        unit="tenants",
        label_zh="接入中枢平台的行政区划数",
        label_en="Divisions connected to the city hub",
    )
