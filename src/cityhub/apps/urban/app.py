from __future__ import annotations

from datetime import timedelta

from pydantic import field_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.apps.urban import components
from cityhub.apps.urban.api import build_router
from cityhub.plugins import (
    AppContext,
    AppSettings,
    Event,
    HubApp,
    Indicator,
    IndicatorValue,
    Manifest,
    NotFound,
    cases,
    casestats,
    scope_to_tenant,
    utcnow,
)

#: Alert rule templates, in the rule engine's definition contract. A tilt sensor on a manhole cover
#: writes ``tilt`` (degrees) into the cover's UrbanComponent entity; a case about it then marks the
#: component damaged (see components.py).
RULE_TEMPLATES: dict[str, tuple[str, str, dict[str, object]]] = {
    "manhole-cover-displaced": (
        "井盖位移",
        "Manhole cover displaced",
        {
            "name": "Manhole cover displaced",
            "entity_type": "UrbanComponent",
            "when": {
                "all": [
                    {"attr": "category", "op": "==", "value": {"param": "category"}},
                    {"attr": "tilt", "op": ">", "value": {"param": "tilt"}},
                ]
            },
            "for": {"param": "duration"},
            "severity": "critical",
            "message_zh": "{entity} 井盖倾斜 {value}°，疑似位移或缺失",
            "message_en": "{entity}: cover tilted {value}°, displaced or missing",
            "open_case": {"category": {"param": "category"}, "urgency": "urgent"},
            "channels": ["in-app"],
            "suppress": "PT6H",
            "params": {
                "category": {
                    "type": "string",
                    "default": "C0101",
                    "title_zh": "部件类别",
                    "title_en": "Component category",
                },
                "tilt": {
                    "type": "number",
                    "default": 15,
                    "title_zh": "倾角阈值（度）",
                    "title_en": "Tilt (degrees)",
                },
                "duration": {
                    "type": "string",
                    "default": "PT1M",
                    "title_zh": "持续时间",
                    "title_en": "Duration",
                },
            },
        },
    ),
}


class UrbanSettings(AppSettings):
    #: CITYHUB_APP_URBAN_WEIGHTS: handling, on-time, rework, overdue, extension (the published 30/20/20/20/10)
    weights: str = "30,20,20,20,10"

    @field_validator("weights")
    @classmethod
    def _five_weights(cls, value: str) -> str:
        try:
            casestats.parse_weights(value)
        except Exception as error:
            raise ValueError(str(error)) from None
        return value


class UrbanApp(HubApp):
    manifest = Manifest(
        name="urban",
        version="1.0.0",
        title_zh="数字化城市管理",
        title_en="Urban management",
        indicators=(Indicator.SMART_URBAN_MANAGEMENT,),
        settings_model=UrbanSettings,
    )

    async def setup(self, ctx: AppContext) -> None:
        settings = ctx.settings if isinstance(ctx.settings, UrbanSettings) else UrbanSettings()
        weights = casestats.parse_weights(settings.weights)
        sessions = ctx.sessions

        async def follow(event: Event) -> None:
            await follow_case(sessions, event)

        ctx.registry.add_entity_type(components.ENTITY_TYPE, title_zh="城市部件", title_en="Urban component")
        ctx.registry.add_router(build_router(weights), prefix="/api/v1/urban")
        ctx.registry.subscribe("components", [cases.CaseOpened, cases.CaseTransitioned], follow, shared=True)
        ctx.registry.add_indicator_provider(Indicator.SMART_URBAN_MANAGEMENT, closure_rate)
        for key, (title_zh, title_en, definition) in RULE_TEMPLATES.items():
            ctx.registry.add_rule_template(key, title_zh=title_zh, title_en=title_en, definition=definition)


async def follow_case(sessions: async_sessionmaker[AsyncSession], event: Event) -> None:
    """A component's state follows the cases about it (idempotent: a redelivery changes nothing)."""
    if event.tenant is None:
        return
    async with sessions() as session, session.begin():
        scope_to_tenant(session, event.tenant)
        try:
            case = await cases.read_case_of(session, event.tenant, str(getattr(event, "case_id", "")))
        except NotFound:
            return
        if components.code_of(case.source_ref) is None:
            return
        assert case.source_ref is not None
        ended = casestats.closed_states(session, case.case_type)
        if case.state not in ended:
            await components.case_opened(session, event.tenant, case.id, case.source_ref)
        else:
            repaired = case.closed_at is not None
            await components.case_ended(session, event.tenant, case.id, case.source_ref, repaired=repaired)


async def closure_rate(session: AsyncSession, tenant: str) -> IndicatorValue:
    """Share of the urban management cases dispatched in the last 30 days that are closed."""
    now = utcnow()
    scores = await casestats.evaluate(session, now - timedelta(days=30), now)
    dispatched = sum(s.dispatched for s in scores)
    handled = sum(s.handled for s in scores)
    return IndicatorValue(
        indicator=Indicator.SMART_URBAN_MANAGEMENT,
        value=round(100.0 * handled / dispatched, 1) if dispatched else 0.0,
        unit="%",
        label_zh="近30日派遣案件结案率",
        label_en="Closure rate of the cases dispatched in the last 30 days",
    )
