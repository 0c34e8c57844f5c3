from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.apps.traffic.api import build_router
from cityhub.apps.traffic.service import LiveTraffic
from cityhub.apps.traffic.settings import TrafficSettings
from cityhub.apps.traffic.tasks import Publisher
from cityhub.plugins import (
    AppContext,
    EntitiesChanged,
    Event,
    HubApp,
    Indicator,
    IndicatorValue,
    Manifest,
    utcnow,
)


class TrafficApp(HubApp):
    manifest = Manifest(
        name="traffic",
        version="1.0.0",
        title_zh="智慧交通",
        title_en="Smart traffic",
        indicators=(Indicator.SMART_TRAFFIC,),
        settings_model=TrafficSettings,
    )

    def __init__(self) -> None:
        self._publisher: Publisher | None = None

    async def setup(self, ctx: AppContext) -> None:
        settings = ctx.settings if isinstance(ctx.settings, TrafficSettings) else TrafficSettings()
        traffic = LiveTraffic(landmarks=settings.landmarks, observation_ttl=settings.observation_ttl)
        sessions = ctx.sessions

        async def observe(event: Event) -> None:
            if isinstance(event, EntitiesChanged) and event.tenant is not None:
                for change in event.changes:
                    traffic.apply_change(event.tenant, change)

        async def performance(session: AsyncSession, tenant: str) -> IndicatorValue:
            return await _performance(traffic, session, tenant)

        registry = ctx.registry
        # every process keeps its own live copy: a broadcast consumer, not a shared one
        registry.subscribe("live", (EntitiesChanged,), observe, shared=False)
        # a city's network file is larger than the hub's body limit: the upload checks its own
        registry.add_router(
            build_router(traffic, settings),
            prefix="/api/v1/traffic",
            body_limits={"/network": settings.max_upload_mb * 1024 * 1024},
        )
        registry.add_indicator_provider(Indicator.SMART_TRAFFIC, performance)
        for name, zh, en in (
            ("RoadSegment", "路段", "Road segment"),
            ("TrafficFlowObserved", "交通流观测", "Observed traffic flow"),
            ("TrafficPerformanceIndex", "交通运行指数", "Traffic performance index"),
            ("OffStreetParking", "路外停车场", "Off-street parking"),
            ("ParkingSpot", "路内泊位", "On-street parking spot"),
        ):
            registry.add_entity_type(name, title_zh=zh, title_en=en)
        self._publisher = Publisher(
            traffic, sessions, settings.publish_interval, ctx.log, settings.bounds_refresh_interval
        )
        self._publisher.start()

    async def teardown(self) -> None:
        if self._publisher is not None:
            await self._publisher.stop()


async def _performance(traffic: LiveTraffic, session: AsyncSession, tenant: str) -> IndicatorValue:
    """The network's traffic performance index now (0 free flow … 10 gridlock)."""
    live = await traffic.network(session, tenant)
    tpi = 0.0
    if live is not None:
        tpi = live.indices(utcnow(), traffic.observation_ttl)[-1].tpi
    return IndicatorValue(
        indicator=Indicator.SMART_TRAFFIC,
        value=round(tpi, 2),
        unit="TPI (0-10)",
        label_zh="路网交通运行指数",
        label_en="Road network traffic performance index",
    )
